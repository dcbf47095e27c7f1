import { describe, expect, it } from "vitest";
import { InProcessEventBus, type OperationalEvent } from "../../../server/events/event-bus.ts";
import type { AgentClient } from "../../../server/sandbox/agent-client.ts";
import { poolStats, SandboxPool } from "../../../server/sandbox/pool.ts";
import { SandboxPools } from "../../../server/sandbox/pool-set.ts";
import type { Sandbox, SandboxExit, SandboxLimits, SandboxProvider, SandboxSpec } from "../../../server/sandbox/provider.ts";

const LIMITS: SandboxLimits = { memoryBytes: 1, pids: 1, cpuQuotaUs: 1, openFiles: 1, fileSizeBytes: 1, dataBytes: 1, tmpBytes: 1 };
const silent = { debug() {}, info() {}, warn() {}, error() {} };

class FakeSandbox implements Sandbox {
  readonly endpoint = { kind: "unix" as const, path: "/nonexistent" };
  readonly token = "t";
  readonly exited: Promise<SandboxExit>;
  destroyed = false;
  #exit!: (exit: SandboxExit) => void;
  constructor(readonly id: string) {
    this.exited = new Promise((resolve) => {
      this.#exit = resolve;
    });
  }
  die(): void {
    this.#exit({ reason: "killed by SIGKILL" });
  }
  async destroy(): Promise<void> {
    this.destroyed = true;
    this.#exit({ reason: "destroyed" });
  }
}

class FakeProvider implements SandboxProvider {
  readonly kind = "local" as const;
  readonly made: FakeSandbox[] = [];
  running = 0;
  maxRunning = 0;
  fail = false;
  /** Language -> class, for the pool-set tests (absent: "default"). */
  classes: Record<string, string> = {};
  readonly langs: Array<string | undefined> = [];
  sandboxClass(lang?: string): string {
    return (lang && this.classes[lang]) || "default";
  }
  async create(spec?: SandboxSpec): Promise<Sandbox> {
    this.langs.push(spec?.lang);
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    await new Promise((r) => setTimeout(r, 5));
    this.running--;
    if (this.fail) throw new Error("no sandbox");
    const sandbox = new FakeSandbox(`sb${this.made.length}`);
    this.made.push(sandbox);
    return sandbox;
  }
  async removeOrphans(): Promise<number> {
    return 0;
  }
  async health() {
    return { status: "ok" as const, details: {}, warnings: [] };
  }
  async shutdown(): Promise<void> {}
}

function fakeAgent(): AgentClient {
  let closeIt!: (why: string) => void;
  const agent = {
    isClosed: false,
    closed: new Promise<string>((resolve) => {
      closeIt = resolve;
    }),
    close() {
      agent.isClosed = true;
      closeIt("closed");
    },
  };
  return agent as unknown as AgentClient;
}

function makePool(provider: FakeProvider, target: number, extra: Partial<ConstructorParameters<typeof SandboxPool>[0]> = {}) {
  const events = new InProcessEventBus();
  const seen: OperationalEvent[] = [];
  events.subscribe("pool", (event) => seen.push(event));
  const pool = new SandboxPool({
    provider,
    events,
    logger: silent,
    target,
    parallelBatch: 3,
    refillParallel: 1,
    replenishIntervalMs: 50,
    exhaustionTrigger: true,
    connect: async () => fakeAgent(),
    ...extra,
  });
  return { pool, seen };
}

