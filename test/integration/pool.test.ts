import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServerProcess, startServer, TEST_API_KEY, TEST_MASTER_KEY } from "../helpers/server-process.ts";
import { type Frame, TestClient } from "../helpers/ws-client.ts";

/** The warm pool and admission control with the real server: refills, pooled sessions, exec and session limits. */
describe("warm pool and admission", () => {
  let server: ServerProcess;
  let operator: TestClient;
  const clients: TestClient[] = [];
  const connect = async (apiKey = TEST_API_KEY) => {
    const client = await TestClient.connect(server.wsUrl, { apiKey });
    clients.push(client);
    return client;
  };
  const headers = { "x-api-key": TEST_API_KEY, "content-type": "application/json" };
  const exec = (body: Record<string, unknown>) => fetch(`${server.httpUrl}/exec`, { method: "POST", headers, body: JSON.stringify(body) });
  const poolHealth = async () => {
    const response = await fetch(`${server.httpUrl}/health/detailed`, { headers });
    return ((await response.json()) as { checks: { pool: Record<string, number | boolean> } }).checks.pool;
  };
  const until = async (check: () => Promise<boolean> | boolean, ms = 15_000) => {
    const deadline = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error("condition not met in time");
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const poolEvent = (predicate: (f: Frame) => boolean, from = 0) =>
    operator.waitFor((f) => f.type === "event" && f.topic === "pool" && predicate(f), 15_000, from);

  beforeAll(async () => {
    server = await startServer({
      transport: "node",
      env: {
        SANDBOX_POOL_ENABLED: "true",
        SANDBOX_POOL_PY: "1",
        // An alias name: the pool keeps the sum of the per-language sizes.
        POD_POOL_JS: "1",
        SANDBOX_POOL_REPLENISH_INTERVAL: "0.2",
        MAX_CONCURRENT_EXECUTIONS: "1",
        ADMISSION_QUEUE_TIMEOUT: "1.5",
        MAX_SESSIONS_PER_ENTITY: "1",
      },
    });
    operator = await connect(TEST_MASTER_KEY);
    operator.send({ type: "subscribe", topic: "pool" });
    await until(async () => (await poolHealth()).size === 2);
  });

  afterAll(async () => {
    for (const client of clients) client.terminate();
    await server?.stop();
  });

  it("reports the pool on /health/detailed", async () => {
    expect(await poolHealth()).toMatchObject({ status: "ok", enabled: true, target: 2, size: 2 });
  });

  it("gives a new session a pooled sandbox and refills the pool after use", async () => {
    const from = operator.frames.length;
    const client = await connect();
    const started = performance.now();
    const ready = await client.openSession();
    const openMs = performance.now() - started;
    expect(ready.type).toBe("session.ready");
    const leased = await poolEvent((f) => f.kind === "sandbox.leased" && f.sessionId === ready.sessionId, from);
    expect(leased.fromPool).toBe(true);
    // The refill: a new sandbox ready, and the size back at its target.
    await poolEvent((f) => f.kind === "sandbox.ready", from);
    await poolEvent((f) => f.kind === "pool.size" && f.size === 2, from);
    const { stdout } = await client.run("1", "py", "print(6 * 7)");
    expect(stdout).toBe("42\n");
    console.log(`session.open -> session.ready from the pool: ${openMs.toFixed(1)} ms`);
    client.send({ type: "session.close" });
    await client.closed;
  });

  it("refills after the pool runs dry; a session that misses gets a sandbox of its own", async () => {
    const from = operator.frames.length;
    const opened = await Promise.all([0, 1, 2].map(async () => (await connect()).openSession()));
    expect(opened.every((f) => f.type === "session.ready")).toBe(true);
    await poolEvent((f) => f.kind === "pool.exhausted", from);
    const leases = await Promise.all(opened.map((f) => poolEvent((e) => e.kind === "sandbox.leased" && e.sessionId === f.sessionId, from)));
    expect(leases.filter((e) => e.fromPool === true)).toHaveLength(2);
    expect(leases.filter((e) => e.fromPool === false)).toHaveLength(1);
    await until(async () => (await poolHealth()).size === 2);
    const stats = await poolHealth();
    expect(stats.misses).toBeGreaterThanOrEqual(1);
    expect(stats.hits).toBeGreaterThanOrEqual(3);
  });

  it("MAX_CONCURRENT_EXECUTIONS=1: a second exec waits in the queue, and past the queue wait gets 503 with Retry-After", async () => {
    // Short runs: the second waits for the first's slot and then runs.
    const [a, b] = await Promise.all([exec({ lang: "bash", code: "sleep 0.3; echo a" }), exec({ lang: "bash", code: "echo b" })]);
    expect([a.status, b.status]).toEqual([200, 200]);
    // A run longer than ADMISSION_QUEUE_TIMEOUT: the second is refused, not left hanging.
    const long = exec({ lang: "bash", code: "sleep 4; echo long" });
    await new Promise((r) => setTimeout(r, 500));
    const started = Date.now();
    const refused = await exec({ lang: "bash", code: "echo late" });
    expect(refused.status).toBe(503);
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(((await refused.json()) as { error_type: string }).error_type).toBe("service_unavailable");
    const first = await long;
    expect(first.status).toBe(200);
    expect(((await first.json()) as { stdout: string }).stdout).toBe("long\n");
  });

  it("MAX_SESSIONS_PER_ENTITY=1: a second session of the entity gets 429 over HTTP and close 4008 over WebSocket", async () => {
    const first = await exec({ lang: "bash", code: "echo one", entity_id: "entity-1", user_id: "u1" });
    expect(first.status).toBe(200);
    // The same entity and user reuse their session: no new session, no refusal.
    expect((await exec({ lang: "bash", code: "echo again", entity_id: "entity-1", user_id: "u1" })).status).toBe(200);
    const second = await exec({ lang: "bash", code: "echo two", entity_id: "entity-1", user_id: "u2" });
    expect(second.status).toBe(429);
    expect(Number(second.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(((await second.json()) as { error_type: string }).error_type).toBe("rate_limited");
    const client = await connect();
    client.send({ type: "session.open", entityId: "entity-1" });
    const error = await client.waitFor((f) => f.type === "error");
    expect(error.code).toBe("rate_limited");
    await client.closed;
    expect(client.closeCode).toBe(4008);
  });
});
