import { Redis } from "ioredis";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiKeyVerifier } from "../../server/auth/api-keys.ts";
import { AuthFailureLimiter } from "../../server/auth/auth-failure-limiter.ts";
import { AuthGate } from "../../server/auth/auth-gate.ts";
import { newKey } from "../../server/auth/key-store.ts";
import { KeyVerifier } from "../../server/auth/key-verifier.ts";
import { runKeysCommand } from "../../server/auth/keys-cli.ts";
import { RateLimiter } from "../../server/auth/rate-limiter.ts";
import { RedisCounters } from "../../server/auth/redis-counters.ts";
import { RedisKeyStore } from "../../server/auth/redis-key-store.ts";
import { UsageRecorder } from "../../server/auth/usage-recorder.ts";
import { loadConfig } from "../../server/config/load.ts";
import { closeRedis, connectRedis, type RedisClient } from "../../server/redis/connection.ts";
import { type RedisServers, startRedis } from "../helpers/redis-servers.ts";

/**
 * The Redis key store and rate-limit counters against real redis-server
 * processes (standalone with a key prefix, and a three-master cluster, where a
 * multi-key command across slots would fail with CROSSSLOT). Two clients stand
 * for two replicas: what one counts, the other sees.
 */

const PREFIX = "t-auth:";

