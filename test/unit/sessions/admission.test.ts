import { describe, expect, it } from "vitest";
import { Admission, AdmissionError } from "../../../server/sessions/admission.ts";

const base = { maxConcurrentExecutions: 2, maxSessionsPerEntity: 2, maxLiveSandboxes: 0, queueSize: 2, queueTimeoutMs: 200 };

describe("Admission (in memory)", () => {
  it("admits up to MAX_CONCURRENT_EXECUTIONS and hands a freed slot to the next waiter", async () => {
    const admission = new Admission(base);
    const a = await admission.acquireExec();
    await admission.acquireExec();
    expect(admission.stats().running).toBe(2);
    const waiting = admission.acquireExec();
    await new Promise((r) => setTimeout(r, 0));
    expect(admission.stats().queued).toBe(1);
    a.release();
    a.release(); // idempotent
    await expect(waiting).resolves.toBeDefined();
    expect(admission.stats().running).toBe(2);
  });

  it("refuses with capacity (503, Retry-After) after the queue wait, and at once when the queue is full", async () => {
    const admission = new Admission({ ...base, maxConcurrentExecutions: 1, queueSize: 1 });
    await admission.acquireExec();
    const waited = admission.acquireExec();
    const full = admission.acquireExec();
    await expect(full).rejects.toMatchObject({ kind: "capacity", status: 503 });
    const error = await waited.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AdmissionError);
    expect((error as AdmissionError).retryAfterSeconds).toBeGreaterThan(0);
    expect(admission.stats().refused).toBe(2);
  });

  it("stops waiting when the caller goes away", async () => {
    const admission = new Admission({ ...base, maxConcurrentExecutions: 1, queueTimeoutMs: 10_000, pollMs: 20 });
    await admission.acquireExec();
    let gone = false;
    const waiting = admission.acquireExec(() => gone);
    gone = true;
    await expect(waiting).rejects.toMatchObject({ kind: "capacity" });
    expect(admission.stats().queued).toBe(0);
  });

  it("limits sessions per entity with a 429", () => {
    const admission = new Admission(base);
    expect(() => admission.checkNewSession("e", 1)).not.toThrow();
    try {
      admission.checkNewSession("e", 2);
      expect.unreachable();
    } catch (error) {
      expect(error).toMatchObject({ kind: "limit", status: 429 });
    }
  });

  const room = (counts: { live: () => number; principal?: () => number }, reclaim: () => Promise<boolean>, reclaimPrincipal = async () => false) => ({
    live: counts.live,
    principalLive: counts.principal ?? (() => 0),
    reclaim,
    reclaimPrincipal,
  });

  it("reclaims the least recently used idle sandbox at MAX_LIVE_SANDBOXES, else refuses", async () => {
    const admission = new Admission({ ...base, maxLiveSandboxes: 2 });
    let live = 2;
    let reclaimed = 0;
    await admission.ensureSandboxRoom(
      room({ live: () => live }, async () => {
        reclaimed++;
        live--;
        return true;
      }),
    );
    expect(reclaimed).toBe(1);
    await expect(admission.ensureSandboxRoom(room({ live: () => 2 }, async () => false))).rejects.toMatchObject({ kind: "capacity", status: 503 });
    await new Admission(base).ensureSandboxRoom(room({ live: () => 1000 }, async () => false)); // 0 = no cap
  });

  it("at MAX_SANDBOXES_PER_PRINCIPAL reclaims the principal's own idle sandbox, else refuses with a limit; others are not touched", async () => {
    const admission = new Admission({ ...base, maxLiveSandboxes: 10, maxSandboxesPerPrincipal: 2 });
    let mine = 2;
    const reclaimedOthers: number[] = [];
    await admission.ensureSandboxRoom(
      room(
        { live: () => 5, principal: () => mine },
        async () => {
          reclaimedOthers.push(1);
          return true;
        },
        async () => {
          mine--;
          return true;
        },
      ),
    );
    expect({ mine, reclaimedOthers }).toEqual({ mine: 1, reclaimedOthers: [] });
    await expect(admission.ensureSandboxRoom(room({ live: () => 5, principal: () => 2 }, async () => true))).rejects.toMatchObject({
      kind: "limit",
      status: 429,
      message: expect.stringMatching(/MAX_SANDBOXES_PER_PRINCIPAL/),
    });
  });
});
