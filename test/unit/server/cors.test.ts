import pino from "pino";
import { describe, expect, it } from "vitest";
import { withCors } from "../../../server/http/cors.ts";
import { createHttpHandler } from "../../../server/http/http-handler.ts";
import { Router } from "../../../server/http/router.ts";
import type { HttpHandler } from "../../../server/transport/types.ts";
import { fakeRequest, fakeResponse } from "./fake-http.ts";

function recordingHandler(): { handler: HttpHandler; calls: string[] } {
  const calls: string[] = [];
  const handler: HttpHandler = (req, res) => {
    calls.push(`${req.method} ${req.path}`);
    res.status(200).header("x-request-id", "from-handler").end("ok");
  };
  return { handler, calls };
}

const preflight = (origin: string, path = "/exec") =>
  fakeRequest("OPTIONS", path, { origin, "access-control-request-method": "POST", "access-control-request-headers": "x-api-key, content-type" });

describe("withCors", () => {
  it("is the handler itself when ENABLE_CORS=false", () => {
    const { handler } = recordingHandler();
    expect(withCors(handler, { enabled: false, origins: [], keyHeader: "x-api-key" })).toBe(handler);
  });

  describe("every origin (CORS_ORIGINS unset or *)", () => {
    for (const origins of [[], ["*"]]) {
      it(`answers a preflight itself (origins ${JSON.stringify(origins)})`, async () => {
        const { handler, calls } = recordingHandler();
        const res = fakeResponse();
        await withCors(handler, { enabled: true, origins, keyHeader: "X-Custom-Key" })(preflight("http://localhost:3080"), res);
        expect(calls).toEqual([]);
        expect(res.statusCode).toBe(204);
        expect(res.ended).toBe(true);
        expect(res.headers["access-control-allow-origin"]).toBe("*");
        expect(res.headers["access-control-allow-methods"]).toBe("GET, HEAD, POST, PATCH, DELETE, OPTIONS");
        const allowed = res.headers["access-control-allow-headers"]!.split(", ");
        expect(allowed).toEqual(expect.arrayContaining(["x-custom-key", "authorization", "content-type", "x-request-id", "x-librechat-code-request-id"]));
        expect(res.headers["access-control-max-age"]).toBe("600");
        expect(res.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
        expect(res.headers.vary).toBeUndefined();
      });
    }

    it("adds allow-origin and exposed headers to other responses", async () => {
      const { handler, calls } = recordingHandler();
      const res = fakeResponse();
      await withCors(handler, { enabled: true, origins: [], keyHeader: "x-api-key" })(fakeRequest("GET", "/health", { origin: "https://a.example" }), res);
      expect(calls).toEqual(["GET /health"]);
      expect(res.headers["access-control-allow-origin"]).toBe("*");
      expect(res.headers["access-control-expose-headers"]!.split(", ")).toEqual(
        expect.arrayContaining(["X-Request-ID", "Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Content-Disposition"]),
      );
    });

    it("leaves requests without an Origin, and OPTIONS that are not preflights, to the handler", async () => {
      const { handler, calls } = recordingHandler();
      const cors = withCors(handler, { enabled: true, origins: [], keyHeader: "x-api-key" });
      const plain = fakeResponse();
      await cors(fakeRequest("GET", "/health"), plain);
      expect(plain.headers["access-control-allow-origin"]).toBeUndefined();
      await cors(fakeRequest("OPTIONS", "/exec", { origin: "https://a.example" }), fakeResponse());
      await cors(fakeRequest("OPTIONS", "/exec", { "access-control-request-method": "POST" }), fakeResponse());
      expect(calls).toEqual(["GET /health", "OPTIONS /exec", "OPTIONS /exec"]);
    });
  });

  describe("a list of origins", () => {
    const options = { enabled: true, origins: ["http://localhost:3080", "https://chat.example.com:443"], keyHeader: "x-api-key" };

    it("reflects an allowed origin, as sent, with Vary: Origin", async () => {
      const { handler } = recordingHandler();
      const cors = withCors(handler, options);
      for (const origin of ["http://localhost:3080", "https://chat.example.com", "HTTPS://Chat.Example.com"]) {
        const pre = fakeResponse();
        await cors(preflight(origin), pre);
        expect(pre.statusCode).toBe(204);
        expect(pre.headers["access-control-allow-origin"]).toBe(origin);
        expect(pre.headers.vary).toBe("Origin");
        const res = fakeResponse();
        await cors(fakeRequest("POST", "/exec", { origin }), res);
        expect(res.headers["access-control-allow-origin"]).toBe(origin);
        expect(res.headers.vary).toBe("Origin");
      }
    });

    it("refuses the preflight of another origin and adds no allow-origin to its requests", async () => {
      const { handler, calls } = recordingHandler();
      const cors = withCors(handler, options);
      for (const origin of ["http://localhost:3081", "https://evil.example", "null", "http://chat.example.com"]) {
        const pre = fakeResponse();
        await cors(preflight(origin), pre);
        expect(pre.statusCode).toBe(403);
        expect(pre.headers["access-control-allow-origin"]).toBeUndefined();
        expect(pre.json()).toMatchObject({ error_type: "authorization" });
        const res = fakeResponse();
        await cors(fakeRequest("GET", "/health", { origin }), res);
        expect(res.headers["access-control-allow-origin"]).toBeUndefined();
        expect(res.headers["access-control-expose-headers"]).toBeUndefined();
        expect(res.headers.vary).toBe("Origin");
      }
      // The server still answers: CORS is the browser's to enforce.
      expect(calls).toHaveLength(4);
    });

    it("echoes a valid X-Request-ID on a preflight", async () => {
      const { handler } = recordingHandler();
      const res = fakeResponse();
      const req = fakeRequest("OPTIONS", "/exec", { origin: "http://localhost:3080", "access-control-request-method": "POST", "x-request-id": "abc-123" });
      await withCors(handler, options)(req, res);
      expect(res.headers["x-request-id"]).toBe("abc-123");
    });
  });

  it("wraps the real HTTP handler: CORS headers beside the request id, preflight before routing", async () => {
    const router = new Router().add("GET", "/health", ({ res }) => {
      res.status(200).end("{}");
    });
    const http = withCors(createHttpHandler({ router, logger: pino({ level: "silent" }), accessLogs: false }), {
      enabled: true,
      origins: ["http://localhost:3080"],
      keyHeader: "x-api-key",
    });
    const res = fakeResponse();
    await http(fakeRequest("GET", "/health", { origin: "http://localhost:3080", "x-request-id": "r1" }), res);
    expect(res.statusCode).toBe(200);
    expect(res.headers).toMatchObject({ "access-control-allow-origin": "http://localhost:3080", "x-request-id": "r1", vary: "Origin" });
    const pre = fakeResponse();
    await http(preflight("http://localhost:3080", "/health"), pre);
    expect(pre.statusCode).toBe(204);
  });
});
