import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { WS_SUBPROTOCOL } from "../../protocol/index.ts";
import { REPO_ROOT, type ServerProcess, startServer, TEST_API_KEY, TEST_MASTER_KEY } from "../helpers/server-process.ts";
import { TestClient } from "../helpers/ws-client.ts";

/**
 * API keys against the real built server, on both transports: the admin API
 * (master key only), managed keys on HTTP and WebSocket (create, use, disable,
 * enable, delete), per-key rate limits (429 with its body and headers, 4008 on
 * WebSocket), usage counters, the auth-failure limiter, and the `keys` CLI
 * sharing FILE_STORAGE_PATH with a running server.
 */

// biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
type Json = any;

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: Json;
  text: string;
}

interface CallOptions {
  method?: string;
  /** x-api-key; null: none. */
  key?: string | null;
  json?: unknown;
  /** Source address of the connection (127.0.0.x), so that auth-failure counts of one test do not touch the others'. */
  localAddress?: string;
}

/** node:http rather than fetch: it can choose the source address. */
function call(base: string, path: string, options: CallOptions = {}): Promise<Reply> {
  const url = new URL(path, base);
  const body = options.json === undefined ? undefined : JSON.stringify(options.json);
  const headers: Record<string, string> = {};
  const key = options.key === undefined ? TEST_API_KEY : options.key;
  if (key !== null) headers["x-api-key"] = key;
  if (body !== undefined) headers["content-type"] = "application/json";
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      { method: options.method ?? (body === undefined ? "GET" : "POST"), headers, ...(options.localAddress ? { localAddress: options.localAddress } : {}) },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json: Json;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, json, text });
        });
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Wait until `check` stops throwing (changes seen through caches and periodic flushes). */
async function eventually<T>(check: () => Promise<T>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(200);
    }
  }
}

/** The `keys` CLI of the built server, against the given FILE_STORAGE_PATH. */
async function cli(storage: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  return await run(process.execPath, [join(REPO_ROOT, "dist/server.mjs"), "keys", ...args], {
    // A folder with no .env: only these variables count.
    cwd: storage,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", FILE_STORAGE_PATH: storage, MASTER_API_KEY: TEST_MASTER_KEY },
  });
}

/** Open a raw WebSocket and wait for it to close: its close code and the error frames it got. */
async function wsUntilClosed(url: string, options: { key?: string; localAddress?: string; frames?: object[] }) {
  const socket = new WebSocket(url, WS_SUBPROTOCOL, {
    ...(options.key ? { headers: { "x-api-key": options.key } } : {}),
    ...(options.localAddress ? { localAddress: options.localAddress } : {}),
  });
  const received: Json[] = [];
  socket.on("message", (data) => received.push(JSON.parse(data.toString())));
  socket.on("open", () => {
    for (const frame of options.frames ?? []) socket.send(JSON.stringify(frame));
  });
  socket.on("error", () => {});
  const code = await new Promise<number>((resolve) => socket.once("close", (closeCode) => resolve(closeCode)));
  return { code, errors: received.filter((frame) => frame.type === "error") };
}

const FAILURE_LIMIT = 20;

