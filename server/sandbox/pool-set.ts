/**
 * One warm pool per sandbox class. Locally every sandbox runs every language
 * (one class, one pool: the sum of SANDBOX_POOL_<LANG>); pods of a language
 * with its own image or resources (LANG_IMAGE_<CODE>, K8S_*_<CODE>) form a
 * class of their own, kept warm by the sum of its languages' pool sizes. A
 * session leases from the pool of its language's class.
 */
import { type LeasedSandbox, type PoolOptions, type PoolStats, SandboxPool, sumPoolStats } from "./pool.ts";
import type { SandboxLimits, SandboxProvider } from "./provider.ts";

export interface PoolSetOptions extends Omit<PoolOptions, "target" | "lang" | "waitForWarmMs"> {
  /** SANDBOX_POOL_<LANG> by language code (0 when absent). */
  sizes: Record<string, number>;
  /** Every language code (bash has no pool size: it joins the default class's pool at no count). */
  languages: Iterable<string>;
  /** The Python preload: the pool of Python's class waits this long for it. */
  pythonWarmMs?: number;
}

export class SandboxPools {
  readonly #provider: SandboxProvider;
  readonly #pools = new Map<string, SandboxPool>();

  constructor(options: PoolSetOptions) {
    this.#provider = options.provider;
    const { sizes, languages, pythonWarmMs, ...common } = options;
    const classes = new Map<string, { lang: string; target: number }>();
    for (const lang of languages) {
      const key = options.provider.sandboxClass(lang);
      const entry = classes.get(key) ?? { lang, target: 0 };
      entry.target += sizes[lang] ?? 0;
      classes.set(key, entry);
    }
    const pythonClass = options.provider.sandboxClass("py");
    for (const [key, { lang, target }] of classes) {
      const warm = key === pythonClass && pythonWarmMs !== undefined ? { waitForWarmMs: pythonWarmMs } : {};
      this.#pools.set(key, new SandboxPool({ ...common, ...warm, target, ...(key === "default" ? {} : { lang }) }));
    }
  }

  get enabled(): boolean {
    return [...this.#pools.values()].some((pool) => pool.enabled);
  }

  /** A ready sandbox of the class that runs `lang` (default class without one), or undefined (a miss). */
  lease(sessionId?: string, lang?: string): LeasedSandbox | undefined {
    return this.#pools.get(this.#provider.sandboxClass(lang))?.lease(sessionId);
  }

  /** The classes added up, and each class's own counters when there is more than one. */
  stats(): PoolStats & { classes?: Record<string, PoolStats> } {
    const byClass = Object.fromEntries([...this.#pools].map(([key, pool]) => [key, pool.stats()]));
    const total = sumPoolStats(Object.values(byClass));
    return this.#pools.size > 1 ? { ...total, classes: byClass } : total;
  }

  start(limits: SandboxLimits, options: { warmup: boolean }): Promise<void> {
    return Promise.all([...this.#pools.values()].map((pool) => pool.start(limits, options))).then(() => undefined);
  }

  async shutdown(): Promise<void> {
    await Promise.all([...this.#pools.values()].map((pool) => pool.shutdown()));
  }
}
