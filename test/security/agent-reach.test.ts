import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServerProcess, startServer, TEST_API_KEY } from "../helpers/server-process.ts";
import { TestClient } from "../helpers/ws-client.ts";

/**
 * A program attacks its own agent (issue 16): each program runs in the
 * launcher's jail (its own user, pid and mount namespaces), so the agent is
 * not there to be stopped, killed, traced, read through /proc or copied
 * through pidfds, its socket folder /run/agent is gone, and nothing of /run
 * takes writes. The session's next exec answers at once.
 */
// 2>&1 everywhere: what the attempts print is part of what is checked.
const BASH_ATTACK = [
  'for p in $(ls /proc | grep -E "^[0-9]+$"); do [ "$p" = "$$" ] || kill -STOP "$p" 2>/dev/null; done',
  // The pattern's brackets keep grep from finding its own command line.
  'grep -l "agent[.]mjs" /proc/[0-9]*/cmdline 2>/dev/null | wc -l',
  "ls /run/agent 2>&1 | sed 's/^ls: //'",
  "{ echo x > /run/agent/token; } 2>&1 | sed 's/^.*: //'",
  "{ echo x > /run/fill; } 2>&1 | sed 's/^.*: //'",
  // kill(-1) spares the caller and its namespace's init: nobody else is there (not in a pipeline: it would stop this shell).
  "kill -STOP -1 2>/tmp/kill.err; sed 's/^.*kill: //' /tmp/kill.err",
].join("\n");
const BASH_EXPECTED = [
  "0",
  "cannot access '/run/agent': No such file or directory",
  "No such file or directory",
  "Read-only file system",
  "(-1) - No such process",
  "",
].join("\n");

// From the persistent interpreter: every process it can see, what each is, and pidfds on all of them.
const PY_ATTACK = [
  "import os, signal",
  "seen = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())",
  "cmds = [open(f'/proc/{p}/cmdline', 'rb').read().split(b'\\0')[0].decode() for p in seen]",
  "print(len(seen), any('node' in c for c in cmds))",
  "for p in seen:",
  "    if p != os.getpid():",
  "        try:",
  "            fd = os.pidfd_open(p)",
  "            signal.pidfd_send_signal(fd, signal.SIGKILL)",
  "        except OSError as e:",
  "            print('refused', e.errno)",
  "x = 41",
].join("\n");

const OTHER_KEY = "agent-reach-other-key-0123456789";
const WALL_S = 10;

describe.each(["node", "uws"] as const)("a program against its own agent (%s transport)", (transport) => {
  let server: ServerProcess;
  const clients: TestClient[] = [];
  beforeAll(async () => {
    server = await startServer({
      transport,
      env: { SANDBOX_POOL_ENABLED: "false", MAX_EXECUTION_TIME: String(WALL_S), MAX_CONCURRENT_EXECUTIONS: "1", API_KEYS: OTHER_KEY },
    });
  });
  afterAll(async () => {
    for (const client of clients) client.terminate();
    await server?.stop();
  });

  const exec = async (body: Record<string, unknown>, apiKey = TEST_API_KEY) => {
    const started = performance.now();
    const reply = await fetch(`${server.httpUrl}/exec`, {
      method: "POST",
      headers: { "x-api-key": apiKey, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const json = (await reply.json()) as { session_id: string; stdout: string; stderr: string };
    return { ...json, ms: performance.now() - started };
  };

  it("HTTP: bash sees no agent, cannot stop it, finds no /run/agent and no writable /run; the next exec answers at once", async () => {
    const attack = await exec({ lang: "bash", code: BASH_ATTACK });
    expect({ stdout: attack.stdout, stderr: attack.stderr }).toEqual({ stdout: BASH_EXPECTED, stderr: "" });
    const next = await exec({ lang: "bash", code: "echo alive", session_id: attack.session_id });
    expect({ stdout: next.stdout, stderr: next.stderr }).toEqual({ stdout: "alive\n", stderr: "" });
    expect(next.ms).toBeLessThan(5_000);
  });

  it("WebSocket: the interpreter sees only its jail (no node), its pidfds reach nothing else; its variables live on", async () => {
    const client = await TestClient.connect(server.wsUrl, { apiKey: TEST_API_KEY });
    clients.push(client);
    await client.openSession();
    const attack = await client.run("attack", "py", PY_ATTACK);
    expect(attack.exit, client.describe()).toMatchObject({ reason: "exited", code: 0 });
    // The jail's init (the launcher) and the interpreter: the init survives the SIGKILL, as a namespace's init does from inside.
    expect(attack.stdout).toBe("2 False\n");
    const next = await client.run("next", "py", "print(x + 1)");
    expect(next).toMatchObject({ exit: { reason: "exited", code: 0 }, stdout: "42\n" });
  });

  it("finding 1 (MAX_CONCURRENT_EXECUTIONS=1): a delayed `kill -STOP 2` from the interpreter stops no agent; the next exec with an input file and another key's run answer at once", async () => {
    const form = new FormData();
    form.append("file", new Blob(["the input\n"]), "input.txt");
    const upload = (await (await fetch(`${server.httpUrl}/upload`, { method: "POST", headers: { "x-api-key": TEST_API_KEY }, body: form })).json()) as {
      session_id: string;
      files: Array<{ fileId: string }>;
    };
    const input = { id: upload.files[0]!.fileId, session_id: upload.session_id, name: "input.txt" };
    // A thread of the persistent interpreter outlives the run (the end-of-exec sweep keeps the interpreter); pid 2 was the agent.
    const attack = await exec({ lang: "py", code: "import os, signal, threading\nthreading.Timer(1, os.kill, (2, signal.SIGSTOP)).start()\nprint('armed')" });
    expect(attack.stdout).toBe("armed\n");
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const next = await exec({ lang: "bash", code: "cat input.txt", session_id: attack.session_id, files: [input] });
    expect({ stdout: next.stdout, stderr: next.stderr }).toEqual({ stdout: "the input\n", stderr: "" });
    const other = await exec({ lang: "py", code: "print(1)" }, OTHER_KEY);
    expect({ stdout: other.stdout, stderr: other.stderr }).toEqual({ stdout: "1\n", stderr: "" });
    expect(next.ms + other.ms).toBeLessThan(WALL_S * 1000);
  });
});
