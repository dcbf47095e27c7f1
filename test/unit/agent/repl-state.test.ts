import { describe, expect, it } from "vitest";
import type { AgentExec } from "../../../protocol/index.ts";
import { AgentConn, type Received, type startTestAgent, type TestAgent, useAgentHarness } from "./helpers.ts";

/** Preloaded interpreters, rich output (figures) and saved Python state, with the real agent and Debian's python3. */

type StateResult = Extract<Received, { type: "state.result" }>;
type Warm = Extract<Received, { type: "warm" }>;

const harness = useAgentHarness();
const { cleanups } = harness;

function setup(options: Parameters<typeof startTestAgent>[0] = {}): Promise<{ agent: TestAgent; conn: AgentConn }> {
  return harness.start(options);
}

let n = 0;
function repl(conn: AgentConn, code: string, extra: Partial<Omit<AgentExec, "type">> = {}) {
  const id = extra.id ?? `s${++n}`;
  return conn.run({ id, lang: "py", code, repl: true, ...extra }, 60_000).then((exit) => ({ exit, id, out: conn.text(id), err: conn.text(id, "stderr") }));
}

function state(conn: AgentConn, frame: Record<string, unknown>): Promise<StateResult> {
  return conn.request({ reqId: `q${++n}`, ...frame }) as Promise<StateResult>;
}

const PNG_MAGIC = "89504e470d0a1a0a";

describe("preloaded interpreter", () => {
  it("imports the preload at agent start, says warm, and the first exec finds the modules loaded", async () => {
    const { conn } = await setup({ pythonPreload: ["numpy", "pandas", "matplotlib.pyplot", "no_such_module_xyz"] });
    expect(conn.frames[0]).toMatchObject({ type: "ready" });
    expect(typeof (conn.frames[0] as Extract<Received, { type: "ready" }>).warm).toBe("boolean");
    const warm = await conn.waitFor<Warm>((f) => f.type === "warm", 60_000);
    expect(warm.modules).toEqual(["numpy", "pandas", "matplotlib.pyplot"]);
    expect(warm.failed).toEqual([{ name: "no_such_module_xyz", error: expect.stringContaining("ModuleNotFoundError") }]);
    expect(warm.ms).toBeGreaterThan(0);
    expect(warm.pid).toBeGreaterThan(0);
    expect(warm.pssBytes).toBeGreaterThan(10 * 1024 * 1024);
    const first = await repl(
      conn,
      "import sys, os\nprint(all(m in sys.modules for m in ('numpy', 'pandas', 'matplotlib.pyplot')))\nprint('numpy' in dir())\nprint(os.getpid())",
    );
    expect(first.exit).toMatchObject({ code: 0, reason: "exited" });
    // loaded, but the user's namespace stays clean; the same interpreter
    expect(first.out).toBe(`True\nFalse\n${warm.pid}\n`);
    expect(first.err).toBe("");
    expect(conn.invalid).toEqual([]);
  });

  it("a first exec that arrives during the preload waits for it, then runs", async () => {
    const { conn } = await setup({ pythonPreload: ["numpy", "pandas"] });
    const first = await repl(conn, "import sys\nprint('pandas' in sys.modules)");
    expect(first.out).toBe("True\n");
    expect(conn.frames.some((f) => f.type === "warm")).toBe(true);
  });

  it("reports warm: true in ready to a server that connects later", async () => {
    const { agent, conn } = await setup({ pythonPreload: ["json"] });
    await conn.waitFor((f) => f.type === "warm", 30_000);
    const later = await AgentConn.open(agent.socketPath);
    cleanups.unshift(() => later.close());
    expect(later.frames[0]).toMatchObject({ type: "ready", warm: true });
  });

  it("without a preload: no warm frame, no warm field, the interpreter starts at the first exec", async () => {
    const { conn } = await setup();
    expect(conn.frames[0]).not.toHaveProperty("warm");
    const first = await repl(conn, "import sys\nprint('numpy' in sys.modules)");
    expect(first.out).toBe("False\n");
    expect(conn.frames.some((f) => f.type === "warm")).toBe(false);
  });
});