const until = async (check: () => boolean, ms = 2000) => {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met");
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe("SandboxPool", () => {
  it("warms up to its target, PARALLEL_BATCH at a time, and publishes ready and size events", async () => {
    const provider = new FakeProvider();
    const { pool, seen } = makePool(provider, 5);
    await pool.start(LIMITS, { warmup: true });
    expect(pool.size).toBe(5);
    expect(provider.maxRunning).toBe(3);
    expect(seen.filter((e) => e.kind === "sandbox.ready")).toHaveLength(5);
    expect(seen.at(-1)).toMatchObject({ kind: "pool.size", size: 5, target: 5 });
    expect(poolStats()).toMatchObject({ enabled: true, size: 5, target: 5, hits: 0, misses: 0 });
    await pool.shutdown();
  });

  it("leases a sandbox with its agent at once and refills in the background, one at a time", async () => {
    const provider = new FakeProvider();
    const { pool } = makePool(provider, 3);
    await pool.start(LIMITS, { warmup: true });
    provider.maxRunning = 0;
    const a = pool.lease("s1");
    const b = pool.lease("s2");
    expect(a?.sandbox.id).toBeDefined();
    expect(a?.agent).toBeDefined();
    expect(a?.sandbox.id).not.toBe(b?.sandbox.id);
    expect(pool.stats()).toMatchObject({ hits: 2, size: 1 });
    await until(() => pool.size === 3);
    expect(provider.maxRunning).toBe(1);
    await pool.shutdown();
    // Leased sandboxes belong to their sessions: shutdown leaves them alone.
    expect((a!.sandbox as FakeSandbox).destroyed).toBe(false);
  });

  it("counts a miss when empty and refills at once on exhaustion", async () => {
    const provider = new FakeProvider();
    const { pool, seen } = makePool(provider, 2, { replenishIntervalMs: 60_000 });
    await pool.start(LIMITS, { warmup: true });
    pool.lease();
    pool.lease();
    expect(pool.lease()).toBeUndefined();
    expect(pool.stats()).toMatchObject({ hits: 2, misses: 1 });
    expect(seen.some((e) => e.kind === "pool.exhausted")).toBe(true);
    await until(() => pool.size === 2);
    await pool.shutdown();
  });

  it("drops a sandbox that died in the pool and replaces it", async () => {
    const provider = new FakeProvider();
    const { pool, seen } = makePool(provider, 2);
    await pool.start(LIMITS, { warmup: true });
    provider.made[0]!.die();
    await until(() => pool.stats().dropped === 1);
    await until(() => pool.size === 2 && provider.made.length === 3);
    expect(seen.some((e) => e.kind === "sandbox.destroyed" && e.sandboxId === "sb0")).toBe(true);
    expect(pool.lease()?.sandbox.id).not.toBe("sb0");
    await pool.shutdown();
  });

  it("backs off when the provider fails, and shutdown destroys what is pooled", async () => {
    const provider = new FakeProvider();
    provider.fail = true;
    const { pool } = makePool(provider, 2);
    await pool.start(LIMITS, { warmup: true });
    expect(pool.size).toBe(0);
    expect(pool.stats().failures).toBeGreaterThan(0);
    provider.fail = false;
    await until(() => pool.size === 2, 5000);
    const pooled = [...provider.made];
    await pool.shutdown();
    expect(pooled.every((s) => s.destroyed)).toBe(true);
    expect(pool.lease()).toBeUndefined();
  });

  it("is off with a target of 0", async () => {
    const provider = new FakeProvider();
    const { pool } = makePool(provider, 0);
    await pool.start(LIMITS, { warmup: true });
    expect(pool.lease()).toBeUndefined();
    expect(provider.made).toHaveLength(0);
    expect(pool.stats().misses).toBe(0);
    await pool.shutdown();
  });
});

describe("SandboxPools (one pool per sandbox class)", () => {
  const makePools = (provider: FakeProvider, sizes: Record<string, number>) =>
    new SandboxPools({
      provider,
      events: new InProcessEventBus(),
      logger: silent,
      sizes,
      languages: ["py", "js", "go", "java", "bash"],
      parallelBatch: 3,
      refillParallel: 1,
      replenishIntervalMs: 50,
      exhaustionTrigger: true,
      connect: async () => fakeAgent(),
    });

  it("locally (one class) keeps the sum of the per-language sizes in one pool", async () => {
    const provider = new FakeProvider();
    const pools = makePools(provider, { py: 2, js: 1, go: 0 });
    await pools.start(LIMITS, { warmup: true });
    expect(pools.stats()).toMatchObject({ enabled: true, size: 3, target: 3 });
    expect(pools.stats()).not.toHaveProperty("classes");
    expect(provider.langs).toEqual([undefined, undefined, undefined]);
    expect(pools.lease("s", "go")).toBeDefined();
    await pools.shutdown();
  });

  it("gives a class of its own to languages whose pods differ, sized by their languages, and leases by language", async () => {
    const provider = new FakeProvider();
    provider.classes = { go: "go", java: "jvm" };
    const pools = makePools(provider, { py: 2, js: 1, go: 1, java: 0 });
    await pools.start(LIMITS, { warmup: true });
    const stats = pools.stats();
    expect(stats).toMatchObject({ size: 4, target: 4 });
    expect(stats.classes).toMatchObject({ default: { target: 3, size: 3 }, go: { target: 1, size: 1 }, jvm: { target: 0, size: 0 } });
    expect(provider.langs.filter((lang) => lang === "go")).toHaveLength(1);
    expect(pools.lease("s1", "go")).toBeDefined();
    expect(pools.lease("s2", "java")).toBeUndefined(); // its pool keeps none: a miss, the session makes its own
    expect(pools.lease("s3", "py")).toBeDefined();
    expect(pools.lease("s4")).toBeDefined(); // no language: the default class
    await until(() => pools.stats().classes!.go!.size === 1);
    await pools.shutdown();
    expect(poolStats()).toMatchObject({ enabled: false, size: 0 });
  });
});
