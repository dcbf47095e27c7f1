/**
 * The warm pool: sandboxes created ahead of need, their agent already
 * connected, so that a session that needs a sandbox leases one in a few
 * microseconds instead of waiting ~85 ms (local) or seconds (pods) for one.
 *
 * Our sandboxes are not per language (every sandbox runs every language), so
 * the guides' per-language sizes (SANDBOX_POOL_PY, _JS...) add up to one
 * target: the pool keeps `sum(SANDBOX_POOL_<LANG>)` sandboxes ready. When
 * SANDBOX_POOL_PY > 0 (and REPL_ENABLED) the provider starts agents with
 * AGENT_PYTHON_PRELOAD=1 (see app.ts), so pooled sandboxes have Python warm.
 *
 * The pool owns each sandbox and its AgentClient until `lease()` hands both to
 * a session, which then owns them (and destroys them as before). Refills run
 * in the background, a bounded number at a time, so they never take the CPU
 * from running work; a sandbox that dies while pooled is dropped and replaced.
 * Events go to the bus on topic "pool"; counters are read through `poolStats()`.
 */
import { cpus } from "node:os";
import type { EventBus } from "../events/event-bus.ts";
import { AgentClient } from "./agent-client.ts";
import type { Sandbox, SandboxLimits, SandboxProvider } from "./provider.ts";

type LogFn = (obj: Record<string, unknown>, msg?: string) => void;
export interface PoolLogger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
}

export interface PoolOptions {
  provider: SandboxProvider;
  /** A language of the sandbox class this pool keeps (pool-set.ts): its sandboxes are created for it. */
  lang?: string;
  events: EventBus;
  logger: PoolLogger;
  /** Sandboxes kept ready (sum of SANDBOX_POOL_<LANG>); 0 disables the pool. */
  target: number;
  /** SANDBOX_POOL_PARALLEL_BATCH: creations at a time during the start-up warm-up. */
  parallelBatch: number;
  /** Creations at a time while refilling in the background (default: min(parallelBatch, max(1, cpus/2))). */
  refillParallel?: number;
  /** SANDBOX_POOL_REPLENISH_INTERVAL, ms: how often the pool checks its size. */
  replenishIntervalMs: number;
  /** SANDBOX_POOL_EXHAUSTION_TRIGGER: a miss starts a refill at once (else the next interval does). */
  exhaustionTrigger: boolean;
  /** Connect to a new sandbox's agent (tests pass a fake). */
  connect?: (sandbox: Sandbox) => Promise<AgentClient>;
  /** The agents preload Python: a sandbox joins the pool once its interpreter reports `warm` (or after this many ms, warm or not). */
  waitForWarmMs?: number;
  /**
   * After a lease, while the pool still has a ready sandbox, refills wait this
   * long (ms, default 500): creating a sandbox (and preloading numpy, pandas
   * and matplotlib in it) takes the CPU for a second or more, and would
   * otherwise compete with the leasing session's first exec. An empty pool
   * refills at once.
   */
  refillDelayMs?: number;
}

/** What a lease hands over: the session owns both from then on. */
export interface LeasedSandbox {
  sandbox: Sandbox;
  agent: AgentClient;
}

export interface PoolStats {
  enabled: boolean;
  /** Sandboxes ready in the pool now. */
  size: number;
  target: number;
  /** Being created right now. */
  creating: number;
  /** Leases served from the pool. */
  hits: number;
  /** Leases asked for while the pool was empty (the session created its own). */
  misses: number;
  /** Sandboxes the pool created, and those it dropped (died while pooled) or failed to create. */
  created: number;
  dropped: number;
  failures: number;
}

interface Pooled extends LeasedSandbox {
  readyAt: number;
}

const MAX_BACKOFF_MS = 30_000;
/** Longest wait for the warm-up exec of a new pooled sandbox. */
const WARMUP_EXEC_TIMEOUT_MS = 10_000;
let warmups = 0;

/**
 * One trivial Python exec (`pass`, in the interpreter) before a sandbox joins
 * the pool: the agent's exec path and the interpreter driver's run once, so
 * that the leasing session's first exec does not pay for their first use (V8
 * compiles the agent's functions lazily, the driver's exec path is cold):
 * about 3 ms of a ~6 ms first exec. Nothing is defined and no file is made.
 */
function warmUpExec(agent: AgentClient): Promise<void> {
  const id = `pool-warmup-${++warmups}`;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      agent.forgetExec(id);
      reject(new Error(`the warm-up exec did not end within ${WARMUP_EXEC_TIMEOUT_MS} ms`));
    }, WARMUP_EXEC_TIMEOUT_MS);
    timer.unref();
    const done = () => {
      clearTimeout(timer);
      agent.forgetExec(id);
      resolve();
    };
    agent.startExec(
      { id, lang: "py", code: "pass", stdin: false, timeoutMs: WARMUP_EXEC_TIMEOUT_MS, maxOutputBytes: 4096, repl: true },
      { stage: () => {}, out: () => {}, display: () => {}, exit: done, error: done },
    );
  });
}

