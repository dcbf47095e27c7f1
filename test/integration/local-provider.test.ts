/**
 * The local sandbox provider against real bubblewrap and cgroups (run as root).
 * Uses the built agent (dist/agent) when it exists, else a stand-in that speaks
 * enough of the agent protocol to run bash commands.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { buildBwrapArgs, encodeArgsFile } from "../../server/sandbox/local/bwrap-args.ts";
import { buildLaunchArgv } from "../../server/sandbox/local/launch-script.ts";
import { type LocalSandbox, LocalSandboxProvider } from "../../server/sandbox/local/local-provider.ts";
import type { SandboxLimits } from "../../server/sandbox/provider.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const REAL_AGENT_DIR = join(ROOT, "dist/agent");
const STAND_IN = join(ROOT, "test/integration/fixtures/stand-in-agent.mjs");
// A uid of its own: RLIMIT_NPROC (the no-cgroup test) counts every process of the uid machine-wide, and other suites run sandboxes as 1001.
const UID = 1011;
const MEMORY_CGROUP = "/sys/fs/cgroup/memory/code-interpreter";
const canRun = process.getuid?.() === 0 && existsSync("/usr/bin/bwrap") && process.execPath.startsWith("/usr/");

const limits: SandboxLimits = {
  memoryBytes: 256 * 1024 * 1024,
  pids: 128,
  cpuQuotaUs: 100_000,
  openFiles: 1024,
  fileSizeBytes: 64 * 1024 * 1024,
  dataBytes: 8 * 1024 * 1024,
  tmpBytes: 16 * 1024 * 1024,
};

/** Bounded wait for a condition polled every 25 ms. */
async function until(check: () => boolean, timeoutMs = 5_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return true;
    await sleep(25);
  }
  return check();
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([promise, sleep(ms).then(() => Promise.reject(new Error(`${what}: no answer within ${ms} ms`)))]);
}

interface RunResult {
  stdout: string;
  stderr: string;
  code: number | null;
}

/** A WebSocket to a sandbox's agent (real or stand-in) that runs bash code and collects its output. */
class AgentConnection {
  #socket: WebSocket;
  #execs = new Map<string, { result: RunResult; done: (r: RunResult) => void }>();
  #next = 0;

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.on("message", (data) => {
      const frame = JSON.parse(data.toString());
      const exec = this.#execs.get(frame.id);
      if (!exec) return;
      if (frame.type === "out") {
        const text = frame.encoding === "base64" ? Buffer.from(frame.data, "base64").toString() : frame.data;
        if (frame.stream === "stdout") exec.result.stdout += text;
        else exec.result.stderr += text;
        socket.send(JSON.stringify({ type: "ack", id: frame.id, bytes: frame.bytes }));
      } else if (frame.type === "exit") {
        exec.result.code = frame.code;
        this.#execs.delete(frame.id);
        exec.done(exec.result);
      } else if (frame.type === "error") {
        this.#execs.delete(frame.id);
        exec.done({ ...exec.result, stderr: `${exec.result.stderr}agent error: ${frame.code} ${frame.message}`, code: null });
      }
    });
  }

  static open(endpointPath: string, token: string): Promise<AgentConnection> {
    const socket = new WebSocket(`ws+unix://${endpointPath}:/`, { headers: { "x-agent-token": token }, perMessageDeflate: false });
    return within(
      new Promise<AgentConnection>((resolveOpen, reject) => {
        socket.once("error", reject);
        socket.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
        socket.once("message", (data) => {
          const frame = JSON.parse(data.toString());
          if (frame.type === "ready") resolveOpen(new AgentConnection(socket));
          else reject(new Error(`first frame was ${frame.type}`));
        });
      }),
      10_000,
      "agent connection",
    ).catch((error) => {
      socket.terminate();
      throw error;
    });
  }

  run(code: string, timeoutMs = 20_000): Promise<RunResult> {
    const id = `run-${++this.#next}`;
    const done = new Promise<RunResult>((resolveRun) => this.#execs.set(id, { result: { stdout: "", stderr: "", code: null }, done: resolveRun }));
    this.#socket.send(JSON.stringify({ type: "exec", id, lang: "bash", code, stdin: false, timeoutMs, maxOutputBytes: 1 << 20 }));
    return within(done, timeoutMs + 5_000, `exec ${JSON.stringify(code)}`);
  }

  close(): void {
    this.#socket.terminate();
  }
}

