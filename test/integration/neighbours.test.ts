import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type ServerProcess, ServerStartError, startServer, TEST_API_KEY } from "../helpers/server-process.ts";
import { TestClient } from "../helpers/ws-client.ts";

/** Servers on one machine (issue 15): one owner per SANDBOX_BASE_DIR and SKILL_DEPS_PATH, and no harm across folders. */
describe("servers on the same machine", () => {
  const servers: ServerProcess[] = [];
  const clients: TestClient[] = [];
  const folders: string[] = [];
  const folder = (prefix: string) => {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    folders.push(dir);
    return dir;
  };
  const start = async (options: { baseDir?: string; env?: Record<string, string> } = {}) => {
    const server = await startServer({ transport: "node", ...options, env: { SANDBOX_POOL_ENABLED: "false", ...options.env } });
    servers.push(server);
    return server;
  };
  /** Start a server that must refuse to: its exit code, what it printed, and how long it took. */
  const refusedStart = async (options: { baseDir?: string; env?: Record<string, string> }) => {
    const started = Date.now();
    try {
      await start(options);
    } catch (error) {
      if (!(error instanceof ServerStartError)) throw error;
      return { exitCode: error.exitCode, output: error.logs.join("\n"), tookMs: Date.now() - started };
    }
    throw new Error("the second server started");
  };
  /** A session on `server` running Python that prints "started", sleeps `seconds`, then prints "done"; resolves once it is under way. */
  const slowRun = async (server: ServerProcess, seconds: number) => {
    const client = await TestClient.connect(server.wsUrl, { apiKey: TEST_API_KEY });
    clients.push(client);
    const ready = await client.openSession();
    expect(ready.type).toBe("session.ready");
    const result = client.run("slow", "py", `import time\nprint("started", flush=True)\ntime.sleep(${seconds})\nprint("done")`, {}, 40_000);
    result.catch(() => {}); // a run that ends with its server: the test awaits it, or not
    await client.waitFor((f) => f.type === "out" && f.id === "slow", 30_000);
    return { result };
  };
  const lockOf = (dir: string) => JSON.parse(readFileSync(join(dir, ".owner"), "utf8")) as { pid: number; startTime: number; hostname: string };
  const startTimeOf = (pid: number) => {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
  };

  afterEach(async () => {
    for (const client of clients.splice(0)) client.terminate();
    for (const server of servers.splice(0).reverse()) await server.stop();
    for (const dir of folders.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it("a second server on the same SANDBOX_BASE_DIR refuses to start, naming the folder and the owner; the first one's run goes on", async () => {
    const baseDir = folder("ci-shared-sandboxes-");
    const first = await start({ baseDir });
    // Under way in its sandbox before the neighbour comes.
    const run = await slowRun(first, 6);
    const second = await refusedStart({ baseDir });
    expect(second.exitCode).not.toBe(0);
    expect(second.exitCode).not.toBeNull();
    expect(second.tookMs).toBeLessThan(10_000);
    expect(second.output).toContain(`fatal: SANDBOX_BASE_DIR ${baseDir} is in use by another server (pid ${first.pid}, started `);
    expect(second.output).toContain("give each server its own SANDBOX_BASE_DIR");
    // The reason, not a stack trace.
    expect(second.output).not.toMatch(/^\s+at /m);
    const { exit, stdout } = await run.result;
    expect(exit).toMatchObject({ type: "exit", code: 0 });
    expect(stdout).toBe("started\ndone\n");
    expect(lockOf(baseDir).pid).toBe(first.pid);
    // The first one's copy of the agent is still there for its next sandboxes.
    expect(existsSync(join(baseDir, ".agent", "launcher"))).toBe(true);
  });

  it("servers with their own folders run side by side, and stopping one leaves the other's run alone", async () => {
    const first = await start();
    const firstRun = await slowRun(first, 6);
    // The second one starts (its start-up sweep) while the first one's run is under way.
    const second = await start();
    // Stopped while its own run is under way too.
    const secondRun = await slowRun(second, 30);
    await second.stop();
    await secondRun.result.catch(() => {}); // ended with its server
    const { exit, stdout } = await firstRun.result;
    expect(exit).toMatchObject({ type: "exit", code: 0 });
    expect(stdout).toBe("started\ndone\n");
    // The first server still makes sandboxes and runs code.
    const client = await TestClient.connect(first.wsUrl, { apiKey: TEST_API_KEY });
    clients.push(client);
    await client.openSession();
    expect((await client.run("after", "bash", "echo after")).stdout).toBe("after\n");
  });

  it.each([
    ["a dead pid", async () => ({ pid: await deadPid(), startTime: 1 })],
    ["a live pid with another start time (reused)", async () => ({ pid: process.pid, startTime: startTimeOf(process.pid) + 1 })],
  ])("takes over a stale lock naming %s and removes its sandboxes, nothing else", async (_name, owner) => {
    const baseDir = folder("ci-stale-sandboxes-");
    const stale = await owner();
    writeFileSync(join(baseDir, ".owner"), `${JSON.stringify({ ...stale, hostname: hostname(), startedAt: "2020-01-01T00:00:00Z" })}\n`);
    const orphan = join(baseDir, "orphan0000000000stal");
    mkdirSync(join(orphan, "run"), { recursive: true });
    writeFileSync(join(baseDir, "operator-notes.txt"), "not a sandbox\n");
    const server = await start({ baseDir });
    expect(existsSync(orphan)).toBe(false);
    expect(readFileSync(join(baseDir, "operator-notes.txt"), "utf8")).toBe("not a sandbox\n");
    const lock = lockOf(baseDir);
    expect(lock).toMatchObject({ pid: server.pid, startTime: startTimeOf(server.pid), hostname: hostname() });
    await server.stop();
    // Released at stop: the next server finds the folder free.
    expect(existsSync(join(baseDir, ".owner"))).toBe(false);
    expect(readdirSync(baseDir).sort()).toEqual(["operator-notes.txt"]);
  });

  it("a second server on the same SKILL_DEPS_PATH refuses to start, and leaves its own SANDBOX_BASE_DIR unclaimed", async () => {
    const skillDeps = folder("ci-skill-deps-");
    const env = { ENABLE_SANDBOX_NETWORK: "true", SKILL_DEPS_PATH: skillDeps, SKILL_DEPS_MAX_MB: "0" };
    const first = await start({ env });
    expect(lockOf(skillDeps).pid).toBe(first.pid);
    const secondBase = folder("ci-second-sandboxes-");
    const second = await refusedStart({ baseDir: secondBase, env });
    expect(second.exitCode).not.toBe(0);
    expect(second.output).toContain(`fatal: SKILL_DEPS_PATH ${skillDeps} is in use by another server (pid ${first.pid}, started `);
    expect(existsSync(join(secondBase, ".owner"))).toBe(false);
    expect(lockOf(skillDeps).pid).toBe(first.pid);
  });
});

/** The pid of a process that has exited (and been reaped). */
async function deadPid(): Promise<number> {
  const child = spawn("true", { stdio: "ignore" });
  const pid = child.pid!;
  await new Promise((r) => child.once("exit", r));
  return pid;
}
