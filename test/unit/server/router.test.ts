import { describe, expect, it } from "vitest";
import { Router } from "../../../server/http/router.ts";
import { randomId } from "../../../server/ids.ts";

describe("Router", () => {
  const noop = () => {};
  const router = new Router().add("GET", "/health", noop).add("GET", "/files/:sessionId", noop).add("DELETE", "/files/:sessionId/:fileId", noop);

  it("matches exact paths and parameters, percent-decoded", () => {
    expect(router.match("GET", "/health")).toMatchObject({ params: {} });
    expect(router.match("GET", "/files/abc%20d")).toMatchObject({ params: { sessionId: "abc d" } });
    expect(router.match("DELETE", "/files/s/f")).toMatchObject({ params: { sessionId: "s", fileId: "f" } });
    expect(router.match("HEAD", "/health")).toMatchObject({ params: {} });
  });

  it("tells a wrong method from a missing path", () => {
    expect(router.match("POST", "/health")).toBe("method");
    expect(router.match("GET", "/nothing")).toBeUndefined();
    expect(router.match("GET", "/files/a/b/c")).toBeUndefined();
    expect(router.match("GET", "/files/%E0%A4%A")).toBeUndefined();
  });
});

describe("randomId", () => {
  it("makes base62 ids of the asked length, without . or /", () => {
    const ids = new Set(Array.from({ length: 2000 }, () => randomId(32)));
    expect(ids.size).toBe(2000);
    for (const id of ids) expect(id).toMatch(/^[0-9A-Za-z]{32}$/);
    expect(randomId(7)).toHaveLength(7);
  });
});
