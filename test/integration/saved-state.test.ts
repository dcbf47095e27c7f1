import { readdirSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServerProcess, startServer, TEST_API_KEY } from "../helpers/server-process.ts";
import { TestClient } from "../helpers/ws-client.ts";

/**
 * A session's Python namespace survives its sandbox being reclaimed: it is
 * pickled before the sandbox goes and restored into the next one before the
 * next exec. What cannot be pickled is reported by name.
 */
describe("saved Python state", () => {
  let server: ServerProcess;
  const clients: TestClient[] = [];
  const connect = async () => {
    const client = await TestClient.connect(server.wsUrl, { apiKey: TEST_API_KEY });
    clients.push(client);
    return client;
  };
  const liveSandboxes = () => readdirSync(server.baseDir).filter((name) => !name.startsWith(".")).length; // not .owner, the lock
  const waitForNoSandbox = async () => {
    const deadline = Date.now() + 15_000;
    while (liveSandboxes() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(liveSandboxes()).toBe(0);
  };

  beforeAll(async () => {
    // The sandbox of a session with no client goes 1 s after the client leaves.
    server = await startServer({ transport: "node", env: { SESSION_IDLE_GRACE: "1", STATE_MAX_SIZE_MB: "1", SANDBOX_POOL_ENABLED: "false" } });
  });

  afterAll(async () => {
    for (const client of clients) client.terminate();
    await server?.stop();
  });

  it("restores variables, functions, instances and a DataFrame into the next sandbox, and names what could not be kept", async () => {
    const first = await connect();
    const ready = await first.openSession();
    const setup = [
      "import pandas as pd, threading",
      "total = 42",
      "def double(x):\n    return 2 * x",
      "class Point:\n    def __init__(self, x, y):\n        self.x, self.y = x, y",
      "p = Point(3, 4)",
      "df = pd.DataFrame({'a': [1, 2, 3], 'b': [4.5, 5.5, 6.5]})",
      "lock = threading.Lock()",
    ].join("\n");
    const defined = await first.run("define", "py", setup);
    expect(defined.exit).toMatchObject({ reason: "exited", code: 0 });
    first.terminate();
    await waitForNoSandbox();

    const second = await connect();
    second.send({ type: "session.open", sessionId: ready.sessionId });
    await second.waitFor((f) => f.type === "session.ready");
    const check = await second.run("check", "py", "print(total, double(21), p.x + p.y, int(df['a'].sum()), round(float(df['b'].mean()), 1), pd.__name__)");
    expect(check.stdout, check.stderr).toBe("42 42 7 6 5.5 pandas\n");
    expect(check.stderr).toMatch(/\[state\] lock was not kept when the previous sandbox was reclaimed/);
    const gone = await second.run("lock", "py", "print('lock' in globals())");
    expect(gone.stdout).toBe("False\n");
    second.terminate();
  });

  it("reports a state over STATE_MAX_SIZE_MB instead of losing it silently", async () => {
    const first = await connect();
    const ready = await first.openSession();
    await first.run("big", "py", "import os\nblob = os.urandom(3 * 1024 * 1024)\nsmall = 1");
    first.terminate();
    await waitForNoSandbox();
    const second = await connect();
    second.send({ type: "session.open", sessionId: ready.sessionId });
    await second.waitFor((f) => f.type === "session.ready");
    const check = await second.run("after", "py", "print('small' in globals())");
    expect(check.stdout).toBe("False\n");
    expect(check.stderr).toMatch(/\[state\] the Python state could not be saved .*over the limit/);
  });
});
