import { type ChildProcess, spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentConn, buildLauncher, REPO_ROOT, TOKEN } from "./helpers.ts";

/** The agent as it ships: main.ts bundled the way scripts/build.mjs does, the launcher and the Python driver next to it. */
let dir: string;
let launcher: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "agent-main-"));
  await build({
    bundle: true,
    platform: "node",
    target: "node20",
    format: "esm",
    logLevel: "warning",
    entryPoints: [join(REPO_ROOT, "sidecar-agent/main.ts")],
    outfile: join(dir, "agent.mjs"),
    external: ["bufferutil", "utf-8-validate"],
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  });
  launcher = buildLauncher();
  copyFileSync(launcher, join(dir, "launcher"));
  copyFileSync(join(REPO_ROOT, "sidecar-agent/python-repl-driver.py"), join(dir, "python-repl-driver.py"));
}, 30_000);
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(dirname(launcher), { recursive: true, force: true });
});

function startMain(env: Record<string, string>): { child: ChildProcess; ready: Promise<void>; stderr: () => string } {
  const child = spawn(process.execPath, [join(dir, "agent.mjs")], { env: { PATH: process.env.PATH ?? "", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stderr!.on("data", (d) => {
    err += d;
  });
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout!.on("data", (d) => {
      out += d;
      if (out.includes("AGENT_READY\n")) resolve();
    });
    child.on("exit", (code) => reject(new Error(`agent exited with ${code}: ${err}`)));
  });
  return { child, ready, stderr: () => err };
}

describe("sidecar-agent main", () => {
  it("starts from the environment, prints AGENT_READY, hides its token, uses the launcher next to it", async () => {
    const root = mkdtempSync(join(tmpdir(), "agent-main-run-"));
    const socket = join(root, "run", "agent.sock");
    const agent = startMain({
      AGENT_LISTEN: `unix:${socket}`,
      AGENT_TOKEN: TOKEN,
      AGENT_DATA_DIR: join(root, "data"),
      AGENT_WORK_DIR: join(root, "work"),
      AGENT_PROGRAM_ENV: JSON.stringify({ PATH: "/usr/local/bin:/usr/bin:/bin", HOME: "/tmp", LANG: "C.UTF-8", EXTRA: "1" }),
    });
    try {
      await agent.ready;
      const conn = await AgentConn.open(socket);
      const exit = await conn.run({
        id: "m",
        lang: "py",
        code: "import os\nprint(os.environ.get('AGENT_TOKEN'), os.environ.get('EXTRA'), sorted(os.environ))",
      });
      expect(conn.text("m")).toBe("None 1 ['EXTRA', 'HOME', 'LANG', 'MPLBACKEND', 'PATH', 'PYTHONDONTWRITEBYTECODE', 'PYTHONUNBUFFERED']\n");
      expect(exit.code).toBe(0);
      expect(exit.cpuMs).toBeGreaterThanOrEqual(0);
      expect(exit.memBytes).toBeGreaterThan(0);
      // the persistent interpreter's driver is found next to the bundle
      await conn.run({ id: "r1", lang: "py", repl: true, code: "kept = 'yes'" });
      expect(await conn.run({ id: "r2", lang: "py", repl: true, code: "print(kept)" })).toMatchObject({ code: 0 });
      expect(conn.text("r2")).toBe("yes\n");
      await conn.close();
      const exited = new Promise<number | null>((resolve) => agent.child.on("exit", (code) => resolve(code)));
      agent.child.kill("SIGTERM");
      expect(await exited).toBe(0);
      expect(existsSync(socket)).toBe(false);
    } finally {
      agent.child.kill("SIGKILL");
      rmSync(root, { recursive: true, force: true });
    }
  }, 20_000);

  it("AGENT_PYTHON_PRELOAD=1 preloads numpy, pandas and pyplot at start and says warm", async () => {
    const root = mkdtempSync(join(tmpdir(), "agent-main-run-"));
    const socket = join(root, "agent.sock");
    const agent = startMain({
      AGENT_LISTEN: `unix:${socket}`,
      AGENT_TOKEN: TOKEN,
      AGENT_DATA_DIR: join(root, "data"),
      AGENT_WORK_DIR: join(root, "work"),
      AGENT_PYTHON_PRELOAD: "1",
    });
    try {
      await agent.ready;
      const conn = await AgentConn.open(socket);
      expect(conn.frames[0]).toHaveProperty("warm");
      const warm = await conn.waitFor((f) => f.type === "warm", 30_000);
      expect(warm).toMatchObject({ modules: ["numpy", "pandas", "matplotlib.pyplot"], failed: [] });
      await conn.run({ id: "p", lang: "py", repl: true, code: "import sys\nprint('pandas' in sys.modules)" });
      expect(conn.text("p")).toBe("True\n");
      await conn.close();
    } finally {
      agent.child.kill("SIGKILL");
      rmSync(root, { recursive: true, force: true });
    }
  }, 40_000);

  it("listens on TCP with its token from AGENT_TOKEN_FILE (as in a pod), which programs do not inherit", async () => {
    const root = mkdtempSync(join(tmpdir(), "agent-main-run-"));
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    writeFileSync(join(root, "token"), `${TOKEN}\n`);
    const agent = startMain({
      AGENT_LISTEN: `tcp:127.0.0.1:${port}`,
      AGENT_TOKEN_FILE: join(root, "token"),
      AGENT_DATA_DIR: join(root, "data"),
      AGENT_WORK_DIR: join(root, "work"),
    });
    try {
      await agent.ready;
      const { default: WebSocket } = await import("ws");
      const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { headers: { "x-agent-token": TOKEN } });
      const first = await new Promise<string>((resolve, reject) => {
        ws.once("message", (d) => resolve(d.toString()));
        ws.once("error", reject);
      });
      expect(JSON.parse(first)).toMatchObject({ type: "ready", version: "1" });
      ws.close();
      const wrong = new WebSocket(`ws://127.0.0.1:${port}/`, { headers: { "x-agent-token": `${TOKEN}x` } });
      const refused = await new Promise<string>((resolve) => {
        wrong.once("unexpected-response", (_req, res) => resolve(String(res.statusCode)));
        wrong.once("open", () => resolve("open"));
        wrong.once("error", (error) => resolve(error.message));
      });
      expect(refused).toBe("401");
    } finally {
      agent.child.kill("SIGKILL");
      rmSync(root, { recursive: true, force: true });
    }
  }, 20_000);

  it("refuses to start without a token", async () => {
    const child = spawn(process.execPath, [join(dir, "agent.mjs")], { env: { AGENT_LISTEN: "tcp:127.0.0.1:0" }, stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    child.stderr.on("data", (d) => {
      err += d;
    });
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    expect(code).toBe(2);
    expect(err).toMatch(/AGENT_TOKEN or AGENT_TOKEN_FILE is required/);
  });

  it("refuses to start when AGENT_TOKEN_FILE cannot be read", async () => {
    const child = spawn(process.execPath, [join(dir, "agent.mjs")], {
      env: { AGENT_LISTEN: "tcp:127.0.0.1:0", AGENT_TOKEN_FILE: "/nonexistent/token" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let err = "";
    child.stderr.on("data", (d) => {
      err += d;
    });
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    expect(code).toBe(2);
    expect(err).toMatch(/AGENT_TOKEN_FILE: cannot read \/nonexistent\/token/);
  });
});
