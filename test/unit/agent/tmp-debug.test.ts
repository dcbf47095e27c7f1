import { it } from "vitest";
import { AgentConn, buildLauncher, startTestAgent } from "./helpers.ts";

it("stress", async () => {
  const launcher = buildLauncher();
  const agent = await startTestAgent({ launcher });
  const conn = await AgentConn.open(agent.socketPath);
  conn.startExec({ id: "unread", lang: "py", repl: true, stdin: true, code: "import time; time.sleep(0.3); print('done')" });
  for (let i = 0; i < 20; i++) conn.send({ type: "stdin", id: "unread", data: "z".repeat(100000) });
  const e = await conn.exitOf("unread");
  const e2 = await conn.run({ id: "after", lang: "py", repl: true, stdin: true, code: "import sys; print(len(sys.stdin.read()))" , });
  process.stderr.write(`RESULT ${e.code} ${JSON.stringify(conn.text("unread"))} ${e2.code} ${e2.reason} ${JSON.stringify(conn.text("after"))} ${JSON.stringify(agent.logs)}\n`);
  await conn.close();
  await agent.stop();
}, 60000);
