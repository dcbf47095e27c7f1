/**
 * One SessionStore behaviour suite, run against LocalSessionStore and against
 * RedisSessionStore on real redis-server processes in each mode (standalone,
 * cluster, sentinel, TLS); then, per mode, what the Redis store adds (TTLs,
 * eviction), the connection (key prefix, pub/sub, outages, a frozen server),
 * and the fleet lock.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../server/config/load.ts";
import type { RedisConfig } from "../../server/config/types.ts";
import {
  channelName,
  closeRedis,
  connectRedis,
  createSubscriber,
  isRedisUnavailable,
  pingRedis,
  type RedisClient,
  RedisUnavailableError,
  scanKeys,
} from "../../server/redis/connection.ts";
import { type FleetLock, fleetLock, LocalFleetLock } from "../../server/redis/fleet-lock.ts";
import { LocalSessionStore } from "../../server/sessions/local-session-store.ts";
import { RedisSessionStore, SESSIONS_BY_LAST_USE, sessionEntityIndexKey, sessionRecordKey } from "../../server/sessions/redis-session-store.ts";
import type { SessionRecord, SessionStore } from "../../server/sessions/session-store.ts";
import { freePort, makeRedisPki, type RedisServers, type RedisTestMode, startRedis } from "../helpers/redis-servers.ts";

const HOUR = 3_600_000;
/** REDIS_SOCKET_TIMEOUT and REDIS_SOCKET_CONNECT_TIMEOUT of these tests, in seconds. */
const TIMEOUT_S = 0.5;
/** How late a failure may come after the command timeout and still count as "not hanging". */
const SLACK_MS = 1_500;

const sleep = (ms: number) => new Promise((resolveSleep) => setTimeout(resolveSleep, ms));

function redisConfig(env: Record<string, string>, extra: Record<string, string> = {}): RedisConfig {
  const loaded = loadConfig({
    env: { REDIS_SOCKET_TIMEOUT: String(TIMEOUT_S), REDIS_SOCKET_CONNECT_TIMEOUT: String(TIMEOUT_S), ...env, ...extra },
    envFile: false,
  });
  expect(loaded.errors).toEqual([]);
  expect(loaded.config.redis.enabled).toBe(true);
  return loaded.config.redis;
}

/** Milliseconds `promise` took to settle, and what it rejected with. */
async function timed(promise: Promise<unknown>): Promise<{ ms: number; rejected: boolean; error?: unknown }> {
  const started = Date.now();
  const outcome = await promise.then(
    () => ({ rejected: false }),
    (error: unknown) => ({ rejected: true, error }),
  );
  return { ms: Date.now() - started, ...outcome };
}

async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<number> {
  const started = Date.now();
  while (!(await check().catch(() => false))) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(50);
  }
  return Date.now() - started;
}

/** Fresh owner and entity per test: every suite shares its backend across tests. */
function scope() {
  const now = Date.now();
  const owner = `key-${randomUUID()}`;
  const entity = `entity-${randomUUID()}`;
  const make = (overrides: Partial<SessionRecord> & { lastActiveAt: number }): SessionRecord => ({
    id: randomUUID().replace(/-/g, "").slice(0, 21),
    ownerKeyHash: owner,
    createdAt: now - 10_000,
    ...overrides,
  });
  return { now, owner, entity, make };
}

const ids = (records: SessionRecord[], mine: SessionRecord[]) =>
  records
    .map((record) => record.id)
    .filter((id) => mine.some((record) => record.id === id))
    .sort();

interface StoreFactory {
  /** A store over the suite's backend. */
  open(): Promise<SessionStore>;
  /** Another store over the same backend, as a restarted replica (or another one) would see it. */
  reopen(): Promise<SessionStore>;
}

