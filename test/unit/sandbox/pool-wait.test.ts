import { describe, expect, it } from "vitest";
import { PoolWait } from "../../../server/sandbox/pool-wait.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A pool whose size the test sets by hand. */
function fakePool(target: number, enabled = target > 0) {
  const pool = { size: 0, stats: () => ({ enabled, target, size: pool.size }) };
  return pool;
}

function recordingLogger() {
  const lines: string[] = [];
  const log = (_obj: Record<string, unknown>, msg?: string) => lines.push(msg ?? "");
  return { lines, logger: { debug: log, info: log, warn: (_obj: Record<string, unknown>, msg?: string) => lines.push(`warn: ${msg}`), error: log } };
}

describe("waiting for the warm pool before ready", () => {
  it("does not wait without a pool or with READY_WAIT_FOR_POOL_SECONDS=0", () => {
    for (const wait of [new PoolWait({ pool: fakePool(0), waitMs: 60_000 }), new PoolWait({ pool: fakePool(2), waitMs: 0 })]) {
      expect(wait.reason()).toBeUndefined();
      expect(wait.report()).toMatchObject({ status: "off" });
    }
  });

  it("says the pool is warming until the warm-up fills it, and stays ready after sessions lease from it", async () => {
    const pool = fakePool(2);
    const wait = new PoolWait({ pool, waitMs: 60_000 });
    expect(wait.report()).toMatchObject({ status: "not_started", size: 0, target: 2 });
    expect(wait.reason()).toBe("warming the sandbox pool (0/2)");
    let warmed!: () => void;
    wait.begin(new Promise((resolve) => (warmed = resolve)));
    pool.size = 1;
    expect(wait.reason()).toBe("warming the sandbox pool (1/2)");
    pool.size = 2;
    warmed();
    await sleep(0);
    expect(wait.reason()).toBeUndefined();
    expect(wait.report()).toMatchObject({ status: "reached", size: 2, target: 2, waitedMs: expect.any(Number) });
    pool.size = 1; // a lease
    await sleep(150);
    expect(wait.reason()).toBeUndefined();
    expect(wait.report().status).toBe("reached");
    wait.stop();
  });

  it("notices a pool filled by its refills when the warm-up stopped short", async () => {
    const pool = fakePool(2);
    const wait = new PoolWait({ pool, waitMs: 60_000 });
    wait.begin(Promise.resolve()); // the warm-up gave up on a failed creation
    await sleep(0);
    expect(wait.report().status).toBe("waiting");
    pool.size = 2;
    await sleep(250);
    expect(wait.report().status).toBe("reached");
    wait.stop();
  });

  it("gives up after the wait, with a warning, and is ready anyway", async () => {
    const pool = fakePool(2);
    const { lines, logger } = recordingLogger();
    const wait = new PoolWait({ pool, waitMs: 40, logger });
    wait.begin(new Promise(() => {}));
    pool.size = 1;
    await sleep(80);
    expect(wait.reason()).toBeUndefined();
    expect(wait.report()).toMatchObject({ status: "timed_out", size: 1, target: 2 });
    expect(lines.some((line) => line.startsWith("warn: ") && line.includes("1/2"))).toBe(true);
    wait.stop();
  });
});
