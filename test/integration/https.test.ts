/**
 * HTTPS and wss:// against the real server on both transports, with certificates
 * made by openssl for the test (a root CA, an intermediate, a localhost leaf).
 * Clients verify against the test CA; nothing here turns verification off.
 */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { request as httpsRequest } from "node:https";
import type { TLSSocket } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { WS_SUBPROTOCOL } from "../../protocol/index.ts";
import { makeTestPki, type TestPki } from "../fixtures/transport/certs.ts";
import { type ServerProcess, startServer, TEST_API_KEY } from "../helpers/server-process.ts";
import { TestClient } from "../helpers/ws-client.ts";

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** For https: whether the certificate chain verified against `ca`. */
  authorized?: boolean;
}

/** One request on its own connection; https:// verifies against `ca` (and the host name localhost). */
function fetchUrl(url: string, options: { method?: string; ca?: Buffer } = {}): Promise<Reply> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const common = {
      host: target.hostname,
      port: target.port,
      path: `${target.pathname}${target.search}`,
      method: options.method ?? "GET",
      agent: false as const,
    };
    const req =
      target.protocol === "https:"
        ? httpsRequest({ ...common, ca: options.ca, servername: "localhost", headers: { "x-api-key": TEST_API_KEY } })
        : httpRequest({ ...common, headers: { "x-api-key": TEST_API_KEY } });
    req.setTimeout(15_000, () => req.destroy(new Error(`timed out: ${url}`)));
    req.on("error", reject);
    req.on("response", (res) => {
      const parts: Buffer[] = [];
      res.on("data", (c: Buffer) => parts.push(c));
      res.on("end", () => {
        const authorized = target.protocol === "https:" ? (res.socket as TLSSocket).authorized : undefined;
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(parts).toString(),
          ...(authorized === undefined ? {} : { authorized }),
        });
      });
    });
    req.end();
  });
}

/** The status and Location of an upgrade the server answered without switching protocols. */
function refusedUpgrade(url: string): Promise<{ status: number; location?: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, WS_SUBPROTOCOL);
    ws.on("unexpected-response", (_req, res) => {
      resolve({ status: res.statusCode ?? 0, ...(res.headers.location ? { location: res.headers.location } : {}) });
      ws.terminate();
    });
    ws.on("open", () => reject(new Error("the upgrade was accepted")));
    ws.on("error", () => {});
  });
}

let pki: TestPki;
let emptyDir: string;
let autoDir: string;
let bundle: string;

beforeAll(() => {
  pki = makeTestPki();
  emptyDir = `${pki.dir}/empty`;
  mkdirSync(emptyDir);
  // SSL_CERTS_PATH the Docker guides' way: cert.pem and key.pem in one folder.
  autoDir = `${pki.dir}/ssl`;
  mkdirSync(autoDir);
  copyFileSync(pki.leafCert, `${autoDir}/cert.pem`);
  copyFileSync(pki.leafKey, `${autoDir}/key.pem`);
  // A CA bundle holding the intermediate among unrelated certificates.
  bundle = `${pki.dir}/bundle.pem`;
  writeFileSync(bundle, Buffer.concat([readFileSync(pki.selfCert), readFileSync(pki.rootCert), readFileSync(pki.interCert)]));
});

afterAll(() => pki?.remove());

