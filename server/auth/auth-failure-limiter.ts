import { type CounterBackend, type RateState, secondsUntil } from "./rate-limiter.ts";

/**
 * Limits repeated authentication failures (wrong keys) per client address:
 * after `limit` failures within one fixed window of `windowMs`, every request
 * from that address gets 429 until the window ends, whether its key is right
 * or not (else a guesser would still learn which guess is right).
 *
 * Failures are counted in the shared backend; the block itself is remembered
 * by each replica, so the check before authenticating never waits on Redis.
 * A replica learns of a block at the first failure it sees past the limit:
 * with N replicas, an address gets at most N-1 failures more than `limit`.
 */
export interface AuthFailureOptions {
  /** Failures allowed per window; the next request is refused. */
  limit: number;
  windowMs: number;
}

export interface FailureOutcome {
  failures: number;
  /** This failure reached the limit: the address is blocked from now on. */
  blocked: boolean;
  retryAfterSeconds: number;
}

/** Blocks remembered at most; past that, expired ones are swept first, then the oldest go. */
const MAX_BLOCKED = 100_000;

export class AuthFailureLimiter {
  readonly #backend: CounterBackend;
  readonly #options: AuthFailureOptions;
  readonly #now: () => number;
  /** Address -> epoch ms when its block ends. */
  readonly #blocked = new Map<string, number>();

  constructor(backend: CounterBackend, options: AuthFailureOptions, now: () => number = Date.now) {
    this.#backend = backend;
    this.#options = options;
    this.#now = now;
  }

  /** The address's block (for the 429 headers), or undefined when it is not blocked. */
  blocked(address: string): RateState | undefined {
    const until = this.#blocked.get(address);
    if (until === undefined) return undefined;
    const now = this.#now();
    if (until <= now) {
      this.#blocked.delete(address);
      return undefined;
    }
    return { limit: this.#options.limit, remaining: 0, resetAt: until, retryAfterSeconds: secondsUntil(until, now) };
  }

  /** Count one failure of the address. */
  async fail(address: string): Promise<FailureOutcome> {
    const now = this.#now();
    const start = Math.floor(now / this.#options.windowMs) * this.#options.windowMs;
    const endsAt = start + this.#options.windowMs;
    const [failures = 0] = await this.#backend.add(`authfail:${address}`, [{ id: String(start), limit: this.#options.limit, endsAt }]);
    const blocked = failures >= this.#options.limit;
    if (blocked) this.#block(address, endsAt);
    return { failures, blocked, retryAfterSeconds: secondsUntil(endsAt, now) };
  }

  #block(address: string, until: number): void {
    if (this.#blocked.size >= MAX_BLOCKED) {
      const now = this.#now();
      for (const [each, end] of this.#blocked) if (end <= now) this.#blocked.delete(each);
      for (const each of this.#blocked.keys()) {
        if (this.#blocked.size < MAX_BLOCKED) break;
        this.#blocked.delete(each);
      }
    }
    this.#blocked.set(address, until);
  }
}
