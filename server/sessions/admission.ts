/**
 * Admission control: how much work this service takes on.
 *
 * - MAX_CONCURRENT_EXECUTIONS: execs running at once across the fleet. With
 *   Redis, a sorted set of exec leases (member = lease id, score = expiry):
 *   a Lua script drops expired leases and adds one only while fewer than the
 *   limit remain, atomically; a running exec renews its lease, so the slots of
 *   a replica that died come back once its leases expire. Without Redis, a
 *   counter in memory.
 * - MAX_SESSIONS_PER_ENTITY: new sessions of one entity_id of one key while
 *   that many are live on this replica (a limit: 429 / close 4008).
 * - MAX_LIVE_SANDBOXES: sandboxes held by sessions on this replica; at the cap
 *   the least recently used idle one is reclaimed (the session manager's
 *   callback), else the start is refused (capacity: 503).
 * - MAX_SANDBOXES_PER_PRINCIPAL: the same within one principal's sessions (an
 *   API key and end user), so one tenant's burst reclaims its own sandboxes,
 *   not everyone's; when none of its own is idle, a limit (429).
 *
 * Work beyond the exec limit waits in a bounded queue (ADMISSION_QUEUE_SIZE
 * waiters, each at most ADMISSION_QUEUE_TIMEOUT); past either bound it is
 * refused with a Retry-After, never left hanging.
 */
import { randomUUID } from "node:crypto";
import { LuaScript } from "../auth/redis-script.ts";
import type { RedisClient } from "../redis/connection.ts";

export interface AdmissionOptions {
  maxConcurrentExecutions: number;
  maxSessionsPerEntity: number;
  /** 0: no cap. */
  maxLiveSandboxes: number;
  /** 0: no cap. */
  maxSandboxesPerPrincipal?: number;
  /** Waiters allowed in the exec queue (0: refuse at once). */
  queueSize: number;
  /** Longest wait in the queue, ms. */
  queueTimeoutMs: number;
  /** Redis: the fleet-wide exec counter lives there (key `<prefix>admission:execs`). */
  redis?: RedisClient;
  /** Lifetime of one exec lease in Redis, renewed at a third of it. Default 30 s. */
  leaseMs?: number;
  /** How often a waiter re-checks (Redis, and whether its caller went away) when no local release woke it. Default 200 ms. */
  pollMs?: number;
}

/**
 * A refusal: `limit` (a per-caller limit: 429 / 4008), `capacity` (the service
 * is full: 503 / 4008) or `draining` (the server is stopping: 503 / 1012, come
 * back to another replica or to this one restarted).
 */
export class AdmissionError extends Error {
  readonly kind: "limit" | "capacity" | "draining";
  readonly retryAfterSeconds: number;
  constructor(kind: "limit" | "capacity" | "draining", message: string, retryAfterSeconds: number) {
    super(message);
    this.name = "AdmissionError";
    this.kind = kind;
    this.retryAfterSeconds = retryAfterSeconds;
  }
  get status(): 429 | 503 {
    return this.kind === "limit" ? 429 : 503;
  }
}

/** What ensureSandboxRoom counts and reclaims: this replica's sandboxes, and the starting session's principal's. */
export interface SandboxRoom {
  live(): number;
  principalLive(): number;
  /** Free the least recently used idle sandbox (of anyone, or of this principal); false when none is idle. */
  reclaim(): Promise<boolean>;
  reclaimPrincipal(): Promise<boolean>;
}

/** One admitted exec: release it when the exec ends (idempotent). */
export interface ExecPermit {
  release(): void;
}

export interface AdmissionStats {
  running: number;
  queued: number;
  admitted: number;
  refused: number;
}

/** KEYS[1] leases; ARGV: now, expiry, limit, id. Returns 1 when admitted. */
const ACQUIRE = new LuaScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
  redis.call('PEXPIRE', KEYS[1], math.max(1, tonumber(ARGV[2]) - tonumber(ARGV[1])) * 2)
  return 1