describe.each(["node", "uws"] as const)("API keys over the %s transport", (transport) => {
  let server: ServerProcess;
  let storage: string;
  let base: string;
  const admin = (path: string, options: CallOptions = {}) => call(base, `/api/v1/admin${path}`, { key: TEST_MASTER_KEY, ...options });
  /** A cheap authenticated route: the listing of a session that does not exist is []. */
  const userCall = (key: string | null, options: CallOptions = {}) => call(base, "/files/no-such-session", { key, ...options });
  const createKey = async (body: unknown = {}) => {
    const reply = await admin("/keys", { json: body });
    expect(reply.status, reply.text).toBe(201);
    return reply.json as Json;
  };

  beforeAll(async () => {
    storage = mkdtempSync(join(tmpdir(), "ci-keys-"));
    server = await startServer({
      transport,
      env: { FILE_STORAGE_PATH: storage, API_KEY_CACHE_TTL: "1", AUTH_FAILURE_LIMIT: String(FAILURE_LIMIT), AUTH_FAILURE_WINDOW: "3600" },
    });
    base = server.httpUrl;
  });

  afterAll(async () => {
    await server?.stop();
    rmSync(storage, { recursive: true, force: true });
  });

  it("admin routes need the master key: 401 without a key, 403 with a user key", async () => {
    const none = await admin("/keys", { key: null });
    expect(none.status).toBe(401);
    expect(none.json).toMatchObject({ error: "API key is required", error_type: "authentication" });
    for (const path of ["/keys", "/stats"]) {
      const user = await admin(path, { key: TEST_API_KEY });
      expect(user.status).toBe(403);
      expect(user.json).toMatchObject({ error_type: "authorization", request_id: expect.any(String), timestamp: expect.any(String) });
    }
    expect((await admin(`/keys/${"a".repeat(64)}`, { method: "DELETE", key: "wrong" })).status).toBe(403);
    expect((await admin("/keys")).status).toBe(200);
  });

  it("validates bodies and key hashes (422), and answers 404 for unknown keys", async () => {
    const bad = await admin("/keys", { json: { name: 5, rate_limits: { per_minute: 0 } } });
    expect(bad.status).toBe(422);
    expect(bad.json.details.map((d: Json) => d.field).sort()).toEqual(["name", "rate_limits.per_minute"]);
    expect((await admin("/keys", { json: { rate_limits: { per_hour: 1.5 } } })).status).toBe(422);
    const raw = await admin("/keys/sk-not-a-hash", { method: "PATCH", json: { enabled: false } });
    expect(raw.status).toBe(422);
    expect(raw.json.error).toContain("not the key");
    const unknown = `${"0".repeat(63)}1`;
    expect((await admin(`/keys/${unknown}`, { method: "PATCH", json: { enabled: false } })).status).toBe(404);
    expect((await admin(`/keys/${unknown}`, { method: "DELETE" })).status).toBe(404);
  });

  it("create, use (HTTP and WebSocket), disable, enable, delete", async () => {
    const created = await createKey({ name: "lifecycle" });
    expect(created).toMatchObject({
      key: expect.stringMatching(/^sk-[0-9A-Za-z]{48}$/),
      key_hash: expect.stringMatching(/^[0-9a-f]{64}$/),
      name: "lifecycle",
      enabled: true,
      rate_limits: { per_second: null, per_minute: null, per_hour: null, per_day: null, per_month: null },
      usage: { requests: 0, last_used_at: null },
    });
    const { key, key_hash: hash } = created;
    // Listed without the key itself.
    const listed = await admin("/keys");
    expect(listed.json.find((k: Json) => k.key_hash === hash)).toMatchObject({ name: "lifecycle", enabled: true });
    expect(listed.text).not.toContain(key);

    // Works on user routes, and over WebSocket (upgrade header, and the `auth` frame with session.open right behind it).
    const ok = await userCall(key);
    expect(ok.status, ok.text).toBe(200);
    expect(ok.headers["x-ratelimit-limit"]).toBeUndefined();
    const viaHeader = await TestClient.connect(server.wsUrl, { apiKey: key });
    viaHeader.send({ type: "ping" });
    await viaHeader.waitFor((f) => f.type === "pong");
    viaHeader.close();
    const viaFrame = await TestClient.connect(server.wsUrl);
    viaFrame.send({ type: "auth", apiKey: key });
    const ready = await viaFrame.openSession();
    expect(ready.type, viaFrame.describe()).toBe("session.ready");
    viaFrame.close();

    // Disabled: 401 "API key is disabled" at once on this replica, 4001 on WebSocket.
    const disabled = await admin(`/keys/${hash}`, { method: "PATCH", json: { enabled: false } });
    expect(disabled.status).toBe(200);
    expect(disabled.json).toMatchObject({ key_hash: hash, enabled: false });
    const refused = await userCall(key);
    expect(refused.status).toBe(401);
    expect(refused.json).toMatchObject({ error: "API key is disabled", error_type: "authentication" });
    const ws = await wsUntilClosed(server.wsUrl, { key });
    expect(ws.code).toBe(4001);
    expect(ws.errors[0]).toMatchObject({ code: "auth_failed", message: "API key is disabled" });

    expect((await admin(`/keys/${hash}`, { method: "PATCH", json: { enabled: true, name: "renamed" } })).json).toMatchObject({
      enabled: true,
      name: "renamed",
    });
    expect((await userCall(key)).status).toBe(200);

    // Usage: 2 HTTP requests + 1 WebSocket session.open were admitted (the upgrades themselves are not requests).
    const usage = (await admin("/keys")).json.find((k: Json) => k.key_hash === hash).usage;
    expect(usage.requests).toBe(3);
    expect(Date.parse(usage.last_used_at)).toBeGreaterThan(Date.now() - 60_000);

    const deleted = await admin(`/keys/${hash}`, { method: "DELETE" });
    expect(deleted.status).toBe(200);
    expect(deleted.json).toEqual({ deleted: true, key_hash: hash });
    const gone = await userCall(key);
    expect(gone.status).toBe(401);
    expect(gone.json.error).toBe("Invalid API key");
    expect((await admin("/keys")).json.find((k: Json) => k.key_hash === hash)).toBeUndefined();
  });

  it("429 over a key's limit, with its body and headers; X-RateLimit-* on admitted responses", async () => {
    // A day window: the test cannot straddle its end (a minute window could).
    const { key } = await createKey({ name: "limited", rate_limits: { per_day: 3, per_month: 1000 } });
    const resetDay = Math.ceil(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate() + 1) / 1000);
    for (const remaining of [2, 1, 0]) {
      const reply = await userCall(key);
      expect(reply.status).toBe(200);
      expect(reply.headers).toMatchObject({ "x-ratelimit-limit": "3", "x-ratelimit-remaining": String(remaining), "x-ratelimit-reset": String(resetDay) });
    }
    const limited = await userCall(key);
    expect(limited.status).toBe(429);
    const retryAfter = Number(limited.headers["retry-after"]);
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(86_400);
    expect(limited.headers).toMatchObject({ "x-ratelimit-limit": "3", "x-ratelimit-remaining": "0", "x-ratelimit-reset": String(resetDay) });
    expect(limited.json).toMatchObject({
      error: "rate_limited",
      error_type: "rate_limited",
      retry_after_seconds: retryAfter,
      details: null,
      request_id: limited.headers["x-request-id"],
      timestamp: expect.any(String),
    });
    // Other keys are not affected.
    expect((await userCall(TEST_API_KEY)).status).toBe(200);
  });

  it("WebSocket: session.open and exec count against the key's limits; over them, rate_limited and close 4008", async () => {
    const { key } = await createKey({ name: "ws-limited", rate_limits: { per_day: 2 } });
    const client = await TestClient.connect(server.wsUrl, { apiKey: key });
    const ready = await client.openSession();
    expect(ready.type, client.describe()).toBe("session.ready");
    const first = await client.run("e1", "bash", "echo one");
    expect(first.stdout).toBe("one\n");
    client.send({ type: "exec", id: "e2", lang: "bash", code: "echo two" });
    await client.closed;
    expect(client.closeCode).toBe(4008);
    expect(client.frames.find((f) => f.type === "error")).toMatchObject({ code: "rate_limited", message: expect.stringContaining("retry in") });
    expect(client.frames.some((f) => f.type === "exec.start" && f.id === "e2")).toBe(false);
    // A new connection is refused at its session.open.
    const again = await wsUntilClosed(server.wsUrl, { key, frames: [{ type: "session.open" }] });
    expect(again.code).toBe(4008);
  });

  it("stats: keys, usage, sessions", async () => {
    const stats = await admin("/stats");
    expect(stats.status).toBe(200);
    expect(stats.json).toMatchObject({
      keys: { total: expect.any(Number), enabled: expect.any(Number), disabled: expect.any(Number) },
      usage: { requests: expect.any(Number), by_key: expect.any(Array) },
      sessions: { active: expect.any(Number) },
      key_store: "local",
      rate_limit_enabled: true,
    });
    expect(stats.json.keys.total).toBe(stats.json.keys.enabled + stats.json.keys.disabled);
    expect(stats.json.usage.requests).toBe(stats.json.usage.by_key.reduce((sum: number, k: Json) => sum + k.requests, 0));
    // limited (3) + ws-limited (2) at least.
    expect(stats.json.usage.requests).toBeGreaterThanOrEqual(5);
  });

  it("the keys CLI and the running server share FILE_STORAGE_PATH", async () => {
    const created = JSON.parse((await cli(storage, ["create", "--name", "from-cli", "--rate-limit", "day=100", "--json"])).stdout);
    // Known to the server at once (no cached lookup of a key nobody used yet).
    const ok = await userCall(created.key);
    expect(ok.status, ok.text).toBe(200);
    expect(ok.headers["x-ratelimit-limit"]).toBe("100");
    expect((await admin("/keys")).json.find((k: Json) => k.key_hash === created.key_hash)).toMatchObject({ name: "from-cli" });

    // The server's usage count reaches the file (flushed every few seconds), where the CLI reads it.
    await eventually(async () => {
      const listed = JSON.parse((await cli(storage, ["list", "--json"])).stdout);
      expect(listed.find((k: Json) => k.key_hash === created.key_hash).usage.requests).toBe(1);
    });

    // Disabled by the CLI: the server follows within API_KEY_CACHE_TTL (1 s here).
    expect((await cli(storage, ["disable", created.key_hash.slice(0, 12)])).stdout).toContain("disabled");
    await eventually(async () => {
      const reply = await userCall(created.key);
      expect(reply.json?.error).toBe("API key is disabled");
    }, 5_000);
    await cli(storage, ["delete", created.key_hash]);
    await eventually(async () => expect((await userCall(created.key)).json?.error).toBe("Invalid API key"), 5_000);
  });

  // Last: it blocks an address for the rest of the window (127.0.0.3, so the other tests' address is not touched).
  it("limits repeated auth failures per client address (429), with a security log event", async () => {
    const localAddress = "127.0.0.3";
    for (let i = 0; i < FAILURE_LIMIT; i++) {
      const reply = await userCall(`wrong-key-${i}`, { localAddress });
      expect(reply.status).toBe(401);
    }
    // Now even the right key is refused from that address (else a guesser would learn which guess is right).
    const blocked = await userCall(TEST_API_KEY, { localAddress });
    expect(blocked.status).toBe(429);
    expect(blocked.json).toMatchObject({ error: "rate_limited", error_type: "rate_limited", retry_after_seconds: expect.any(Number) });
    expect(blocked.headers).toMatchObject({
      "retry-after": String(blocked.json.retry_after_seconds),
      "x-ratelimit-limit": String(FAILURE_LIMIT),
      "x-ratelimit-remaining": "0",
      "x-ratelimit-reset": expect.stringMatching(/^\d+$/),
    });
    expect((await admin("/keys", { localAddress })).status).toBe(429);
    const ws = await wsUntilClosed(server.wsUrl, { key: TEST_API_KEY, localAddress });
    expect(ws.code).toBe(4008);
    expect(ws.errors[0]).toMatchObject({ code: "rate_limited" });
    // Missing keys are not guesses, and other addresses are not blocked.
    expect((await userCall(TEST_API_KEY)).status).toBe(200);
    const event = server.logs.map((line) => (line.startsWith("{") ? JSON.parse(line) : {})).find((entry) => entry.event === "auth_failures_blocked");
    expect(event).toMatchObject({ security: true, remoteAddress: localAddress, failures: FAILURE_LIMIT });
  });
});

