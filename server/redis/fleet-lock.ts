/**
 * A lock so that a background loop (session cleanup, orphan cleanup...) runs
 * on one replica at a time. Every replica keeps its own timer and calls
 * runOnce(); the one that takes the lock runs, the others skip this round.
 *
 * Redis: SET lock:<name> <token> NX PX ttl, renewed while the work runs, and
 * released only by its holder (compare-and-delete in Lua). If the holder dies,
 * the lock expires after ttlMs. If a renewal finds the lock gone (expired
 * during an outage, or taken over), the work's AbortSignal fires.
 * Embedded mode: the same, in process (one replica, but a slow round must
 * still not overlap the next one).
 */
import { randomUUID } from "node:crypto";
import type { RedisClient } from "./connection.ts";

export interface RunOnceOptions {
  /**
   * Keep the lock until this long after it was taken, even when the work ends
   * sooner, so that the other replicas skip the round too: a loop that runs
   * every N ms passes a little less than N. Default 0: release when done.
   * A failed run always releases, so that another replica may try.
   */
  holdMs?: number;
}

export type RunOnceResult<T> = { ran: true; value: T } | { ran: false };

export interface FleetLock {
  /** Run `work` if nobody holds `name`; ttlMs bounds how long a dead holder blocks the others. */
  runOnce<T>(name: string, ttlMs: number, work: (signal: AbortSignal) => Promise<T>, options?: RunOnceOptions): Promise<RunOnceResult<T>>;
}

const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

interface LockScripts {
  ciLockRenew(key: string, token: string, ttlMs: number): Promise<number>;
  ciLockRelease(key: string, token: string): Promise<number>;
}

/** Run `work` under a held lock: renew it every third of its TTL, then release or keep it for holdMs. */
async function holding<T>(
  lock: { renew(ttlMs: number): Promise<boolean>; release(): Promise<void>; keep(ms: number): Promise<void> },
  ttlMs: number,
  work: (signal: AbortSignal) => Promise<T>,
  holdMs: number,
): Promise<T> {
  const started = Date.now();
  const controller = new AbortController();
  let validUntil = started + ttlMs;
  const timer = setInterval(
    () => {
      lock.renew(ttlMs).then(
        (held) => {
          if (held) validUntil = Date.now() + ttlMs;
          else controller.abort(new Error("fleet lock lost: another replica may run this work now"));
        },
        () => {
          // Redis unreachable: the lock is still ours until its TTL runs out.
          if (Date.now() >= validUntil) controller.abort(new Error("fleet lock expired while Redis was unreachable"));
        },
      );
    },
    Math.max(10, Math.floor(ttlMs / 3)),
  );
  timer.unref();
  try {
    const value = await work(controller.signal);
    clearInterval(timer);
    const left = holdMs - (Date.now() - started);
    await (left > 0 ? lock.keep(left) : lock.release()).catch(() => {});
    return value;
  } catch (error) {
    clearInterval(timer);
    await lock.release().catch(() => {});
    throw error;
  }
}

export class RedisFleetLock implements FleetLock {
  readonly #redis: RedisClient;
  readonly #scripts: LockScripts;

  constructor(redis: RedisClient) {
    this.#redis = redis;
    redis.defineCommand("ciLockRenew", { numberOfKeys: 1, lua: RENEW });
    redis.defineCommand("ciLockRelease", { numberOfKeys: 1, lua: RELEASE });
    this.#scripts = redis as unknown as LockScripts;
  }

  /** Throws when Redis cannot be asked (the caller's loop logs it and tries next round). */
  async runOnce<T>(name: string, ttlMs: number, work: (signal: AbortSignal) => Promise<T>, options: RunOnceOptions = {}): Promise<RunOnceResult<T>> {
    const key = `lock:${name}`;
    const token = randomUUID();
    if ((await this.#redis.set(key, token, "PX", ttlMs, "NX")) !== "OK") return { ran: false };
    const lock = {
      renew: async (ms: number) => (await this.#scripts.ciLockRenew(key, token, ms)) === 1,
      keep: async (ms: number) => void (await this.#scripts.ciLockRenew(key, token, ms)),
      release: async () => void (await this.#scripts.ciLockRelease(key, token)),
    };
    return { ran: true, value: await holding(lock, ttlMs, work, options.holdMs ?? 0) };
  }
}

export class LocalFleetLock implements FleetLock {
  readonly #held = new Map<string, { token: string; expiresAt: number }>();

  async runOnce<T>(name: string, ttlMs: number, work: (signal: AbortSignal) => Promise<T>, options: RunOnceOptions = {}): Promise<RunOnceResult<T>> {
    const current = this.#held.get(name);
    if (current && current.expiresAt > Date.now()) return { ran: false };
    const token = randomUUID();
    this.#held.set(name, { token, expiresAt: Date.now() + ttlMs });
    const mine = () => this.#held.get(name)?.token === token;
    const lock = {
      renew: async (ms: number) => {
        if (!mine()) return false;
        this.#held.set(name, { token, expiresAt: Date.now() + ms });
        return true;
      },
      keep: async (ms: number) => {
        if (mine()) this.#held.set(name, { token, expiresAt: Date.now() + ms });
      },
      release: async () => {
        if (mine()) this.#held.delete(name);
      },
    };
    return { ran: true, value: await holding(lock, ttlMs, work, options.holdMs ?? 0) };
  }
}

const redisLocks = new WeakMap<RedisClient, RedisFleetLock>();
const localLock = new LocalFleetLock();

/** The fleet lock of `redis`, or the process-wide in-process one when there is no Redis (embedded mode). */
export function fleetLock(redis: RedisClient | undefined): FleetLock {
  if (!redis) return localLock;
  let lock = redisLocks.get(redis);
  if (!lock) {
    lock = new RedisFleetLock(redis);
    redisLocks.set(redis, lock);
  }
  return lock;
}

/** fleetLock(redis).runOnce(...): run `work` on one replica of the fleet at a time. */
export function runOnce<T>(
  redis: RedisClient | undefined,
  name: string,
  ttlMs: number,
  work: (signal: AbortSignal) => Promise<T>,
  options?: RunOnceOptions,
): Promise<RunOnceResult<T>> {
  return fleetLock(redis).runOnce(name, ttlMs, work, options);
}
