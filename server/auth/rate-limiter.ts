import { RATE_WINDOWS, type RateLimits, type RateWindow } from "./key-store.ts";

/**
 * Per-key rate limits: fixed windows (second, minute, hour, day, month)
 * aligned to UTC, counted in a CounterBackend (in memory for one server,
 * Redis across replicas). A request is admitted only when every window of the
 * key has room, and then counts in all of them, atomically; a refused request
 * counts in none, so a client that keeps retrying while limited is not pushed
 * further back.
 */

/** One counter of one window; `id` names it within its scope ("minute:1718000000000"). */
export interface Bucket {
  id: string;
  limit: number;
  /** Epoch ms when the window ends (the counter may be dropped then). */
  endsAt: number;
}

export interface CounterBackend {
  /** When every bucket is under its limit, add one to each, all or nothing; the counts after (when refused: as they are). */
  consume(scope: string, buckets: readonly Bucket[]): Promise<{ allowed: boolean; counts: number[] }>;
  /** Add one to each bucket whatever its count; the counts after. */
  add(scope: string, buckets: readonly Bucket[]): Promise<number[]>;
}

/** What the X-RateLimit-* and Retry-After headers say. */
export interface RateState {
  limit: number;
  remaining: number;
  /** Epoch ms when the window resets. */
  resetAt: number;
  /** Whole seconds until that reset, at least 1 (Retry-After when refused). */
  retryAfterSeconds: number;
}

export interface RateDecision extends RateState {
  allowed: boolean;
  /** The window described: when refused, the refusing one that resets last; else the one with the fewest requests left. */
  window: RateWindow;
}

const FIXED_MS: Record<Exclude<RateWindow, "month">, number> = { second: 1000, minute: 60_000, hour: 3_600_000, day: 86_400_000 };

/** The UTC window holding `now`: [start, end). Months are calendar months. */
export function windowBounds(window: RateWindow, now: number): { start: number; end: number } {
  if (window === "month") {
    const date = new Date(now);
    return { start: Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), 1), end: Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 1) };
  }
  const size = FIXED_MS[window];
  const start = Math.floor(now / size) * size;
  return { start, end: start + size };
}

export function secondsUntil(at: number, now: number): number {
  return Math.max(1, Math.ceil((at - now) / 1000));
}

export class RateLimiter {
  readonly #backend: CounterBackend;
  readonly #now: () => number;

  constructor(backend: CounterBackend, now: () => number = Date.now) {
    this.#backend = backend;
    this.#now = now;
  }

  /** Count one request of `scope` (a key hash) against `limits`; undefined when the key has no limit at all. */
  async hit(scope: string, limits: RateLimits): Promise<RateDecision | undefined> {
    const now = this.#now();
    const windows = RATE_WINDOWS.filter((window) => limits[window] !== undefined);
    if (windows.length === 0) return undefined;
    const buckets = windows.map((window): Bucket => {
      const { start, end } = windowBounds(window, now);
      return { id: `${window}:${start}`, limit: limits[window]!, endsAt: end };
    });
    const { allowed, counts } = await this.#backend.consume(scope, buckets);
    const states = windows.map((window, i) => ({ window, limit: buckets[i]!.limit, count: counts[i] ?? 0, resetAt: buckets[i]!.endsAt }));
    let chosen = states[0]!;
    if (allowed) {
      // The tightest window; on a tie the shorter one (windows are shortest first).
      for (const state of states) if (state.limit - state.count < chosen.limit - chosen.count) chosen = state;
    } else {
      chosen = states.filter((s) => s.count >= s.limit).reduce((a, b) => (b.resetAt > a.resetAt ? b : a));
    }
    return {
      allowed,
      window: chosen.window,
      limit: chosen.limit,
      remaining: Math.max(0, chosen.limit - chosen.count),
      resetAt: chosen.resetAt,
      retryAfterSeconds: secondsUntil(chosen.resetAt, now),
    };
  }
}

/** Counters of one process (the embedded mode), dropped when their window ends. */
export class MemoryCounters implements CounterBackend {
  readonly #counters = new Map<string, { count: number; endsAt: number }>();
  readonly #now: () => number;
  #nextSweep = 0;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  async consume(scope: string, buckets: readonly Bucket[]): Promise<{ allowed: boolean; counts: number[] }> {
    const counters = buckets.map((bucket) => this.#counter(scope, bucket));
    if (counters.some((counter, i) => counter.count >= buckets[i]!.limit)) return { allowed: false, counts: counters.map((c) => c.count) };
    return { allowed: true, counts: counters.map((counter) => ++counter.count) };
  }

  async add(scope: string, buckets: readonly Bucket[]): Promise<number[]> {
    return buckets.map((bucket) => ++this.#counter(scope, bucket).count);
  }

  /** Live counters (tests). */
  get size(): number {
    return this.#counters.size;
  }

  #counter(scope: string, bucket: Bucket): { count: number; endsAt: number } {
    const now = this.#now();
    if (now >= this.#nextSweep) {
      for (const [id, counter] of this.#counters) if (counter.endsAt <= now) this.#counters.delete(id);
      this.#nextSweep = now + 1000;
    }
    const id = `${scope}|${bucket.id}`;
    let counter = this.#counters.get(id);
    if (!counter || counter.endsAt <= now) {
      counter = { count: 0, endsAt: bucket.endsAt };
      this.#counters.set(id, counter);
    }
    return counter;
  }
}
