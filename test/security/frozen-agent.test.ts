import { readdirSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newestAgentPid } from "../helpers/sandbox-agents.ts";
import { type ServerProcess, startServer, TEST_API_KEY } from "../helpers/server-process.ts";
import { TestClient } from "../helpers/ws-client.ts";

/**
 * An agent that stops answering (issue 16, finding 1, "slot freeze"). A
 * program can no longer stop its agent (agent-reach.test.ts), so the test
 * stops it from the host, as a bug or an exhausted machine might. The
 * session's next exec, which places an input file on that agent first, must
 * still end within its own limits with sandbox_lost; its execution slot must
 * come back; the session must get a new sandbox (with its files) on the run
 * after.
 */

const WALL_S = 5;
const COMPILE_S = 1;
/** What an exec may take at most, preparation included: its wall time, its compile time, and the watchdog's slack. */
const EXEC_BOUND_MS = (WALL_S + COMPILE_S + 15) * 1000;

/** SIGSTOP the newest sandbox agent under the server with this pid: the last session's. */
function freezeNewestAgent(serverPid: number): void {
  const newest = newestAgentPid(serverPid);
  expect(newest, "no sandbox agent under the server").toBeDefined();
  process.kill(newest!, "SIGSTOP");
}

describe.each(["node", "uws"] as const)("a frozen agent (%s transport)", (transport) => {
  let server: ServerProcess;
  const headers = { "x-api-key": TEST_API_KEY };
  const liveSandboxes = () => readdirSync(server.baseDir).filter((name) => !name.startsWith(".")).length; // not .owner, the lock

  beforeAll(async () => {
    server = await startServer({
      transport,
      env: {
        MAX_EXECUTION_TIME: String(WALL_S),
        COMPILE_TIMEOUT: String(COMPILE_S),
        MAX_CONCURRENT_EXECUTIONS: "1",
        ADMISSION_QUEUE_TIMEOUT: "60",
        SANDBOX_POOL_ENABLED: "false",
      },
    });
  });
  afterAll(async () => {
    await server?.stop();
  });

  async function upload(name: string, text: string): Promise<{ sessionId: string; fileId: string }> {
    const form = new FormData();
    form.append("file", new Blob([text]), name);
    const reply = await fetch(`${server.httpUrl}/upload`, { method: "POST", headers, body: form });
    expect(reply.status).toBe(200);
    const body = (await reply.json()) as { session_id: string; files: Array<{ fileId: string }> };
    return { sessionId: body.session_id, fileId: body.files[0]!.fileId };
  }

  async function exec(body: Record<string, unknown>, signal?: AbortSignal): Promise<{ status: number; ms: number; json: Record<string, unknown> }> {
    const started = performance.now();
    const reply = await fetch(`${server.httpUrl}/exec`, {
      method: "POST",
      headers: { ...headers, "content-type": "application/json" },
      body: JSON.stringify(body),
      ...(signal ? { signal } : {}),
    });
    const text = await reply.text();
    return { status: reply.status, ms: performance.now() - started, json: JSON.parse(text) as Record<string, unknown> };
  }

  /** A session whose agent the last run stopped, and a file (of another session) it does not hold yet. */
  async function frozenSession(): Promise<{ sessionId: string; input: { id: string; session_id: string; name: string } }> {
    const file = await upload("input.txt", "the input\n");
    const attack = await exec({ lang: "py", code: "print('ready')" });
    expect(attack.status).toBe(200);
    freezeNewestAgent(server.pid);
    return { sessionId: attack.json.session_id as string, input: { id: file.fileId, session_id: file.sessionId, name: "input.txt" } };
  }

  it("answers the next exec (placing an input file on the frozen agent) with sandbox_lost within its limits; the session works again after", async () => {
    const { sessionId, input } = await frozenSession();
    const stuck = await exec({ lang: "py", code: "print(open('input.txt').read())", session_id: sessionId, files: [input] });
    expect(stuck.status).toBe(200);
    expect(stuck.json.stderr).toMatch(/the sandbox was lost/);
    expect(stuck.ms).toBeLessThan(EXEC_BOUND_MS);
    // The frozen sandbox was destroyed (the upload's session never had one).
    const deadline = Date.now() + 5_000;
    while (liveSandboxes() > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(liveSandboxes()).toBe(0);
    // The next exec gets a new sandbox, with the input placed again.
    const again = await exec({ lang: "py", code: "print(open('input.txt').read(), end='')", session_id: sessionId, files: [input] });
    expect(again).toMatchObject({ status: 200, json: { stdout: "the input\n", stderr: "" } });
    expect(again.ms).toBeLessThan((WALL_S + 5) * 1000);
  });

  it("gives the execution slot back when the caller of the stuck exec gives up (MAX_CONCURRENT_EXECUTIONS=1)", async () => {
    const { sessionId, input } = await frozenSession();
    const gaveUp = new AbortController();
    const stuck = exec({ lang: "py", code: "print(1)", session_id: sessionId, files: [input] }, gaveUp.signal).catch((error: Error) => error);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    gaveUp.abort();
    expect(await stuck).toBeInstanceOf(Error);
    // Another session's run waits at most for the stuck exec's bound, then runs.
    const other = await exec({ lang: "py", code: "print(1)" });
    expect(other).toMatchObject({ status: 200, json: { stdout: "1\n" } });
    expect(other.ms).toBeLessThan(EXEC_BOUND_MS);
    // The frozen session gets a new sandbox and its input.
    const again = await exec({ lang: "bash", code: "cat input.txt", session_id: sessionId, files: [input] });
    expect(again).toMatchObject({ status: 200, json: { stdout: "the input\n" } });
  });

  it("ends a WebSocket exec on a frozen agent with sandbox_lost and frees its slot: the next exec and another session run", async () => {
    const file = await upload("input.txt", "the input\n");
    const input = { id: file.fileId, session_id: file.sessionId, name: "input.txt" };
    const client = await TestClient.connect(server.wsUrl, { apiKey: TEST_API_KEY });
    try {
      await client.openSession();
      expect((await client.run("first", "py", "print('ready')")).exit).toMatchObject({ type: "exit", reason: "exited" });
      freezeNewestAgent(server.pid);
      const started = performance.now();
      const stuck = await client.run("stuck", "py", "print(1)", { files: [input] }, EXEC_BOUND_MS + 5_000);
      expect(stuck.exit).toMatchObject({ type: "exit", reason: "sandbox_lost" });
      expect(performance.now() - started).toBeLessThan(EXEC_BOUND_MS);
      const other = await exec({ lang: "py", code: "print(2)" });
      expect(other).toMatchObject({ status: 200, json: { stdout: "2\n" } });
      const again = await client.run("again", "bash", "cat input.txt", { files: [input] });
      expect(again).toMatchObject({ exit: { reason: "exited", code: 0 }, stdout: "the input\n" });
    } finally {
      client.terminate();
    }
  });
});