function sessionStoreBehaviour(factory: () => StoreFactory) {
  let store: SessionStore;
  beforeAll(async () => {
    store = await factory().open();
  });

  it("stores records and reads them back as they were", async () => {
    const { now, make, entity } = scope();
    const bare = make({ lastActiveAt: now - 500 });
    const full = make({ lastActiveAt: now - 400, userId: "user-1", entityId: entity });
    await store.put(bare);
    await store.put(full);
    expect(await store.get(bare.id)).toEqual(bare);
    expect(Object.keys((await store.get(bare.id)) ?? {}).sort()).toEqual(["createdAt", "id", "lastActiveAt", "ownerKeyHash"]);
    expect(await store.get(full.id)).toEqual(full);
    expect(await store.get("no-such-session")).toBeUndefined();
    // put replaces the whole record.
    const { entityId: _, ...withoutEntity } = full;
    await store.put(withoutEntity);
    expect(await store.get(full.id)).toEqual(withoutEntity);
  });

  it("finds the newest session of an entity for the same user and owner only", async () => {
    const { now, make, entity } = scope();
    const a = make({ lastActiveAt: now - 3000, entityId: entity, userId: "u" });
    const b = make({ lastActiveAt: now - 2000, entityId: entity, userId: "u" });
    const otherUser = make({ lastActiveAt: now - 1000, entityId: entity, userId: "other" });
    const otherOwner = make({ lastActiveAt: now - 500, entityId: entity, userId: "u", ownerKeyHash: `key-${randomUUID()}` });
    const noUser = make({ lastActiveAt: now - 100, entityId: entity });
    const otherEntity = make({ lastActiveAt: now, entityId: `${entity}-2`, userId: "u" });
    for (const record of [a, b, otherUser, otherOwner, noUser, otherEntity]) await store.put(record);
    const owner = a.ownerKeyHash;
    expect((await store.newestForEntity(entity, "u", owner))?.id).toBe(b.id);
    expect(await store.newestForEntity(entity, undefined, owner)).toEqual(noUser);
    expect((await store.newestForEntity(entity, "other", owner))?.id).toBe(otherUser.id);
    expect((await store.newestForEntity(entity, "u", otherOwner.ownerKeyHash))?.id).toBe(otherOwner.id);
    expect(await store.newestForEntity(entity, "nobody", owner)).toBeUndefined();
    await store.delete(b.id);
    expect((await store.newestForEntity(entity, "u", owner))?.id).toBe(a.id);
  });

  it("follows touches, and ignores touches of unknown sessions", async () => {
    const { now, make, entity } = scope();
    const a = make({ lastActiveAt: now - 3000, entityId: entity, userId: "u" });
    const b = make({ lastActiveAt: now - 2000, entityId: entity, userId: "u" });
    await store.put(a);
    await store.put(b);
    await store.touch(a.id, now);
    expect(await store.newestForEntity(entity, "u", a.ownerKeyHash)).toEqual({ ...a, lastActiveAt: now });
    expect((await store.get(a.id))?.lastActiveAt).toBe(now);
    await store.touch("no-such-session", now);
    expect(await store.get("no-such-session")).toBeUndefined();
  });

  it("lists the sessions idle since a time", async () => {
    const { now, make } = scope();
    const old = make({ lastActiveAt: now - 5000 });
    const recent = make({ lastActiveAt: now - 1000 });
    const current = make({ lastActiveAt: now });
    const mine = [old, recent, current];
    for (const record of mine) await store.put(record);
    expect(ids(await store.idleSince(now - 2000), mine)).toEqual([old.id]);
    expect(ids(await store.idleSince(now + 1), mine)).toEqual(mine.map((record) => record.id).sort());
    expect((await store.idleSince(now - 2000)).find((record) => record.id === old.id)).toEqual(old);
    await store.touch(old.id, now + 5);
    expect(ids(await store.idleSince(now - 2000), mine)).toEqual([]);
  });

  it("deletes a session from every view, and deleting an unknown one is fine", async () => {
    const { now, make, entity } = scope();
    const record = make({ lastActiveAt: now - 5000, entityId: entity });
    await store.put(record);
    await store.delete(record.id);
    expect(await store.get(record.id)).toBeUndefined();
    expect(await store.newestForEntity(entity, undefined, record.ownerKeyHash)).toBeUndefined();
    expect(ids(await store.idleSince(now), [record])).toEqual([]);
    await expect(store.delete(record.id)).resolves.toBeUndefined();
  });

  it("keeps records for another store over the same storage", async () => {
    const { now, make, entity } = scope();
    const record = make({ lastActiveAt: now - 100, entityId: entity, userId: "u" });
    await store.put(record);
    const other = await factory().reopen();
    expect(await other.get(record.id)).toEqual(record);
    expect(await other.newestForEntity(entity, "u", record.ownerKeyHash)).toEqual(record);
  });

  it("answers ping", async () => {
    expect(await store.ping()).toBe(true);
  });

  it("raises a session's seq reservation, never lowers it, and keeps it with the record", async () => {
    const { now, make } = scope();
    const record = make({ lastActiveAt: now, seqReserved: 10_000 });
    await store.put(record);
    await store.reserveSeq(record.id, 25_000);
    await store.reserveSeq(record.id, 20_000);
    expect((await store.get(record.id))?.seqReserved).toBe(25_000);
    expect(
      (
        await factory()
          .reopen()
          .then((other) => other.get(record.id))
      )?.seqReserved,
    ).toBe(25_000);
    // A touch does not lose it.
    await store.touch(record.id, now + 1);
    expect((await store.get(record.id))?.seqReserved).toBe(25_000);
    // No record, no reservation: nothing comes back to life.
    await store.reserveSeq("no-such-session", 5);
    expect(await store.get("no-such-session")).toBeUndefined();
  });

  it("hands a parked stream to one revival only, and deletes it with the session", async () => {
    const { now, make } = scope();
    const record = make({ lastActiveAt: now });
    await store.put(record);
    const parked = { seq: 42, droppedUpTo: 39, frames: [{ seq: 40, text: '{"type":"out"}' }] };
    await store.parkStream(record.id, parked);
    const other = await factory().reopen();
    expect(await other.takeParkedStream(record.id)).toEqual(parked);
    expect(await store.takeParkedStream(record.id)).toBeUndefined();
    await store.parkStream(record.id, parked);
    await store.delete(record.id);
    expect(await store.takeParkedStream(record.id)).toBeUndefined();
  });
}

