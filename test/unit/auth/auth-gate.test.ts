import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ApiKeyVerifier } from "../../../server/auth/api-keys.ts";
import { AuthFailureLimiter } from "../../../server/auth/auth-failure-limiter.ts";
import { AuthGate } from "../../../server/auth/auth-gate.ts";
import { newKey, type RateLimits } from "../../../server/auth/key-store.ts";
import { KeyVerifier } from "../../../server/auth/key-verifier.ts";
import { LocalKeyStore } from "../../../server/auth/local-key-store.ts";
import { type CounterBackend, MemoryCounters, RateLimiter } from "../../../server/auth/rate-limiter.ts";
import { UsageRecorder } from "../../../server/auth/usage-recorder.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "ci-gate-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const ADDRESS = "192.0.2.7";

async function setup(options: { authEnabled?: boolean; limits?: boolean; masterKey?: string; counters?: CounterBackend } = {}) {
  const store = await LocalKeyStore.open(dir);
  const masterKey = "masterKey" in options ? options.masterKey : "master-key";
  const verifier = new KeyVerifier(new ApiKeyVerifier(["env-key"], masterKey, options.authEnabled ?? true), store, masterKey, { cacheTtlMs: 60_000 });
  const counters = options.counters ?? new MemoryCounters();
  const usage = new UsageRecorder(store, pino({ level: "silent" }));
  const events: { event: string; fields: Record<string, unknown> }[] = [];
  const gate = new AuthGate({
    verifier,
    ...(options.limits === false ? {} : { limiter: new RateLimiter(counters), failures: new AuthFailureLimiter(counters, { limit: 3, windowMs: 3_600_000 }) }),
    usage,
    logger: pino({ level: "silent" }),
    securityLog: (event, fields) => events.push({ event, fields }),
  });
  const add = async (rateLimits: RateLimits = {}) => {
    const created = newKey({ name: "t", rateLimits });
    await store.create(created.record);
    return created;
  };
  /** authenticate + admit, as requireAuth does. */
  const request = async (key: string | undefined, address = ADDRESS) => {
    const auth = await gate.authenticate(key, address);
    if (!auth.ok) return auth;
    return { ...(await gate.admit(auth.principal, address, auth.record)), principal: auth.principal };
  };
  return { store, verifier, usage, gate, events, add, request };
}

