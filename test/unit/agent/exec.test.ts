import { readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import WebSocket from "ws";
import { AgentConn, hasGcc, type startTestAgent, type TestAgent, TOKEN, useAgentHarness } from "./helpers.ts";

const harness = useAgentHarness();
const { cleanups } = harness;

let agent: TestAgent;
let conn: AgentConn;
async function setup(options: Parameters<typeof startTestAgent>[0] = {}, connOptions: { autoAck?: boolean } = {}) {
  ({ agent, conn } = await harness.start(options, connOptions));
  return { agent, conn };
}

describe("agent connection", () => {
  it("refuses a wrong or missing token with 401", async () => {
    await setup();
    await expect(AgentConn.open(agent.socketPath, { token: "wrong" })).rejects.toThrow("HTTP 401");
    await expect(AgentConn.open(agent.socketPath, { token: `${TOKEN}x` })).rejects.toThrow("HTTP 401");
    const noHeader = new WebSocket(`ws+unix://${agent.socketPath}:/`);
    const status = await new Promise<number>((resolve) => {
      noHeader.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      noHeader.on("error", () => resolve(-1));
    });
    expect(status).toBe(401);
    // the good connection is untouched
    expect(conn.socket.readyState).toBe(WebSocket.OPEN);
  });

  it("sends ready with version and pid", async () => {
    await setup();
    const ready = conn.frames[0]!;
    expect(ready).toMatchObject({ type: "ready", version: "1", pid: process.pid });
  });

  it("answers an invalid frame with an error and keeps the socket open", async () => {
    await setup();
    conn.sendRaw("not json");
    const e1 = await conn.waitFor((f) => f.type === "error");
    expect(e1).toMatchObject({ type: "error", code: "invalid_frame" });
    conn.send({ type: "exec", id: "x" }); // missing fields
    const e2 = await conn.waitFor((f) => f.type === "error" && f.id === "x");
    expect(e2).toMatchObject({ code: "invalid_frame" });
    conn.send({ type: "nope" });
    await conn.waitFor((f) => f.type === "error" && f !== e1 && f !== e2);
    conn.socket.send(Buffer.from([1, 2, 3]), { binary: true });
    await conn.waitFor((f) => f.type === "error" && /binary/.test(f.message));
    expect(conn.socket.readyState).toBe(WebSocket.OPEN);
    const result = await conn.request({ type: "file.list", reqId: "r1" });
    expect(result).toMatchObject({ type: "file.result", ok: true, files: [] });
    expect(conn.invalid).toEqual([]);
  });

  it("a newer connection replaces the older one (close 4000)", async () => {
    await setup();
    const second = await AgentConn.open(agent.socketPath);
    cleanups.unshift(() => second.close());
    expect(await conn.closed).toBe(4000);
    const result = await second.request({ type: "file.list", reqId: "r" });
    expect(result).toMatchObject({ ok: true });
  });
});

describe("exec", () => {
  it("runs python and streams its output", async () => {
    await setup();
    const exit = await conn.run({ id: "e1", lang: "py", code: "print('hello')\nimport sys; print('err', file=sys.stderr)" });
    expect(conn.text("e1")).toBe("hello\n");
    expect(conn.text("e1", "stderr")).toBe("err\n");
    expect(exit).toMatchObject({ code: 0, signal: null, reason: "exited", truncated: false, files: [] });
    expect(exit.wallMs).toBeGreaterThan(0);
    // launcher figures
    expect(exit.cpuMs).toBeGreaterThan(0);
    expect(exit.memBytes).toBeGreaterThan(1024 * 1024);
    // the exit is the last frame of the exec
    expect(conn.of("e1").at(-1)!.type).toBe("exit");
    expect(conn.of("e1").some((f) => f.type === "exec.stage")).toBe(false);
    expect(conn.invalid).toEqual([]);
  });

  it("reports a non-zero exit code as exited", async () => {
    await setup();
    const exit = await conn.run({ id: "e", lang: "bash", code: "echo out; exit 3" });
    expect(exit).toMatchObject({ code: 3, signal: null, reason: "exited" });
  });

  it("sends output while the program runs, not at its end", async () => {
    await setup();
    conn.startExec({ id: "s", lang: "py", code: "import time\nprint('first')\ntime.sleep(1)\nprint('second')" });
    const exit = await conn.exitOf("s");
    const outs = conn.outOf("s");
    // python -u may write "first" and its newline separately: find when the line was complete
    const firstLine = outs.find((_, i) =>
      outs
        .slice(0, i + 1)
        .map((f) => f.data)
        .join("")
        .includes("first\n"),
    )!;
    expect(firstLine).toBeDefined();
    expect(exit.at - firstLine.at).toBeGreaterThan(600);
    expect(conn.text("s")).toBe("first\nsecond\n");
  });

  it("passes args and gives programs only the program environment", async () => {
    process.env.AGENT_TEST_SECRET = "leak";
    try {
      await setup({ programEnv: { PATH: "/usr/bin:/bin", HOME: "/tmp", MARK: "yes" } });
      const exit = await conn.run({
        id: "env",
        lang: "py",
        args: ["a b", "c"],
        code: "import os,sys\nprint(sys.argv[1:])\nprint(os.getcwd())\nprint(sorted(k for k in os.environ if k in ('AGENT_TEST_SECRET','MARK','PATH','AGENT_TOKEN')))",
      });
      expect(exit.code).toBe(0);
      expect(conn.text("env")).toBe(`['a b', 'c']\n${agent.agent.dataDir}\n['MARK', 'PATH']\n`);
    } finally {
      delete process.env.AGENT_TEST_SECRET;
    }
  });

  it("round-trips stdin up to eof", async () => {
    await setup();
    conn.startExec({ id: "in", lang: "py", stdin: true, code: "import sys\nfor line in sys.stdin: print(line.strip().upper())\nprint('eof')" });
    conn.send({ type: "stdin", id: "in", data: "hello\n" });
    await conn.waitFor((f) => f.type === "out" && f.id === "in" && f.data.includes("HELLO"));
    conn.send({ type: "stdin", id: "in", data: "wörld\n", eof: true });
    const exit = await conn.exitOf("in");
    expect(conn.text("in")).toBe("HELLO\nWÖRLD\neof\n");
    expect(exit).toMatchObject({ code: 0, reason: "exited" });
  });

  it("gives a program without stdin /dev/null, and refuses stdin frames for it", async () => {
    await setup();
    conn.startExec({ id: "nostdin", lang: "py", code: "import sys,time\nprint(repr(sys.stdin.read()))\ntime.sleep(0.5)" });
    await conn.waitFor((f) => f.type === "out" && f.id === "nostdin");
    conn.send({ type: "stdin", id: "nostdin", data: "x" });
    expect(await conn.waitFor((f) => f.type === "error" && f.id === "nostdin")).toMatchObject({ code: "stdin_not_enabled" });
    conn.send({ type: "stdin", id: "other", data: "x" });
    expect(await conn.waitFor((f) => f.type === "error" && f.id === "other")).toMatchObject({ code: "unknown_exec" });
    conn.send({ type: "signal", id: "other", signal: "SIGINT" });
    await conn.waitFor((f) => f.type === "error" && f.id === "other" && f.code === "unknown_exec", 5000, conn.frames.length - 1);
    await conn.exitOf("nostdin");
    expect(conn.text("nostdin")).toBe("''\n");
  });

  it("refuses a second exec while one runs, and an unknown language", async () => {
    await setup();
    conn.startExec({ id: "long", lang: "bash", code: "sleep 0.5; echo done" });
    conn.startExec({ id: "second", lang: "bash", code: "echo no" });
    expect(await conn.waitFor((f) => f.type === "error" && f.id === "second")).toMatchObject({ code: "busy" });
    await conn.exitOf("long");
    conn.startExec({ id: "cobol", lang: "cobol", code: "x" });
    expect(await conn.waitFor((f) => f.type === "error" && f.id === "cobol")).toMatchObject({ code: "unsupported_language" });
    // aliases work, and the agent is free again
    const exit = await conn.run({ id: "alias", lang: "python", code: "print(1)" });
    expect(exit.code).toBe(0);
  });

  it("SIGINT to an endless loop ends it with reason killed", async () => {
    await setup();
    conn.startExec({ id: "loop", lang: "bash", code: "echo started\nwhile true; do :; done" });
    await conn.waitFor((f) => f.type === "out" && f.id === "loop");
    conn.send({ type: "signal", id: "loop", signal: "SIGINT" });
    const exit = await conn.exitOf("loop");
    expect(exit).toMatchObject({ reason: "killed", signal: "SIGINT", code: null });
  });

  it("a signal reaches the whole process group", async () => {
    await setup();
    conn.startExec({ id: "grp", lang: "bash", code: "sleep 30 &\nsleep 30 &\necho started\nwait" });
    await conn.waitFor((f) => f.type === "out" && f.id === "grp");
    conn.send({ type: "signal", id: "grp", signal: "SIGTERM" });
    const exit = await conn.exitOf("grp", 5000);
    expect(exit).toMatchObject({ reason: "killed", signal: "SIGTERM" });
  });

  it("kills background leftovers when the main process exits", async () => {
    await setup();
    const t0 = performance.now();
    const exit = await conn.run({ id: "bg", lang: "bash", code: "sleep 30 &\necho bye" }, 8000);
    expect(exit).toMatchObject({ code: 0, reason: "exited" });
    expect(performance.now() - t0).toBeLessThan(5000);
  });

  it("a program that kills itself is signaled", async () => {
    await setup();
    const exit = await conn.run({ id: "self", lang: "py", code: "import os,signal\nos.kill(os.getpid(), signal.SIGTERM)" });
    expect(exit).toMatchObject({ reason: "signaled", signal: "SIGTERM", code: null });
  });

  it("ends a program at its wall time with reason timeout", async () => {
    await setup();
    const exit = await conn.run({ id: "slow", lang: "py", timeoutMs: 500, code: "import time\nprint('x')\ntime.sleep(20)" });
    expect(exit).toMatchObject({ reason: "timeout", signal: "SIGKILL", code: null });
    expect(exit.wallMs).toBeGreaterThanOrEqual(450);
    expect(exit.wallMs).toBeLessThan(4000);
  });

  it("stops at the output cap: output_limit, truncated, exactly the cap sent", async () => {
    await setup();
    const cap = 10_000;
    const exit = await conn.run({
      id: "flood",
      lang: "py",
      maxOutputBytes: cap,
      code: "import sys\nwhile True:\n  sys.stdout.write('é' * 1000)\n  sys.stderr.write('x' * 333)",
    });
    expect(exit).toMatchObject({ reason: "output_limit", truncated: true, signal: "SIGKILL" });
    const outs = conn.outOf("flood");
    expect(outs.reduce((n, f) => n + f.bytes, 0)).toBe(cap);
    const decoded = outs.reduce((n, f) => n + Buffer.from(f.data, f.encoding === "base64" ? "base64" : "utf8").length, 0);
    expect(decoded).toBe(cap);
  });

  it("is not truncated when the output is exactly the cap", async () => {
    await setup();
    const exit = await conn.run({ id: "exact", lang: "bash", maxOutputBytes: 6, code: "printf 'abcdef'" });
    expect(exit).toMatchObject({ reason: "exited", truncated: false, code: 0 });
    expect(conn.text("exact")).toBe("abcdef");
  });

  it("applies backpressure: stops at the window without acks, then finishes once acked", async () => {
    await setup({}, { autoAck: false });
    const window = 64 * 1024;
    const total = 1024 * 1024;
    conn.startExec({
      id: "bp",
      lang: "py",
      windowBytes: window,
      maxOutputBytes: 4 * total,
      code: `import sys\nfor i in range(${total / 1024}):\n  sys.stdout.write('y' * 1023 + '\\n')\nsys.stdout.flush()\nsys.stderr.write('done')`,
    });
    await conn.waitFor((f) => f.type === "out" && f.id === "bp");
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const sent = () => conn.outOf("bp").reduce((n, f) => n + f.bytes, 0);
    const sentWhileBlocked = sent();
    expect(sentWhileBlocked).toBeGreaterThanOrEqual(window);
    expect(sentWhileBlocked).toBeLessThanOrEqual(window + 64 * 1024);
    expect(conn.of("bp").some((f) => f.type === "exit")).toBe(false);
    // ack what arrived, and everything from now on
    conn.send({ type: "ack", id: "bp", bytes: sentWhileBlocked });
    conn.autoAck = true;
    const exit = await conn.exitOf("bp", 20_000);
    expect(exit).toMatchObject({ reason: "exited", code: 0, truncated: false });
    expect(conn.text("bp").length).toBe(total);
    expect(conn.text("bp", "stderr")).toBe("done");
  }, 30_000);

  it("applies a frame window: many small writes stop at windowFrames until acked", async () => {
    await setup({}, { autoAck: false });
    const lines = 2000;
    conn.startExec({
      id: "fw",
      lang: "py",
      windowFrames: 8,
      code: `import sys, time\nfor i in range(${lines}):\n  print(i, flush=True)\n  time.sleep(0.0005)`,
    });
    await conn.waitFor((f) => f.type === "out" && f.id === "fw");
    await new Promise((resolve) => setTimeout(resolve, 800));
    const framesWhileBlocked = conn.outOf("fw").length;
    // The window is checked after each pipe read; one read may add the frames of a stdout and a stderr segment.
    expect(framesWhileBlocked).toBeGreaterThanOrEqual(8);
    expect(framesWhileBlocked).toBeLessThanOrEqual(10);
    expect(conn.of("fw").some((f) => f.type === "exit")).toBe(false);
    conn.send({ type: "ack", id: "fw", bytes: 0, frames: framesWhileBlocked });
    conn.autoAck = true;
    const exit = await conn.exitOf("fw", 20_000);
    expect(exit).toMatchObject({ reason: "exited", code: 0 });
    expect(conn.text("fw")).toBe(Array.from({ length: lines }, (_, i) => `${i}\n`).join(""));
  }, 30_000);

  it("keeps a blocked exec going across a reconnect, without losing output", async () => {
    await setup({}, { autoAck: false });
    const lines = 300;
    conn.startExec({
      id: "rc",
      lang: "py",
      windowBytes: 4096,
      code: `import sys\nfor i in range(${lines}):\n  print('line %03d' % i + '.' * 990)\nprint('end')`,
    });
    await conn.waitFor((f) => f.type === "out" && f.id === "rc");
    await new Promise((resolve) => setTimeout(resolve, 300));
    // blocked on credit: 300 KB cannot fit in the window plus a pipe
    expect(conn.of("rc").some((f) => f.type === "exit")).toBe(false);
    const firstText = conn.text("rc");
    await conn.close();
    const second = await AgentConn.open(agent.socketPath);
    cleanups.unshift(() => second.close());
    const exit = await second.exitOf("rc");
    expect(exit).toMatchObject({ reason: "exited", code: 0 });
    const expected = `${Array.from({ length: lines }, (_, i) => `line ${String(i).padStart(3, "0")}${".".repeat(990)}\n`).join("")}end\n`;
    expect(firstText.length).toBeLessThan(expected.length);
    expect(firstText + second.text("rc")).toBe(expected);
  });

  it("an exec that ends while no server is connected delivers its output and exit on reconnect", async () => {
    await setup();
    conn.startExec({ id: "gone", lang: "py", code: "import time\nprint('a')\ntime.sleep(0.4)\nprint('b')" });
    await conn.waitFor((f) => f.type === "out" && f.id === "gone");
    await conn.close();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const second = await AgentConn.open(agent.socketPath);
    cleanups.unshift(() => second.close());
    const exit = await second.exitOf("gone");
    expect(exit).toMatchObject({ reason: "exited", code: 0 });
    expect(conn.text("gone") + second.text("gone")).toBe("a\nb\n");
    expect(second.frames[0]!.type).toBe("ready");
  });

  it("never splits a UTF-8 character across frames, and sends invalid bytes as base64", async () => {
    await setup();
    const exit = await conn.run({
      id: "u8",
      lang: "py",
      code: [
        "import sys,time",
        "data = 'é€😀中'.encode() + b'\\xff' + 'ok'.encode()",
        "for b in data:",
        "  sys.stdout.buffer.write(bytes([b]))",
        "  sys.stdout.buffer.flush()",
        "  time.sleep(0.01)",
      ].join("\n"),
    });
    expect(exit.code).toBe(0);
    const outs = conn.outOf("u8");
    expect(outs.length).toBeGreaterThan(3);
    const text = outs.filter((f) => !f.encoding).map((f) => f.data);
    for (const piece of text) expect(piece).not.toContain("\uFFFD");
    expect(text.join("")).toBe("é€😀中ok");
    const binary = outs.filter((f) => f.encoding === "base64");
    expect(binary.map((f) => f.data)).toEqual([Buffer.from([0xff]).toString("base64")]);
  });

  it("reports files created, then modified, in the data folder (not build artifacts)", async () => {
    await setup();
    const e1 = await conn.run({
      id: "f1",
      lang: "py",
      code: "import os\nopen('out.txt','w').write('one')\nos.makedirs('sub/deep', exist_ok=True)\nopen('sub/deep/x.bin','wb').write(b'12345')\nos.symlink('/etc/passwd', 'link')",
    });
    expect(e1.code).toBe(0);
    expect(e1.files.map((f) => [f.path, f.change, f.size])).toEqual([
      ["out.txt", "created", 3],
      ["sub/deep/x.bin", "created", 5],
    ]);
    const e2 = await conn.run({ id: "f2", lang: "py", code: "open('out.txt','a').write('two')\nprint(open('sub/deep/x.bin').read())" });
    expect(e2.files).toEqual([{ path: "out.txt", size: 6, mtimeMs: expect.any(Number), change: "modified" }]);
    // a user file named like the source file is never clobbered
    writeFileSync(join(agent.dataDir, "main.py"), "user data");
    const e3 = await conn.run({ id: "f3", lang: "py", code: "print(open('main.py').read())" });
    expect(conn.text("f3")).toBe("user data\n");
    expect(e3.files).toEqual([]);
    // build folders are removed after each exec
    expect(readdirSync(agent.workDir)).toEqual([]);
  });

  it("reports files deleted from the data folder, not files replaced or moved in", async () => {
    await setup();
    writeFileSync(join(agent.dataDir, "gone.txt"), "x");
    writeFileSync(join(agent.dataDir, "replaced.txt"), "x");
    writeFileSync(join(agent.dataDir, "moved.txt"), "x");
    const exit = await conn.run({
      id: "del",
      lang: "bash",
      code: "rm gone.txt && rm replaced.txt && echo new > replaced.txt && mkdir -p sub && mv moved.txt sub/",
    });
    expect(exit.code).toBe(0);
    expect(exit.deleted).toEqual(["gone.txt", "moved.txt"]);
    expect(exit.files.map((f) => [f.path, f.change])).toEqual([
      ["replaced.txt", "modified"],
      ["sub/moved.txt", "created"],
    ]);
    expect((await conn.run({ id: "none", lang: "bash", code: "true" })).deleted).toEqual([]);
  });

  it("detects an OOM kill through the cgroup counter", async () => {
    const cgroup = join(await import("node:fs").then((fs) => fs.mkdtempSync(join(process.env.TMPDIR ?? "/tmp", "cg-"))));
    cleanups.push(async () => rmSync(cgroup, { recursive: true, force: true }));
    writeFileSync(join(cgroup, "memory.events"), "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n");
    await setup({ cgroupDir: cgroup });
    // The "OOM killer" here is the program itself: it bumps the counter and SIGKILLs itself.
    const exit = await conn.run({
      id: "oom",
      lang: "py",
      code: `import os,signal\nopen(${JSON.stringify(join(cgroup, "memory.events"))},'w').write('oom 2\\noom_kill 2\\n')\nos.kill(os.getpid(), signal.SIGKILL)`,
    });
    expect(exit).toMatchObject({ reason: "memory", signal: "SIGKILL" });
    // SIGKILL without a counter increase is just signaled
    const exit2 = await conn.run({ id: "oom2", lang: "py", code: "import os,signal\nos.kill(os.getpid(), signal.SIGKILL)" });
    expect(exit2).toMatchObject({ reason: "signaled", signal: "SIGKILL" });
  });

  it("runs JavaScript with node", async () => {
    await setup();
    const exit = await conn.run({ id: "js", lang: "js", code: "console.log(1 + 1)" });
    expect(exit.code).toBe(0);
    expect(conn.text("js")).toBe("2\n");
  });

  it("SIGKILL from the client is reason killed", async () => {
    await setup();
    conn.startExec({ id: "k9", lang: "py", code: "import time\nprint('up')\ntime.sleep(30)" });
    await conn.waitFor((f) => f.type === "out" && f.id === "k9");
    conn.send({ type: "signal", id: "k9", signal: "SIGKILL" });
    expect(await conn.exitOf("k9", 5000)).toMatchObject({ reason: "killed", signal: "SIGKILL", code: null });
  });
});

describe.skipIf(!hasGcc)("compiled languages", () => {
  it("compiles and runs C: stage compile, then run", async () => {
    await setup();
    const exit = await conn.run({
      id: "c1",
      lang: "c",
      code: '#include <stdio.h>\nint main(int c, char**v){ printf("hi %s\\n", v[1]); return 4; }',
      args: ["there"],
    });
    expect(exit).toMatchObject({ code: 4, reason: "exited" });
    const stages = conn.of("c1").filter((f) => f.type === "exec.stage");
    expect(stages.map((f) => (f.type === "exec.stage" ? f.stage : ""))).toEqual(["compile", "run"]);
    expect(conn.text("c1")).toBe("hi there\n");
    expect(exit.files).toEqual([]);
    expect(readdirSync(agent.workDir)).toEqual([]);
  }, 20_000);

  it("a compile error gives the compiler's stderr, its code, and no run stage", async () => {
    await setup();
    const exit = await conn.run({ id: "c2", lang: "c", code: "int main(void) { return nope; }" });
    expect(exit.reason).toBe("exited");
    expect(exit.code).not.toBe(0);
    expect(conn.text("c2", "stderr")).toMatch(/error/);
    const stages = conn.of("c2").filter((f) => f.type === "exec.stage");
    expect(stages.map((f) => (f.type === "exec.stage" ? f.stage : ""))).toEqual(["compile"]);
  }, 20_000);

  it("stdin sent during the compile stage reaches the program", async () => {
    await setup();
    conn.startExec({
      id: "cin",
      lang: "c",
      stdin: true,
      code: '#include <stdio.h>\nint main(void){ char b[64]; if (fgets(b, sizeof b, stdin)) printf("got %s", b); return 0; }',
    });
    conn.send({ type: "stdin", id: "cin", data: "early\n", eof: true });
    const exit = await conn.exitOf("cin");
    expect(exit.code).toBe(0);
    expect(conn.text("cin")).toBe("got early\n");
  }, 20_000);

  it("C output is line-buffered (stdbuf): the first line arrives before the program ends", async () => {
    await setup();
    const exit = await conn.run({
      id: "c3",
      lang: "c",
      code: '#include <stdio.h>\n#include <unistd.h>\nint main(void){ printf("a\\n"); sleep(1); printf("b\\n"); return 0; }',
    });
    expect(exit.code).toBe(0);
    const outs = conn.outOf("c3");
    expect(outs[0]!.data).toBe("a\n");
    expect(exit.at - outs[0]!.at).toBeGreaterThan(600);
  }, 20_000);
});

describe("without the launcher", () => {
  it("runs programs directly in their own group, without cpu and memory figures", async () => {
    await setup({ launcher: null });
    expect(agent.agent.launcher).toBeNull();
    const exit = await conn.run({ id: "d1", lang: "py", code: "import os\nprint(os.getpgid(0) == os.getpid())" });
    expect(conn.text("d1")).toBe("True\n");
    expect(exit).toMatchObject({ code: 0, reason: "exited" });
    expect(exit.cpuMs).toBeUndefined();
    expect(exit.memBytes).toBeUndefined();

    conn.startExec({ id: "d2", lang: "bash", code: "echo started\nwhile true; do :; done" });
    await conn.waitFor((f) => f.type === "out" && f.id === "d2");
    conn.send({ type: "signal", id: "d2", signal: "SIGINT" });
    expect(await conn.exitOf("d2")).toMatchObject({ reason: "killed", signal: "SIGINT" });

    expect(await conn.run({ id: "d3", lang: "bash", timeoutMs: 300, code: "sleep 10" })).toMatchObject({ reason: "timeout", signal: "SIGKILL" });
  });

  it("a missing launcher file falls back to direct spawning", async () => {
    await setup({ launcher: "/nonexistent/launcher" });
    expect(agent.agent.launcher).toBeNull();
    expect(await conn.run({ id: "x", lang: "bash", code: "echo ok" })).toMatchObject({ code: 0 });
  });

  it("a missing program gives code 127 and a message", async () => {
    await setup({ launcher: null, programEnv: { PATH: "/nonexistent" } });
    const exit = await conn.run({ id: "m", lang: "bash", code: "echo" });
    expect(exit).toMatchObject({ code: 127, reason: "exited" });
    expect(conn.text("m", "stderr")).toMatch(/cannot run bash/);
  });
});

describe("with the launcher", () => {
  it("a missing program gives code 127 and the launcher's message", async () => {
    await setup({ programEnv: { PATH: "/nonexistent" } });
    const exit = await conn.run({ id: "m", lang: "bash", code: "echo" });
    expect(exit).toMatchObject({ code: 127, reason: "exited" });
    expect(conn.text("m", "stderr")).toMatch(/launcher: cannot run bash/);
  });

  it("reports cpu time and peak memory of the program", async () => {
    await setup();
    const exit = await conn.run({ id: "cpu", lang: "py", code: "x = bytearray(50 * 1024 * 1024)\ns = 0\nfor i in range(2_000_000): s += i\nprint(s)" });
    expect(exit.code).toBe(0);
    expect(exit.cpuMs).toBeGreaterThan(20);
    expect(exit.memBytes).toBeGreaterThan(50 * 1024 * 1024);
    expect(agent.agent.launcher).toBe(harness.launcher);
  });

  it("the program does not inherit the report fd", async () => {
    await setup();
    const exit = await conn.run({ id: "fd", lang: "bash", code: "ls /proc/self/fd | sort -n | tr '\\n' ' '" });
    expect(exit.code).toBe(0);
    // 0 1 2 and ls's own directory fd (3): nothing else
    expect(conn.text("fd").trim().split(" ").map(Number)).toEqual([0, 1, 2, 3]);
  });
});
