import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AppConfig } from "../../../server/config/types.ts";
import { planListeners, startListeners } from "../../../server/transport/listeners.ts";
import type { HttpResponse, ListenOptions, Transport, TransportHandlers } from "../../../server/transport/types.ts";
import { makeTestPki, type TestPki } from "../../fixtures/transport/certs.ts";

type ServerConfig = Pick<AppConfig["server"], "host" | "port" | "https">;

let pki: TestPki;
beforeAll(() => {
  pki = makeTestPki();
});
afterAll(() => pki?.remove());

function server(https: Partial<AppConfig["server"]["https"]> = {}, port = 8000): ServerConfig {
  return {
    host: "127.0.0.1",
    port,
    https: { enabled: true, port: 8443, certFile: pki.selfCert, keyFile: pki.selfKey, redirect: false, ...https },
  };
}

/** A transport that records each listen and binds port N+1000 (or 40000+ for port 0). */
function fakeTransport(failOn?: number) {
  const calls: ListenOptions[] = [];
  let closed = 0;
  let next = 40000;
  const transport: Transport = {
    name: "node",
    async listen(options) {
      calls.push(options);
      if (options.port === failOn) throw new Error("listen EADDRINUSE");
      return { port: options.port === 0 ? next++ : options.port + 1000 };
    },
    async close() {
      closed++;
    },
  };
  return { transport, calls, closed: () => closed };
}

function logger() {
  const lines: Array<{ level: string; fields: Record<string, unknown>; message: string }> = [];
  return {
    lines,
    info: (fields: Record<string, unknown>, message: string) => lines.push({ level: "info", fields, message }),
    warn: (fields: Record<string, unknown>, message: string) => lines.push({ level: "warn", fields, message }),
  };
}

describe("planListeners", () => {
  it("HTTPS off: API_PORT, plain", () => {
    expect(planListeners(server({ enabled: false }))).toEqual([{ port: 8000, tls: false, role: "api" }]);
  });

  it("HTTPS on: API_PORT plain (the API, or the redirect) and HTTPS_PORT TLS, plain first", () => {
    expect(planListeners(server())).toEqual([
      { port: 8000, tls: false, role: "api" },
      { port: 8443, tls: true, role: "api" },
    ]);
    expect(planListeners(server({ redirect: true }))[0]).toEqual({ port: 8000, tls: false, role: "redirect" });
  });

  it("HTTPS_PORT = API_PORT: that one port, TLS only; but two zeros are two free ports", () => {
    expect(planListeners(server({ port: 443, redirect: true }, 443))).toEqual([{ port: 443, tls: true, role: "api" }]);
    expect(planListeners(server({ port: 0 }, 0))).toHaveLength(2);
  });
});

describe("startListeners", () => {
  it("starts TLS first, gives the plain listener the redirect to the port TLS got, logs plain first", async () => {
    const { transport, calls } = fakeTransport();
    const log = logger();
    const result = await startListeners(transport, server({ port: 0, redirect: true }, 0), log, { version: "1.2.3" });
    expect(calls.map((c) => Boolean(c.tls))).toEqual([true, false]);
    expect(calls[0]!.tls).toEqual({ certFile: pki.selfCert, keyFile: pki.selfKey });
    expect(result.port).toBe(40001);
    expect(result.listeners).toEqual([
      { host: "127.0.0.1", port: 40001, tls: false, role: "redirect" },
      { host: "127.0.0.1", port: 40000, tls: true, role: "api" },
    ]);
    expect(log.lines.map((l) => [l.message, l.fields.port, l.fields.tls, l.fields.listeners, l.fields.transport, l.fields.version])).toEqual([
      ["listening", 40001, false, 2, "node", "1.2.3"],
      ["listening", 40000, true, 2, "node", "1.2.3"],
    ]);
    expect(log.lines[1]!.fields).toMatchObject({ certificate: "CN=localhost", chainFromBundle: 0 });

    // The plain listener's handlers are the redirect, built on the transport's own.
    const own: TransportHandlers = {
      http: () => {},
      ws: { paths: ["/ws"], subprotocol: "x", maxPayloadBytes: 1, open: () => ({ message() {}, drain() {}, close() {} }) },
    };
    const plain = calls[1]!.handlers!(own);
    const headers: Record<string, string> = {};
    const res = {
      status: () => res,
      header: (name: string, value: string) => {
        headers[name] = value;
        return res;
      },
      end: () => {},
    } as unknown as HttpResponse;
    await plain.http({ method: "GET", path: "/x", query: new URLSearchParams(), headers: { host: "localhost:40001" } } as never, res);
    expect(headers.Location).toBe("https://localhost:40000/x");
  });

  it("without SSL_REDIRECT both listeners serve the transport's own handlers", async () => {
    const { transport, calls } = fakeTransport();
    await startListeners(transport, server(), logger());
    expect(calls.map((c) => [c.port, Boolean(c.tls), c.handlers])).toEqual([
      [8443, true, undefined],
      [8000, false, undefined],
    ]);
  });

  it("HTTPS off: one plain listener, one line, and the TLS files are not read", async () => {
    const { transport, calls } = fakeTransport();
    const log = logger();
    const result = await startListeners(transport, server({ enabled: false, certFile: "/nonexistent.pem" }), log);
    expect(calls).toEqual([{ host: "127.0.0.1", port: 8000 }]);
    expect(result).toEqual({ port: 9000, listeners: [{ host: "127.0.0.1", port: 9000, tls: false, role: "api" }] });
    expect(log.lines.map((l) => l.fields)).toEqual([{ host: "127.0.0.1", port: 9000, transport: "node", tls: false, role: "api", listeners: 1 }]);
  });

  it("a bad key fails before anything listens", async () => {
    const { transport, calls } = fakeTransport();
    await expect(startListeners(transport, server({ keyFile: pki.otherKey }), logger())).rejects.toThrow(/does not belong to the certificate/);
    expect(calls).toEqual([]);
  });

  it("a listener that cannot start closes the others and names itself", async () => {
    const { transport, closed } = fakeTransport(8000);
    await expect(startListeners(transport, server(), logger())).rejects.toThrow("cannot start the HTTP listener on 127.0.0.1:8000: listen EADDRINUSE");
    expect(closed()).toBe(1);
  });
});