describe("rich output", () => {
  it("plt.show() sends each open figure as a PNG display frame during the exec, and figures are closed after every exec", async () => {
    const { conn } = await setup();
    const shown = await repl(
      conn,
      "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.figure(num='second')\nplt.bar([1], [2])\nprint('before')\nplt.show()\nprint('after', plt.get_fignums())",
    );
    expect(shown.exit).toMatchObject({ code: 0, reason: "exited" });
    expect(shown.out).toBe("before\nafter []\n");
    const displays = conn.frames.filter((f): f is Extract<Received, { type: "display" }> => f.type === "display" && f.id === shown.id);
    expect(displays.map((d) => [d.mime, d.name])).toEqual([
      ["image/png", "figure-1"],
      ["image/png", "second"],
    ]);
    for (const d of displays) expect(Buffer.from(d.data, "base64").subarray(0, 8).toString("hex")).toBe(PNG_MAGIC);
    // the display frames come before the exit
    const exitIndex = conn.frames.findIndex((f) => f.type === "exit" && f.id === shown.id);
    expect(conn.frames.findIndex((f) => f.type === "display" && f.id === shown.id)).toBeLessThan(exitIndex);

    // a figure left open (not shown) is closed at the end of its exec
    await repl(conn, "fig = plt.figure()\nplt.plot([3, 2])\nprint(plt.get_fignums())");
    const next = await repl(conn, "print(plt.get_fignums())\nplt.show()");
    expect(next.out).toBe("[]\n");
    expect(conn.frames.some((f) => f.type === "display" && f.id === next.id)).toBe(false);

    // IPython-style: a Figure as the value of the last expression is shown
    const last = await repl(conn, "from matplotlib.figure import Figure\nf2 = plt.figure()\nf2.add_subplot().plot([1, 0])\nf2");
    const shownLast = conn.frames.filter((f) => f.type === "display" && f.id === last.id);
    expect(shownLast).toHaveLength(1);
    // any other last expression is not printed (script semantics)
    expect((await repl(conn, "1 + 1")).out).toBe("");
    expect(conn.invalid).toEqual([]);
  });

  it("sends at most maxDisplays figures, none larger than maxDisplayBytes, and counts the rest in the exit", async () => {
    const { conn } = await setup();
    const flood = "import matplotlib.pyplot as plt\nfor i in range(6):\n    plt.figure(); plt.plot([0, i]); plt.show()\nprint('shown')";
    const capped = await repl(conn, flood, { maxDisplays: 2 });
    expect(capped.out).toBe("shown\n");
    expect(conn.frames.filter((f) => f.type === "display" && f.id === capped.id)).toHaveLength(2);
    expect(capped.exit).toMatchObject({ code: 0, reason: "exited", displaysDropped: 4 });
    // A small plot is a few KiB of PNG; a 100-byte limit lets none through.
    const small = await repl(conn, "plt.plot([1, 2]); plt.show()", { maxDisplays: 5, maxDisplayBytes: 100 });
    expect(conn.frames.filter((f) => f.type === "display" && f.id === small.id)).toHaveLength(0);
    expect(small.exit.displaysDropped).toBe(1);
    // Within both: every figure, and no count.
    const fine = await repl(conn, "plt.plot([1, 2]); plt.show()", { maxDisplays: 1, maxDisplayBytes: 1024 * 1024 });
    expect(conn.frames.filter((f) => f.type === "display" && f.id === fine.id)).toHaveLength(1);
    expect(fine.exit.displaysDropped).toBeUndefined();
  });

  it("works when pyplot was imported through matplotlib first, and a syntax error still has no driver frames", async () => {
    const { conn } = await setup();
    await repl(conn, "import matplotlib\nmatplotlib.use('Agg')\nfrom matplotlib import pyplot");
    const shown = await repl(conn, "pyplot.plot([1])\npyplot.show()");
    expect(conn.frames.filter((f) => f.type === "display" && f.id === shown.id)).toHaveLength(1);
    const syntax = await repl(conn, "print(");
    expect(syntax.exit.code).toBe(1);
    expect(syntax.err).toContain("SyntaxError");
    expect(syntax.err).not.toContain("Traceback");
  });

  it("does not import matplotlib for code that does not", async () => {
    const { conn } = await setup();
    const run = await repl(conn, "import sys\nprint(1)\nprint('matplotlib' in sys.modules)");
    expect(run.out).toBe("1\nFalse\n");
  });
});

