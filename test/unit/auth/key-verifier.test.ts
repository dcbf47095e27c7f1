import { describe, expect, it } from "vitest";
import { ApiKeyVerifier, hashKey } from "../../../server/auth/api-keys.ts";
import { type KeyPatch, type KeyRecord, type KeyStore, newKey, type UsageDelta } from "../../../server/auth/key-store.ts";
import { KeyVerifier } from "../../../server/auth/key-verifier.ts";

/** A store in memory that counts its lookups (the cache must spare them). */
class CountingStore implements KeyStore {
  readonly kind = "local";
  readonly records = new Map<string, KeyRecord>();
  gets = 0;
  failing = false;
  /** When set, get() waits for this before answering. */
  gate: Promise<void> | undefined;

  async get(keyHash: string): Promise<KeyRecord | undefined> {
    this.gets++;
    if (this.gate) await this.gate;
    if (this.failing) throw new Error("store down");
    const record = this.records.get(keyHash);
    return record ? structuredClone(record) : undefined;
  }
  async list(): Promise<KeyRecord[]> {
    return [...this.records.values()];
  }
  async create(record: KeyRecord): Promise<void> {
    this.records.set(record.keyHash, structuredClone(record));
  }
  async update(keyHash: string, patch: KeyPatch): Promise<KeyRecord | undefined> {
    const record = this.records.get(keyHash);
    if (!record) return undefined;
    if (patch.enabled !== undefined) record.enabled = patch.enabled;
    return structuredClone(record);
  }
  async delete(keyHash: string): Promise<boolean> {
    return this.records.delete(keyHash);
  }
  async addUsage(_deltas: readonly UsageDelta[]): Promise<void> {}
  async ping(): Promise<boolean> {
    return true;
  }
  async close(): Promise<void> {}
}

function setup(options: { ttlMs?: number; authEnabled?: boolean; maxEntries?: number } = {}) {
  let now = 1_000_000;
  const store = new CountingStore();
  const verifier = new KeyVerifier(new ApiKeyVerifier(["env-key"], "master-key", options.authEnabled ?? true), store, "master-key", {
    cacheTtlMs: options.ttlMs ?? 300_000,
    ...(options.maxEntries !== undefined ? { maxEntries: options.maxEntries } : {}),
    now: () => now,
  });
  const add = async (settings: { enabled?: boolean } = {}) => {
    const { key, record } = newKey({ name: "t", rateLimits: { minute: 5 }, ...settings });
    await store.create(record);
    return { key, record };
  };
  return { store, verifier, add, advance: (ms: number) => (now += ms) };
}

