import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RedisServers, startRedis } from "../helpers/redis-servers.ts";
import { type ServerProcess, startServer, TEST_API_KEY, TEST_MASTER_KEY } from "../helpers/server-process.ts";

/**
 * Managed keys, rate limits and the auth-failure limiter across two real server
 * processes (one per transport) sharing one real redis-server.
 *
 * It needs server/app.ts to hand its Redis client to createAuthServices; until
 * then the servers keep their keys in their own FILE_STORAGE_PATH and the test
 * skips itself, saying so (test/integration/redis-auth.test.ts covers the Redis
 * store and counters directly meanwhile).
 */

// biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
type Json = any;

const FAILURE_LIMIT = 4;

async function call(server: ServerProcess, path: string, options: { key?: string; method?: string; json?: unknown } = {}) {
  const response = await fetch(`${server.httpUrl}${path}`, {
    method: options.method ?? (options.json === undefined ? "GET" : "POST"),
    headers: { "x-api-key": options.key ?? TEST_API_KEY, ...(options.json === undefined ? {} : { "content-type": "application/json" }) },
    ...(options.json === undefined ? {} : { body: JSON.stringify(options.json) }),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, json: (text ? JSON.parse(text) : undefined) as Json };
}

async function eventually(check: () => Promise<void>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

describe("API keys across two replicas sharing Redis", () => {
  let redis: RedisServers;
  let a: ServerProcess;
  let b: ServerProcess;

  beforeAll(async () => {
    redis = await startRedis("standalone");
    const env = { ...redis.env, API_KEY_CACHE_TTL: "1", AUTH_FAILURE_LIMIT: String(FAILURE_LIMIT), AUTH_FAILURE_WINDOW: "3600" };
    [a, b] = await Promise.all([startServer({ transport: "node", env }), startServer({ transport: "uws", env })]);
  });

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await redis?.stop();
  });

  it("shares keys, limits, usage, disables and auth failures between the replicas", async (ctx) => {
    const stats = await call(a, "/api/v1/admin/stats", { key: TEST_MASTER_KEY });
    expect(stats.status).toBe(200);
    ctx.skip(stats.json.key_store !== "redis", "server/app.ts does not pass its Redis client to createAuthServices yet: keys stay per replica");

    const created = await call(a, "/api/v1/admin/keys", { key: TEST_MASTER_KEY, json: { name: "shared", rate_limits: { per_day: 4 } } });
    expect(created.status).toBe(201);
    const { key, key_hash: hash } = created.json;
    // One day window, counted once for both replicas.
    const order = [b, a, b, a];
    for (const [i, server] of order.entries()) {
      const reply = await call(server, "/files/none", { key });
      expect(reply.status).toBe(200);
      expect(reply.headers.get("x-ratelimit-remaining")).toBe(String(3 - i));
    }
    expect((await call(b, "/files/none", { key })).status).toBe(429);
    expect((await call(a, "/files/none", { key })).status).toBe(429);

    // Usage of both replicas reaches the shared record (each flushes every few seconds).
    await eventually(async () => {
      const listed = await call(b, "/api/v1/admin/keys", { key: TEST_MASTER_KEY });
      expect(listed.json.find((k: Json) => k.key_hash === hash).usage.requests).toBe(4);
    });

    // Disabled through A: B follows within API_KEY_CACHE_TTL.
    expect((await call(a, `/api/v1/admin/keys/${hash}`, { key: TEST_MASTER_KEY, method: "PATCH", json: { enabled: false } })).status).toBe(200);
    await eventually(async () => expect((await call(b, "/files/none", { key })).json.error).toBe("API key is disabled"), 5_000);

    // Auth failures from one address add up across replicas: the replica that sees the limit blocks at once,
    // the other at its next failure.
    for (const server of [a, b, a, b]) expect((await call(server, "/files/none", { key: "wrong-key" })).status).toBe(401);
    expect((await call(b, "/files/none")).status).toBe(429);
    expect((await call(a, "/files/none", { key: "wrong-key" })).status).toBe(401);
    expect((await call(a, "/files/none")).status).toBe(429);
  });
});
