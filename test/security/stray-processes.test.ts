import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServerProcess, startServer, TEST_API_KEY } from "../helpers/server-process.ts";

/**
 * An exec ends completely: what a program left running, even outside its
 * process group (`setsid ... &`), is gone once its exit is sent, so N sessions
 * cannot keep N CPU-hungry daemons past MAX_EXECUTION_TIME. The persistent
 * Python interpreter, and its variables, stay.
 */
// Lists the processes of the sandbox other than pid 1, the agent and the interpreter's pair, by command line.
const OTHERS = [
  "import os",
  "me = os.getpid()",
  "keep = {1, os.getppid(), me}",
  "def info(pid):",
  "    try:",
  "        status = open(f'/proc/{pid}/status').read()",
  "        ppid = int(status.split('PPid:')[1].split()[0])",
  "        cmd = open(f'/proc/{pid}/cmdline', 'rb').read().replace(b'\\0', b' ').decode().strip()",
  "        return ppid, cmd",
  "    except OSError:",
  "        return None",
  "found = []",
  "for name in os.listdir('/proc'):",
  "    if name.isdigit() and int(name) not in keep:",
  "        got = info(int(name))",
  "        if got and 'agent.mjs' not in got[1] and got[0] != me:",
  "            found.append(got[1])",
  "print(sorted(c for c in found if 'sleep' in c or 'while' in c))",
].join("\n");

const exec = async (server: ServerProcess, body: Record<string, unknown>) => {
  const reply = await fetch(`${server.httpUrl}/exec`, {
    method: "POST",
    headers: { "x-api-key": TEST_API_KEY, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return (await reply.json()) as { session_id: string; stdout: string; stderr: string };
};

describe.each(["node", "uws"] as const)("processes an exec leaves behind (%s)", (transport) => {
  let server: ServerProcess;
  beforeAll(async () => {
    server = await startServer({ transport, env: { SANDBOX_POOL_ENABLED: "false" } });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("ends a bash daemon that left its process group, once the exec has exited", async () => {
    const first = await exec(server, {
      lang: "bash",
      code: "setsid bash -c 'while :; do :; done' >/dev/null 2>&1 < /dev/null &\nsetsid sleep 600 >/dev/null 2>&1 < /dev/null &\necho started",
    });
    expect(first.stdout).toBe("started\n");
    const check = await exec(server, { lang: "py", code: OTHERS, session_id: first.session_id });
    expect({ stdout: check.stdout, stderr: check.stderr }).toEqual({ stdout: "[]\n", stderr: "" });
  });

  it("ends what a Python exec started outside its group, and keeps the interpreter's variables", async () => {
    const first = await exec(server, { lang: "py", code: "import subprocess\nkept = 41\nsubprocess.Popen(['setsid', 'sleep', '600'])\nprint('started')" });
    expect(first.stdout).toBe("started\n");
    const check = await exec(server, { lang: "py", code: `${OTHERS}\nprint(kept + 1)`, session_id: first.session_id });
    expect({ stdout: check.stdout, stderr: check.stderr }).toEqual({ stdout: "[]\n42\n", stderr: "" });
  });
});