describe("KeyVerifier", () => {
  it("accepts a managed key, with its record, and marks it managed", async () => {
    const { verifier, add } = setup();
    const { key, record } = await add();
    const result = await verifier.authenticate(key);
    expect(result).toMatchObject({ ok: true, principal: { keyHash: record.keyHash, isMaster: false, managed: true } });
    expect(result.ok && result.record?.rateLimits).toEqual({ minute: 5 });
  });

  it("never asks the store about configured keys and the master key", async () => {
    const { verifier, store } = setup();
    expect(await verifier.authenticate("env-key")).toEqual({ ok: true, principal: { keyHash: hashKey("env-key"), isMaster: false } });
    expect(await verifier.authenticate("master-key")).toEqual({ ok: true, principal: { keyHash: hashKey("master-key"), isMaster: true } });
    expect(await verifier.authenticate(undefined)).toEqual({ ok: false, reason: "missing" });
    expect(store.gets).toBe(0);
  });

  it("answers from its cache within the TTL, found or not, and asks again after it", async () => {
    const { verifier, store, add, advance } = setup({ ttlMs: 10_000 });
    const { key } = await add();
    for (let i = 0; i < 5; i++) expect((await verifier.authenticate(key)).ok).toBe(true);
    for (let i = 0; i < 5; i++) expect(await verifier.authenticate("sk-unknown")).toEqual({ ok: false, reason: "invalid" });
    expect(store.gets).toBe(2);
    advance(9_999);
    await verifier.authenticate(key);
    expect(store.gets).toBe(2);
    advance(1);
    await verifier.authenticate(key);
    expect(store.gets).toBe(3);
  });

  it("sees a change made elsewhere only after the TTL, one made through invalidate() at once", async () => {
    const { verifier, store, add, advance } = setup({ ttlMs: 10_000 });
    const { key, record } = await add();
    expect((await verifier.authenticate(key)).ok).toBe(true);
    await store.update(record.keyHash, { enabled: false });
    // Another replica (or the CLI) disabled it: this one trusts its cache until the TTL passes.
    expect((await verifier.authenticate(key)).ok).toBe(true);
    advance(10_000);
    expect(await verifier.authenticate(key)).toEqual({ ok: false, reason: "disabled" });
    await store.update(record.keyHash, { enabled: true });
    verifier.invalidate(record.keyHash);
    expect((await verifier.authenticate(key)).ok).toBe(true);
  });

  it("with a TTL of 0, asks the store every time", async () => {
    const { verifier, store, add } = setup({ ttlMs: 0 });
    const { key } = await add();
    for (let i = 0; i < 3; i++) await verifier.authenticate(key);
    expect(store.gets).toBe(3);
    expect(verifier.cacheSize).toBe(0);
  });

  it("shares one store lookup between concurrent requests with the same key", async () => {
    const { verifier, store, add } = setup();
    const { key } = await add();
    let release!: () => void;
    store.gate = new Promise((resolve) => (release = resolve));
    const pending = Array.from({ length: 10 }, () => verifier.authenticate(key));
    release();
    expect((await Promise.all(pending)).every((r) => r.ok)).toBe(true);
    expect(store.gets).toBe(1);
  });

  it("does not cache a lookup that was in flight when invalidate() ran", async () => {
    const { verifier, store, add } = setup();
    const { key, record } = await add();
    let release!: () => void;
    store.gate = new Promise((resolve) => (release = resolve));
    const stale = verifier.authenticate(key);
    verifier.invalidate(record.keyHash);
    release();
    await stale;
    store.gate = undefined;
    await store.update(record.keyHash, { enabled: false });
    expect(await verifier.authenticate(key)).toEqual({ ok: false, reason: "disabled" });
  });

  it("keeps at most maxEntries lookups (random wrong keys cannot grow it)", async () => {
    const { verifier } = setup({ maxEntries: 100 });
    for (let i = 0; i < 500; i++) await verifier.authenticate(`sk-guess-${i}`);
    expect(verifier.cacheSize).toBe(100);
  });

  it("with auth disabled, lets a disabled or unknown key in as the anonymous owner", async () => {
    const { verifier, add } = setup({ authEnabled: false });
    const { key } = await add({ enabled: false });
    expect(await verifier.authenticate(key)).toMatchObject({ ok: true, principal: { keyHash: "anonymous" } });
    expect(await verifier.authenticate("sk-unknown")).toMatchObject({ ok: true, principal: { keyHash: "anonymous" } });
  });

  it("lets a store failure through to the caller (503 there), and caches nothing", async () => {
    const { verifier, store, add } = setup();
    const { key } = await add();
    store.failing = true;
    await expect(verifier.authenticate(key)).rejects.toThrow("store down");
    store.failing = false;
    expect((await verifier.authenticate(key)).ok).toBe(true);
  });

  it("checks the master key for admin routes", () => {
    const { verifier } = setup();
    expect(verifier.checkMaster("master-key")).toBe("ok");
    expect(verifier.checkMaster("env-key")).toBe("wrong");
    expect(verifier.checkMaster(undefined)).toBe("missing");
    const none = new KeyVerifier(new ApiKeyVerifier(["env-key"], undefined, true), new CountingStore(), undefined, { cacheTtlMs: 0 });
    expect(none.checkMaster("anything")).toBe("unconfigured");
  });
});
