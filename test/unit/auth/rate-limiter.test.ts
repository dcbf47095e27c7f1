import { describe, expect, it } from "vitest";
import { AuthFailureLimiter } from "../../../server/auth/auth-failure-limiter.ts";
import { MemoryCounters, RateLimiter, windowBounds } from "../../../server/auth/rate-limiter.ts";

/** A clock the test moves by hand. */
function clock(start: string) {
  let now = Date.parse(start);
  return {
    now: () => now,
    advance(ms: number) {
      now += ms;
    },
    set(at: string) {
      now = Date.parse(at);
    },
  };
}

const iso = (ms: number) => new Date(ms).toISOString();

describe("windowBounds", () => {
  it("aligns fixed windows to UTC", () => {
    const at = Date.parse("2026-03-15T10:20:30.456Z");
    expect(windowBounds("second", at)).toEqual({ start: Date.parse("2026-03-15T10:20:30Z"), end: Date.parse("2026-03-15T10:20:31Z") });
    expect(windowBounds("minute", at)).toEqual({ start: Date.parse("2026-03-15T10:20:00Z"), end: Date.parse("2026-03-15T10:21:00Z") });
    expect(windowBounds("hour", at)).toEqual({ start: Date.parse("2026-03-15T10:00:00Z"), end: Date.parse("2026-03-15T11:00:00Z") });
    expect(windowBounds("day", at)).toEqual({ start: Date.parse("2026-03-15T00:00:00Z"), end: Date.parse("2026-03-16T00:00:00Z") });
  });

  it("uses calendar months, across a year's end and in February", () => {
    const december = windowBounds("month", Date.parse("2026-12-31T23:59:59.999Z"));
    expect([iso(december.start), iso(december.end)]).toEqual(["2026-12-01T00:00:00.000Z", "2027-01-01T00:00:00.000Z"]);
    const february = windowBounds("month", Date.parse("2028-02-29T12:00:00Z"));
    expect([iso(february.start), iso(february.end)]).toEqual(["2028-02-01T00:00:00.000Z", "2028-03-01T00:00:00.000Z"]);
    // The first millisecond of a month belongs to it.
    expect(iso(windowBounds("month", Date.parse("2027-01-01T00:00:00.000Z")).start)).toBe("2027-01-01T00:00:00.000Z");
  });
});