end
return 0`);

const EXEC_KEY = "admission:execs";

export class Admission {
  readonly #options: AdmissionOptions;
  readonly #leaseMs: number;
  readonly #pollMs: number;
  /** Local permits (in memory: the whole count; with Redis: ours, for renewal). */
  readonly #held = new Map<string, NodeJS.Timeout | undefined>();
  readonly #waiters: Array<() => void> = [];
  #admitted = 0;
  #refused = 0;
  #draining = false;

  constructor(options: AdmissionOptions) {
    this.#options = options;
    this.#leaseMs = options.leaseMs ?? 30_000;
    this.#pollMs = options.pollMs ?? 200;
  }

  get options(): Readonly<AdmissionOptions> {
    return this.#options;
  }

  stats(): AdmissionStats {
    return { running: this.#held.size, queued: this.#waiters.length, admitted: this.#admitted, refused: this.#refused };
  }

  /**
   * A slot for one exec, waiting in the bounded queue when none is free.
   * Rejects with AdmissionError (capacity) when the queue is full or the wait
   * runs out, or when `cancelled()` turns true (the caller went away).
   */
  async acquireExec(cancelled: () => boolean = () => false): Promise<ExecPermit> {
    const id = randomUUID();
    if (this.#draining) throw this.#drainingError();
    if (this.#waiters.length === 0 && (await this.#tryAcquire(id))) return this.#permit(id);
    if (this.#waiters.length >= this.#options.queueSize) {
      this.#refused++;
      throw this.#full("the execution queue is full");
    }
    const deadline = Date.now() + this.#options.queueTimeoutMs;
    for (;;) {
      const remaining = deadline - Date.now();
      if (remaining <= 0 || cancelled()) {
        this.#refused++;
        throw this.#full(
          cancelled()
            ? "the caller went away while waiting for an execution slot"
            : `no execution slot became free within ${this.#options.queueTimeoutMs / 1000} s`,
        );
      }
      // Woken by a local release, or after a poll interval (Redis: another replica may have released; the caller may have gone).
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          const index = this.#waiters.indexOf(wake);
          if (index >= 0) this.#waiters.splice(index, 1);
          resolve();
        };
        const timer = setTimeout(wake, Math.min(remaining, this.#pollMs));
        this.#waiters.push(wake);
      });
      if (this.#draining) throw this.#drainingError();
      if (await this.#tryAcquire(id)) return this.#permit(id);
    }
  }

  /** The server is stopping: refuse every new exec, and those waiting in the queue now. */
  drain(): void {
    this.#draining = true;
    for (const wake of [...this.#waiters]) wake();
  }

  /** Refuse a new session of `entityId` when it already has `liveCount` (>= MAX_SESSIONS_PER_ENTITY). */
  checkNewSession(entityId: string, liveCount: number): void {
    if (liveCount < this.#options.maxSessionsPerEntity) return;
    this.#refused++;
    throw new AdmissionError(
      "limit",
      `entity ${entityId} already has ${liveCount} sessions (MAX_SESSIONS_PER_ENTITY=${this.#options.maxSessionsPerEntity})`,
      30,
    );
  }

  /**
   * Make room for one more sandbox on this replica: at the principal's cap,
   * reclaim its least recently used idle sandbox (a limit when none is idle);
   * at MAX_LIVE_SANDBOXES, anyone's (capacity when none is idle).
   * `reserve` is called in the same tick as the check that found room, so that
   * concurrent starts cannot all see the same free slot (it must make the
   * counts include the caller from then on).
   */
  async ensureSandboxRoom(room: SandboxRoom, reserve?: () => void): Promise<void> {
    const max = this.#options.maxLiveSandboxes;
    const perPrincipal = this.#options.maxSandboxesPerPrincipal ?? 0;
    for (;;) {
      if (perPrincipal > 0 && room.principalLive() >= perPrincipal) {
        if (await room.reclaimPrincipal()) continue;
        this.#refused++;
        throw new AdmissionError("limit", `this principal holds its maximum of ${perPrincipal} sandboxes, all in use (MAX_SANDBOXES_PER_PRINCIPAL)`, 5);
      }
      if (max > 0 && room.live() >= max) {
        if (await room.reclaim()) continue;
        this.#refused++;
        throw new AdmissionError("capacity", `this server holds its maximum of ${max} live sandboxes, all in use`, 5);
      }
      break;
    }
    reserve?.();
  }

  /** Release every local permit (shutdown); Redis leases are removed too. */
  async shutdown(): Promise<void> {
    const ids = [...this.#held.keys()];
    for (const id of ids) this.#release(id);
  }

  // ---- internals ----

  #drainingError(): AdmissionError {
    this.#refused++;
    return new AdmissionError("draining", "the server is restarting; run it again shortly", 2);
  }

  #full(message: string): AdmissionError {
    return new AdmissionError("capacity", `${message} (MAX_CONCURRENT_EXECUTIONS=${this.#options.maxConcurrentExecutions})`, 2);
  }

  async #tryAcquire(id: string): Promise<boolean> {
    const redis = this.#options.redis;
    if (!redis) {
      if (this.#held.size >= this.#options.maxConcurrentExecutions) return false;
      this.#held.set(id, undefined);
      return true;
    }
    const now = Date.now();
    const ok = await ACQUIRE.run(redis, [EXEC_KEY], [now, now + this.#leaseMs, this.#options.maxConcurrentExecutions, id]);
    if (Number(ok) !== 1) return false;
    const renew = setInterval(
      () => {
        redis.zadd(EXEC_KEY, "XX", Date.now() + this.#leaseMs, id).catch(() => {});
      },
      Math.floor(this.#leaseMs / 3),
    );
    renew.unref();
    this.#held.set(id, renew);
    return true;
  }

  #permit(id: string): ExecPermit {
    this.#admitted++;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.#release(id);
      },
    };
  }

  #release(id: string): void {
    if (!this.#held.has(id)) return;
    clearInterval(this.#held.get(id));
    this.#held.delete(id);
    const redis = this.#options.redis;
    const wakeNext = () => this.#waiters[0]?.();
    if (redis) {
      redis
        .zrem(EXEC_KEY, id)
        .catch(() => {})
        .finally(wakeNext);
    } else {
      wakeNext();
    }
  }
}