describe("LocalSessionStore", () => {
  const root = mkdtempSync(join(tmpdir(), "session-store-"));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  sessionStoreBehaviour(() => ({ open: () => LocalSessionStore.open(root), reopen: () => LocalSessionStore.open(root) }));
});

describe("LocalFleetLock", () => {
  const lock = new LocalFleetLock();
  fleetLockBehaviour(() => [lock, lock]);
});

const MODES: readonly RedisTestMode[] = ["standalone", "cluster", "sentinel", "tls"];

for (const mode of MODES) {
  describe(`Redis ${mode}`, () => {
    let servers: RedisServers;
    let config: RedisConfig;
    let redis: RedisClient;
    /** A second replica's connection. */
    let other: RedisClient;
    /** Sees the keys as they are in Redis (no key prefix). */
    let bare: RedisClient;
    const prefix = `test-${mode}:`;

    beforeAll(async () => {
      servers = await startRedis(mode);
      config = redisConfig(servers.env, { REDIS_KEY_PREFIX: prefix });
      [redis, other, bare] = await Promise.all([
        connectRedis(config, { name: "test" }),
        connectRedis(config, { name: "other" }),
        connectRedis({ ...config, keyPrefix: "" }, { name: "bare" }),
      ]);
    });
    afterAll(async () => {
      await Promise.all([redis, other, bare].filter(Boolean).map((client) => closeRedis(client)));
      await servers?.stop();
    });

    describe("RedisSessionStore", () => {
      sessionStoreBehaviour(() => ({
        open: async () => new RedisSessionStore(redis, { ttlMs: HOUR }),
        reopen: async () => new RedisSessionStore(other, { ttlMs: HOUR }),
      }));
    });

    describe("RedisSessionStore in Redis", () => {
      it("gives records and indexes a TTL from their last use, moved on by touch, never back", async () => {
        const store = new RedisSessionStore(redis, { ttlMs: HOUR, graceMs: 60_000 });
        const { now, make, entity } = scope();
        const record = make({ lastActiveAt: now - HOUR / 2, entityId: entity });
        await store.put(record);
        const near = (ms: number, expected: number) => expect(Math.abs(ms - expected)).toBeLessThan(5_000);
        near(await redis.pttl(sessionRecordKey(record.id)), HOUR / 2 + 60_000);
        await store.touch(record.id, now);
        near(await redis.pttl(sessionRecordKey(record.id)), HOUR + 60_000);
        near(await redis.pttl(sessionEntityIndexKey(record.ownerKeyHash, entity, undefined)), HOUR + 60_000);
        // Touches from two replicas may arrive out of order: the later use wins.
        await store.touch(record.id, now - 10_000);
        expect((await store.get(record.id))?.lastActiveAt).toBe(now);
        near(await redis.pttl(sessionRecordKey(record.id)), HOUR + 60_000);
      });

      it("lets records expire on their own, their index entries with them", async () => {
        const store = new RedisSessionStore(redis, { ttlMs: 300 });
        const { now, make, entity } = scope();
        const record = make({ lastActiveAt: now, entityId: entity });
        await store.put(record);
        expect(await store.get(record.id)).toEqual(record);
        await sleep(450);
        expect(await store.get(record.id)).toBeUndefined();
        expect(await store.newestForEntity(entity, undefined, record.ownerKeyHash)).toBeUndefined();
        expect(await redis.exists(sessionEntityIndexKey(record.ownerKeyHash, entity, undefined))).toBe(0);
      });

      it("copes with records and indexes Redis lost (eviction), and corrects stale index scores", async () => {
        const store = new RedisSessionStore(redis, { ttlMs: HOUR });
        const { now, make, entity } = scope();
        const a = make({ lastActiveAt: now - 2000, entityId: entity });
        const b = make({ lastActiveAt: now - 1000, entityId: entity });
        await store.put(a);
        await store.put(b);
        const index = sessionEntityIndexKey(a.ownerKeyHash, entity, undefined);
        await redis.del(sessionRecordKey(b.id));
        expect(await store.newestForEntity(entity, undefined, a.ownerKeyHash)).toEqual(a);
        expect(await redis.zscore(index, b.id)).toBeNull();
        expect(ids(await store.idleSince(now), [a, b])).toEqual([a.id]);
        expect(await redis.zscore(SESSIONS_BY_LAST_USE, b.id)).toBeNull();
        // Both indexes gone: the record is still there, and the next touch indexes it again.
        await redis.del(index);
        await redis.zrem(SESSIONS_BY_LAST_USE, a.id);
        expect(await store.get(a.id)).toEqual(a);
        expect(await store.newestForEntity(entity, undefined, a.ownerKeyHash)).toBeUndefined();
        await store.touch(a.id, now);
        expect((await store.newestForEntity(entity, undefined, a.ownerKeyHash))?.id).toBe(a.id);
        // A score behind its record: idleSince trusts the record and fixes the score.
        await redis.zadd(SESSIONS_BY_LAST_USE, now - HOUR, a.id);
        expect(ids(await store.idleSince(now - 1000), [a])).toEqual([]);
        expect(Number(await redis.zscore(SESSIONS_BY_LAST_USE, a.id))).toBe(now);
      });
    });

    describe("connection", () => {
      it("applies the key prefix to keys, scans and channels", async () => {
        const store = new RedisSessionStore(redis, { ttlMs: HOUR });
        const { now, make } = scope();
        const record = make({ lastActiveAt: now });
        await store.put(record);
        expect(await bare.exists(`${prefix}${sessionRecordKey(record.id)}`)).toBe(1);
        expect(await bare.exists(sessionRecordKey(record.id))).toBe(0);
        const found: string[] = [];
        for await (const key of scanKeys(redis, "session:*")) found.push(key);
        expect(found).toContain(sessionRecordKey(record.id));
        expect(found.every((key) => !key.startsWith(prefix))).toBe(true);

        const subscriber = await createSubscriber(redis);
        try {
          const received = new Promise<[string, string]>((resolveMessage) =>
            subscriber.once("message", (channel, message) => resolveMessage([channel, message])),
          );
          await subscriber.subscribe(channelName(redis, "events"));
          expect(channelName(redis, "events")).toBe(`${prefix}events`);
          await bare.publish(`${prefix}events`, "hello");
          expect(await received).toEqual([`${prefix}events`, "hello"]);
        } finally {
          await closeRedis(subscriber);
        }
      });

      it("fails calls at once while Redis is down, says so, and recovers by itself with the data", async () => {
        const store = new RedisSessionStore(redis, { ttlMs: HOUR });
        const { now, make } = scope();
        const record = make({ lastActiveAt: now });
        await store.put(record);
        const subscriber = await createSubscriber(redis);
        const messages: string[] = [];
        subscriber.on("message", (_channel, message) => messages.push(message));
        await subscriber.subscribe(channelName(redis, "after-outage"));
        try {
          await servers.down();
          try {
            const failed = await timed(store.get(record.id));
            expect(failed.rejected).toBe(true);
            expect(failed.ms).toBeLessThan(TIMEOUT_S * 1000 + SLACK_MS);
            expect(isRedisUnavailable(failed.error), String(failed.error)).toBe(true);
            const write = await timed(store.touch(record.id, now + 1));
            expect(write.ms).toBeLessThan(TIMEOUT_S * 1000 + SLACK_MS);
            expect(isRedisUnavailable(write.error), String(write.error)).toBe(true);
            expect(await store.ping()).toBe(false);
            const health = await pingRedis(redis, 1000);
            expect(health.ok).toBe(false);
            expect(health.error).toBeTruthy();
          } finally {
            await servers.up();
          }
          const recoveredMs = await eventually("ready again", async () => (await pingRedis(redis, 1000)).ok);
          expect(recoveredMs).toBeLessThan(10_000);
          expect(await store.get(record.id)).toEqual(record);
          // Subscriptions are renewed on the new connection.
          await eventually("the subscription is back", async () => {
            await bare.publish(`${prefix}after-outage`, "back");
            await sleep(50);
            return messages.includes("back");
          });
        } finally {
          await closeRedis(subscriber);
        }
      });

      it("fails calls within the command timeout when Redis stops answering, and recovers", async () => {
        const store = new RedisSessionStore(redis, { ttlMs: HOUR });
        const { now, make } = scope();
        const record = make({ lastActiveAt: now });
        await store.put(record);
        servers.freeze();
        try {
          const failed = await timed(store.get(record.id));
          expect(failed.rejected).toBe(true);
          expect(failed.ms).toBeLessThan(TIMEOUT_S * 1000 + SLACK_MS);
          expect(isRedisUnavailable(failed.error), String(failed.error)).toBe(true);
          const health = await timed(pingRedis(redis, 1000).then((result) => expect(result.ok).toBe(false)));
          expect(health.rejected).toBe(false);
        } finally {
          servers.thaw();
        }
        await eventually("ready again", async () => (await pingRedis(redis, 1000)).ok);
        expect(await store.get(record.id)).toEqual(record);
      });
    });

    if (mode === "standalone" || mode === "cluster") {
      describe("RedisFleetLock", () => {
        fleetLockBehaviour(() => [fleetLock(redis), fleetLock(other)]);

        it("never releases a lock another holder took over, and tells the work it lost it", async () => {
          const name = `lock-${randomUUID()}`;
          let aborted = false;
          const a = fleetLock(redis).runOnce(name, 150, async (signal) => {
            // Someone else holds it now (as after an expiry during an outage).
            await redis.set(`lock:${name}`, "someone-else", "PX", 10_000);
            await new Promise<void>((resolveAbort) => signal.addEventListener("abort", () => resolveAbort()));
            aborted = true;
          });
          expect(await a).toEqual({ ran: true, value: undefined });
          expect(aborted).toBe(true);
          expect(await redis.get(`lock:${name}`)).toBe("someone-else");
          expect(await fleetLock(other).runOnce(name, 1000, async () => {})).toEqual({ ran: false });
          await redis.del(`lock:${name}`);
        });
      });
    }

    if (mode === "standalone") {
      it("fails fast at start-up when Redis is configured but not there, saying where and why", async () => {
        const port = await freePort();
        const absent = redisConfig({ REDIS_URL: `redis://127.0.0.1:${port}` });
        const started = Date.now();
        const error = await connectRedis(absent).catch((caught: unknown) => caught);
        expect(Date.now() - started).toBeLessThan(2 * TIMEOUT_S * 1000 + SLACK_MS);
        expect(error).toBeInstanceOf(RedisUnavailableError);
        expect(String(error)).toContain(`127.0.0.1:${port}`);
        expect(String(error)).toContain("REDIS_URL");
        expect(String(error)).toMatch(/ECONNREFUSED/);
      });

      it("hands out no more connections than REDIS_MAX_CONNECTIONS", async () => {
        const capped = await connectRedis({ ...config, maxConnections: 2 });
        try {
          const first = await createSubscriber(capped);
          await expect(createSubscriber(capped)).rejects.toThrow("REDIS_MAX_CONNECTIONS (2) reached");
          await closeRedis(first);
          await eventually("the connection is given back", async () => {
            await closeRedis(await createSubscriber(capped));
            return true;
          });
        } finally {
          await closeRedis(capped);
        }
      });

      it("authenticates with REDIS_PASSWORD, and refuses a wrong one with the server's reason", async () => {
        const locked = await startRedis("standalone", { password: "the-password-0123456789" });
        try {
          expect(locked.env.REDIS_PASSWORD).toBe("the-password-0123456789");
          const client = await connectRedis(redisConfig(locked.env));
          expect(await client.ping()).toBe("PONG");
          await closeRedis(client);
          const error = await connectRedis(redisConfig(locked.env, { REDIS_PASSWORD: "not-the-password" })).catch((caught: unknown) => caught);
          expect(error).toBeInstanceOf(RedisUnavailableError);
          expect(String(error)).toMatch(/WRONGPASS/);
        } finally {
          await locked.stop();
        }
      });
    }

    if (mode === "tls") {
      it("verifies the server against the CA, unless REDIS_TLS_INSECURE", async () => {
        const pkiDir = mkdtempSync(join(tmpdir(), "redis-other-ca-"));
        try {
          const otherCa = makeRedisPki(pkiDir).ca;
          const error = await connectRedis(redisConfig(servers.env, { REDIS_TLS_CA_CERT_FILE: otherCa })).catch((caught: unknown) => caught);
          expect(String(error)).toMatch(/certificate|verify/i);
          const insecure = await connectRedis(redisConfig(servers.env, { REDIS_TLS_CA_CERT_FILE: otherCa, REDIS_TLS_INSECURE: "true" }));
          expect(await insecure.ping()).toBe("PONG");
          await closeRedis(insecure);
        } finally {
          rmSync(pkiDir, { recursive: true, force: true });
        }
      });

      it("checks the host name only when REDIS_TLS_CHECK_HOSTNAME is on", async () => {
        const port = servers.ports[0]!;
        // The certificate names localhost only; the URL says 127.0.0.1.
        const error = await connectRedis(redisConfig(servers.env, { REDIS_TLS_CHECK_HOSTNAME: "true" })).catch((caught: unknown) => caught);
        expect(String(error)).toMatch(/altnames|host ?name/i);
        const byName = await connectRedis(redisConfig(servers.env, { REDIS_URL: `rediss://localhost:${port}`, REDIS_TLS_CHECK_HOSTNAME: "true" }));
        expect(await byName.ping()).toBe("PONG");
        await closeRedis(byName);
      });

      it("presents the client certificate the server asks for", async () => {
        const { REDIS_TLS_CERT_FILE: _cert, REDIS_TLS_KEY_FILE: _key, ...withoutClientCert } = servers.env;
        const error = await connectRedis(redisConfig(withoutClientCert)).catch((caught: unknown) => caught);
        expect(error).toBeInstanceOf(RedisUnavailableError);
      });
    }

    if (mode === "sentinel") {
      it("follows a failover to the new master", async () => {
        const store = new RedisSessionStore(redis, { ttlMs: HOUR });
        const { now, make } = scope();
        const record = make({ lastActiveAt: now });
        await store.put(record);
        const port = async () => /tcp_port:(\d+)/.exec(await redis.info("server"))?.[1];
        expect(await port()).toBe(String(servers.ports[0]));
        await servers.failover();
        // The old master may take writes for a moment until the sentinels demote it: wait for the switch.
        await eventually("the client is on the new master", async () => (await port()) === String(servers.ports[1]));
        // The client may still be re-establishing its connection (commands fail fast, no offline queue): a write goes through once it has.
        await eventually("a write reaches the new master", async () => {
          await store.touch(record.id, now + 1);
          return (await store.get(record.id))?.lastActiveAt === now + 1;
        });
        expect((await store.get(record.id))?.lastActiveAt).toBe(now + 1);
      });
    }
  });
}

