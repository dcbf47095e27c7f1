import pino from "pino";
import { describe, expect, it } from "vitest";
import type { FleetBus } from "../../../server/fleet/fleet-bus.ts";
import { RemoteSession } from "../../../server/fleet/remote-session.ts";
import type { SharedStream } from "../../../server/fleet/shared-stream.ts";

/**
 * A replica following an exec held by another one hands its observer the
 * output of each round in seq order and complete, even when the first frames
 * of the round were published before its subscription took effect (they are
 * read back from the session's replay log).
 */
describe("RemoteSession observers", () => {
  function setup(logged: { seq: number; frame: Record<string, unknown> }[], observeReply: unknown, duringObserve: () => void = () => {}) {
    let deliver: ((frame: unknown) => void) | undefined;
    const bus = {
      subscribe: async (_channel: string, listener: (frame: unknown) => void) => {
        deliver = listener;
        return async () => {};
      },
      request: async (_to: string, body: Record<string, unknown>) => {
        if (body.kind !== "observe") return null;
        duringObserve();
        return observeReply;
      },
    } as unknown as FleetBus;
    const reads = { count: 0 };
    const stream = {
      read: async () => {
        reads.count++;
        return { frames: logged.map(({ seq, frame }) => ({ seq, text: JSON.stringify({ ...frame, seq }) })), droppedUpTo: 0 };
      },
    } as unknown as SharedStream;
    const session = new RemoteSession({ id: "s1", ownerKeyHash: "k", createdAt: 0, lastActiveAt: 0 }, "holder", {
      bus,
      stream,
      logger: pino({ level: "silent" }),
      idleWaitMs: 1000,
      onEnded: () => {},
    });
    const events: string[] = [];
    const observer = {
      out: (stream: string, data: string) => events.push(`${stream}:${data}`),
      exit: (frame: { reason: string }) => events.push(`exit:${frame.reason}`),
      toolCalls: (calls: { id: string }[]) => events.push(`calls:${calls.map((c) => c.id).join(",")}`),
    };
    const live = (seq: number, frame: Record<string, unknown>) => deliver!({ ...frame, seq });
    return { session, observer, events, live, reads };
  }

  const out = (data: string) => ({ type: "out", id: "e1", stream: "stdout", data });

  it("completes a round from the replay log when its first frames came before the subscription", async () => {
    const logged = [
      { seq: 9, frame: out("start\n") }, // an earlier round: the caller has it already
      { seq: 10, frame: { type: "tool_call", id: "e1", calls: [{ id: "c1" }] } },
      { seq: 11, frame: out("got") },
      { seq: 12, frame: { type: "out", id: "other", stream: "stdout", data: "not this exec" } },
      { seq: 13, frame: out(" 21") },
      { seq: 14, frame: out("\n") },
      { seq: 15, frame: { type: "tool_call", id: "e1", calls: [{ id: "c2" }] } },
    ];
    const { session, observer, events, live } = setup(logged, { seq: 10 });
    expect(await session.observe("e1", observer)).toBe(true);
    // Only the last frames of the round reach this replica live.
    live(14, out("\n"));
    live(15, { type: "tool_call", id: "e1", calls: [{ id: "c2" }] });
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(events).toEqual(["stdout:got", "stdout: 21", "stdout:\n", "calls:c2"]);

    // The next round: live frames out of order are handed over in seq order, with the exit last.
    live(17, out("b"));
    live(16, out("a"));
    live(18, { type: "exit", id: "e1", reason: "exited", code: 0 });
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(events.slice(4)).toEqual(["stdout:a", "stdout:b", "exit:exited"]);
  });

  it("takes live frames only when the holder gives no seq (an older replica)", async () => {
    const { session, observer, events, live } = setup([{ seq: 3, frame: out("old round") }], true);
    expect(await session.observe("e1", observer)).toBe(true);
    live(5, out("new"));
    live(6, { type: "exit", id: "e1", reason: "exited", code: 0 });
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(events).toEqual(["stdout:new", "exit:exited"]);
  });

  it("reads the log for an exec started from here only when its exec.start did not come live", async () => {
    const logged = [
      { seq: 4, frame: { type: "exec.start", id: "e1" } },
      { seq: 5, frame: out("early") },
    ];
    const seen = setup(logged, null);
    await seen.session.startExec({ id: "e1", lang: "py", code: "" } as never, seen.observer as never);
    seen.live(4, { type: "exec.start", id: "e1" });
    seen.live(5, out("early"));
    seen.live(6, { type: "exit", id: "e1", reason: "exited", code: 0 });
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(seen.events).toEqual(["stdout:early", "exit:exited"]);
    expect(seen.reads.count).toBe(0);

    const missed = setup(logged, null);
    await missed.session.startExec({ id: "e1", lang: "py", code: "" } as never, missed.observer as never);
    missed.live(6, { type: "exit", id: "e1", reason: "exited", code: 0 });
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(missed.events).toEqual(["stdout:early", "exit:exited"]);
    expect(missed.reads.count).toBe(1);
  });

  it("ignores frames of earlier rounds that a Redis Cluster delivers late, before or after the holder's answer", async () => {
    const logged = [
      { seq: 9, frame: out("start\n") },
      { seq: 10, frame: { type: "tool_call", id: "e1", calls: [{ id: "c1" }] } },
      { seq: 11, frame: out("got 21\n") },
      { seq: 12, frame: { type: "tool_call", id: "e1", calls: [{ id: "c2" }] } },
    ];
    const late = { type: "tool_call", id: "e1", calls: [{ id: "c1" }], seq: 10 };
    let deliverLate = () => {};
    const { session, observer, events, live } = setup(logged, { seq: 10 }, () => deliverLate());
    deliverLate = () => live(10, late);
    expect(await session.observe("e1", observer)).toBe(true);
    live(9, out("start\n"));
    live(10, late);
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(events).toEqual([]);
    live(12, { type: "tool_call", id: "e1", calls: [{ id: "c2" }] });
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(events).toEqual(["stdout:got 21\n", "calls:c2"]);
  });
});