describe.skipIf(!canRun)("local sandbox provider (bubblewrap)", () => {
  let tmp: string;
  let agentDir: string;
  let provider: LocalSandboxProvider;
  const useRealAgent = existsSync(join(REAL_AGENT_DIR, "agent.mjs"));

  /** An agent folder holding `script` as agent.mjs. */
  function fakeAgentDir(name: string, script: string): string {
    const dir = join(tmp, name);
    mkdirSync(dir, { mode: 0o755 });
    writeFileSync(join(dir, "agent.mjs"), script, { mode: 0o644 });
    return dir;
  }

  beforeAll(() => {
    // Short and traversable by the sandbox uid: bwrap binds from here as that uid, and socket paths must stay short.
    tmp = mkdtempSync("/tmp/lp-");
    rmSync(tmp, { recursive: true });
    mkdirSync(tmp, { mode: 0o711 });
    if (useRealAgent) agentDir = REAL_AGENT_DIR;
    else {
      agentDir = join(tmp, "agent");
      mkdirSync(agentDir, { mode: 0o755 });
      copyFileSync(STAND_IN, join(agentDir, "agent.mjs"));
    }
    provider = new LocalSandboxProvider({ baseDir: join(tmp, "sb"), uid: UID, gid: UID, agentDir });
  });

  afterAll(async () => {
    await provider?.shutdown();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it(`reports its health (agent: ${useRealAgent ? "dist/agent" : "stand-in"})`, async () => {
    const health = await provider.health();
    expect(health.status).not.toBe("down");
    expect(health.details.bwrap).toMatch(/^bubblewrap \d+\.\d+/);
    expect(health.details.userNamespaces).toBe(true);
    expect(health.details.uid).toBe(UID);
    if (existsSync("/sys/fs/cgroup/memory/cgroup.procs")) {
      expect(health.details.cgroupVersion).toBe(1);
      expect(health.details.cgroupControllers).toEqual(expect.arrayContaining(["memory", "pids", "cpu"]));
    }
  });

  describe("a running sandbox", () => {
    let sandbox: LocalSandbox;
    let agent: AgentConnection;
    let hostServer: Server;
    let hostPort: number;
    const marker = "lp-server-env-marker";

    beforeAll(async () => {
      process.env.LP_TEST_MARKER = marker;
      hostServer = createServer((socket) => socket.end("host\n"));
      await new Promise<void>((r) => hostServer.listen(0, "127.0.0.1", r));
      hostPort = (hostServer.address() as { port: number }).port;
      sandbox = (await provider.create({ sessionId: "lp-test", limits })) as LocalSandbox;
      expect(sandbox.endpoint.kind).toBe("unix");
      agent = await AgentConnection.open((sandbox.endpoint as { path: string }).path, sandbox.token);
    });

    afterAll(async () => {
      delete process.env.LP_TEST_MARKER;
      agent?.close();
      hostServer?.close();
      await sandbox?.destroy();
    });

    it("has an unguessable id, a 32-byte token and a socket the server reaches", () => {
      expect(sandbox.id).toMatch(/^[a-z0-9]{20}$/);
      expect(sandbox.token).toMatch(/^[0-9a-f]{64}$/);
      expect(existsSync((sandbox.endpoint as { path: string }).path)).toBe(true);
      expect(provider.size).toBeGreaterThanOrEqual(1);
    });

    it("refuses a connection without the token", async () => {
      await expect(AgentConnection.open((sandbox.endpoint as { path: string }).path, "0".repeat(64))).rejects.toThrow();
    });

    it("runs programs as the unprivileged uid", async () => {
      const result = await agent.run("id -u; id -g");
      expect(result.stdout.split("\n").slice(0, 2)).toEqual([String(UID), String(UID)]);
      expect(result.code).toBe(0);
    });

    it("hides the host: /root, /home and /work do not exist; /etc is minimal", async () => {
      const result = await agent.run("ls /root /home /work 2>&1; cat /root/.bashrc 2>&1; ls /etc; grep -c . /etc/passwd; whoami");
      expect(result.stdout).toContain("ls: cannot access '/root'");
      expect(result.stdout).toContain("ls: cannot access '/work'");
      expect(result.stdout).toContain("ls: cannot access '/home'");
      expect(result.stdout).not.toContain("shadow");
      expect(result.stdout).toContain("sandbox");
      expect(result.stdout).toMatch(/^3$/m);
    });

    it("names no folder of the server's own in mountinfo: the agent is bound from its copy in the base folder", async () => {
      const result = await agent.run("cat /proc/self/mountinfo");
      expect(result.stdout).toContain(" /opt/agent ");
      expect(result.stdout).not.toContain(ROOT);
    });

    it("shows no server environment in any process", async () => {
      const result = await agent.run("cat /proc/1/environ | tr '\\0' '\\n'; echo ---; for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < $f; done 2>/dev/null");
      expect(result.stdout).toContain("---");
      expect(result.stdout).not.toContain(marker);
      expect(result.stdout).not.toContain("HOME=/root");
      const pid1 = result.stdout.split("---")[0]!;
      expect(pid1).not.toContain("AGENT_TOKEN=");
      // Not in the agent's environment either: it read its token from a file it deleted.
      expect(result.stdout).not.toContain(sandbox.token);
      // The agent's folder (socket, token) is not even there for programs: their jail covers /run.
      expect((await agent.run("ls -A /run; ls /run/agent 2>&1")).stdout).toBe("ls: cannot access '/run/agent': No such file or directory\n");
    });

    it("hides the agent token from command lines", async () => {
      const result = await agent.run("for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done");
      // A program sees its jail only: the launcher (the jail's init) and itself.
      expect(result.stdout).toContain("/opt/agent/launcher");
      expect(result.stdout).not.toContain(sandbox.token);
    });

    it("has no network: only loopback, and the host's ports are unreachable", async () => {
      const probe = [
        "import socket",
        "s = socket.socket()",
        "s.settimeout(3)",
        "try:",
        `    s.connect(("127.0.0.1", ${hostPort}))`,
        '    print("connected", s.recv(10))',
        "except OSError as e:",
        '    print("refused", e)',
      ].join("\n");
      const result = await agent.run(`cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '; python3 -c '${probe}'`);
      expect(result.stdout.split("\n")[0]).toBe("lo");
      expect(result.stdout).toContain("refused");
      expect(result.stdout).not.toContain("connected");
      expect(result.stdout).not.toContain("eth");
    });

    it("keeps /usr, /, /etc and /dev read-only; /dev/shm is writable and bounded", async () => {
      const result = await agent.run(
        "touch /usr/x 2>&1; touch /x 2>&1; mkdir /etc/x 2>&1; touch /dev/x 2>&1; echo ok > /dev/null && echo > /dev/shm/s && df -B1 --output=size /dev/shm | tail -1",
      );
      expect(result.stdout.match(/Read-only file system/g)?.length).toBe(4);
      expect(Number(result.stdout.trim().split("\n").at(-1))).toBe(limits.tmpBytes);
    });

    it("gives a writable, size-limited /mnt/data and /tmp", async () => {
      const result = await agent.run(
        "pwd; echo hi > /mnt/data/a.txt && cat /mnt/data/a.txt; echo t > /tmp/t && cat /tmp/t; " +
          "head -c 20000000 /dev/zero 2>&1 > /mnt/data/big; echo rc=$?; df -B1 --output=size /mnt/data | tail -1; rm -f /mnt/data/big",
      );
      const lines = result.stdout.split("\n");
      expect(lines[0]).toBe("/mnt/data");
      expect(lines[1]).toBe("hi");
      expect(lines[2]).toBe("t");
      expect(result.stdout).toMatch(/No space left on device/);
      expect(result.stdout).toMatch(/rc=1/);
      expect(Number(lines.at(-2)?.trim())).toBe(limits.dataBytes);
    });

    it("writes the cgroup limits on the host and starts the sandbox inside them", () => {
      if (!existsSync(MEMORY_CGROUP)) return;
      const dir = join(MEMORY_CGROUP, sandbox.id);
      expect(Number(readFileSync(join(dir, "memory.limit_in_bytes"), "utf8"))).toBe(limits.memoryBytes);
      expect(readFileSync(join(dir, "cgroup.procs"), "utf8").trim()).not.toBe("");
      expect(readFileSync(`/sys/fs/cgroup/pids/code-interpreter/${sandbox.id}/pids.max`, "utf8").trim()).toBe(String(limits.pids));
      expect(readFileSync(`/sys/fs/cgroup/cpu/code-interpreter/${sandbox.id}/cpu.cfs_quota_us`, "utf8").trim()).toBe(String(limits.cpuQuotaUs));
      expect(sandbox.cgroups.enforced).toEqual({ memory: true, pids: true, cpu: true });
    });

    it("shows the memory cgroup (bound read-only for the agent) to no program", async () => {
      if (!existsSync(MEMORY_CGROUP)) return;
      const result = await agent.run("cat /run/cgroup/memory.limit_in_bytes 2>&1; ls /run/cgroup 2>&1");
      expect(result.stdout).toBe(
        "cat: /run/cgroup/memory.limit_in_bytes: No such file or directory\nls: cannot access '/run/cgroup': No such file or directory\n",
      );
    });

    it("kills a program that exceeds the memory limit, and the sandbox lives on", async () => {
      if (!existsSync(MEMORY_CGROUP)) return;
      const result = await agent.run(`python3 -c "b = b'x' * ${limits.memoryBytes * 2}; print('survived')"; echo rc=$?`, 30_000);
      expect(result.stdout).not.toContain("survived");
      expect(result.stdout).toMatch(/rc=137/);
      const after = await agent.run("echo alive");
      expect(after.stdout).toBe("alive\n");
    });

    it("applies rlimits (core 0, open files)", async () => {
      const result = await agent.run("ulimit -c; ulimit -n; ulimit -Hn");
      expect(result.stdout.split("\n").slice(0, 3)).toEqual(["0", String(limits.openFiles), String(limits.openFiles)]);
    });
  });

  it("destroy kills the sandbox and removes its cgroups and folder; it is idempotent", async () => {
    const sandbox = (await provider.create({ sessionId: "lp-destroy", limits })) as LocalSandbox;
    expect(existsSync(sandbox.dir)).toBe(true);
    const cgroups = [...sandbox.cgroups.dirs];
    await within(sandbox.destroy(), 15_000, "destroy");
    await within(sandbox.destroy(), 1_000, "second destroy");
    expect(await within(sandbox.exited, 1_000, "exited")).toEqual({ reason: "destroyed" });
    expect(existsSync(sandbox.dir)).toBe(false);
    for (const dir of cgroups) expect(existsSync(dir)).toBe(false);
    expect(() => process.kill(sandbox.pid, 0)).toThrow();
  });

  it("settles `exited` when the sandbox process is killed, and cleans up after it", async () => {
    const sandbox = (await provider.create({ sessionId: "lp-kill", limits })) as LocalSandbox;
    const cgroups = [...sandbox.cgroups.dirs];
    process.kill(sandbox.pid, "SIGKILL");
    expect(await within(sandbox.exited, 10_000, "exited")).toEqual({ reason: "killed by SIGKILL" });
    expect(await until(() => !existsSync(sandbox.dir) && cgroups.every((dir) => !existsSync(dir)), 10_000)).toBe(true);
    await within(sandbox.destroy(), 5_000, "destroy after exit");
  });

  it("dies with the server; removeOrphans then cleans up what it left", async () => {
    // A stand-in server: this provider in its own process, killed with SIGKILL once its sandbox is up.
    const stub = join(tmp, "server-stub.mjs");
    const providerModule = JSON.stringify(join(ROOT, "server/sandbox/local/local-provider.ts"));
    await build({
      stdin: {
        contents: [
          `import { LocalSandboxProvider } from ${providerModule};`,
          "const provider = new LocalSandboxProvider(JSON.parse(process.argv[2]));",
          "const s = await provider.create({ sessionId: 'lp-stub', limits: JSON.parse(process.argv[3]) });",
          "console.log(JSON.stringify({ pid: s.pid, dir: s.dir, cgroups: s.cgroups.dirs }));",
          "setInterval(() => {}, 1000);",
        ].join("\n"),
        resolveDir: ROOT,
        loader: "ts",
      },
      bundle: true,
      platform: "node",
      format: "esm",
      outfile: stub,
      logLevel: "silent",
    });
    const options = { baseDir: join(tmp, "sb"), uid: UID, gid: UID, agentDir };
    const server = spawn(process.execPath, [stub, JSON.stringify(options), JSON.stringify(limits)], { stdio: ["ignore", "pipe", "inherit"] });
    const line = await within(
      new Promise<string>((resolveLine, reject) => {
        let out = "";
        server.stdout!.on("data", (d) => {
          out += d;
          if (out.includes("\n")) resolveLine(out.split("\n")[0]!);
        });
        server.once("exit", (code) => reject(new Error(`stub server exited with ${code}`)));
      }),
      20_000,
      "stub server",
    );
    const info = JSON.parse(line) as { pid: number; dir: string; cgroups: string[] };
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    expect(alive(info.pid)).toBe(true);
    server.kill("SIGKILL");
    expect(await until(() => !alive(info.pid), 5_000)).toBe(true);
    const procs = (dir: string) => (existsSync(dir) ? readFileSync(join(dir, "cgroup.procs"), "utf8").trim() : "");
    expect(await until(() => info.cgroups.every((dir) => procs(dir) === ""), 5_000)).toBe(true);
    // Left behind: the folder and the (now empty) cgroups.
    expect(existsSync(info.dir)).toBe(true);
    expect(await within(provider.removeOrphans(), 20_000, "removeOrphans")).toBeGreaterThanOrEqual(1);
    expect(existsSync(info.dir)).toBe(false);
    for (const dir of info.cgroups) expect(existsSync(dir)).toBe(false);
  });

  it("rejects with the sandbox's stderr when the agent dies before it is ready, leaving nothing behind", async () => {
    const dir = fakeAgentDir("crashing", 'process.stderr.write("agent boom: cannot start\\n"); process.exit(3);\n');
    const crashing = new LocalSandboxProvider({ baseDir: join(tmp, "sb-crash"), uid: UID, gid: UID, agentDir: dir });
    await expect(within(crashing.create({ sessionId: "lp-crash", limits }), 20_000, "create")).rejects.toThrow(/agent boom: cannot start/);
    expect(crashing.size).toBe(0);
    expect(await until(() => readdirNames(join(tmp, "sb-crash")).length === 0)).toBe(true);
  });

  it("rejects when the agent never reports ready", async () => {
    const dir = fakeAgentDir("silent", "setInterval(() => {}, 1000);\n");
    const silent = new LocalSandboxProvider({ baseDir: join(tmp, "sb-silent"), uid: UID, gid: UID, agentDir: dir, readyTimeoutMs: 1_000 });
    await expect(within(silent.create({ sessionId: "lp-silent", limits }), 10_000, "create")).rejects.toThrow(/not ready within 1000 ms/);
    expect(await until(() => readdirNames(join(tmp, "sb-silent")).length === 0)).toBe(true);
  });

  it("removeOrphans kills and removes leftover cgroups and folders, and spares live sandboxes and other servers' cgroups", async () => {
    const live = (await provider.create({ sessionId: "lp-live", limits })) as LocalSandbox;
    const fakeId = "orphan0000000000test";
    const leftoverDir = join(tmp, "sb", fakeId);
    mkdirSync(join(leftoverDir, "run"), { recursive: true });
    let sleeper: ChildProcess | undefined;
    const fakeCgroup = join(MEMORY_CGROUP, fakeId);
    // A sandbox of another server (another base folder): not ours to remove.
    const foreignCgroup = join(MEMORY_CGROUP, "foreign000000000test");
    try {
      if (existsSync(MEMORY_CGROUP)) {
        mkdirSync(fakeCgroup);
        mkdirSync(foreignCgroup);
        sleeper = spawn("sleep", ["60"], { stdio: "ignore" });
        writeFileSync(join(fakeCgroup, "cgroup.procs"), String(sleeper.pid));
      }
      const sleeperGone = sleeper ? new Promise((r) => sleeper!.once("exit", r)) : Promise.resolve();
      const removed = await within(provider.removeOrphans(), 20_000, "removeOrphans");
      expect(removed).toBeGreaterThanOrEqual(1);
      expect(existsSync(leftoverDir)).toBe(false);
      expect(existsSync(fakeCgroup)).toBe(false);
      if (existsSync(MEMORY_CGROUP)) expect(existsSync(foreignCgroup)).toBe(true);
      await within(sleeperGone, 5_000, "orphan process killed");
      // The live sandbox was spared.
      expect(existsSync(live.dir)).toBe(true);
      const agent = await AgentConnection.open((live.endpoint as { path: string }).path, live.token);
      expect((await agent.run("echo still here")).stdout).toBe("still here\n");
      agent.close();
    } finally {
      sleeper?.kill("SIGKILL");
      rmSync(fakeCgroup, { recursive: false, force: true });
      if (existsSync(foreignCgroup)) rmdirSync(foreignCgroup);
      await live.destroy();
    }
  });

  it("runs without cgroups: reports the missing limits, falls back to RLIMIT_NPROC", async () => {
    const bare = new LocalSandboxProvider({ baseDir: join(tmp, "sb-bare"), uid: UID, gid: UID, agentDir, cgroupRoot: join(tmp, "no-cgroups") });
    const health = await bare.health();
    expect(health.status).toBe("degraded");
    expect(health.details.cgroupVersion).toBeNull();
    expect(health.warnings).toEqual(expect.arrayContaining([expect.stringMatching(/^memory limit not enforced: no cgroup filesystem/)]));
    const sandbox = (await bare.create({ sessionId: "lp-bare", limits })) as LocalSandbox;
    try {
      expect(sandbox.cgroups.dirs).toEqual([]);
      const agent = await AgentConnection.open((sandbox.endpoint as { path: string }).path, sandbox.token);
      expect((await agent.run("ulimit -u; ulimit -Hu")).stdout).toBe(`${limits.pids}\n${limits.pids}\n`);
      agent.close();
    } finally {
      await bare.shutdown();
    }
    expect(existsSync(sandbox.dir)).toBe(false);
  });

  it("shutdown destroys every sandbox", async () => {
    const a = (await provider.create({ sessionId: "lp-a", limits })) as LocalSandbox;
    const b = (await provider.create({ sessionId: "lp-b", limits })) as LocalSandbox;
    await within(provider.shutdown(), 15_000, "shutdown");
    expect(provider.size).toBe(0);
    expect(existsSync(a.dir) || existsSync(b.dir)).toBe(false);
    expect((await b.exited).reason).toBe("destroyed");
  });
});

/** The sandbox folders in a base folder (not the provider's own dot entries: its lock, the agent's copy). */
function readdirNames(dir: string): string[] {
  try {
    return readdirSync(dir).filter((name) => !name.startsWith("."));
  } catch {
    return [];
  }
}

describe("bwrap and launch arguments", () => {
  const input = {
    uid: 1001,
    gid: 1001,
    tmpBytes: 1000,
    dataBytes: 2000,
    agentDir: "/srv/agent",
    hasLauncher: true,
    runDir: "/srv/sb/x/run",
    etcFiles: { "/etc/passwd": "/srv/sb/x/etc/passwd" },
    etcBinds: ["/etc/ssl"],
    rootEntries: [{ kind: "symlink" as const, path: "/bin", target: "usr/bin" }],
    memoryCgroupDir: "/sys/fs/cgroup/memory/code-interpreter/x",
    programEnv: "{}",
    disableUserns: true,
    seccomp: true,
  };

  it("builds the walls in order, clears the environment and sets only the agent's", () => {
    const args = buildBwrapArgs(input);
    const joined = args.join(" ");
    for (const wall of [
      "--unshare-all",
      "--unshare-user",
      "--disable-userns",
      "--die-with-parent",
      "--new-session",
      "--cap-drop ALL",
      "--uid 1001",
      "--gid 1001",
    ]) {
      expect(joined).toContain(wall);
    }
    expect(joined).toContain("--ro-bind /usr /usr");
    expect(joined).toContain("--symlink usr/bin /bin");
    expect(joined).toContain("--size 1000 --tmpfs /tmp");
    expect(joined).toContain("--dev /dev --size 1000 --tmpfs /dev/shm");
    expect(joined).toContain("--remount-ro /dev --remount-ro /");
    expect(joined).toContain("--size 2000 --tmpfs /mnt/data");
    expect(joined).toContain("--ro-bind /srv/sb/x/etc/passwd /etc/passwd");
    expect(joined).toContain("--ro-bind-try /etc/ssl /etc/ssl");
    expect(joined).toContain("--ro-bind /srv/agent /opt/agent");
    expect(joined).toContain("--seccomp 4");
    expect(buildBwrapArgs({ ...input, seccomp: false })).not.toContain("--seccomp");
    expect(joined).toContain("--bind /srv/sb/x/run /run/agent");
    expect(joined).toContain("--ro-bind /sys/fs/cgroup/memory/code-interpreter/x /run/cgroup");
    expect(joined).toContain("--setenv AGENT_CGROUP_DIR /run/cgroup");
    expect(joined).toContain("--setenv AGENT_LAUNCHER /opt/agent/launcher");
    expect(joined).toContain("--setenv AGENT_LISTEN unix:/run/agent/agent.sock");
    expect(args.indexOf("--clearenv")).toBeLessThan(args.indexOf("--setenv"));
    expect(args.indexOf("--remount-ro")).toBeGreaterThan(args.lastIndexOf("--ro-bind"));
    expect(args.slice(-2)).toEqual(["--chdir", "/mnt/data"]);
    const names = args.flatMap((a, i) => (a === "--setenv" ? [args[i + 1]] : []));
    expect(names.sort()).toEqual(
      [
        "AGENT_CGROUP_DIR",
        "AGENT_DATA_DIR",
        "AGENT_LAUNCHER",
        "AGENT_LISTEN",
        "AGENT_PROGRAM_ENV",
        "AGENT_TOKEN_FILE",
        "AGENT_WORK_DIR",
        "HOME",
        "LANG",
        "PATH",
      ].sort(),
    );
  });

  it("leaves out the launcher and cgroup when absent", () => {
    const args = buildBwrapArgs({ ...input, hasLauncher: false, memoryCgroupDir: undefined, disableUserns: false }).join(" ");
    expect(args).not.toContain("AGENT_LAUNCHER");
    expect(args).not.toContain("/run/cgroup");
    expect(args).not.toContain("--disable-userns");
  });

  it("adds the egress socket (read-only), the relay's settings and a tenant's package cache only when asked", () => {
    expect(buildBwrapArgs(input).join(" ")).not.toMatch(/egress|skill-deps|AGENT_EGRESS/);
    const args = buildBwrapArgs({ ...input, egress: { socketDir: "/srv/sb/x/egress", port: 18443 }, skillDepsDir: "/srv/deps/t" });
    const joined = args.join(" ");
    expect(joined).toContain("--ro-bind /srv/sb/x/egress /run/egress");
    expect(joined).toContain("--bind /srv/deps/t /opt/skill-deps");
    expect(joined).toContain("--setenv AGENT_EGRESS_PORT 18443 --setenv AGENT_EGRESS_SOCKET /run/egress/proxy.sock");
    expect(args.indexOf("--remount-ro")).toBeGreaterThan(args.indexOf("/opt/skill-deps"));
    // The network namespace stays empty: egress is a socket, not a shared network.
    expect(joined).not.toContain("--share-net");
  });

  it("passes the limits to the launch shell and refuses NUL in bwrap options", () => {
    const argv = buildLaunchArgv({
      uid: 1001,
      gid: 1001,
      openFiles: 1024,
      fileSizeBytes: 10_000,
      nodePath: "/usr/bin/node",
      entry: "/opt/agent/agent.mjs",
      cgroupProcsFiles: ["/sys/fs/cgroup/memory/code-interpreter/x/cgroup.procs"],
    });
    expect(argv.slice(3, 8)).toEqual(["1001", "1001", "1024", "10", ""]);
    expect(encodeArgsFile(["a", "b"]).toString()).toBe("a\0b\0");
    expect(() => encodeArgsFile(["a\0b"])).toThrow();
  });
});