/** The same for both lock implementations: `[a, b]` are two replicas' locks (the same object in process). */
function fleetLockBehaviour(locks: () => [FleetLock, FleetLock]) {
  it("runs the work on one holder at a time, and again once it is released", async () => {
    const [a, b] = locks();
    const name = `lock-${randomUUID()}`;
    let running = 0;
    let most = 0;
    const work = async () => {
      running++;
      most = Math.max(most, running);
      await sleep(150);
      running--;
      return "done";
    };
    const results = await Promise.all([a.runOnce(name, 5_000, work), b.runOnce(name, 5_000, work), a.runOnce(name, 5_000, work)]);
    expect(results.filter((result) => result.ran)).toEqual([{ ran: true, value: "done" }]);
    expect(most).toBe(1);
    expect(await b.runOnce(name, 5_000, work)).toEqual({ ran: true, value: "done" });
  });

  it("keeps the round taken for holdMs after the work ends", async () => {
    const [a, b] = locks();
    const name = `lock-${randomUUID()}`;
    expect((await a.runOnce(name, 5_000, async () => 1, { holdMs: 400 })).ran).toBe(true);
    expect(await b.runOnce(name, 5_000, async () => 2)).toEqual({ ran: false });
    await sleep(500);
    expect(await b.runOnce(name, 5_000, async () => 2)).toEqual({ ran: true, value: 2 });
  });

  it("releases at once when the work fails, so that another holder may try", async () => {
    const [a, b] = locks();
    const name = `lock-${randomUUID()}`;
    await expect(
      a.runOnce(name, 5_000, async () => {
        throw new Error("sweep failed");
      }),
    ).rejects.toThrow("sweep failed");
    expect(await b.runOnce(name, 5_000, async () => "retried")).toEqual({ ran: true, value: "retried" });
  });

  it("renews the lock while the work runs past its TTL", async () => {
    const [a, b] = locks();
    const name = `lock-${randomUUID()}`;
    const long = a.runOnce(name, 150, async (signal) => {
      await sleep(500);
      return signal.aborted;
    });
    await sleep(350);
    expect(await b.runOnce(name, 150, async () => "stolen")).toEqual({ ran: false });
    expect(await long).toEqual({ ran: true, value: false });
  });
}