describe("RateLimiter (memory counters)", () => {
  it("admits up to the limit, then refuses until the window ends", async () => {
    const time = clock("2026-03-15T10:20:30.000Z");
    const limiter = new RateLimiter(new MemoryCounters(time.now), time.now);
    const decisions = [];
    for (let i = 0; i < 4; i++) decisions.push(await limiter.hit("k", { second: 3 }));
    expect(decisions.map((d) => [d?.allowed, d?.remaining])).toEqual([
      [true, 2],
      [true, 1],
      [true, 0],
      [false, 0],
    ]);
    expect(decisions[3]).toMatchObject({ window: "second", limit: 3, resetAt: Date.parse("2026-03-15T10:20:31Z"), retryAfterSeconds: 1 });
    time.advance(999);
    expect((await limiter.hit("k", { second: 3 }))?.allowed).toBe(false);
    time.advance(1);
    expect(await limiter.hit("k", { second: 3 })).toMatchObject({ allowed: true, remaining: 2 });
  });

  it("counts keys apart", async () => {
    const time = clock("2026-03-15T10:20:30.000Z");
    const limiter = new RateLimiter(new MemoryCounters(time.now), time.now);
    expect((await limiter.hit("a", { minute: 1 }))?.allowed).toBe(true);
    expect((await limiter.hit("a", { minute: 1 }))?.allowed).toBe(false);
    expect((await limiter.hit("b", { minute: 1 }))?.allowed).toBe(true);
  });

  it("reports the tightest window when admitted, and does not count refused requests", async () => {
    const time = clock("2026-03-15T10:20:30.000Z");
    const limiter = new RateLimiter(new MemoryCounters(time.now), time.now);
    const limits = { second: 10, minute: 3, day: 1000 };
    expect(await limiter.hit("k", limits)).toMatchObject({ allowed: true, window: "minute", limit: 3, remaining: 2 });
    await limiter.hit("k", limits);
    await limiter.hit("k", limits);
    // Refused by the minute: the day must not have counted these.
    for (let i = 0; i < 5; i++) expect(await limiter.hit("k", limits)).toMatchObject({ allowed: false, window: "minute", retryAfterSeconds: 30 });
    time.advance(30_000);
    expect(await limiter.hit("k", { day: 1000 })).toMatchObject({ allowed: true, window: "day", remaining: 1000 - 4 });
  });

  it("names the refusing window that resets last, for Retry-After", async () => {
    const time = clock("2026-03-15T10:30:00.000Z");
    const limiter = new RateLimiter(new MemoryCounters(time.now), time.now);
    const limits = { second: 1, hour: 1 };
    await limiter.hit("k", limits);
    // Both windows are full: waiting for the second to pass is not enough, the hour decides.
    expect(await limiter.hit("k", limits)).toMatchObject({ allowed: false, window: "hour", retryAfterSeconds: 30 * 60 });
    time.advance(1_000);
    expect(await limiter.hit("k", limits)).toMatchObject({ allowed: false, window: "hour", retryAfterSeconds: 30 * 60 - 1 });
  });

  it("has nothing to say about a key without limits", async () => {
    const limiter = new RateLimiter(new MemoryCounters());
    expect(await limiter.hit("k", {})).toBeUndefined();
  });

  it("drops counters of windows that ended", async () => {
    const time = clock("2026-03-15T10:20:30.000Z");
    const counters = new MemoryCounters(time.now);
    const limiter = new RateLimiter(counters, time.now);
    for (let i = 0; i < 50; i++) await limiter.hit(`key-${i}`, { second: 5 });
    expect(counters.size).toBe(50);
    time.advance(2_000);
    await limiter.hit("other", { second: 5 });
    expect(counters.size).toBe(1);
  });
});

describe("AuthFailureLimiter", () => {
  it("blocks an address after `limit` failures until the window ends, others not", async () => {
    const time = clock("2026-03-15T10:20:10.000Z");
    const failures = new AuthFailureLimiter(new MemoryCounters(time.now), { limit: 3, windowMs: 60_000 }, time.now);
    expect(await failures.fail("10.0.0.1")).toMatchObject({ failures: 1, blocked: false });
    expect(await failures.fail("10.0.0.1")).toMatchObject({ failures: 2, blocked: false });
    expect(failures.blocked("10.0.0.1")).toBeUndefined();
    expect(await failures.fail("10.0.0.1")).toMatchObject({ failures: 3, blocked: true, retryAfterSeconds: 50 });
    expect(failures.blocked("10.0.0.1")).toEqual({ limit: 3, remaining: 0, resetAt: Date.parse("2026-03-15T10:21:00Z"), retryAfterSeconds: 50 });
    expect(failures.blocked("10.0.0.2")).toBeUndefined();
    time.advance(49_999);
    expect(failures.blocked("10.0.0.1")?.retryAfterSeconds).toBe(1);
    time.advance(1);
    expect(failures.blocked("10.0.0.1")).toBeUndefined();
    // A new window starts from zero.
    expect(await failures.fail("10.0.0.1")).toMatchObject({ failures: 1, blocked: false });
  });

  it("learns of a block counted by another replica at its next failure", async () => {
    const time = clock("2026-03-15T10:20:10.000Z");
    const shared = new MemoryCounters(time.now);
    const a = new AuthFailureLimiter(shared, { limit: 2, windowMs: 60_000 }, time.now);
    const b = new AuthFailureLimiter(shared, { limit: 2, windowMs: 60_000 }, time.now);
    await a.fail("10.0.0.9");
    expect((await a.fail("10.0.0.9")).blocked).toBe(true);
    expect(b.blocked("10.0.0.9")).toBeUndefined();
    expect(await b.fail("10.0.0.9")).toMatchObject({ failures: 3, blocked: true });
    expect(b.blocked("10.0.0.9")).toBeDefined();
  });
});
