import { describe, expect, it } from "vitest";
import { SEQ_RESERVE_BLOCK, StreamSeq } from "../../../server/sessions/stream-seq.ts";

describe("StreamSeq", () => {
  it("asks for the next block once half of the reserved one is used, one request at a time", async () => {
    const asked: number[] = [];
    let finish: () => void = () => {};
    const seq = new StreamSeq({
      start: 0,
      reserved: SEQ_RESERVE_BLOCK,
      reserve: (upTo) => {
        asked.push(upTo);
        return new Promise<void>((resolve) => {
          finish = resolve;
        });
      },
    });
    for (let i = 0; i < SEQ_RESERVE_BLOCK / 2; i++) seq.next();
    expect(asked).toEqual([]);
    expect(seq.next()).toBe(SEQ_RESERVE_BLOCK / 2 + 1);
    seq.next();
    // The first request is still out: no second one.
    expect(asked).toEqual([SEQ_RESERVE_BLOCK / 2 + 1 + SEQ_RESERVE_BLOCK]);
    finish();
    await new Promise((resolve) => setImmediate(resolve));
    seq.next();
    expect(asked).toHaveLength(1);
    expect(seq.current).toBe(SEQ_RESERVE_BLOCK / 2 + 3);
  });

  it("goes on from the given seq and, after a failed reservation, tries again later rather than with every frame", async () => {
    const failures: unknown[] = [];
    let calls = 0;
    const seq = new StreamSeq({
      start: 70,
      reserved: 70,
      reserve: async () => {
        calls++;
        throw new Error("store away");
      },
      onReserveFailed: (error) => failures.push(error),
    });
    expect(seq.next()).toBe(71);
    await new Promise((resolve) => setImmediate(resolve));
    for (let i = 0; i < 100; i++) seq.next();
    expect(calls).toBe(1);
    expect(failures).toHaveLength(1);
    expect(seq.current).toBe(171);
  });
});
