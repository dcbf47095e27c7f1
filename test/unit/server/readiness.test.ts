import { describe, expect, it } from "vitest";
import { Readiness } from "../../../server/http/readiness.ts";
import type { PoolWaitReport } from "../../../server/sandbox/pool-wait.ts";
import type { StartupCheckReport } from "../../../server/sandbox/startup-check.ts";

function parts(startup: StartupCheckReport | undefined, pool: { reason?: string; report: PoolWaitReport }) {
  return new Readiness({
    ...(startup ? { startup: { report: () => startup } } : {}),
    poolWait: { reason: () => pool.reason, report: () => pool.report },
  });
}

const POOL_OFF = { report: { status: "off" as const, size: 0, target: 0, waitMs: 0 } };
const POOL_WARMING = { reason: "warming the sandbox pool (1/2)", report: { status: "waiting" as const, size: 1, target: 2, waitMs: 60_000 } };

describe("readiness", () => {
  it("is not ready while the start-up check is pending or failed, with the reason", () => {
    expect(parts({ status: "pending", attempts: 0 }, POOL_OFF).reason()).toBe("checking that a sandbox can start");
    const failed = parts({ status: "failed", attempts: 2, error: "bwrap: Can't find source path /x: Permission denied", retryInMs: 2_000 }, POOL_WARMING);
    expect(failed.reason()).toBe("no sandbox can start: bwrap: Can't find source path /x: Permission denied");
    expect(failed.failed).toBe(true);
    expect(failed.report()).toEqual({
      status: "failed",
      attempts: 2,
      error: "bwrap: Can't find source path /x: Permission denied",
      retryInMs: 2_000,
      poolWait: POOL_WARMING.report,
    });
  });

  it("waits for the pool once the check passed, then is ready", () => {
    const ok = { status: "ok" as const, attempts: 1, ms: 90 };
    expect(parts(ok, POOL_WARMING).reason()).toBe("warming the sandbox pool (1/2)");
    const ready = parts(ok, POOL_OFF);
    expect(ready.reason()).toBeUndefined();
    expect(ready.failed).toBe(false);
    expect(ready.report()).toEqual({ ...ok, poolWait: POOL_OFF.report });
  });

  it("reports a check that is off, and then waits for the pool alone", () => {
    const off = parts(undefined, POOL_WARMING);
    expect(off.report()).toMatchObject({ status: "off", attempts: 0 });
    expect(off.reason()).toBe("warming the sandbox pool (1/2)");
  });

  it("says shutting down once drained, whatever else holds", () => {
    for (const readiness of [parts({ status: "ok", attempts: 1, ms: 1 }, POOL_OFF), parts({ status: "failed", attempts: 1, error: "x" }, POOL_WARMING)]) {
      expect(readiness.draining).toBe(false);
      readiness.drain();
      expect(readiness.draining).toBe(true);
      expect(readiness.reason()).toBe("shutting down");
    }
  });
});