/** The pools of this process (one per sandbox class), started and not shut down. */
const live = new Set<SandboxPool>();

/** Counters of this process's pools added up, for /metrics (zeros and enabled: false when there is none). */
export function poolStats(): PoolStats {
  return sumPoolStats([...live].map((pool) => pool.stats()));
}

export function sumPoolStats(all: PoolStats[]): PoolStats {
  const total: PoolStats = { enabled: false, size: 0, target: 0, creating: 0, hits: 0, misses: 0, created: 0, dropped: 0, failures: 0 };
  for (const stats of all) {
    total.enabled ||= stats.enabled;
    for (const key of ["size", "target", "creating", "hits", "misses", "created", "dropped", "failures"] as const) total[key] += stats[key];
  }
  return total;
}

export class SandboxPool {
  readonly #options: PoolOptions;
  readonly #ready: Pooled[] = [];
  readonly #connect: (sandbox: Sandbox) => Promise<AgentClient>;
  #limits?: SandboxLimits;
  #creating = 0;
  /** Parallelism now: parallelBatch while warming up, refillParallel after. */
  #parallel: number;
  readonly #refillParallel: number;
  #timer?: NodeJS.Timeout;
  #stopped = false;
  #backoffUntil = 0;
  #backoffMs = 0;
  #hits = 0;
  #misses = 0;
  #created = 0;
  #dropped = 0;
  #failures = 0;
  #warmedUp?: () => void;
  readonly #refillDelayMs: number;
  #lastLeaseAt = 0;
  #delayed?: NodeJS.Timeout;
  readonly #inFlight = new Set<Promise<void>>();

  constructor(options: PoolOptions) {
    this.#options = options;
    this.#connect = options.connect ?? ((sandbox) => AgentClient.connect(sandbox));
    this.#refillParallel = Math.max(1, options.refillParallel ?? Math.min(options.parallelBatch, Math.max(1, Math.floor(cpus().length / 2))));
    this.#parallel = this.#refillParallel;
    this.#refillDelayMs = options.refillDelayMs ?? 500;
  }

  get enabled(): boolean {
    return this.#options.target > 0;
  }

  get size(): number {
    return this.#ready.length;
  }

  /**
   * Start keeping the pool full with sandboxes of these limits. With `warmup`,
   * fill it now, `parallelBatch` at a time (the promise settles once it is
   * full or a creation failed); without, the first interval tick fills it.
   */
  start(limits: SandboxLimits, options: { warmup: boolean }): Promise<void> {
    this.#limits = limits;
    live.add(this);
    if (!this.enabled) return Promise.resolve();
    this.#timer = setInterval(() => this.#fill(), this.#options.replenishIntervalMs);
    this.#timer.unref();
    if (!options.warmup) return Promise.resolve();
    this.#parallel = Math.max(this.#refillParallel, this.#options.parallelBatch);
    const warmed = new Promise<void>((resolve) => {
      this.#warmedUp = resolve;
    });
    this.#fill();
    return warmed;
  }

