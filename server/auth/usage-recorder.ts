import type { Logger } from "pino";
import type { KeyStore, UsageDelta } from "./key-store.ts";

/**
 * Usage counters of managed keys, counted in memory and added to the store
 * every few seconds (and at shutdown): a store write per request would cost
 * more than the request's own auth. What this replica has not flushed yet is
 * added to what the admin API shows.
 */
export class UsageRecorder {
  readonly #store: KeyStore;
  readonly #logger: Logger;
  #pending = new Map<string, UsageDelta>();
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> = Promise.resolve();

  constructor(store: KeyStore, logger: Logger) {
    this.#store = store;
    this.#logger = logger;
  }

  record(keyHash: string, at: number = Date.now()): void {
    const delta = this.#pending.get(keyHash);
    if (delta) {
      delta.requests++;
      delta.lastUsedAt = Math.max(delta.lastUsedAt, at);
    } else {
      this.#pending.set(keyHash, { keyHash, requests: 1, lastUsedAt: at });
    }
  }

  /** Not flushed yet, for one key. */
  pending(keyHash: string): UsageDelta | undefined {
    return this.#pending.get(keyHash);
  }

  start(intervalMs: number): void {
    this.#timer = setInterval(() => void this.flush(), intervalMs);
    this.#timer.unref();
  }

  /** Add what was counted to the store; on failure the counts are kept for the next flush. */
  flush(): Promise<void> {
    this.#flushing = this.#flushing.then(async () => {
      if (this.#pending.size === 0) return;
      const batch = this.#pending;
      this.#pending = new Map();
      try {
        await this.#store.addUsage([...batch.values()]);
      } catch (error) {
        this.#logger.warn({ err: error, keys: batch.size }, "key usage could not be saved; kept for the next try");
        for (const delta of batch.values()) this.#merge(delta);
      }
    });
    return this.#flushing;
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush();
  }

  #merge(delta: UsageDelta): void {
    const current = this.#pending.get(delta.keyHash);
    if (!current) this.#pending.set(delta.keyHash, delta);
    else {
      current.requests += delta.requests;
      current.lastUsedAt = Math.max(current.lastUsedAt, delta.lastUsedAt);
    }
  }
}
