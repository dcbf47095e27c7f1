import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentAbove } from "../helpers/sandbox-agents.ts";
import { type ServerProcess, startServer, TEST_API_KEY, TEST_MASTER_KEY } from "../helpers/server-process.ts";
import { type Frame, TestClient } from "../helpers/ws-client.ts";

type Timed = Frame & { at: number };

/**
 * The PROTOCOL.md core against the real server, with real bubblewrap
 * sandboxes, on both transports.
 */
// Both transports with local sandboxes, and the node transport with Kubernetes pods (the API server stand-in).
describe.each([
  ["node", "local"],
  ["uws", "local"],
  ["node", "kubernetes"],
] as const)("WebSocket protocol over the %s transport, %s sandboxes", (transport, backend) => {
  let server: ServerProcess;
  const clients: TestClient[] = [];
  const connect = async (options: { apiKey?: string; headers?: Record<string, string> } = { apiKey: TEST_API_KEY }) => {
    const client = await TestClient.connect(server.wsUrl, options);
    clients.push(client);
    return client;
  };
  const sessionClient = async () => {
    const client = await connect();
    const ready = await client.openSession();
    expect(ready.type).toBe("session.ready");
    return { client, ready };
  };

  beforeAll(async () => {
    server = await startServer({
      transport,
      backend,
      env: { MAX_OUTPUT_BYTES: "200000", MAX_MEMORY_MB: "256", MAX_PIDS: "128", SESSION_IDLE_GRACE: "20", MAX_CODE_BYTES: "65536" },
    });
  });

  afterAll(async () => {
    for (const client of clients) client.terminate();
    await server?.stop();
  });

  it("uses the transport it was asked for", () => {
    expect(server.logs.join("\n")).toContain(`"transport":"${transport}"`);
  });

  it("opens a session with limits and languages", async () => {
    const { ready } = await sessionClient();
    expect(ready).toMatchObject({ type: "session.ready", resumed: false, seq: 1 });
    expect(ready.sessionId).toMatch(/^[A-Za-z0-9]{21}$/);
    expect(ready.limits).toMatchObject({ outputBytes: 200000, memoryBytes: 256 * 1024 * 1024, codeBytes: 65536 });
    expect(ready.languages).toEqual(expect.arrayContaining(["py", "js", "bash", "c"]));
  });

  it("streams output while the program runs: the first line arrives before the sleep ends", async () => {
    const { client } = await sessionClient();
    const code = "import time\nprint('first', flush=True)\ntime.sleep(1)\nprint('second')\n";
    const { exit, frames, stdout } = await client.run("live", "py", code);
    expect(exit).toMatchObject({ type: "exit", reason: "exited", code: 0, truncated: false });
    expect(stdout).toBe("first\nsecond\n");
    // The first line (which may arrive as "first" then "\n": print writes them separately) came
    // at least ~800 ms before the exit: it was not held back until the end.
    const outs = frames.filter((f) => f.type === "out") as Timed[];
    const lineDone = outs.findIndex((_, i) =>
      outs
        .slice(0, i + 1)
        .map((f) => f.data)
        .join("")
        .includes("first\n"),
    );
    expect(lineDone).toBeGreaterThanOrEqual(0);
    expect(
      outs
        .slice(0, lineDone + 1)
        .map((f) => f.data)
        .join(""),
    ).toBe("first\n");
    expect((exit as Timed).at - outs[lineDone]!.at).toBeGreaterThan(800);
    expect(frames.map((f) => f.type)).toEqual(expect.arrayContaining(["exec.start", "out", "exit"]));
  });

  it("runs js, bash and c, reporting both stages for the compiled one", async () => {
    const { client } = await sessionClient();
    const js = await client.run("js", "js", "let s=0; for (let i=1;i<=10;i++) s+=i; console.log('sum(1..10)=' + s)");
    expect(js.stdout).toBe("sum(1..10)=55\n");
    const bash = await client.run("sh", "bash", 's=0; for i in $(seq 1 10); do s=$((s+i)); done; echo "sum(1..10)=$s"');
    expect(bash.stdout).toBe("sum(1..10)=55\n");
    const c = await client.run("c", "c", '#include <stdio.h>\nint main(void){int s=0;for(int i=1;i<=10;i++)s+=i;printf("sum(1..10)=%d\\n",s);return 0;}');
    expect(c.stdout).toBe("sum(1..10)=55\n");
    expect(c.frames.filter((f) => f.type === "exec.stage").map((f) => f.stage)).toEqual(["compile", "run"]);
    const broken = await client.run("c-bad", "c", "int main(void) { return nope; }");
    expect(broken.exit).toMatchObject({ reason: "exited" });
    expect(broken.exit.code).not.toBe(0);
    expect(broken.stderr).toContain("nope");
  });

  it("feeds stdin and delivers EOF", async () => {
    const { client } = await sessionClient();
    const from = client.frames.length;
    client.send({ type: "exec", id: "echo", lang: "py", code: "import sys\nprint('got:' + sys.stdin.read().upper(), end='')", stdin: true });
    await client.waitFor((f) => f.type === "exec.start" && f.id === "echo", 30_000, from);
    client.send({ type: "stdin", id: "echo", data: "hello " });
    client.send({ type: "stdin", id: "echo", data: "world", eof: true });
    const exit = await client.waitFor((f) => f.type === "exit" && f.id === "echo", 30_000, from);
    expect(exit).toMatchObject({ reason: "exited", code: 0 });
    const out = client.frames
      .slice(from)
      .filter((f) => f.type === "out")
      .map((f) => f.data)
      .join("");
    expect(out).toBe("got:HELLO WORLD");
  });

  it("keeps stdin and signals sent right behind the exec, before the program started, in order", async () => {
    const { client } = await sessionClient();
    const from = client.frames.length;
    client.send({ type: "exec", id: "early", lang: "bash", code: 'read line; echo "got:$line"', stdin: true });
    client.send({ type: "stdin", id: "early", data: "quick\n", eof: true });
    const exit = await client.waitFor((f) => f.type === "exit" && f.id === "early", 30_000, from);
    expect(exit).toMatchObject({ reason: "exited", code: 0 });
    const out = client.frames.slice(from).filter((f) => f.type === "out" && f.id === "early");
    expect(out.map((f) => f.data).join("")).toBe("got:quick\n");
    client.send({ type: "exec", id: "early-int", lang: "bash", code: "sleep 30" });
    client.send({ type: "signal", id: "early-int", signal: "SIGINT" });
    const stopped = await client.waitFor((f) => f.type === "exit" && f.id === "early-int", 30_000, from);
    expect(stopped).toMatchObject({ reason: "killed" });
  });

  it("refuses stdin to an exec that did not ask for it, and stays usable", async () => {
    const { client } = await sessionClient();
    const from = client.frames.length;
    client.send({ type: "exec", id: "nostdin", lang: "bash", code: "sleep 0.5; echo done" });
    await client.waitFor((f) => f.type === "exec.start", 30_000, from);
    client.send({ type: "stdin", id: "nostdin", data: "x" });
    const error = await client.waitFor((f) => f.type === "error", 30_000, from);
    expect(error).toMatchObject({ code: "stdin_not_enabled", id: "nostdin" });
    const exit = await client.waitFor((f) => f.type === "exit" && f.id === "nostdin", 30_000, from);
    expect(exit).toMatchObject({ reason: "exited", code: 0 });
  });

  it("ends an endless loop on SIGINT with reason killed", async () => {
    const { client } = await sessionClient();
    const from = client.frames.length;
    client.send({ type: "exec", id: "loop", lang: "py", code: "import time\nprint('looping', flush=True)\nwhile True:\n    time.sleep(0.01)\n" });
    await client.waitFor((f) => f.type === "out" && f.id === "loop", 30_000, from);
    client.send({ type: "signal", id: "loop", signal: "SIGINT" });
    const exit = await client.waitFor((f) => f.type === "exit" && f.id === "loop", 30_000, from);
    expect(exit.reason).toBe("killed");
  });

  it("ends a program past its time limit with reason timeout", async () => {
    const { client } = await sessionClient();
    const { exit } = await client.run("slow", "bash", "echo start; sleep 30", { timeoutMs: 1000 });
    expect(exit).toMatchObject({ reason: "timeout", signal: "SIGKILL" });
    expect(exit.wallMs as number).toBeGreaterThanOrEqual(1000);
    expect(exit.wallMs as number).toBeLessThan(5000);
  });

  it("caps output: a flood ends with output_limit and truncated, at exactly the cap", async () => {
    const { client } = await sessionClient();
    const { exit, stdout } = await client.run("flood", "py", "import sys\nwhile True:\n    sys.stdout.write('x' * 8192)\n");
    expect(exit).toMatchObject({ reason: "output_limit", truncated: true });
    expect(stdout.length).toBe(200000);
  });

  it("reports files written to /mnt/data in exit.files, nested ones with their path", async () => {
    const { client, ready } = await sessionClient();
    const { exit } = await client.run("files", "bash", "mkdir -p out && echo hi > out/result.txt && echo x > top.csv");
    const files = exit.files as Array<Record<string, unknown>>;
    expect(files.map((f) => f.name).sort()).toEqual(["out/result.txt", "top.csv"]);
    expect(files[0]).toMatchObject({ session_id: ready.sessionId, storage_session_id: ready.sessionId });
    const second = await client.run("files2", "bash", "echo more >> top.csv; cat out/result.txt");
    expect(second.stdout).toBe("hi\n");
    const changed = second.exit.files as Array<Record<string, unknown>>;
    expect(changed).toHaveLength(1);
    const original = files.find((f) => f.name === "top.csv")!;
    expect(changed[0]).toMatchObject({ name: "top.csv", modified_from: { id: original.id } });
  });

  it("resumes after a dropped socket with no frame lost or repeated", async () => {
    const first = await connect();
    const ready = await first.openSession();
    const sessionId = ready.sessionId as string;
    first.send({
      type: "exec",
      id: "count",
      lang: "py",
      code: "import time\nfor i in range(40):\n    print(i, flush=True)\n    time.sleep(0.05)\n",
    });
    await first.waitFor((f) => f.type === "out" && String(f.data).includes("5\n"));
    first.terminate();
    await first.closed;
    const seen = first.frames.filter((f) => f.type !== "session.ready" && f.type !== "pong");
    const lastSeq = Math.max(...seen.map((f) => f.seq ?? 0));
    await new Promise((r) => setTimeout(r, 500)); // output keeps coming while nobody listens
    const second = await connect();
    second.send({ type: "session.open", sessionId, lastSeq });
    await second.waitFor((f) => f.type === "exit" && f.id === "count");
    const resumed = second.frames.find((f) => f.type === "session.ready")!;
    expect(resumed).toMatchObject({ resumed: true, sessionId });
    expect(resumed.gap).toBeUndefined();
    const replayed = second.frames.filter((f) => f.type !== "session.ready" && f.type !== "pong");
    const all = [...seen, ...replayed];
    const seqs = all.map((f) => f.seq!);
    expect(new Set(seqs).size).toBe(seqs.length); // nothing repeated
    const output = all
      .filter((f) => f.type === "out")
      .map((f) => f.data)
      .join("");
    expect(output).toBe(Array.from({ length: 40 }, (_, i) => `${i}\n`).join("")); // nothing lost
  });

  it("answers bad input with clear errors and keeps the session", async () => {
    const { client } = await sessionClient();
    const from = client.frames.length;
    client.send({ type: "exec", id: "u1", lang: "cobol", code: "DISPLAY 'x'" });
    expect(await client.waitFor((f) => f.type === "error" && f.id === "u1", 10_000, from)).toMatchObject({ code: "unsupported_language" });
    client.send({ type: "exec", id: "big", lang: "py", code: "x".repeat(70_000) });
    expect(await client.waitFor((f) => f.type === "error" && f.id === "big", 10_000, from)).toMatchObject({ code: "code_too_large" });
    client.send({ type: "exec", id: "empty", lang: "py", code: "  " });
    expect(await client.waitFor((f) => f.type === "error" && f.id === "empty", 10_000, from)).toMatchObject({ code: "empty_code" });
    client.send({ type: "exec", id: "b1", lang: "bash", code: "sleep 1; echo one" });
    client.send({ type: "exec", id: "b2", lang: "bash", code: "echo two" });
    expect(await client.waitFor((f) => f.type === "error" && f.id === "b2", 10_000, from)).toMatchObject({ code: "busy" });
    expect(await client.waitFor((f) => f.type === "exit" && f.id === "b1", 10_000, from)).toMatchObject({ code: 0 });
    client.send({ type: "exec", id: "b1", lang: "bash", code: "echo again" });
    expect(await client.waitFor((f) => f.type === "error" && f.id === "b1" && f.code === "duplicate_exec_id", 10_000, from)).toBeTruthy();
    client.send({ type: "signal", id: "nope", signal: "SIGINT" });
    expect(await client.waitFor((f) => f.type === "error" && f.id === "nope", 10_000, from)).toMatchObject({ code: "unknown_exec" });
    client.send({ type: "ping" });
    expect(await client.waitFor((f) => f.type === "pong", 10_000, from)).toHaveProperty("seq");
    const ok = await client.run("fine", "py", "print('still fine')");
    expect(ok.stdout).toBe("still fine\n");
    // seq numbers of the session stream only ever increase.
    const seqs = client.frames.map((f) => f.seq ?? 0);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
  });

  it("closes with 4002 after an invalid frame", async () => {
    const client = await connect();
    client.socket.send("{not json");
    await client.closed;
    expect(client.closeCode).toBe(4002);
    expect(client.frames[0]).toMatchObject({ type: "error", code: "invalid_frame" });
    const other = await connect();
    other.send({ type: "exec", id: 5 });
    await other.closed;
    expect(other.closeCode).toBe(4002);
    const binary = await connect();
    binary.socket.send(Buffer.from([1, 2, 3]));
    await binary.closed;
    expect(binary.closeCode).toBe(4002);
    expect(binary.frames[0]).toMatchObject({ type: "error", code: "invalid_frame" });
  });

  it("authenticates by header, Bearer, Basic or a first frame, and closes 4001 otherwise", async () => {
    const bad = await connect({ apiKey: "wrong-key" });
    await bad.closed;
    expect(bad.closeCode).toBe(4001);
    expect(bad.frames[0]).toMatchObject({ type: "error", code: "auth_failed" });

    const none = await connect({});
    none.send({ type: "session.open" });
    await none.closed;
    expect(none.closeCode).toBe(4001);

    const bearer = await connect({ headers: { authorization: `Bearer ${TEST_API_KEY}` } });
    bearer.send({ type: "ping" });
    expect(await bearer.waitFor((f) => f.type === "pong")).toBeTruthy();

    const basic = await connect({ headers: { authorization: `Basic ${Buffer.from(`${TEST_API_KEY}:`).toString("base64")}` } });
    basic.send({ type: "ping" });
    expect(await basic.waitFor((f) => f.type === "pong")).toBeTruthy();

    const browser = await connect({});
    browser.send({ type: "auth", apiKey: TEST_API_KEY });
    const ready = await browser.openSession();
    expect(ready.type).toBe("session.ready");
  });

  it("keeps a session to the key that opened it, and refuses unknown sessions with 4003", async () => {
    const { ready } = await sessionClient();
    const master = await connect({ apiKey: TEST_MASTER_KEY });
    master.send({ type: "session.open", sessionId: ready.sessionId, lastSeq: 0 });
    expect(await master.waitFor((f) => f.type === "session.ready")).toMatchObject({ resumed: true });

    const client = await connect();
    client.send({ type: "session.open", sessionId: "doesnotexist", lastSeq: 0 });
    await client.closed;
    expect(client.closeCode).toBe(4003);
    expect(client.frames[0]).toMatchObject({ type: "error", code: "session_not_found" });
  });

  it("ends the exec with sandbox_lost when the sandbox dies, and the next exec gets a new sandbox", async () => {
    const { client } = await sessionClient();
    // Programs cannot reach their agent (their jail): it dies from outside, as in a crash or an OOM kill.
    const from = client.frames.length;
    const marker = `${Date.now()}${process.pid}`; // sleep 10.<marker>: a little over 10 s, a command line no other process has
    client.send({ type: "exec", id: "doomed", lang: "py", code: `import subprocess\nprint('running', flush=True)\nsubprocess.run(['sleep', '10.${marker}'])` });
    await client.waitFor((f) => f.type === "out" && f.id === "doomed", 20_000, from);
    let agent = agentAbove(`sleep 10.${marker}`);
    for (let tries = 0; agent === undefined && tries < 50; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      agent = agentAbove(`sleep 10.${marker}`);
    }
    expect(agent, "no sandbox agent under this test").toBeDefined();
    process.kill(agent!, "SIGKILL");
    const exit = await client.waitFor((f) => f.type === "exit" && f.id === "doomed", 20_000, from);
    expect(exit.reason).toBe("sandbox_lost");
    const next = await client.run("reborn", "py", "print('new sandbox')");
    expect(next.stdout).toBe("new sandbox\n");
  });

  it("delivers execution events to a master-key subscriber only", async () => {
    const operator = await connect({ apiKey: TEST_MASTER_KEY });
    operator.send({ type: "subscribe", topic: "executions" });
    const user = await connect();
    user.send({ type: "subscribe", topic: "executions" });
    expect(await user.waitFor((f) => f.type === "error")).toMatchObject({ code: "forbidden" });
    await new Promise((r) => setTimeout(r, 100));
    const { client } = await sessionClient();
    await client.run("observed", "bash", "echo hi");
    const finished = await operator.waitFor((f) => f.type === "event" && f.kind === "finished" && f.execId === "observed");
    expect(finished).toMatchObject({ topic: "executions", lang: "bash", reason: "exited" });
  });
});
