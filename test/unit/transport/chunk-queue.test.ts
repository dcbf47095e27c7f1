import { describe, expect, it } from "vitest";
import { ChunkQueue } from "../../../server/transport/common.ts";
import { BodyTooSlowError } from "../../../server/transport/types.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("ChunkQueue slow-loris guard", () => {
  it("fails a read that waits longer than stallMs for the client", async () => {
    const queue = new ChunkQueue(1024, () => {}, { stallMs: 80, minBytesPerSecond: 0 });
    queue.push(Buffer.from("a"));
    expect((await queue.next())?.toString()).toBe("a");
    const started = performance.now();
    await expect(queue.next()).rejects.toThrow(BodyTooSlowError);
    expect(performance.now() - started).toBeGreaterThanOrEqual(70);
  });

  it("fails a body that trickles under the minimum rate, counted over the time spent waiting for the client", async () => {
    const queue = new ChunkQueue(1024, () => {}, { stallMs: 100, minBytesPerSecond: 1000 });
    const feeder = (async () => {
      for (let i = 0; i < 20; i++) {
        await sleep(30);
        queue.push(Buffer.from("xx")); // ~66 bytes/s
      }
      queue.end();
    })();
    const read = async () => {
      for (;;) if (!(await queue.next())) return "ended";
    };
    await expect(read()).rejects.toThrow(/under the minimum of 1000/);
    await feeder;
  });

  it("does not count the reader's own pauses against the client, and ends normally at a good pace", async () => {
    const queue = new ChunkQueue(1024 * 1024, () => {}, { stallMs: 100, minBytesPerSecond: 1000 });
    for (let i = 0; i < 5; i++) queue.push(Buffer.alloc(10));
    queue.end();
    let total = 0;
    for (;;) {
      await sleep(60); // the server is slow, not the client: everything already arrived
      const chunk = await queue.next();
      if (!chunk) break;
      total += chunk.length;
    }
    expect(total).toBe(50);
  });
});