describe("AuthGate", () => {
  it("admits a managed key within its limits, counts its usage, then refuses it", async () => {
    const { add, request, usage, events } = await setup();
    const { key, record } = await add({ hour: 2 });
    expect(await request(key)).toMatchObject({ ok: true, rate: { allowed: true, limit: 2, remaining: 1 } });
    expect(await request(key)).toMatchObject({ ok: true, rate: { remaining: 0 } });
    expect(await request(key)).toMatchObject({ ok: false, kind: "rate_limited", scope: "key", rate: { window: "hour", limit: 2 } });
    expect(await request(key)).toMatchObject({ ok: false, kind: "rate_limited" });
    expect(usage.pending(record.keyHash)?.requests).toBe(2);
    // One security line per key and window, not one per refused request.
    expect(events.filter((e) => e.event === "rate_limited")).toHaveLength(1);
  });

  it("puts no limit on configured keys and on managed keys without limits", async () => {
    const { add, request } = await setup();
    const { key } = await add();
    for (let i = 0; i < 5; i++) {
      expect(await request("env-key")).toEqual(expect.objectContaining({ ok: true }));
      expect(await request(key)).toEqual(expect.objectContaining({ ok: true }));
    }
    expect(await request(key)).not.toHaveProperty("rate");
  });

  it("refuses a disabled key with reason disabled, and does not count it as a guess", async () => {
    const { add, request, store } = await setup();
    const { key, record } = await add();
    await store.update(record.keyHash, { enabled: false });
    for (let i = 0; i < 5; i++) expect(await request(key)).toEqual({ ok: false, kind: "unauthenticated", reason: "disabled" });
    expect(await request("env-key")).toMatchObject({ ok: true });
  });

  it("blocks an address after repeated wrong keys, even for a right key, with the limiter's numbers", async () => {
    const { request, events } = await setup();
    for (let i = 0; i < 3; i++) expect(await request(`wrong-${i}`)).toEqual({ ok: false, kind: "unauthenticated", reason: "invalid" });
    expect(await request("env-key")).toMatchObject({ ok: false, kind: "rate_limited", scope: "address", rate: { limit: 3, remaining: 0 } });
    expect(await request("env-key", "192.0.2.8")).toMatchObject({ ok: true });
    expect(events.filter((e) => e.event === "auth_failed")).toHaveLength(3);
    expect(events.filter((e) => e.event === "auth_failures_blocked")).toEqual([
      { event: "auth_failures_blocked", fields: expect.objectContaining({ remoteAddress: ADDRESS, failures: 3 }) },
    ]);
  });

  it("does not count missing keys towards the block", async () => {
    const { request } = await setup();
    for (let i = 0; i < 10; i++) expect(await request(undefined)).toEqual({ ok: false, kind: "unauthenticated", reason: "missing" });
    expect(await request("env-key")).toMatchObject({ ok: true });
  });

  it("with AUTH_ENABLED=false, bypasses both limiters on user routes", async () => {
    const { add, request } = await setup({ authEnabled: false });
    const { key } = await add({ hour: 1 });
    for (let i = 0; i < 5; i++) expect(await request(key)).toMatchObject({ ok: true });
    for (let i = 0; i < 5; i++) expect(await request(`wrong-${i}`)).toMatchObject({ ok: true, principal: { keyHash: "anonymous" } });
  });

  it("with RATE_LIMIT_ENABLED=false, limits nothing but still counts usage", async () => {
    const { add, request, usage } = await setup({ limits: false });
    const { key, record } = await add({ hour: 1 });
    for (let i = 0; i < 3; i++) expect(await request(key)).toMatchObject({ ok: true });
    for (let i = 0; i < 5; i++) await request(`wrong-${i}`);
    expect(await request(key)).toMatchObject({ ok: true });
    expect(usage.pending(record.keyHash)?.requests).toBe(4);
  });

  it("admits later frames of a connection only while the key stays enabled (a fresh lookup)", async () => {
    const { add, gate, store, verifier } = await setup();
    const { key, record } = await add();
    const auth = await gate.authenticate(key, ADDRESS);
    if (!auth.ok) throw new Error("expected ok");
    expect(await gate.admit(auth.principal, ADDRESS)).toEqual({ ok: true });
    await store.update(record.keyHash, { enabled: false });
    verifier.invalidate(record.keyHash);
    expect(await gate.admit(auth.principal, ADDRESS)).toEqual({ ok: false, kind: "unauthenticated", reason: "disabled" });
    await store.delete(record.keyHash);
    verifier.invalidate(record.keyHash);
    expect(await gate.admit(auth.principal, ADDRESS)).toEqual({ ok: false, kind: "unauthenticated", reason: "invalid" });
  });

  it("admits without limits when the counters fail (and says so in the log)", async () => {
    const broken: CounterBackend = {
      consume: () => Promise.reject(new Error("redis down")),
      add: () => Promise.reject(new Error("redis down")),
    };
    const { add, request } = await setup({ counters: broken });
    const { key } = await add({ second: 1 });
    for (let i = 0; i < 3; i++) expect(await request(key)).toMatchObject({ ok: true });
    expect(await request("wrong")).toEqual({ ok: false, kind: "unauthenticated", reason: "invalid" });
  });

  it("admin routes: the master key only; wrong keys count as failures; none configured is its own answer", async () => {
    const { gate, events } = await setup();
    expect(await gate.authorizeMaster("master-key", ADDRESS)).toMatchObject({ ok: true, principal: { isMaster: true } });
    expect(await gate.authorizeMaster(undefined, ADDRESS)).toEqual({ ok: false, kind: "unauthenticated", reason: "missing" });
    expect(await gate.authorizeMaster("env-key", ADDRESS)).toEqual({ ok: false, kind: "forbidden" });
    expect(events.map((e) => e.event)).toEqual(["admin_auth_failed", "admin_auth_failed"]);
    await gate.authorizeMaster("guess-1", ADDRESS);
    await gate.authorizeMaster("guess-2", ADDRESS);
    expect(await gate.authorizeMaster("master-key", ADDRESS)).toMatchObject({ ok: false, kind: "rate_limited", scope: "address" });

    const none = await setup({ masterKey: undefined });
    expect(await none.gate.authorizeMaster("anything", ADDRESS)).toEqual({ ok: false, kind: "unconfigured" });
  });
});
