import { readdirSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServerProcess, startServer, TEST_API_KEY, TEST_MASTER_KEY } from "../helpers/server-process.ts";
import { TestClient } from "../helpers/ws-client.ts";

/** Session life and flow control: idle grace, session.close, backpressure to the program. */
describe.each(["node", "uws"] as const)("session lifecycle over the %s transport", (transport) => {
  let server: ServerProcess;
  const clients: TestClient[] = [];
  const connect = async (apiKey = TEST_API_KEY) => {
    const client = await TestClient.connect(server.wsUrl, { apiKey });
    clients.push(client);
    return client;
  };
  const liveSandboxes = () => readdirSync(server.baseDir).filter((name) => !name.startsWith(".")).length; // not .owner, the lock

  beforeAll(async () => {
    server = await startServer({ transport, env: { SESSION_IDLE_GRACE: "2", MAX_OUTPUT_BYTES: String(64 * 1024 * 1024), SANDBOX_POOL_ENABLED: "false" } });
  });

  afterAll(async () => {
    for (const client of clients) client.terminate();
    await server?.stop();
  });

  it("ends a running exec with client_gone once the idle grace passes and frees the sandbox; the session and its files stay", async () => {
    const operator = await connect(TEST_MASTER_KEY);
    operator.send({ type: "subscribe", topic: "executions" });
    const client = await connect();
    const ready = await client.openSession();
    await client.run("keep", "bash", "echo kept > note.txt");
    client.send({ type: "exec", id: "long", lang: "bash", code: "echo started; sleep 60" });
    await client.waitFor((f) => f.type === "out" && f.id === "long");
    client.terminate();
    const finished = await operator.waitFor((f) => f.type === "event" && f.kind === "finished" && f.execId === "long", 15_000);
    expect(finished).toMatchObject({ reason: "client_gone", sessionId: ready.sessionId });
    const deadline = Date.now() + 5000;
    while (liveSandboxes() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(liveSandboxes()).toBe(0);
    // Coming back after the grace: the same session, a new sandbox, the same files.
    const late = await connect();
    late.send({ type: "session.open", sessionId: ready.sessionId, lastSeq: 0 });
    const again = await late.waitFor((f) => f.type === "session.ready");
    expect(again).toMatchObject({ sessionId: ready.sessionId, resumed: true });
    const { stdout } = await late.run("back", "bash", "cat note.txt");
    expect(stdout).toBe("kept\n");
    late.send({ type: "session.close" });
    await late.closed;
  });

  it("frees the sandbox on session.close and forgets the session", async () => {
    // The sandbox of the session forgotten above may still be on its way out.
    const settle = Date.now() + 5000;
    while (liveSandboxes() > 0 && Date.now() < settle) await new Promise((r) => setTimeout(r, 50));
    const before = liveSandboxes();
    const client = await connect();
    const ready = await client.openSession();
    expect(liveSandboxes()).toBe(before + 1);
    client.send({ type: "session.close" });
    await client.closed;
    expect(client.closeCode).toBe(1000);
    const deadline = Date.now() + 5000;
    while (liveSandboxes() > before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(liveSandboxes()).toBe(before);
    const late = await connect();
    late.send({ type: "session.open", sessionId: ready.sessionId });
    await late.closed;
    expect(late.closeCode).toBe(4003);
  });

  it("holds the program back while the client does not read, and loses nothing", async () => {
    const client = await connect();
    await client.openSession();
    const total = 24 * 1024 * 1024;
    const code = [
      "import sys, time",
      "start = time.monotonic()",
      `left = ${total}`,
      "block = b'y' * 65536",
      "while left > 0:",
      "    n = min(left, len(block))",
      "    sys.stdout.buffer.write(block[:n])",
      "    left -= n",
      "sys.stdout.flush()",
      "sys.stderr.write('elapsed %d\\n' % int((time.monotonic() - start) * 1000))",
    ].join("\n");
    client.socket.pause();
    client.send({ type: "exec", id: "bulk", lang: "py", code });
    await new Promise((r) => setTimeout(r, 3000));
    client.socket.resume();
    const exit = await client.waitFor((f) => f.type === "exit" && f.id === "bulk", 60_000);
    expect(exit).toMatchObject({ reason: "exited", code: 0, truncated: false });
    const out = client.frames.filter((f) => f.type === "out" && f.id === "bulk");
    const stdoutBytes = out.filter((f) => f.stream === "stdout").reduce((sum, f) => sum + (f.data as string).length, 0);
    expect(stdoutBytes).toBe(total);
    const elapsed = Number(
      /elapsed (\d+)/.exec(
        out
          .filter((f) => f.stream === "stderr")
          .map((f) => f.data)
          .join(""),
      )?.[1],
    );
    // The program could not finish writing while nobody read its output.
    expect(elapsed).toBeGreaterThan(2000);
  });
});