  /** A ready sandbox with its agent, now the caller's; undefined when the pool is empty (a miss). */
  lease(sessionId?: string): LeasedSandbox | undefined {
    if (!this.enabled || this.#stopped) return undefined;
    for (;;) {
      const pooled = this.#ready.shift();
      if (!pooled) break;
      if (pooled.agent.isClosed) {
        // Died between its exit event and now: drop it and try the next.
        this.#drop(pooled, "agent connection closed");
        continue;
      }
      this.#hits++;
      this.#lastLeaseAt = Date.now();
      // The session publishes "sandbox.leased" (with fromPool: true) once it holds the sandbox.
      this.#publishSize();
      queueMicrotask(() => this.#fill());
      return { sandbox: pooled.sandbox, agent: pooled.agent };
    }
    this.#misses++;
    this.#publish("pool.exhausted", { ...(sessionId ? { sessionId } : {}) });
    if (this.#options.exhaustionTrigger) queueMicrotask(() => this.#fill());
    return undefined;
  }

  stats(): PoolStats {
    return {
      enabled: this.enabled,
      size: this.#ready.length,
      target: this.#options.target,
      creating: this.#creating,
      hits: this.#hits,
      misses: this.#misses,
      created: this.#created,
      dropped: this.#dropped,
      failures: this.#failures,
    };
  }

  /** Stop refilling and destroy every pooled sandbox (leased ones belong to their sessions). */
  async shutdown(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    clearTimeout(this.#delayed);
    this.#warmedUp?.();
    // Creations under way finish and are destroyed in #create.
    await Promise.allSettled([...this.#inFlight]);
    const all = this.#ready.splice(0);
    await Promise.all(all.map((pooled) => this.#destroy(pooled, "shutdown")));
    this.#publishSize();
    live.delete(this);
  }

  // ---- internals ----

  #fill(): void {
    if (this.#stopped || !this.#limits) return;
    if (Date.now() < this.#backoffUntil) return;
    // Just leased, and a sandbox is still ready for the next session: let the leasing session's first exec have the CPU.
    const quietFor = this.#lastLeaseAt + this.#refillDelayMs - Date.now();
    if (quietFor > 0 && this.#ready.length > 0 && this.#ready.length + this.#creating < this.#options.target) {
      if (!this.#delayed) {
        this.#delayed = setTimeout(() => {
          this.#delayed = undefined;
          this.#fill();
        }, quietFor);
        this.#delayed.unref();
      }
      return;
    }
    while (this.#ready.length + this.#creating < this.#options.target && this.#creating < this.#parallel) {
      const task = this.#create().finally(() => this.#inFlight.delete(task));
      this.#inFlight.add(task);
    }
    if (this.#creating === 0 && this.#ready.length >= this.#options.target) this.#warmupDone();
  }

  #warmupDone(): void {
    this.#parallel = this.#refillParallel;
    const done = this.#warmedUp;
    this.#warmedUp = undefined;
    done?.();
  }

  async #create(): Promise<void> {
    this.#creating++;
    const started = Date.now();
    let sandbox: Sandbox | undefined;
    try {
      sandbox = await this.#options.provider.create({ sessionId: "pool", limits: this.#limits!, ...(this.#options.lang ? { lang: this.#options.lang } : {}) });
      const agent = await this.#connect(sandbox);
      // Only a fully warm sandbox makes a new session's first exec fast: wait for the preload (bounded).
      if (this.#options.waitForWarmMs) {
        await Promise.race([agent.whenWarm(), new Promise((resolve) => setTimeout(resolve, this.#options.waitForWarmMs).unref())]);
        await warmUpExec(agent);
      }
      this.#creating--;
      this.#created++;
      this.#backoffMs = 0;
      const pooled: Pooled = { sandbox, agent, readyAt: Date.now() };
      if (this.#stopped) {
        await this.#destroy(pooled, "shutdown");
        return;
      }
      this.#ready.push(pooled);
      const gone = (why: string) => {
        const index = this.#ready.indexOf(pooled);
        if (index < 0) return; // leased (or already dropped): not the pool's business
        this.#ready.splice(index, 1);
        this.#drop(pooled, why);
      };
      void agent.closed.then((why) => gone(why));
      void sandbox.exited.then((exit) => gone(`sandbox exited: ${exit.reason}`));
      this.#publish("sandbox.ready", { sandboxId: sandbox.id, ms: Date.now() - started });
      this.#publishSize();
    } catch (error) {
      this.#creating--;
      this.#failures++;
      await sandbox?.destroy().catch(() => {});
      this.#backoffMs = Math.min(MAX_BACKOFF_MS, this.#backoffMs === 0 ? 500 : this.#backoffMs * 2);
      this.#backoffUntil = Date.now() + this.#backoffMs;
      this.#options.logger.warn({ err: error, retryInMs: this.#backoffMs }, "pool sandbox could not be created");
      this.#publish("sandbox.failed", { message: error instanceof Error ? error.message.slice(0, 200) : String(error) });
      // Warm-up does not wait for a broken provider: the interval keeps trying after the back-off.
      if (this.#creating === 0) this.#warmupDone();
      return;
    }
    this.#fill();
  }

  /** A pooled sandbox died: forget it, clean up, and let the pool make another. */
  #drop(pooled: Pooled, why: string): void {
    this.#dropped++;
    this.#options.logger.warn({ sandboxId: pooled.sandbox.id, why }, "pooled sandbox died; replacing it");
    void this.#destroy(pooled, why);
    this.#publishSize();
    queueMicrotask(() => this.#fill());
  }

  async #destroy(pooled: Pooled, reason: string): Promise<void> {
    pooled.agent.close();
    await pooled.sandbox
      .destroy()
      .catch((error: unknown) => this.#options.logger.error({ err: error, sandboxId: pooled.sandbox.id }, "sandbox destroy failed"));
    this.#publish("sandbox.destroyed", { sandboxId: pooled.sandbox.id, reason, pooled: true });
  }

  #publishSize(): void {
    this.#publish("pool.size", { size: this.#ready.length, target: this.#options.target, creating: this.#creating });
  }

  #publish(kind: string, fields: Record<string, unknown>): void {
    this.#options.events.publish({ topic: "pool", kind, at: new Date().toISOString(), ...fields });
  }
}
