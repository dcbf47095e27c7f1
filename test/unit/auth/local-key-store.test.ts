import { mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { hashKey } from "../../../server/auth/api-keys.ts";
import { newKey } from "../../../server/auth/key-store.ts";
import { LocalKeyStore } from "../../../server/auth/local-key-store.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "ci-keys-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("newKey", () => {
  it("makes sk-<48 base62> keys and stores only their SHA-256", () => {
    const { key, record } = newKey({ name: "n", rateLimits: { hour: 10 } });
    expect(key).toMatch(/^sk-[0-9A-Za-z]{48}$/);
    expect(record.keyHash).toBe(hashKey(key));
    expect(JSON.stringify(record)).not.toContain(key);
    expect(newKey({}).key).not.toBe(key);
  });
});

describe("LocalKeyStore", () => {
  it("keeps records in one JSON file (mode 0600) without the key itself", async () => {
    const store = await LocalKeyStore.open(dir);
    const { key, record } = newKey({ name: "a", rateLimits: { minute: 60, day: 1000 } });
    await store.create(record);
    expect(await store.get(record.keyHash)).toEqual(record);
    const text = readFileSync(store.path, "utf8");
    expect(text).toContain(record.keyHash);
    expect(text).not.toContain(key);
    expect(statSync(store.path).mode & 0o777).toBe(0o600);
  });

  it("sees what another process (the CLI) wrote, without reopening", async () => {
    const server = await LocalKeyStore.open(dir);
    const cli = await LocalKeyStore.open(dir);
    const { record } = newKey({ name: "from-cli" });
    expect(await server.get(record.keyHash)).toBeUndefined();
    await cli.create(record);
    expect((await server.get(record.keyHash))?.name).toBe("from-cli");
    await cli.update(record.keyHash, { enabled: false });
    expect((await server.get(record.keyHash))?.enabled).toBe(false);
    await cli.delete(record.keyHash);
    expect(await server.get(record.keyHash)).toBeUndefined();
  });

  it("loses no change when two processes write at the same time", async () => {
    const a = await LocalKeyStore.open(dir);
    const b = await LocalKeyStore.open(dir);
    const keys = Array.from({ length: 20 }, (_, i) => newKey({ name: `k${i}` }).record);
    await Promise.all(keys.map((record, i) => (i % 2 === 0 ? a : b).create(record)));
    // Usage from one side while the other keeps changing names.
    await Promise.all([
      ...keys.map((record) => a.addUsage([{ keyHash: record.keyHash, requests: 2, lastUsedAt: 5 }])),
      ...keys.map((record) => b.update(record.keyHash, { name: `renamed-${record.name}` })),
    ]);
    const fresh = await LocalKeyStore.open(dir);
    const listed = await fresh.list();
    expect(listed).toHaveLength(20);
    for (const record of listed) {
      expect(record.name).toMatch(/^renamed-k\d+$/);
      expect(record.usage).toEqual({ requests: 2, lastUsedAt: 5 });
    }
  });

  it("adds usage to existing keys only (a deleted key is not revived)", async () => {
    const store = await LocalKeyStore.open(dir);
    const { record } = newKey({});
    await store.create(record);
    await store.addUsage([{ keyHash: record.keyHash, requests: 3, lastUsedAt: 100 }]);
    await store.addUsage([{ keyHash: record.keyHash, requests: 1, lastUsedAt: 50 }]);
    expect((await store.get(record.keyHash))?.usage).toEqual({ requests: 4, lastUsedAt: 100 });
    await store.delete(record.keyHash);
    await store.addUsage([{ keyHash: record.keyHash, requests: 1, lastUsedAt: 200 }]);
    expect(await store.list()).toEqual([]);
  });

  it("applies patches window by window (null removes a limit)", async () => {
    const store = await LocalKeyStore.open(dir);
    const { record } = newKey({ rateLimits: { second: 2, minute: 60 } });
    await store.create(record);
    const updated = await store.update(record.keyHash, { name: "x", rateLimits: { second: null, hour: 500 } });
    expect(updated).toMatchObject({ name: "x", enabled: true, rateLimits: { minute: 60, hour: 500 } });
    expect(updated?.rateLimits.second).toBeUndefined();
    expect(await store.update("0".repeat(64), { enabled: false })).toBeUndefined();
    expect(await store.delete("0".repeat(64))).toBe(false);
  });

  it("skips records it cannot read in a hand-edited file", async () => {
    const good = newKey({ name: "good", rateLimits: { minute: 5 } }).record;
    writeFileSync(
      join(dir, "api-keys.json"),
      JSON.stringify({
        version: 1,
        keys: [good, { keyHash: "not-a-hash" }, null, { ...good, keyHash: "f".repeat(64), rateLimits: { minute: -1, hour: "x" } }],
      }),
    );
    const store = await LocalKeyStore.open(dir);
    const listed = await store.list();
    expect(listed.map((r) => r.keyHash).sort()).toEqual([good.keyHash, "f".repeat(64)].sort());
    expect((await store.get("f".repeat(64)))?.rateLimits).toEqual({});
  });

  it("takes over a lock left by a process that died", async () => {
    const store = await LocalKeyStore.open(dir);
    const lock = join(dir, "api-keys.json.lock");
    writeFileSync(lock, "12345");
    const old = new Date(Date.now() - 60_000);
    utimesSync(lock, old, old);
    const { record } = newKey({});
    await store.create(record);
    expect(await store.get(record.keyHash)).toBeDefined();
  });
});
