import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type ServerProcess, ServerStartError, startServer, TEST_API_KEY } from "../helpers/server-process.ts";
import { TestClient } from "../helpers/ws-client.ts";

/**
 * Honest readiness: /ready says 200 only once a sandbox really starts here
 * (the start-up check) and the warm pool holds its start target, so that the
 * first sessions after it are served at once; a broken sandbox folder says
 * why, heals without a restart, or (SANDBOX_STARTUP_CHECK=exit) stops the
 * process with the reason.
 */

// biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
type Json = any;

const headers = { "x-api-key": TEST_API_KEY };

async function get(server: ServerProcess, path: string): Promise<{ status: number; json: Json }> {
  const response = await fetch(`${server.httpUrl}${path}`, { headers });
  return { status: response.status, json: await response.json() };
}

/** Poll `check` every 50 ms until it returns a value, at most `ms`. */
async function until<T>(what: string, check: () => Promise<T | undefined>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * A sandbox folder under a root only root may enter (mkdtemp makes 0700):
 * the server makes and uses it, but the sandbox uid cannot reach it, as on a
 * fresh machine whose data folder's parent is private.
 */
function unreachableSandboxFolder(): { root: string; baseDir: string } {
  const root = mkdtempSync(join(tmpdir(), "ci-readiness-"));
  chmodSync(root, 0o700);
  return { root, baseDir: join(root, "sandboxes") };
}

describe("readiness", () => {
  const servers: ServerProcess[] = [];
  const roots: string[] = [];

  afterEach(async () => {
    for (const server of servers.splice(0)) await server.stop();
    for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
  });

  it("says 503 with the reason while no sandbox can start, and heals once the folder is fixed", async () => {
    const { root, baseDir } = unreachableSandboxFolder();
    roots.push(root);
    const server = await startServer({ transport: "node", baseDir, env: { SANDBOX_POOL_ENABLED: "false" } });
    servers.push(server);

    // The first attempt fails on the folder: bwrap's own words, with the path.
    const failed = await until(
      "the start-up check to fail",
      async () => {
        const detailed = await get(server, "/health/detailed");
        return detailed.json.checks?.startup?.status === "failed" ? detailed : undefined;
      },
      30_000,
    );
    expect(failed.status).toBe(503);
    expect(failed.json.status).toBe("unhealthy");
    expect(failed.json.checks.startup).toMatchObject({ status: "failed", attempts: expect.any(Number), error: expect.stringContaining(root) });
    expect(failed.json.checks.startup.error).toMatch(/Permission denied/);
    // The checks that were there before are still reported.
    expect(failed.json.checks).toMatchObject({ store: { status: "ok" }, files: { status: "ok" }, sandbox: expect.any(Object), pool: expect.any(Object) });

    const ready = await get(server, "/ready");
    expect(ready.status).toBe(503);
    expect(ready.json.status).toBe("not_ready");
    expect(ready.json.reason).toContain("no sandbox can start");
    expect(ready.json.reason).toContain(root);
    expect(ready.json.reason).toMatch(/Permission denied/);
    // The folder at fault, by name and mode, not only bwrap's path below it.
    expect(ready.json.reason).toContain(`${root} is mode 0700`);

    // Fixed while the server runs: the next attempt (back-off 1 s doubling, at most 30 s) passes.
    chmodSync(root, 0o755);
    await until("/ready to say 200", async () => ((await get(server, "/ready")).status === 200 ? true : undefined), 45_000);
    const healed = await get(server, "/health/detailed");
    expect(healed.json.checks.startup).toMatchObject({ status: "ok", ms: expect.any(Number) });
    expect(healed.json.checks.startup.attempts).toBeGreaterThan(1);
    expect(healed.json.checks.startup.error).toBeUndefined();
    const exec = await fetch(`${server.httpUrl}/exec`, {
      method: "POST",
      headers: { ...headers, "content-type": "application/json" },
      body: JSON.stringify({ lang: "py", code: "print(6 * 7)" }),
    });
    expect(exec.status).toBe(200);
    expect(((await exec.json()) as Json).stdout).toBe("42\n");
  }, 120_000);

  it("SANDBOX_STARTUP_CHECK=exit: exits 1 with the reason when no sandbox can start", async () => {
    const { root, baseDir } = unreachableSandboxFolder();
    roots.push(root);
    const error = await startServer({ transport: "node", baseDir, env: { SANDBOX_POOL_ENABLED: "false", SANDBOX_STARTUP_CHECK: "exit" } }).then(
      (server) => {
        servers.push(server);
        throw new Error("the server started");
      },
      (reason: unknown) => reason,
    );
    expect(error).toBeInstanceOf(ServerStartError);
    const { exitCode, logs } = error as ServerStartError;
    expect(exitCode).toBe(1);
    // stdout lines come one by one, stderr in chunks: split both into lines.
    const fatal = logs
      .join("\n")
      .split("\n")
      .find((line) => line.startsWith("fatal: "));
    expect(fatal).toMatch(/^fatal: no sandbox can start: /);
    expect(logs.join("\n")).toContain(root);
    expect(logs.join("\n")).toMatch(/Permission denied/);
  }, 60_000);

  it("says ready only once the warm pool holds its start target; the first new session gets a pooled sandbox", async () => {
    const server = await startServer({
      transport: "node",
      env: { SANDBOX_POOL_ENABLED: "true", SANDBOX_POOL_PY: "2", SANDBOX_POOL_JS: "0", SANDBOX_POOL_WARMUP_ON_STARTUP: "true" },
    });
    servers.push(server);
    const reasons = new Set<string>();
    const detailed = await until(
      "/ready to say 200",
      async () => {
        const ready = await get(server, "/ready");
        if (ready.status !== 200) {
          reasons.add(ready.json.reason);
          return undefined;
        }
        // Read at once: nothing leases in between, so the pool is as /ready saw it.
        return (await get(server, "/health/detailed")).json;
      },
      60_000,
    );
    expect([...reasons].some((reason) => /warming the sandbox pool \([01]\/2\)/.test(reason))).toBe(true);
    expect(detailed.checks.pool).toMatchObject({ enabled: true, target: 2, size: 2, hits: 0, misses: 0 });
    expect(detailed.checks.startup).toMatchObject({ status: "ok", attempts: 1, poolWait: { status: "reached", target: 2 } });

    const client = await TestClient.connect(server.wsUrl, { apiKey: TEST_API_KEY });
    try {
      expect((await client.openSession()).type).toBe("session.ready");
      const { stdout } = await client.run("first", "py", "print(1)");
      expect(stdout).toBe("1\n");
    } finally {
      client.terminate();
    }
    const after = (await get(server, "/health/detailed")).json;
    expect(after.checks.pool).toMatchObject({ hits: 1, misses: 0 });
  }, 120_000);
});
