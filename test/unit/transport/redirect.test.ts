import { describe, expect, it } from "vitest";
import { createRedirectHandlers, hostOf, REDIRECT_STATUS, secureLocation } from "../../../server/transport/redirect.ts";
import type { HttpRequest, HttpResponse, TransportHandlers, UpgradeRequest, WsSocket } from "../../../server/transport/types.ts";

/** Records what a handler did with a response. */
function recorder() {
  const out = { status: 200, headers: {} as Record<string, string>, body: "", ended: false };
  const res = {
    status(code: number) {
      out.status = code;
      return res;
    },
    header(name: string, value: string) {
      out.headers[name.toLowerCase()] = value;
      return res;
    },
    end(chunk?: string | Uint8Array) {
      out.body = chunk === undefined ? "" : Buffer.from(chunk).toString();
      out.ended = true;
    },
  } as unknown as HttpResponse;
  return { res, out };
}

function request(method: string, target: string, headers: Record<string, string> = { host: "api.example.com:8000" }): HttpRequest {
  const [path, query = ""] = target.split("?");
  return { method, path: path!, query: new URLSearchParams(query), headers, remoteAddress: "127.0.0.1", secure: false } as HttpRequest;
}

const api: TransportHandlers = {
  http: (_req, res) => {
    res.status(200).end("api");
  },
  ws: { paths: ["/ws"], subprotocol: "x", maxPayloadBytes: 1024, open: () => ({ message: () => {}, drain: () => {}, close: () => {} }) },
};

describe("hostOf", () => {
  it("drops the port of names, IPv4 and bracketed IPv6", () => {
    expect(hostOf("api.example.com:8000")).toBe("api.example.com");
    expect(hostOf("127.0.0.1")).toBe("127.0.0.1");
    expect(hostOf("[::1]:8000")).toBe("[::1]");
    expect(hostOf("[2001:db8::1]")).toBe("[2001:db8::1]");
  });

  it("refuses what is not a host: nothing, user info, paths, bad ports", () => {
    for (const bad of [undefined, "", "user@evil.example", "evil.example/x", "a:b", "[::1]x", "[::1", "host:99999999", "-x.example"]) {
      expect(hostOf(bad), String(bad)).toBeUndefined();
    }
  });
});

describe("secureLocation", () => {
  it("keeps host, path and query, and swaps in the HTTPS port", () => {
    expect(secureLocation("https", request("GET", "/v1/exec?a=1&b=x%20y"), 8443)).toBe("https://api.example.com:8443/v1/exec?a=1&b=x+y");
    expect(secureLocation("wss", request("GET", "/ws"), 8443)).toBe("wss://api.example.com:8443/ws");
  });

  it("leaves out the default port 443", () => {
    expect(secureLocation("https", request("GET", "/x"), 443)).toBe("https://api.example.com/x");
  });

  it("does not keep a target that is not a path", () => {
    expect(secureLocation("https", request("GET", "http://elsewhere.example/x"), 443)).toBe("https://api.example.com/");
  });
});

describe("createRedirectHandlers", () => {
  const handlers = createRedirectHandlers(api, 8443);

  it(`answers ${REDIRECT_STATUS} with the https:// location, for every method`, async () => {
    for (const method of ["GET", "POST", "DELETE"]) {
      const { res, out } = recorder();
      await handlers.http(request(method, "/exec?x=1"), res);
      expect(out.status).toBe(307);
      expect(out.headers.location).toBe("https://api.example.com:8443/exec?x=1");
    }
  });

  it("still answers the probes itself", async () => {
    for (const [method, path] of [
      ["GET", "/health"],
      ["HEAD", "/health"],
      ["GET", "/ready"],
    ] as const) {
      const { res, out } = recorder();
      await handlers.http(request(method, path), res);
      expect(out).toMatchObject({ status: 200, body: "api" });
    }
    const { res, out } = recorder();
    await handlers.http(request("GET", "/health/detailed"), res);
    expect(out.status).toBe(307);
  });

  it("answers 400 without a usable Host header", async () => {
    const { res, out } = recorder();
    await handlers.http(request("GET", "/exec", {}), res);
    expect(out.status).toBe(400);
    expect(JSON.parse(out.body)).toMatchObject({ error_type: "validation" });
  });

  it("refuses every upgrade with a redirect to wss://, and never opens a socket", () => {
    const upgrade: UpgradeRequest = { path: "/ws", query: new URLSearchParams("t=1"), headers: { host: "127.0.0.1:8000" }, remoteAddress: "", secure: false };
    expect(handlers.ws.refuse?.(upgrade)).toEqual({ status: 307, headers: { Location: "wss://127.0.0.1:8443/ws?t=1" } });
    expect(handlers.ws.refuse?.({ ...upgrade, headers: {} })).toEqual({ status: 400 });
    expect(handlers.ws.paths).toEqual(["/ws"]);
    let closed: number | undefined;
    handlers.ws.open({ close: (code?: number) => (closed = code) } as unknown as WsSocket, upgrade);
    expect(closed).toBe(1008);
  });
});
