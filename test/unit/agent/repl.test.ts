import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { AgentExec } from "../../../protocol/index.ts";
import { type AgentConn, type startTestAgent, type TestAgent, useAgentHarness } from "./helpers.ts";

/** The persistent Python interpreter (exec frames with `repl: true`), with the real agent and python3. */

const harness = useAgentHarness();

let agent: TestAgent;
let conn: AgentConn;
async function setup(options: Parameters<typeof startTestAgent>[0] = {}) {
  ({ agent, conn } = await harness.start(options));
}

let n = 0;
/** Run `code` in the persistent interpreter to its exit. */
function repl(code: string, extra: Partial<Omit<AgentExec, "type">> = {}) {
  const id = extra.id ?? `r${++n}`;
  return conn.run({ id, lang: "py", code, repl: true, ...extra }).then((exit) => ({ exit, id, out: conn.text(id), err: conn.text(id, "stderr") }));
}

describe("persistent python interpreter", () => {
  it("keeps state across execs, runs as __main__ in the data folder, and reports like a one-shot exec", async () => {
    await setup();
    const first = await repl("import os\nx = 41\ndef inc(v):\n    return v + 1\nos.chdir('/tmp')\nprint(__name__)");
    expect(first.exit).toMatchObject({ code: 0, signal: null, reason: "exited", truncated: false, files: [], deleted: [] });
    expect(first.out).toBe("__main__\n");
    const second = await repl("import os, sys\nprint(inc(x), os.getcwd(), sys.argv)", { args: ["a"] });
    expect(second.out).toBe(`42 ${agent.agent.dataDir} ['', 'a']\n`);
    expect(second.exit.cpuMs).toBeGreaterThanOrEqual(0);
    expect(second.exit.memBytes).toBeGreaterThan(1024 * 1024);
    // the same process, not a re-run of old code: first's output is not repeated
    const pids = await repl("import os\nprint(os.getpid())");
    const again = await repl("import os\nprint(os.getpid())");
    expect(again.out).toBe(pids.out);
    // no build folders for repl execs
    expect(readdirSync(agent.workDir).filter((name) => name.startsWith("exec-"))).toEqual([]);
    expect(conn.invalid).toEqual([]);
  });

  it("streams output while the code runs, stdout and stderr apart", async () => {
    await setup();
    await repl("import time, sys");
    conn.startExec({ id: "s", lang: "py", repl: true, code: "print('first')\nprint('oops', file=sys.stderr)\ntime.sleep(1)\nprint('second')" });
    const exit = await conn.exitOf("s");
    const outs = conn.outOf("s");
    const firstLine = outs.find((_, i) =>
      outs
        .slice(0, i + 1)
        .filter((f) => f.stream === "stdout")
        .map((f) => f.data)
        .join("")
        .includes("first\n"),
    );
    expect(firstLine).toBeDefined();
    expect(exit.at - firstLine!.at).toBeGreaterThan(600);
    expect(conn.text("s")).toBe("first\nsecond\n");
    expect(conn.text("s", "stderr")).toBe("oops\n");
  });

  it("an uncaught exception: traceback without the driver's frames, code 1, state kept", async () => {
    await setup();
    await repl("def boom():\n    return 1 / 0");
    const failed = await repl("y = 'kept'\nboom()");
    expect(failed.exit).toMatchObject({ code: 1, signal: null, reason: "exited" });
    expect(failed.err).toMatch(/^Traceback \(most recent call last\):\n {2}File "<exec 2>", line 2, in <module>\n/);
    // the source line of a function defined by an earlier exec
    expect(failed.err).toContain('File "<exec 1>", line 2, in boom\n    return 1 / 0\n');
    expect(failed.err).toMatch(/ZeroDivisionError: division by zero\n$/);
    expect(failed.err).not.toContain("driver");
    const syntax = await repl("print(");
    expect(syntax.exit.code).toBe(1);
    expect(syntax.err).toContain("SyntaxError");
    expect(syntax.err).not.toContain("Traceback");
    expect((await repl("print(y)")).out).toBe("kept\n");
  });

  it("a broken sys.excepthook or sys.stdout of the user's does not stop the interpreter", async () => {
    await setup();
    await repl("import sys\nsys.excepthook = lambda *args: 1 / 0");
    const hooked = await repl("raise ValueError('shown anyway')");
    expect(hooked.exit.code).toBe(1);
    expect(hooked.err).toContain("ValueError: shown anyway");
    await repl("sys.excepthook = sys.__excepthook__\nsys.stdout = None\nsys.stderr = None");
    const back = await repl("sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__\nprint('back')");
    expect(back.out).toBe("back\n");
  });

  it("sys.exit(n) and exit() end the exec with their code; the interpreter stays", async () => {
    await setup();
    expect((await repl("z = 1\nimport sys\nsys.exit(3)\nz = 2")).exit).toMatchObject({ code: 3, reason: "exited" });
    expect((await repl("exit()")).exit).toMatchObject({ code: 0, reason: "exited" });
    const message = await repl("sys.exit('bye')");
    expect(message.exit.code).toBe(1);
    expect(message.err).toBe("bye\n");
    expect((await repl("print(z)")).out).toBe("1\n");
  });

  it("SIGINT raises KeyboardInterrupt in the running code: reason killed, state kept", async () => {
    await setup();
    await repl("counter = 7");
    conn.startExec({ id: "loop", lang: "py", repl: true, code: "print('looping', flush=True)\nwhile True:\n    pass" });
    await conn.waitFor((f) => f.type === "out" && f.id === "loop");
    conn.send({ type: "signal", id: "loop", signal: "SIGINT" });
    const exit = await conn.exitOf("loop");
    expect(exit).toMatchObject({ reason: "killed", signal: "SIGINT", code: null });
    expect(conn.text("loop", "stderr")).toMatch(/Traceback[\s\S]*KeyboardInterrupt\n$/);
    expect((await repl("print(counter)")).out).toBe("7\n");
  });

  it("a SIGINT sent right with the exec still interrupts it, in a starting or in a waiting interpreter", async () => {
    await setup();
    for (const id of ["cold", "warm"]) {
      conn.startExec({ id, lang: "py", repl: true, code: "import time\ntime.sleep(5)" });
      conn.send({ type: "signal", id, signal: "SIGINT" });
      const exit = await conn.exitOf(id);
      expect(exit).toMatchObject({ reason: "killed", signal: "SIGINT" });
      expect(exit.wallMs).toBeLessThan(3000);
    }
    expect((await repl("print('alive')")).out).toBe("alive\n");
  });

  it("SIGTERM ends the interpreter: reason killed, the next exec starts fresh", async () => {
    await setup();
    await repl("lost = True");
    conn.startExec({ id: "term", lang: "py", repl: true, code: "import time\nprint('up', flush=True)\ntime.sleep(30)" });
    await conn.waitFor((f) => f.type === "out" && f.id === "term");
    conn.send({ type: "signal", id: "term", signal: "SIGTERM" });
    expect(await conn.exitOf("term")).toMatchObject({ reason: "killed", signal: "SIGTERM", code: null });
    const next = await repl("print('lost' in globals())");
    expect(next.out).toBe("False\n");
  });

  it("the wall time kills the interpreter: reason timeout, then fresh state", async () => {
    await setup();
    await repl("state = 1");
    const slow = await repl("import time\nprint('x')\ntime.sleep(20)", { timeoutMs: 500 });
    expect(slow.exit).toMatchObject({ reason: "timeout", signal: "SIGKILL", code: null });
    expect(slow.exit.wallMs).toBeLessThan(4000);
    const fresh = await repl("print(state)");
    expect(fresh.exit.code).toBe(1);
    expect(fresh.err).toContain("NameError: name 'state' is not defined");
  });

  it("stdin per exec, each with its own EOF", async () => {
    await setup();
    for (const id of ["in1", "in2"]) {
      conn.startExec({ id, lang: "py", repl: true, stdin: true, code: "import sys\nfor line in sys.stdin:\n    print(line.strip().upper())\nprint('eof')" });
      conn.send({ type: "stdin", id, data: `hello ${id}\n` });
      await conn.waitFor((f) => f.type === "out" && f.id === id && f.data.includes("HELLO"));
      conn.send({ type: "stdin", id, data: "wörld\n", eof: true });
      expect(await conn.exitOf(id)).toMatchObject({ code: 0, reason: "exited" });
      expect(conn.text(id)).toBe(`HELLO ${id.toUpperCase()}\nWÖRLD\neof\n`);
    }
    // without stdin: /dev/null, and input sent before an exec is not seen by the next one
    const none = await repl("import sys\nprint(repr(sys.stdin.read()))");
    expect(none.out).toBe("''\n");
    // input sent with its EOF at once, before the driver opened its end, is all there
    for (const id of ["unread1", "next1", "unread2", ...Array.from({ length: 10 }, (_, i) => `next${i + 2}`)]) {
      const reads = id.startsWith("next");
      conn.startExec({ id, lang: "py", repl: true, stdin: true, code: reads ? "import sys\nprint(repr(sys.stdin.read()))" : "print('ignores stdin')" });
      conn.send({ type: "stdin", id, data: `for ${id}\n`, eof: true });
      await conn.exitOf(id);
      if (reads) expect(conn.text(id)).toBe(`'for ${id}\\n'\n`);
    }
  });

  it("the output cap kills the interpreter: output_limit, exactly the cap sent, then fresh state", async () => {
    await setup();
    await repl("mark = 1");
    const cap = 10_000;
    const flood = await repl("import sys\nwhile True:\n    sys.stdout.write('é' * 1000)\n    sys.stderr.write('x' * 333)", { maxOutputBytes: cap });
    expect(flood.exit).toMatchObject({ reason: "output_limit", truncated: true, signal: "SIGKILL" });
    expect(conn.outOf(flood.id).reduce((sum, f) => sum + f.bytes, 0)).toBe(cap);
    expect((await repl("print('mark' in globals())")).out).toBe("False\n");
  });

  it("holds output at the credit window and resumes on ack", async () => {
    await setup();
    conn.autoAck = false;
    const total = 512 * 1024;
    conn.startExec({ id: "bp", lang: "py", repl: true, windowBytes: 64 * 1024, code: `import sys\nsys.stdout.write('y' * ${total})\nsys.stdout.flush()` });
    await conn.waitFor((f) => f.type === "out" && f.id === "bp");
    await new Promise((resolve) => setTimeout(resolve, 500));
    const sent = conn.outOf("bp").reduce((sum, f) => sum + f.bytes, 0);
    expect(sent).toBeLessThanOrEqual(128 * 1024);
    expect(conn.of("bp").some((f) => f.type === "exit")).toBe(false);
    conn.send({ type: "ack", id: "bp", bytes: sent, frames: conn.outOf("bp").length });
    conn.autoAck = true;
    expect(await conn.exitOf("bp")).toMatchObject({ code: 0, reason: "exited" });
    expect(conn.text("bp").length).toBe(total);
  });

  it("never splits a UTF-8 character, and output that looks like a marker is output", async () => {
    await setup();
    const exit = await repl(
      [
        "import sys, time",
        "for b in 'é€😀'.encode():",
        "    sys.stdout.buffer.write(bytes([b])); sys.stdout.buffer.flush(); time.sleep(0.01)",
        "sys.stdout.buffer.write(b'\\x00\\x1bnot-a-marker:1\\n\\x00')",
      ].join("\n"),
    );
    expect(exit.exit.code).toBe(0);
    const text = conn.outOf(exit.id).filter((f) => !f.encoding);
    for (const piece of text) expect(piece.data).not.toContain("\uFFFD");
    expect(exit.out).toBe("é€😀\x00\x1bnot-a-marker:1\n\x00");
  });

  it("reports files created, modified and deleted in the data folder", async () => {
    await setup();
    writeFileSync(join(agent.dataDir, "old.txt"), "old");
    writeFileSync(join(agent.dataDir, "keep.txt"), "keep");
    const exit = await repl("import os\nopen('new.txt', 'w').write('new')\nopen('keep.txt', 'a').write('!')\nos.remove('old.txt')");
    expect(exit.exit.files.map((f) => [f.path, f.change])).toEqual([
      ["keep.txt", "modified"],
      ["new.txt", "created"],
    ]);
    expect(exit.exit.deleted).toEqual(["old.txt"]);
  });

  it("output of a thread that outlives its exec goes to the next exec", async () => {
    await setup();
    await repl(
      "import threading, time\ngo = threading.Event()\ndef later():\n    go.wait()\n    print('from the thread', flush=True)\nthreading.Thread(target=later, daemon=True).start()",
    );
    const next = await repl("go.set()\ntime.sleep(0.3)\nprint('next')");
    expect(next.out).toBe("from the thread\nnext\n");
  });

  it("os._exit ends the interpreter with its code; the next exec starts fresh", async () => {
    await setup();
    await repl("gone = 1");
    expect((await repl("import os\nprint('bye', flush=True)\nos._exit(5)")).exit).toMatchObject({ code: 5, reason: "exited" });
    expect((await repl("print('gone' in globals())")).out).toBe("False\n");
  });

  it("a fork that runs off the end of the code exits instead of becoming a second driver", async () => {
    await setup();
    await repl("base = 10");
    const forked = await repl(
      "import os\npid = os.fork()\nif pid == 0:\n    print('child', flush=True)\nelse:\n    _, status = os.waitpid(pid, 0)\n    print('parent', os.waitstatus_to_exitcode(status))",
    );
    expect(forked.out.split("\n").sort()).toEqual(["", "child", "parent 0"]);
    expect(forked.exit.code).toBe(0);
    const next = await repl("print(base, os.getpid() != pid)");
    expect(next.out).toBe("10 True\n");
  });

  it("one-shot python execs run beside the interpreter without touching it", async () => {
    await setup();
    await repl("shared = 'repl'");
    const oneShot = await conn.run({ id: "once", lang: "py", code: "print('shared' in globals())" });
    expect(oneShot.code).toBe(0);
    expect(conn.text("once")).toBe("False\n");
    expect((await repl("print(shared)")).out).toBe("repl\n");
  });

  it("works without the launcher (no CPU figure from a crash, the rest the same)", async () => {
    await setup({ launcher: null });
    await repl("v = 2");
    const exit = await repl("print(v * 21)");
    expect(exit.out).toBe("42\n");
    expect(exit.exit).toMatchObject({ code: 0, reason: "exited" });
    conn.startExec({ id: "int", lang: "py", repl: true, code: "print('go', flush=True)\nwhile True: pass" });
    await conn.waitFor((f) => f.type === "out" && f.id === "int");
    conn.send({ type: "signal", id: "int", signal: "SIGINT" });
    expect(await conn.exitOf("int")).toMatchObject({ reason: "killed", signal: "SIGINT" });
    expect((await repl("print(v)")).out).toBe("2\n");
  });

  it("an interpreter that cannot start: code 127 and the launcher's message", async () => {
    await setup({ programEnv: { PATH: "/nonexistent" } });
    const exit = await repl("print(1)");
    expect(exit.exit).toMatchObject({ code: 127, reason: "exited" });
    expect(exit.err).toMatch(/launcher: cannot run python3/);
  });

  it("an interpreter that dies while the exec takes its snapshot: that death is the exec's outcome", async () => {
    await setup({ programEnv: { PATH: "/nonexistent" } });
    // Enough files that the snapshot outlasts the launcher's failure (a few milliseconds).
    for (let i = 0; i < 3000; i++) writeFileSync(join(agent.agent.dataDir, `f${i}`), "");
    const exit = await repl("print(1)");
    expect(exit.exit).toMatchObject({ code: 127, reason: "exited" });
    expect(exit.err).toMatch(/launcher: cannot run python3/);
  });
});
