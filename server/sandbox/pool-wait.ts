/**
 * Readiness waits for the warm pool (READY_WAIT_FOR_POOL_SECONDS): a server
 * that says ready while its pool is still preloading numpy, pandas and
 * matplotlib gives the first sessions a cold sandbox (over a second to the
 * first output instead of a few ms). So /ready stays 503 until the pool has
 * held its start target once, or the wait is over (then ready anyway, with a
 * warning: a slow machine still serves). Once met, it stays met: sessions
 * leasing from the pool afterwards do not make the server unready.
 */

type LogFn = (obj: Record<string, unknown>, msg?: string) => void;
export interface PoolWaitLogger {
  info: LogFn;
  warn: LogFn;
}

/** The counters the wait reads (SandboxPools.stats()). */
export interface PoolSizes {
  stats(): { enabled: boolean; size: number; target: number };
}

export type PoolWaitStatus = "off" | "not_started" | "waiting" | "reached" | "timed_out";

export interface PoolWaitReport {
  status: PoolWaitStatus;
  size: number;
  target: number;
  waitMs: number;
  /** From the warm-up's start until the target was reached or the wait ran out. */
  waitedMs?: number;
}

export interface PoolWaitOptions {
  pool: PoolSizes;
  /** READY_WAIT_FOR_POOL_SECONDS in ms; 0: do not wait. */
  waitMs: number;
  logger?: PoolWaitLogger;
}

/** How often the pool's size is looked at while waiting (refills after a failed warm-up fill it outside the warm-up promise). */
const POLL_MS = 100;

export class PoolWait {
  readonly #options: PoolWaitOptions;
  #status: PoolWaitStatus;
  #startedAt?: number;
  #waitedMs?: number;
  #poll?: NodeJS.Timeout;
  #deadline?: NodeJS.Timeout;

  constructor(options: PoolWaitOptions) {
    this.#options = options;
    const { enabled, target } = options.pool.stats();
    this.#status = enabled && target > 0 && options.waitMs > 0 ? "not_started" : "off";
  }

  /** The pool's warm-up started (after the start-up check passed): wait for it, at most waitMs from now. */
  begin(warmup: Promise<void>): void {
    if (this.#status !== "not_started") return;
    this.#status = "waiting";
    this.#startedAt = Date.now();
    // The warm-up settles in the same turn as the pool fills: no lease can come between.
    void warmup.then(() => this.#look());
    this.#poll = setInterval(() => this.#look(), POLL_MS);
    this.#poll.unref();
    this.#deadline = setTimeout(() => this.#giveUp(), this.#options.waitMs);
    this.#deadline.unref();
    this.#look();
  }

  /** Why the server is not ready yet because of the pool; undefined once it need not wait. */
  reason(): string | undefined {
    if (this.#status !== "not_started" && this.#status !== "waiting") return undefined;
    const { size, target } = this.#options.pool.stats();
    return `warming the sandbox pool (${size}/${target})`;
  }

  report(): PoolWaitReport {
    const { size, target } = this.#options.pool.stats();
    return { status: this.#status, size, target, waitMs: this.#options.waitMs, ...(this.#waitedMs !== undefined ? { waitedMs: this.#waitedMs } : {}) };
  }

  stop(): void {
    clearInterval(this.#poll);
    clearTimeout(this.#deadline);
  }

  #look(): void {
    if (this.#status !== "waiting") return;
    const { size, target } = this.#options.pool.stats();
    if (size < target) return;
    this.#settle("reached");
    this.#options.logger?.info({ size, target, waitedMs: this.#waitedMs }, "the sandbox pool reached its start target: ready");
  }

  #giveUp(): void {
    if (this.#status !== "waiting") return;
    this.#settle("timed_out");
    const { size, target } = this.#options.pool.stats();
    this.#options.logger?.warn(
      { size, target, waitMs: this.#options.waitMs },
      `the sandbox pool did not reach its start target (${size}/${target}) within READY_WAIT_FOR_POOL_SECONDS: ready anyway, the first sessions may start cold`,
    );
  }

  #settle(status: "reached" | "timed_out"): void {
    this.#status = status;
    this.#waitedMs = Date.now() - (this.#startedAt ?? Date.now());
    this.stop();
  }
}
