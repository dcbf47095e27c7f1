import { describe, expect, it } from "vitest";
import { ReplayLog } from "../../../server/sessions/replay-log.ts";

describe("ReplayLog", () => {
  it("replays every frame after lastSeq, in order", () => {
    const log = new ReplayLog(10);
    for (let seq = 1; seq <= 5; seq++) log.append(seq, `f${seq}`);
    expect(log.since(2)).toEqual({ frames: [3, 4, 5].map((seq) => ({ seq, text: `f${seq}` })), complete: true });
    expect(log.since(5)).toEqual({ frames: [], complete: true });
  });

  it("tolerates seq numbers that were never logged (per-client frames)", () => {
    const log = new ReplayLog(10);
    log.append(2, "a");
    log.append(4, "b");
    expect(log.since(1)).toEqual({
      frames: [
        { seq: 2, text: "a" },
        { seq: 4, text: "b" },
      ],
      complete: true,
    });
  });

  it("drops the oldest frames past capacity and says when a replay cannot start at lastSeq + 1", () => {
    const log = new ReplayLog(3);
    for (let seq = 1; seq <= 6; seq++) log.append(seq, `f${seq}`);
    expect(log.size).toBe(3);
    expect(log.since(3)).toEqual({ frames: [4, 5, 6].map((seq) => ({ seq, text: `f${seq}` })), complete: true });
    expect(log.since(2).complete).toBe(false);
    expect(log.since(2).frames.map((f) => f.seq)).toEqual([4, 5, 6]);
  });

  it("keeps working across compaction", () => {
    const log = new ReplayLog(100);
    for (let seq = 1; seq <= 5000; seq++) log.append(seq, String(seq));
    expect(log.size).toBe(100);
    const { frames, complete } = log.since(4950);
    expect(complete).toBe(true);
    expect(frames.map((f) => f.seq)).toEqual(Array.from({ length: 50 }, (_, i) => 4951 + i));
    expect(log.since(4899).complete).toBe(false);
  });

  it("drops the oldest frames past its byte bound, and always keeps the newest", () => {
    const log = new ReplayLog(100, 10);
    log.append(1, "aaaa");
    log.append(2, "bbbb");
    log.append(3, "cccc");
    expect(log.since(0).frames.map((f) => f.seq)).toEqual([2, 3]);
    expect(log.since(1).complete).toBe(true);
    expect(log.since(0).complete).toBe(false);
    log.append(4, "x".repeat(50));
    expect(log.since(0).frames.map((f) => f.seq)).toEqual([4]);
    expect(log.since(3).complete).toBe(true);
  });
});