for (const mode of ["standalone", "cluster"] as const) {
  describe(`Redis auth (${mode})`, () => {
    let servers: RedisServers;
    let a: RedisClient;
    let b: RedisClient;

    beforeAll(async () => {
      servers = await startRedis(mode);
      const { config, errors } = loadConfig({ env: { ...servers.env, REDIS_KEY_PREFIX: PREFIX }, envFile: false });
      expect(errors).toEqual([]);
      [a, b] = await Promise.all([connectRedis(config.redis, { name: "replica-a" }), connectRedis(config.redis, { name: "replica-b" })]);
    });

    afterAll(async () => {
      await Promise.all([a && closeRedis(a), b && closeRedis(b)]);
      await servers?.stop();
    });

    it("stores keys by hash, shared by every replica, under the prefix and one hash tag", async () => {
      const storeA = new RedisKeyStore(a);
      const storeB = new RedisKeyStore(b);
      const { key, record } = newKey({ name: "shared", rateLimits: { minute: 60, day: 1000 } });
      await storeA.create(record);
      expect(await storeB.get(record.keyHash)).toEqual(record);
      expect((await storeB.list()).map((r) => r.keyHash)).toContain(record.keyHash);

      const updated = await storeB.update(record.keyHash, { name: "renamed", enabled: false, rateLimits: { minute: null, hour: 500 } });
      expect(updated).toMatchObject({ name: "renamed", enabled: false, rateLimits: { day: 1000, hour: 500 } });
      expect(updated?.rateLimits.minute).toBeUndefined();
      expect(await storeA.update("0".repeat(64), { enabled: true })).toBeUndefined();

      await storeA.addUsage([{ keyHash: record.keyHash, requests: 3, lastUsedAt: 2_000 }]);
      await storeB.addUsage([{ keyHash: record.keyHash, requests: 2, lastUsedAt: 1_000 }]);
      expect((await storeA.get(record.keyHash))?.usage).toEqual({ requests: 5, lastUsedAt: 2_000 });

      // Every key lives under the prefix, in the {apikeys} slot, and the key itself is nowhere.
      const raw = await rawKeys(servers);
      const ours = raw.filter((name) => name.includes("apikeys"));
      expect(ours.length).toBeGreaterThan(0);
      for (const name of ours) expect(name.startsWith(`${PREFIX}{apikeys}:`)).toBe(true);
      for (const port of servers.ports) {
        const direct = new Redis({ port, host: "127.0.0.1", lazyConnect: true });
        await direct.connect();
        for (const name of (await direct.keys("*")).filter((n) => n.includes("apikeys"))) {
          const value = (await direct.type(name)) === "hash" ? JSON.stringify(await direct.hgetall(name)) : JSON.stringify(await direct.smembers(name));
          expect(value).not.toContain(key);
        }
        direct.disconnect();
      }

      expect(await storeB.delete(record.keyHash)).toBe(true);
      expect(await storeA.delete(record.keyHash)).toBe(false);
      // Usage after deletion does not bring the key back.
      await storeA.addUsage([{ keyHash: record.keyHash, requests: 1, lastUsedAt: 3_000 }]);
      expect(await storeA.get(record.keyHash)).toBeUndefined();
      expect((await storeA.list()).map((r) => r.keyHash)).not.toContain(record.keyHash);
    });

    it("counts rate limits across replicas, atomically", async () => {
      const limiterA = new RateLimiter(new RedisCounters(a));
      const limiterB = new RateLimiter(new RedisCounters(b));
      const scope = newKey({}).record.keyHash;
      const limits = { day: 20, month: 1000 };
      // 50 requests at once, half through each replica: exactly 20 get in.
      const decisions = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? limiterA : limiterB).hit(scope, limits)));
      expect(decisions.filter((d) => d?.allowed)).toHaveLength(20);
      const refused = decisions.find((d) => !d?.allowed);
      expect(refused).toMatchObject({ window: "day", limit: 20, remaining: 0 });
      // Refused requests counted in no window: the month saw 20.
      expect(await limiterA.hit(scope, { month: 1000 })).toMatchObject({ allowed: true, remaining: 1000 - 21 });
      // Counters expire a little after their window.
      const ttl = await a.pttl(`ratelimit:{${scope}}:day:${Math.floor(Date.now() / 86_400_000) * 86_400_000}`);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(86_400_000 + 5_000);
    });

    it("blocks an address on every replica after repeated auth failures", async () => {
      const failuresA = new AuthFailureLimiter(new RedisCounters(a), { limit: 4, windowMs: 3_600_000 });
      const failuresB = new AuthFailureLimiter(new RedisCounters(b), { limit: 4, windowMs: 3_600_000 });
      const address = "198.51.100.1";
      await failuresA.fail(address);
      await failuresB.fail(address);
      await failuresA.fail(address);
      expect((await failuresB.fail(address)).blocked).toBe(true);
      expect(failuresB.blocked(address)).toBeDefined();
      // A learns at its next failure (it refuses before checking keys after that).
      expect(failuresA.blocked(address)).toBeUndefined();
      expect(await failuresA.fail(address)).toMatchObject({ failures: 5, blocked: true });
    });

    it("the keys CLI manages the keys in Redis when REDIS_* says where it is", async () => {
      let stdout = "";
      const cli = (args: string[]) =>
        runKeysCommand(
          args,
          { stdout: { write: (text: string) => (stdout += text) }, stderr: { write: () => true } },
          // FILE_STORAGE_PATH points nowhere useful: the CLI must not fall back to the file.
          {
            env: { ...servers.env, REDIS_KEY_PREFIX: PREFIX, MASTER_API_KEY: "master-key-0123456789abcdef", FILE_STORAGE_PATH: "/nonexistent/keys" },
            envFile: false,
          },
        );
      expect(await cli(["create", "--name", "cli-in-redis", "--json"])).toBe(0);
      const created = JSON.parse(stdout);
      const store = new RedisKeyStore(a);
      expect(await store.get(created.key_hash)).toMatchObject({ name: "cli-in-redis", enabled: true });
      expect(await cli(["disable", created.key_hash])).toBe(0);
      expect((await store.get(created.key_hash))?.enabled).toBe(false);
      expect(await cli(["delete", created.key_hash])).toBe(0);
      expect(await store.get(created.key_hash)).toBeUndefined();
    });

    it("authenticates a key created on one replica on the other, and follows a disable within the cache TTL", async () => {
      const gate = (client: RedisClient, ttlMs: number) => {
        const store = new RedisKeyStore(client);
        const verifier = new KeyVerifier(new ApiKeyVerifier([], "master", true), store, "master", { cacheTtlMs: ttlMs });
        const counters = new RedisCounters(client);
        const usage = new UsageRecorder(store, pino({ level: "silent" }));
        return {
          store,
          usage,
          gate: new AuthGate({ verifier, limiter: new RateLimiter(counters), usage, logger: pino({ level: "silent" }), securityLog: () => {} }),
        };
      };
      const replicaA = gate(a, 60_000);
      const replicaB = gate(b, 300);
      const { key, record } = newKey({ name: "cross", rateLimits: { hour: 3 } });
      await replicaA.store.create(record);
      const request = async (replica: ReturnType<typeof gate>) => {
        const auth = await replica.gate.authenticate(key, "127.0.0.1");
        return auth.ok ? replica.gate.admit(auth.principal, "127.0.0.1", auth.record) : auth;
      };
      expect(await request(replicaA)).toMatchObject({ ok: true, rate: { remaining: 2 } });
      expect(await request(replicaB)).toMatchObject({ ok: true, rate: { remaining: 1 } });
      expect(await request(replicaA)).toMatchObject({ ok: true, rate: { remaining: 0 } });
      expect(await request(replicaB)).toMatchObject({ ok: false, kind: "rate_limited" });

      await replicaA.usage.flush();
      await replicaB.usage.flush();
      expect((await replicaA.store.get(record.keyHash))?.usage.requests).toBe(3);

      await replicaA.store.update(record.keyHash, { enabled: false });
      await new Promise((resolve) => setTimeout(resolve, 350));
      expect(await request(replicaB)).toEqual({ ok: false, kind: "unauthenticated", reason: "disabled" });
    });
  });
}

/** Every key name on every node (the cluster spreads them). */
async function rawKeys(servers: RedisServers): Promise<string[]> {
  const names: string[] = [];
  for (const port of servers.ports) {
    const direct = new Redis({ port, host: "127.0.0.1", lazyConnect: true });
    await direct.connect();
    names.push(...(await direct.keys("*")));
    direct.disconnect();
  }
  return names;
}