describe("API keys: auth off, and no master key (node transport)", () => {
  let open: ServerProcess;
  let closed: ServerProcess;
  const storages: string[] = [];

  beforeAll(async () => {
    const storage = () => {
      const dir = mkdtempSync(join(tmpdir(), "ci-keys-"));
      storages.push(dir);
      return dir;
    };
    [open, closed] = await Promise.all([
      startServer({ transport: "node", env: { FILE_STORAGE_PATH: storage(), AUTH_ENABLED: "false" } }),
      startServer({ transport: "node", env: { FILE_STORAGE_PATH: storage(), MASTER_API_KEY: "" } }),
    ]);
  });

  afterAll(async () => {
    await Promise.all([open?.stop(), closed?.stop()]);
    for (const dir of storages) rmSync(dir, { recursive: true, force: true });
  });

  it("AUTH_ENABLED=false: admin routes still need the master key; user routes take anyone, with no limits", async () => {
    expect((await call(open.httpUrl, "/api/v1/admin/keys", { key: null })).status).toBe(401);
    expect((await call(open.httpUrl, "/api/v1/admin/keys", { key: "anything" })).status).toBe(403);
    const created = await call(open.httpUrl, "/api/v1/admin/keys", { key: TEST_MASTER_KEY, json: { rate_limits: { per_day: 1 } } });
    expect(created.status).toBe(201);
    for (let i = 0; i < 3; i++) {
      const reply = await call(open.httpUrl, "/files/none", { key: created.json.key });
      expect(reply.status).toBe(200);
      expect(reply.headers["x-ratelimit-limit"]).toBeUndefined();
    }
    expect((await call(open.httpUrl, "/files/none", { key: null })).status).toBe(200);
  });

  it("no MASTER_API_KEY: the admin API says it is off, whatever the key", async () => {
    for (const key of [TEST_API_KEY, "anything"]) {
      const reply = await call(closed.httpUrl, "/api/v1/admin/keys", { key });
      expect(reply.status).toBe(403);
      expect(reply.json).toMatchObject({ error_type: "authorization", details: [{ code: "master_key_not_configured" }] });
      expect(reply.json.error).toContain("MASTER_API_KEY is not configured");
    }
  });
});