describe.each(["node", "uws"] as const)("HTTPS over the %s transport", (transport) => {
  describe("ENABLE_HTTPS unset and the certificate files present", () => {
    let server: ServerProcess;
    const clients: TestClient[] = [];

    beforeAll(async () => {
      server = await startServer({ transport, env: { SSL_CERTS_PATH: autoDir, SSL_CA_CERTS: bundle, HTTPS_PORT: "0" } });
    });
    afterAll(async () => {
      for (const client of clients) client.terminate();
      await server?.stop();
    });

    it("turns HTTPS on: plain API_PORT and TLS HTTPS_PORT, one listening line each", () => {
      expect(server.listeners).toEqual([
        { port: server.port, tls: false, role: "api" },
        { port: server.httpsPort, tls: true, role: "api" },
      ]);
      expect(server.httpsPort).not.toBe(server.port);
      const lines = server.logs.filter((l) => l.includes('"msg":"listening"')).map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines).toHaveLength(2);
      expect(lines[1]).toMatchObject({ transport, tls: true, host: "127.0.0.1", listeners: 2, certificate: "CN=localhost", chainFromBundle: 1 });
    });

    it("serves GET /health over https, verified against the test root CA through the chain from SSL_CA_CERTS", async () => {
      const reply = await fetchUrl(`${server.httpsUrl}/health`, { ca: pki.rootPem });
      expect(reply).toMatchObject({ status: 200, authorized: true });
      expect(JSON.parse(reply.body)).toMatchObject({ status: "healthy" });
    });

    it("is refused by a client that does not trust the issuer", async () => {
      await expect(fetchUrl(`${server.httpsUrl}/health`, { ca: pki.selfPem })).rejects.toThrow(/certificate/i);
    });

    it("keeps the API on the plain port (SSL_REDIRECT is off)", async () => {
      const reply = await fetchUrl(`${server.httpUrl}/health`);
      expect(reply.status).toBe(200);
    });

    it("opens a session and runs an exec over wss://", async () => {
      const client = await TestClient.connect(server.wssUrl!, { apiKey: TEST_API_KEY, ca: pki.rootPem });
      clients.push(client);
      expect(client.socket.protocol).toBe(WS_SUBPROTOCOL);
      const ready = await client.openSession();
      expect(ready.type).toBe("session.ready");
      const { exit, stdout } = await client.run("tls", "py", "print('hello over tls')");
      expect(exit).toMatchObject({ type: "exit", reason: "exited", code: 0 });
      expect(stdout).toBe("hello over tls\n");
    });
  });

  describe("SSL_REDIRECT=true", () => {
    let server: ServerProcess;
    const clients: TestClient[] = [];

    beforeAll(async () => {
      server = await startServer({
        transport,
        env: { ENABLE_HTTPS: "true", SSL_CERT_FILE: pki.selfCert, SSL_KEY_FILE: pki.selfKey, HTTPS_PORT: "0", SSL_REDIRECT: "true" },
      });
    });
    afterAll(async () => {
      for (const client of clients) client.terminate();
      await server?.stop();
    });

    it("makes the plain listener a redirect", () => {
      expect(server.listeners.map((l) => [l.tls, l.role])).toEqual([
        [false, "redirect"],
        [true, "api"],
      ]);
    });

    it("answers 307 to the same path and query on the HTTPS port, for any method, and the target serves", async () => {
      for (const method of ["GET", "POST"]) {
        const reply = await fetchUrl(`${server.httpUrl}/languages?x=1`, { method });
        expect(reply.status).toBe(307);
        expect(reply.headers.location).toBe(`https://127.0.0.1:${server.httpsPort}/languages?x=1`);
      }
      const followed = await fetchUrl(`https://127.0.0.1:${server.httpsPort}/languages?x=1`, { ca: pki.selfPem });
      expect(followed).toMatchObject({ status: 200, authorized: true });
    });

    it("still answers /health on the plain port", async () => {
      const reply = await fetchUrl(`${server.httpUrl}/health`);
      expect(reply.status).toBe(200);
      expect(JSON.parse(reply.body)).toMatchObject({ status: "healthy" });
    });

    it("answers a ws:// upgrade with a 307 to wss://, which a client can follow", async () => {
      expect(await refusedUpgrade(`${server.wsUrl}?a=b`)).toEqual({ status: 307, location: `wss://127.0.0.1:${server.httpsPort}/ws?a=b` });
      const client = await TestClient.connect(server.wsUrl, { apiKey: TEST_API_KEY, ca: pki.selfPem, followRedirects: true });
      clients.push(client);
      expect(client.socket.url).toBe(`wss://127.0.0.1:${server.httpsPort}/ws`);
      expect((await client.openSession()).type).toBe("session.ready");
    });
  });

  it("ENABLE_HTTPS unset without the certificate files: plain only", async () => {
    const server = await startServer({ transport, env: { SSL_CERTS_PATH: emptyDir, HTTPS_PORT: "0" } });
    try {
      expect(server.listeners).toEqual([{ port: server.port, tls: false, role: "api" }]);
      expect(server.httpsPort).toBeUndefined();
      expect((await fetchUrl(`${server.httpUrl}/health`)).status).toBe(200);
    } finally {
      await server.stop();
    }
  });

  it("ENABLE_HTTPS=true without the certificate files: a clear start-up error", async () => {
    await expect(startServer({ transport, env: { ENABLE_HTTPS: "true", SSL_CERTS_PATH: emptyDir, HTTPS_PORT: "0" } })).rejects.toThrow(
      `config error: ENABLE_HTTPS is true but the certificate file ${emptyDir}/cert.pem does not exist (set SSL_CERT_FILE or SSL_CERTS_PATH)`,
    );
  });

  it("a key that does not belong to the certificate: a clear start-up error", async () => {
    await expect(
      startServer({ transport, env: { ENABLE_HTTPS: "true", SSL_CERT_FILE: pki.leafCert, SSL_KEY_FILE: pki.otherKey, HTTPS_PORT: "0" } }),
    ).rejects.toThrow(`HTTPS: the key ${pki.otherKey} does not belong to the certificate ${pki.leafCert}`);
  });
});
