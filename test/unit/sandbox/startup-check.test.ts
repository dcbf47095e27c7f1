import { describe, expect, it } from "vitest";
import type { ExecListener } from "../../../server/sandbox/agent-client.ts";
import type { Sandbox, SandboxExit, SandboxLimits, SandboxProvider } from "../../../server/sandbox/provider.ts";
import { type ProbeAgent, StartupCheck, startupBackoffMs } from "../../../server/sandbox/startup-check.ts";

const LIMITS: SandboxLimits = { memoryBytes: 1, pids: 1, cpuQuotaUs: 1, openFiles: 1, fileSizeBytes: 1, dataBytes: 1, tmpBytes: 1 };
const silent = { debug() {}, info() {}, warn() {}, error() {} };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

class FakeSandbox implements Sandbox {
  readonly endpoint = { kind: "unix" as const, path: "/nonexistent" };
  readonly token = "t";
  readonly exited: Promise<SandboxExit> = new Promise(() => {});
  destroyed = false;
  constructor(readonly id: string) {}
  async destroy(): Promise<void> {
    this.destroyed = true;
  }
}

/** A provider whose next creations fail with the given errors (in order), then succeed. */
class FakeProvider implements SandboxProvider {
  readonly kind = "local" as const;
  readonly made: FakeSandbox[] = [];
  readonly createdAt: number[] = [];
  failures: Error[] = [];
  /** While set, create() waits for it before answering. */
  hold?: Promise<void>;
  sandboxClass(): string {
    return "default";
  }
  async create(): Promise<Sandbox> {
    this.createdAt.push(Date.now());
    await this.hold;
    const failure = this.failures.shift();
    if (failure) throw failure;
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

/** An agent that answers each exec with `reply` (default: prints "probe" and exits 0). */
function fakeAgent(reply?: (id: string, listener: ExecListener) => void) {
  const agent = {
    wasClosed: false,
    closed: new Promise<string>(() => {}),
    requests: [] as Array<{ lang: string; code: string }>,
    startExec(request: { id: string; lang: string; code: string }, listener: ExecListener) {
      agent.requests.push({ lang: request.lang, code: request.code });
      queueMicrotask(() => {
        if (reply) return reply(request.id, listener);
        listener.out({ type: "out", id: request.id, stream: "stdout", data: "probe\n", bytes: 6 });
        listener.exit({ type: "exit", id: request.id, code: 0, signal: null, reason: "exited", wallMs: 1, truncated: false, files: [] });
      });
    },
    forgetExec() {},
    close() {
      agent.wasClosed = true;
    },
  };
  return agent;
}

function check(provider: FakeProvider, agent = fakeAgent(), options: Partial<ConstructorParameters<typeof StartupCheck>[0]> = {}) {
  return new StartupCheck({
    provider,
    limits: LIMITS,
    logger: silent,
    connect: async () => agent as unknown as ProbeAgent,
    initialBackoffMs: 20,
    maxBackoffMs: 50,
    ...options,
  });
}

describe("start-up check", () => {
  it("passes once a probe sandbox starts, answers a bash exec, and is destroyed", async () => {
    const provider = new FakeProvider();
    const agent = fakeAgent();
    const startup = check(provider, agent);
    expect(startup.report()).toEqual({ status: "pending", attempts: 0 });
    expect(await startup.run()).toBe(true);
    expect(startup.report()).toMatchObject({ status: "ok", attempts: 1, ms: expect.any(Number) });
    expect(startup.report().error).toBeUndefined();
    expect(agent.requests).toEqual([{ lang: "bash", code: "echo probe" }]);
    expect(agent.wasClosed).toBe(true);
    expect(provider.made.map((s) => s.destroyed)).toEqual([true]);
  });

  it("keeps the provider's exact error and tries again with a doubling back-off until one passes", async () => {
    const provider = new FakeProvider();
    const reason = "sandbox ab12 failed to start: exited with code 1\nbwrap: Can't find source path /srv/x/sandboxes/ab12/run: Permission denied";
    provider.failures = [new Error(reason), new Error(reason), new Error(reason)];
    const startup = check(provider);
    const passed = startup.run();
    await sleep(5);
    expect(startup.report()).toEqual({ status: "failed", error: reason, attempts: 1, retryInMs: expect.any(Number) });
    expect(startup.report().retryInMs).toBeLessThanOrEqual(20);
    expect(await passed).toBe(true);
    expect(startup.report()).toMatchObject({ status: "ok", attempts: 4 });
    expect(startup.report().error).toBeUndefined();
    const gaps = provider.createdAt.slice(1).map((at, i) => at - provider.createdAt[i]!);
    // 20, 40, then capped at 50 (timers may fire a millisecond early).
    expect(gaps[0]).toBeGreaterThanOrEqual(19);
    expect(gaps[1]).toBeGreaterThanOrEqual(39);
    expect(gaps[2]).toBeGreaterThanOrEqual(49);
    expect(gaps[2]).toBeLessThan(49 + 40);
  });

  it("backs off 1 s doubling to 30 s by default", () => {
    expect([1, 2, 3, 4, 5, 6, 7, 20].map((failures) => startupBackoffMs(failures, 1_000, 30_000))).toEqual([
      1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000,
    ]);
  });

  it("fails an attempt past its deadline and destroys the sandbox that comes late", async () => {
    const provider = new FakeProvider();
    let release!: () => void;
    provider.hold = new Promise((resolve) => {
      release = resolve;
    });
    const startup = check(provider, fakeAgent(), { deadlineMs: 30 });
    expect(await startup.attempt()).toBe(false);
    expect(startup.report()).toMatchObject({ status: "failed", attempts: 1, error: "the probe sandbox did not start and answer within 30 ms" });
    release();
    await sleep(5);
    expect(provider.made).toHaveLength(1);
    expect(provider.made[0]!.destroyed).toBe(true);
  });

  it("fails when the probe's exec does not print what it should, and still destroys the sandbox", async () => {
    const provider = new FakeProvider();
    const agent = fakeAgent((id, listener) => {
      listener.out({ type: "out", id, stream: "stderr", data: "bash: echo: write error\n", bytes: 24 });
      listener.exit({ type: "exit", id, code: 1, signal: null, reason: "exited", wallMs: 1, truncated: false, files: [] });
    });
    const startup = check(provider, agent);
    expect(await startup.attempt()).toBe(false);
    expect(startup.report().error).toBe("the probe exec ended with code 1 (exited): bash: echo: write error");
    expect(provider.made[0]!.destroyed).toBe(true);
    expect(agent.wasClosed).toBe(true);
  });

  it("reports an exec the agent refuses", async () => {
    const provider = new FakeProvider();
    const startup = check(
      provider,
      fakeAgent((_id, listener) => listener.error("unknown_language", "bash is not installed")),
    );
    expect(await startup.attempt()).toBe(false);
    expect(startup.report().error).toBe("the agent refused the probe exec: unknown_language: bash is not installed");
  });

  it("stops trying once stopped", async () => {
    const provider = new FakeProvider();
    provider.failures = Array.from({ length: 10 }, () => new Error("no"));
    const startup = check(provider, fakeAgent(), { initialBackoffMs: 1_000 });
    const passed = startup.run();
    await sleep(5);
    startup.stop();
    expect(await passed).toBe(false);
    expect(provider.createdAt).toHaveLength(1);
  });
});