describe("saved state", () => {
  const DEFINE = [
    "import json, os.path as osp",
    "import pandas as pd",
    "import threading",
    "x = 42",
    "text = 'héllo'",
    "items = [1, 2, {'a': 3}]",
    "alias = items",
    "def double(v):",
    "    return 2 * v + x",
    "class Point:",
    "    def __init__(self, a, b):",
    "        self.a, self.b = a, b",
    "    def norm(self):",
    "        return self.a ** 2 + self.b ** 2",
    "p = Point(3, 4)",
    "df = pd.DataFrame({'k': [1, 2, 3], 'v': ['a', 'b', 'c']})",
    "lock = threading.Lock()",
    "gen = (i for i in range(3))",
    "print('defined')",
  ].join("\n");

  it("save, then restore into a new agent: variables, a function, a class instance, a DataFrame and modules survive; unpicklable names are skipped", async () => {
    const first = await setup();
    expect((await repl(first.conn, DEFINE)).out).toBe("defined\n");
    const saved = await state(first.conn, { type: "state.save" });
    expect(saved.error).toBeUndefined();
    expect(saved.data).toBeTruthy();
    expect(saved.bytes).toBe(Buffer.from(saved.data!, "base64").length);
    expect(saved.names).toEqual(["Point", "alias", "df", "double", "items", "json", "osp", "p", "pd", "text", "threading", "x"]);
    expect(saved.skipped!.map((s) => s.name).sort()).toEqual(["gen", "lock"]);
    for (const s of saved.skipped!) expect(s.error).toMatch(/pickle/i);
    // the interpreter is unchanged by a save
    expect((await repl(first.conn, "print(x, next(gen))")).out).toBe("42 0\n");

    const second = await setup();
    const restored = await state(second.conn, { type: "state.restore", data: saved.data });
    expect(restored.error).toBeUndefined();
    expect(restored.names).toEqual(saved.names);
    const check = await repl(
      second.conn,
      [
        "print(x, text, items, double(1), p.norm(), type(p).__name__)",
        "print(df.shape, list(df['v']), int(df['k'].sum()))",
        "print(json.dumps({'ok': 1}), osp.join('a', 'b'), pd.__name__, threading.__name__)",
        "alias.append(9)",
        "print(items[-1], alias is items)",
        "print('lock' in dir(), 'gen' in dir())",
        "print(isinstance(p, Point), __name__)",
      ].join("\n"),
    );
    expect(check.err).toBe("");
    expect(check.out).toBe(
      "42 héllo [1, 2, {'a': 3}] 44 25 Point\n(3, 2) ['a', 'b', 'c'] 6\n" + '{"ok": 1} a/b pandas threading\n9 True\nFalse False\nTrue __main__\n',
    );
    expect(second.conn.invalid).toEqual([]);
  });

  it("a state over maxBytes is an error without data", async () => {
    const { conn } = await setup();
    await repl(conn, "import os\nblob = os.urandom(200_000)");
    const over = await state(conn, { type: "state.save", maxBytes: 1000 });
    expect(over.data).toBeUndefined();
    expect(over.bytes).toBeGreaterThan(200_000);
    expect(over.error).toBe(`state is ${over.bytes} bytes, over the limit of 1000`);
    expect(over.names).toEqual(["blob", "os"]);
    const under = await state(conn, { type: "state.save", maxBytes: 1_000_000 });
    expect(under.error).toBeUndefined();
    expect(under.data).toBeTruthy();
  });

  it("is refused while an exec runs, and the exec still ends normally", async () => {
    const { conn } = await setup();
    await repl(conn, "import time\ny = 1");
    conn.startExec({ id: "busy", lang: "py", repl: true, code: "print('go', flush=True)\ntime.sleep(0.5)" });
    await conn.waitFor((f) => f.type === "out" && f.id === "busy");
    const refused = await state(conn, { type: "state.save" });
    expect(refused.error).toMatch(/exec busy is running/);
    expect(refused.data).toBeUndefined();
    const refusedRestore = await state(conn, { type: "state.restore", data: "" });
    expect(refusedRestore.error).toMatch(/exec busy is running/);
    expect((await conn.exitOf("busy")).code).toBe(0);
    const saved = await state(conn, { type: "state.save" });
    expect(saved.names).toEqual(["time", "y"]);
  });

  it("without an interpreter: an empty save; a bad restore is an error and the interpreter lives on", async () => {
    const { conn } = await setup();
    const empty = await state(conn, { type: "state.save" });
    expect(empty).toMatchObject({ bytes: 0, names: [], skipped: [] });
    expect(empty.data).toBeUndefined();
    const bad = await state(conn, { type: "state.restore", data: Buffer.from("not a state").toString("base64") });
    expect(bad.error).toMatch(/^cannot restore/);
    expect((await repl(conn, "print('alive')")).out).toBe("alive\n");
  });

  it("output printed while pickling does not reach an exec", async () => {
    const { conn } = await setup();
    await repl(conn, "class Loud:\n    def __reduce__(self):\n        print('noise')\n        return (Loud, ())\nloud = Loud()");
    const saved = await state(conn, { type: "state.save" });
    expect(saved.names).toEqual(["Loud", "loud"]);
    expect((await repl(conn, "print('clean')")).out).toBe("clean\n");
  });
});
