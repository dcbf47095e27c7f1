/**
 * The transport contract, run against both transports with the same fixture
 * handlers: the node transport in this process, the uWebSockets.js transport in a
 * child process (started with the glibc loader prefix where the machine needs one).
 * Loopback only, OS-chosen ports, every wait bounded.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { Agent, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { formatAddress } from "../../server/transport/common.ts";
import { createTransport } from "../../server/transport/select.ts";
import type { Transport } from "../../server/transport/types.ts";
import { loadUws } from "../../server/transport/uws.ts";
import {
  bigChunk,
  bigChunkCount,
  createFixtureHandlers,
  FIXTURE_BODY_LIMIT,
  FIXTURE_SUBPROTOCOL,
  FIXTURE_WS_MAX_PAYLOAD,
  type FixtureState,
  FLOOD_FRAME_BYTES,
} from "../fixtures/transport/handlers.ts";
import { uwsNodeCommand } from "../helpers/uws-runtime.ts";

const REPO_ROOT = resolve(import.meta.dirname, "..", "..");
const HOST = "127.0.0.1";
const INTERNAL_ERROR = { error: "Internal server error", error_type: "internal_server" };

// ---------------------------------------------------------------- small helpers

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function waitUntil<T>(probe: () => Promise<T | undefined> | T | undefined, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sha256 = (data: Buffer | string) => createHash("sha256").update(data).digest("hex");

interface Target {
  kind: "node" | "uws";
  /** What the transport reported itself as (proves uWS did not fall back). */
  name: string;
  port: number;
  tlsPort: number;
  stop(): Promise<void>;
}

interface Tls {
  dir: string;
  certFile: string;
  keyFile: string;
  cert: Buffer;
}

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

interface RequestOptions {
  method?: string;
  path: string;
  headers?: Record<string, string | string[]>;
  body?: Buffer | string | Buffer[];
  tls?: Tls;
  timeoutMs?: number;
  /** A keep-alive agent; by default each request has its own connection (and says Connection: close). */
  agent?: Agent;
}

function send(port: number, options: RequestOptions, onResponse?: (res: IncomingMessage) => void): Promise<Reply> {
  const { method = "GET", path, headers = {}, body, tls, timeoutMs = 15_000, agent = false } = options;
  return withTimeout(
    new Promise<Reply>((resolvePromise, reject) => {
      const common = { host: HOST, port, method, path, headers, agent };
      const req = tls ? httpsRequest({ ...common, ca: tls.cert, servername: "localhost" }) : httpRequest(common);
      req.on("error", reject);
      req.on("response", (res) => {
        onResponse?.(res);
        const parts: Buffer[] = [];
        res.on("data", (c: Buffer) => parts.push(c));
        res.on("end", () => resolvePromise({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
        res.on("error", reject);
      });
      if (Array.isArray(body)) {
        // Several writes without a Content-Length: chunked transfer encoding.
        for (const part of body) req.write(part);
        req.end();
      } else {
        req.end(body);
      }
    }),
    timeoutMs,
    `${method} ${path}`,
  );
}

async function getJson<T>(port: number, path: string, tls?: Tls): Promise<T> {
  const reply = await send(port, { path, tls });
  expect(reply.status).toBe(200);
  return JSON.parse(reply.body.toString()) as T;
}

const stats = (target: Target) => getJson<FixtureState>(target.port, "/stats");

/** A WebSocket client that records messages and its close. */
class Client {
  readonly ws: WebSocket;
  readonly messages: string[] = [];
  close: { code: number; reason: string } | undefined;
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;
  #waiters = new Set<() => void>();

  constructor(url: string, protocols: string[] | undefined, options: WebSocket.ClientOptions = {}) {
    this.ws = new WebSocket(url, protocols, { perMessageDeflate: false, ...options });
    this.opened = withTimeout(
      new Promise<void>((res, rej) => {
        this.ws.once("open", () => res());
        this.ws.once("error", rej);
        this.ws.once("unexpected-response", (_req, response) => rej(new Error(`unexpected response ${response.statusCode}`)));
      }),
      10_000,
      `open ${url}`,
    );
    this.opened.catch(() => {});
    this.closed = new Promise((res) => {
      this.ws.once("close", (code, reason) => {
        this.close = { code, reason: reason.toString() };
        res(this.close);
        this.#notify();
      });
    });
    this.ws.on("error", () => {});
    this.ws.on("message", (data, isBinary) => {
      this.messages.push(isBinary ? `<binary ${(data as Buffer).length}>` : (data as Buffer).toString());
      this.#notify();
    });
  }

  /** Resolves once `predicate` holds over the messages received so far. */
  waitFor(predicate: (messages: string[]) => boolean, ms: number, what: string): Promise<void> {
    return withTimeout(
      new Promise<void>((res) => {
        const check = () => {
          if (predicate(this.messages)) {
            this.#waiters.delete(check);
            res();
          }
        };
        this.#waiters.add(check);
        check();
      }),
      ms,
      what,
    );
  }

  waitClosed(ms = 10_000) {
    return withTimeout(this.closed, ms, "websocket close");
  }

  #notify() {
    for (const w of [...this.#waiters]) w();
  }
}

// ---------------------------------------------------------------- targets

let tls: Tls;
let bundleDir: string;
let bundle: string;

async function startInProcess(kind: "node"): Promise<Target> {
  const { handlers } = createFixtureHandlers();
  const logger = { warn: () => {}, error: () => {} };
  const plain: Transport = createTransport(kind, handlers, logger);
  const secure: Transport = createTransport(kind, handlers, logger);
  const { port } = await plain.listen({ host: HOST, port: 0 });
  const { port: tlsPort } = await secure.listen({ host: HOST, port: 0, tls: { certFile: tls.certFile, keyFile: tls.keyFile } });
  return {
    kind,
    name: plain.name,
    port,
    tlsPort,
    async stop() {
      await withTimeout(Promise.all([plain.close(), secure.close()]), 10_000, "close in-process transports");
    },
  };
}

async function startChild(kind: "uws" | "node"): Promise<Target> {
  const { command, args } = await uwsNodeCommand([bundle, kind, tls.certFile, tls.keyFile]);
  const child: ChildProcess = spawn(command, args, { cwd: REPO_ROOT, stdio: ["pipe", "pipe", "pipe"] });
  const output: string[] = [];
  child.stderr!.on("data", (c: Buffer) => output.push(c.toString()));
  const ready = await withTimeout(
    new Promise<{ transport: string; port: number; tlsPort: number }>((res, rej) => {
      let buffered = "";
      child.stdout!.on("data", (c: Buffer) => {
        buffered += c.toString();
        const newline = buffered.indexOf("\n");
        if (newline >= 0) res(JSON.parse(buffered.slice(0, newline)) as { transport: string; port: number; tlsPort: number });
      });
      child.once("exit", (code) => rej(new Error(`fixture server exited with ${code}: ${output.join("")}`)));
    }),
    60_000,
    "fixture server start",
  );
  return {
    kind,
    name: ready.transport,
    port: ready.port,
    tlsPort: ready.tlsPort,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.stdin!.end();
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), "transport-tls-"));
  const certFile = join(dir, "cert.pem");
  const keyFile = join(dir, "key.pem");
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=DNS:localhost,IP:127.0.0.1",
      "-days",
      "1",
      "-keyout",
      keyFile,
      "-out",
      certFile,
    ],
    { stdio: "ignore", timeout: 30_000 },
  );
  tls = { dir, certFile, keyFile, cert: readFileSync(certFile) };

  // The bundle lives under the checkout (.cache is git-ignored) so that it resolves node_modules.
  mkdirSync(join(REPO_ROOT, ".cache"), { recursive: true });
  bundleDir = mkdtempSync(join(REPO_ROOT, ".cache", "transport-test-"));
  bundle = join(bundleDir, "fixture-server.mjs");
  await build({
    entryPoints: [join(REPO_ROOT, "test/fixtures/transport/server.ts")],
    outfile: bundle,
    bundle: true,
    platform: "node",
    target: "node20",
    format: "esm",
    packages: "external",
    logLevel: "warning",
  });
});

afterAll(() => {
  if (tls) rmSync(tls.dir, { recursive: true, force: true });
  if (bundleDir) rmSync(bundleDir, { recursive: true, force: true });
});

// ---------------------------------------------------------------- the suite

describe.each(["node", "uws"] as const)("%s transport", (kind) => {
  let target: Target;
  let wsUrl: string;

  beforeAll(async () => {
    target = kind === "uws" ? await startChild("uws") : await startInProcess("node");
    wsUrl = `ws://${HOST}:${target.port}/ws`;
  });

  afterAll(async () => {
    await target?.stop();
  });

  it("is the transport it was asked for", () => {
    expect(target.name).toBe(kind);
  });

  describe("HTTP", () => {
    it("passes method, path, query, headers and the remote address", async () => {
      const reply = await send(target.port, {
        path: "/echo?a=1&b=two%20words&a=2&empty=",
        headers: { "X-Test": "hello", "X-Multi": ["one", "two"] },
      });
      expect(reply.status).toBe(200);
      expect(reply.headers["content-type"]).toBe("application/json");
      const echo = JSON.parse(reply.body.toString());
      expect(echo.method).toBe("GET");
      expect(echo.path).toBe("/echo");
      expect(echo.query).toEqual([
        ["a", "1"],
        ["b", "two words"],
        ["a", "2"],
        ["empty", ""],
      ]);
      expect(echo.headers["x-test"]).toBe("hello");
      expect(echo.headers["x-multi"]).toBe("one, two");
      expect(echo.headers.host).toBe(`${HOST}:${target.port}`);
      expect(echo.remoteAddress).toBe(HOST);
      expect(echo.secure).toBe(false);
    });

    it("keeps the connection for a bodiless request answered at once", async () => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        const sockets = new Set<unknown>();
        for (let i = 0; i < 3; i++) {
          const reply = await send(target.port, { path: "/echo", agent }, (res) => sockets.add(res.socket));
          expect(reply.status).toBe(200);
          expect(reply.headers.connection ?? "keep-alive").not.toBe("close");
        }
        expect(sockets.size).toBe(1);
      } finally {
        agent.destroy();
      }
    });

    it("answers HEAD without a body and keeps the connection usable", async () => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        const sockets = new Set<unknown>();
        const get = await send(target.port, { path: "/echo?same=1", agent }, (res) => sockets.add(res.socket));
        expect(get.status).toBe(200);
        const head = await send(target.port, { method: "HEAD", path: "/echo?same=1", agent }, (res) => sockets.add(res.socket));
        expect(head.status).toBe(200);
        expect(head.body.length).toBe(0);
        // A stray body after the HEAD response would be parsed as the next response.
        const again = await send(target.port, { path: "/echo", agent }, (res) => sockets.add(res.socket));
        expect(again.status).toBe(200);
        expect(JSON.parse(again.body.toString()).path).toBe("/echo");
        expect(sockets.size).toBe(1);
      } finally {
        agent.destroy();
      }
    });

    it("answers 204 without Content-Length", async () => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        const reply = await send(target.port, { path: "/no-content", agent });
        expect(reply.status).toBe(204);
        expect(reply.headers["x-fixture"]).toBe("yes");
        expect(reply.headers["content-length"]).toBeUndefined();
        expect(reply.body.length).toBe(0);
        expect((await send(target.port, { path: "/echo", agent })).status).toBe(200);
      } finally {
        agent.destroy();
      }
    });

    it("reads a JSON body", async () => {
      const payload = { hello: "wörld", list: [1, 2, 3], nested: { ok: true } };
      const reply = await send(target.port, {
        method: "POST",
        path: "/json",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(payload),
      });
      expect(reply.status).toBe(200);
      expect(JSON.parse(reply.body.toString())).toEqual({ received: payload });
    });

    it("reads a chunked body", async () => {
      const reply = await send(target.port, { method: "POST", path: "/json", body: [Buffer.from('{"parts":'), Buffer.from("[1,"), Buffer.from("2]}")] });
      expect(reply.status).toBe(200);
      expect(JSON.parse(reply.body.toString())).toEqual({ received: { parts: [1, 2] } });
    });

    it("accepts a body at the limit", async () => {
      const reply = await send(target.port, { method: "POST", path: "/limited", body: Buffer.alloc(FIXTURE_BODY_LIMIT, 1) });
      expect(reply.status).toBe(200);
      expect(JSON.parse(reply.body.toString())).toEqual({ bytes: FIXTURE_BODY_LIMIT });
    });

    it("rejects a body over the limit with 413 (declared length) and drops the connection", async () => {
      const agent = new Agent({ keepAlive: true });
      try {
        const reply = await send(target.port, { method: "POST", path: "/limited", body: Buffer.alloc(64 * 1024, 1), agent });
        expect(reply.status).toBe(413);
        expect(JSON.parse(reply.body.toString())).toEqual({ error: "Request body too large", limit: FIXTURE_BODY_LIMIT });
        // The unread rest of the body is not drained: the connection is not reused.
        expect(reply.headers.connection).toBe("close");
      } finally {
        agent.destroy();
      }
    });

    it("rejects a chunked body over the limit with 413 (counted while reading)", async () => {
      const agent = new Agent({ keepAlive: true });
      try {
        const parts = Array.from({ length: 8 }, () => Buffer.alloc(512, 2));
        const reply = await send(target.port, { method: "POST", path: "/limited", body: parts, agent });
        expect(reply.status).toBe(413);
        expect(JSON.parse(reply.body.toString())).toEqual({ error: "Request body too large", limit: FIXTURE_BODY_LIMIT });
        // Whether the connection is kept depends on whether the whole body had arrived: not asserted.
      } finally {
        agent.destroy();
      }
    });

    it("streams a large upload through bodyStream with backpressure", async () => {
      const parts = Array.from({ length: 128 }, (_, i) => Buffer.alloc(64 * 1024, i));
      const reply = await send(target.port, { method: "POST", path: "/upload-stream", body: parts, timeoutMs: 30_000 });
      expect(reply.status).toBe(200);
      expect(JSON.parse(reply.body.toString())).toEqual({ bytes: 128 * 64 * 1024, sha256: sha256(Buffer.concat(parts)) });
    });

    it("rejects body() with RequestAbortedError when the client leaves mid-upload", async () => {
      const id = `upload-abort-${kind}`;
      await withTimeout(
        new Promise<void>((res) => {
          const req = httpRequest({
            host: HOST,
            port: target.port,
            method: "POST",
            path: `/upload-outcome?id=${id}`,
            headers: { "Content-Length": String(4 * 1024 * 1024) },
            agent: false,
          });
          req.on("error", () => {});
          req.write(Buffer.alloc(256 * 1024, 3), () => {
            setTimeout(() => {
              req.destroy();
              res();
            }, 50);
          });
        }),
        5_000,
        "partial upload",
      );
      const outcome = await waitUntil(async () => (await stats(target)).uploads[id], 5_000, "upload outcome");
      expect(outcome).toBe("RequestAbortedError");
    });

    it("streams a response in chunks the client sees before the last one is written", async () => {
      const id = `chunks-${kind}`;
      let first: Promise<string> | undefined;
      const whole = send(target.port, { path: `/chunks?id=${id}` }, (res) => {
        first = new Promise((res1) => res.once("data", (c: Buffer) => res1(c.toString())));
      });
      await waitUntil(() => first, 5_000, "response headers");
      expect(await withTimeout(first!, 5_000, "first chunk")).toBe("first\n");
      // The handler is still waiting: the rest is written only after this release.
      const release = await getJson<{ released: boolean }>(target.port, `/release?id=${id}`);
      expect(release.released).toBe(true);
      const reply = await whole;
      expect(reply.status).toBe(200);
      expect(reply.headers["transfer-encoding"]).toBe("chunked");
      expect(reply.body.toString()).toBe("first\nsecond\nlast\n");
    });

    it("streams 20 MiB with backpressure and delivers it intact", async () => {
      const id = `big-${kind}`;
      const mb = 20;
      const expected = createHash("sha256");
      const count = bigChunkCount(mb);
      for (let i = 0; i < count; i++) expected.update(bigChunk(i));
      const hash = createHash("sha256");
      let bytes = 0;
      const status = await withTimeout(
        new Promise<number>((res, rej) => {
          const req = httpRequest({ host: HOST, port: target.port, path: `/big?mb=${mb}&id=${id}`, agent: false });
          req.on("error", rej);
          req.on("response", (response) => {
            // Do not read for a while: the server's buffers fill and write() must say so.
            response.pause();
            setTimeout(() => response.resume(), 500);
            response.on("data", (c: Buffer) => {
              hash.update(c);
              bytes += c.length;
            });
            response.on("end", () => res(response.statusCode ?? 0));
            response.on("error", rej);
          });
          req.end();
        }),
        60_000,
        "20 MiB download",
      );
      expect(status).toBe(200);
      expect(bytes).toBe(count * 64 * 1024);
      expect(hash.digest("hex")).toBe(expected.digest("hex"));
      const after = await stats(target);
      expect(after.drainWaits[id]).toBeGreaterThan(0);
    });

    it("calls onAborted when the client goes away during a streamed response", async () => {
      const id = `abort-${kind}`;
      await withTimeout(
        new Promise<void>((res, rej) => {
          const req = httpRequest({ host: HOST, port: target.port, path: `/abortable?id=${id}`, agent: false });
          req.on("error", () => {});
          req.on("response", (response) => {
            response.once("data", () => {
              req.destroy();
              res();
            });
            response.on("error", () => {});
          });
          req.on("error", rej);
          req.end();
        }),
        5_000,
        "first tick",
      );
      await waitUntil(async () => (await stats(target)).aborted.includes(id), 5_000, "onAborted");
    });

    it("answers 500 JSON when a handler throws", async () => {
      const reply = await send(target.port, { path: "/throw" });
      expect(reply.status).toBe(500);
      expect(reply.headers["content-type"]).toBe("application/json");
      expect(JSON.parse(reply.body.toString())).toEqual(INTERNAL_ERROR);
    });

    it("answers 500 JSON when a handler rejects", async () => {
      const reply = await send(target.port, { path: "/reject" });
      expect(reply.status).toBe(500);
      expect(JSON.parse(reply.body.toString())).toEqual(INTERNAL_ERROR);
    });

    it("ends a started response when the handler fails afterwards", async () => {
      const reply = await send(target.port, { path: "/throw-after-write" });
      expect(reply.status).toBe(200);
      expect(reply.body.toString()).toBe("partial");
    });

    it("is still serving after the failures", async () => {
      const reply = await send(target.port, { path: "/nowhere" });
      expect(reply.status).toBe(404);
      expect(JSON.parse(reply.body.toString())).toEqual({ error: "Not found", path: "/nowhere" });
    });
  });

  describe("WebSocket", () => {
    it("selects our subprotocol when offered and passes the upgrade request", async () => {
      const client = new Client(`${wsUrl}?id=proto-${kind}&x=1`, ["other.v1", FIXTURE_SUBPROTOCOL], { headers: { "X-Test": "upgrade" } });
      await client.opened;
      expect(client.ws.protocol).toBe(FIXTURE_SUBPROTOCOL);
      client.ws.send("info");
      await client.waitFor((m) => m.length >= 1, 5_000, "info");
      const info = JSON.parse(client.messages[0]!);
      expect(info.path).toBe("/ws");
      expect(info.query).toEqual([
        ["id", `proto-${kind}`],
        ["x", "1"],
      ]);
      expect(info.headers["x-test"]).toBe("upgrade");
      expect(info.headers["sec-websocket-protocol"].split(/\s*,\s*/)).toEqual(["other.v1", FIXTURE_SUBPROTOCOL]);
      expect(info.remoteAddress).toBe(HOST);
      expect(info.socketRemoteAddress).toBe(HOST);
      expect(info.secure).toBe(false);
      client.ws.close();
      await client.waitClosed();
    });

    it("accepts a client that offers no subprotocol", async () => {
      const client = new Client(wsUrl, undefined);
      await client.opened;
      expect(client.ws.protocol).toBe("");
      client.ws.close();
      await client.waitClosed();
    });

    it("selects nothing for a client that offers only other subprotocols", async () => {
      // The server accepts without selecting; the ws client then refuses the connection itself.
      const client = new Client(wsUrl, ["other.v1"]);
      await expect(client.opened).rejects.toThrow(/subprotocol/i);
    });

    it("answers an upgrade to another path with 404", async () => {
      const client = new Client(`ws://${HOST}:${target.port}/elsewhere`, [FIXTURE_SUBPROTOCOL]);
      await expect(client.opened).rejects.toThrow(/unexpected response 404/);
    });

    it("echoes text", async () => {
      const client = new Client(wsUrl, [FIXTURE_SUBPROTOCOL]);
      await client.opened;
      client.ws.send("hello");
      client.ws.send("héllo ✓ 🎉");
      await client.waitFor((m) => m.length >= 2, 5_000, "echo");
      expect(client.messages).toEqual(["hello", "héllo ✓ 🎉"]);
      client.ws.close(1000);
      await client.waitClosed();
    });

    it("delivers 100 messages in order", async () => {
      const client = new Client(wsUrl, [FIXTURE_SUBPROTOCOL]);
      await client.opened;
      const sent = Array.from({ length: 100 }, (_, i) => `message ${i}`);
      for (const text of sent) client.ws.send(text);
      await client.waitFor((m) => m.length >= 100, 10_000, "100 echoes");
      expect(client.messages).toEqual(sent);
      client.ws.close();
      await client.waitClosed();
    });

    it("accepts a frame at maxPayload and closes with 1009 above it", async () => {
      const client = new Client(wsUrl, [FIXTURE_SUBPROTOCOL]);
      await client.opened;
      const atLimit = "a".repeat(FIXTURE_WS_MAX_PAYLOAD);
      client.ws.send(atLimit);
      await client.waitFor((m) => m.length >= 1, 5_000, "echo at the limit");
      expect(client.messages[0]!.length).toBe(FIXTURE_WS_MAX_PAYLOAD);
      client.ws.send(`${atLimit}b`);
      const close = await client.waitClosed();
      expect(close.code).toBe(1009);
    });

    it("drops a client that sends a frame far above maxPayload", async () => {
      const id = `huge-${kind}`;
      const client = new Client(`${wsUrl}?id=${id}`, [FIXTURE_SUBPROTOCOL]);
      await client.opened;
      client.ws.send("x".repeat(4 * 1024 * 1024));
      const close = await client.waitClosed();
      // node: 1009 close frame. uWS refuses frames above its ceiling by dropping the TCP connection (1006).
      expect(kind === "node" ? [1009] : [1006, 1009]).toContain(close.code);
      await waitUntil(async () => (await stats(target)).ws[id]?.closed, 5_000, "server close handler");
    });

    it("delivers a server close with code 4002 and its reason", async () => {
      const id = `close-${kind}`;
      const client = new Client(`${wsUrl}?id=${id}`, [FIXTURE_SUBPROTOCOL]);
      await client.opened;
      client.ws.send("close:4002:bad frame: details");
      const close = await client.waitClosed();
      expect(close).toEqual({ code: 4002, reason: "bad frame: details" });
      const state = await waitUntil(async () => (await stats(target)).ws[id]?.closed, 5_000, "server close handler");
      expect(state.code).toBe(4002);
    });

    it("runs the close handler when the client terminates", async () => {
      const id = `terminate-${kind}`;
      const client = new Client(`${wsUrl}?id=${id}`, [FIXTURE_SUBPROTOCOL]);
      await client.opened;
      client.ws.send("ping");
      await client.waitFor((m) => m.length >= 1, 5_000, "echo");
      client.ws.terminate();
      const closed = await waitUntil(async () => (await stats(target)).ws[id]?.closed, 5_000, "server close handler");
      expect(closed.code).toBe(1006);
    });

    it("passes the client's close code and reason to the close handler", async () => {
      const id = `client-close-${kind}`;
      const client = new Client(`${wsUrl}?id=${id}`, [FIXTURE_SUBPROTOCOL]);
      await client.opened;
      client.ws.close(4100, "bye now");
      expect((await client.waitClosed()).code).toBe(4100);
      const closed = await waitUntil(async () => (await stats(target)).ws[id]?.closed, 5_000, "server close handler");
      expect(closed).toEqual({ code: 4100, reason: "bye now" });
    });

    it("closes with 1003 on a binary frame unless the connection takes binary frames", async () => {
      const plain = new Client(wsUrl, [FIXTURE_SUBPROTOCOL]);
      await plain.opened;
      plain.ws.send(Buffer.from([1, 2, 3]));
      expect((await plain.waitClosed()).code).toBe(1003);
      expect(plain.messages).toEqual([]);

      const session = new Client(`${wsUrl}?binary=session`, [FIXTURE_SUBPROTOCOL]);
      await session.opened;
      session.ws.send(Buffer.from([1, 2, 3]));
      expect(await session.waitClosed()).toEqual({ code: 4002, reason: "binary frames are not accepted" });
    });

    it("returns false from send() while the client does not read, and drains after it resumes", async () => {
      const id = `flood-${kind}`;
      const client = new Client(`${wsUrl}?id=${id}`, [FIXTURE_SUBPROTOCOL]);
      await client.opened;
      client.ws.pause();
      client.ws.send("flood");
      const paused = await waitUntil(
        async () => {
          const s = (await stats(target)).ws[id];
          return s?.sendFalse ? s : undefined;
        },
        10_000,
        "send() returning false",
      );
      expect(paused.drained).toBe(false);
      // Nothing drains while the client does not read.
      await new Promise((r) => setTimeout(r, 200));
      expect((await stats(target)).ws[id]?.drained).toBe(false);

      client.ws.resume();
      await client.waitFor((m) => m.some((text) => text.startsWith("drained:")), 30_000, "drain");
      const frames = client.messages.filter((m) => m.startsWith("flood:"));
      expect(frames.length).toBe(paused.framesSent);
      frames.forEach((frame, i) => {
        expect(frame.slice(0, frame.indexOf(":", 6) + 1)).toBe(`flood:${i}:`);
        expect(frame.length).toBe(`flood:${i}:`.length + FLOOD_FRAME_BYTES);
      });
      // Every flood frame arrived before the drain notice: nothing was dropped or reordered.
      expect(client.messages.at(-1)!.startsWith(`drained:${paused.framesSent}:`)).toBe(true);
      expect((await stats(target)).ws[id]?.drained).toBe(true);
      client.ws.close();
      await client.waitClosed();
    });
  });

  describe("TLS", () => {
    it("serves HTTPS", async () => {
      const echo = await getJson<{ secure: boolean; path: string; remoteAddress: string }>(target.tlsPort, "/echo?via=tls", tls);
      expect(echo.secure).toBe(true);
      expect(echo.path).toBe("/echo");
      expect(echo.remoteAddress).toBe(HOST);
    });

    it("echoes over wss://", async () => {
      const client = new Client(`wss://${HOST}:${target.tlsPort}/ws?id=tls-${kind}`, [FIXTURE_SUBPROTOCOL], { ca: tls.cert });
      await client.opened;
      expect(client.ws.protocol).toBe(FIXTURE_SUBPROTOCOL);
      client.ws.send("over tls");
      client.ws.send("info");
      await client.waitFor((m) => m.length >= 2, 5_000, "tls echo");
      expect(client.messages[0]).toBe("over tls");
      expect(JSON.parse(client.messages[1]!).secure).toBe(true);
      client.ws.close();
      await client.waitClosed();
    });
  });
});

describe("formatAddress", () => {
  it("prints addresses the way node does", () => {
    expect(formatAddress(new Uint8Array([127, 0, 0, 1]))).toBe("127.0.0.1");
    expect(formatAddress(Buffer.from("00000000000000000000ffff7f000001", "hex"))).toBe("127.0.0.1");
    expect(formatAddress(Buffer.from("00000000000000000000000000000001", "hex"))).toBe("::1");
    expect(formatAddress(Buffer.from("00000000000000000000000000000000", "hex"))).toBe("::");
    expect(formatAddress(Buffer.from("20010db8000000000001000000000001", "hex"))).toBe("2001:db8::1:0:0:1");
    expect(formatAddress(Buffer.from("20010db8000100000000000000000000", "hex"))).toBe("2001:db8:1::");
    expect(formatAddress(Buffer.from("fe800000000000000a000027fffe4e66", "hex"))).toBe("fe80::a00:27:fffe:4e66");
    expect(formatAddress(Buffer.from("20010db8aaaabbbbccccddddeeee0001", "hex"))).toBe("2001:db8:aaaa:bbbb:cccc:dddd:eeee:1");
  });
});

describe("createTransport", () => {
  const { handlers } = createFixtureHandlers();
  let loadsHere = true;
  let reason = "";
  try {
    loadUws();
  } catch (error) {
    loadsHere = false;
    reason = (error as { reason: string }).reason;
  }

  it('"node" gives the node transport', () => {
    expect(createTransport("node", handlers, { warn: () => {}, error: () => {} }).name).toBe("node");
  });

  it('"auto" uses uWS where it loads and otherwise falls back with a warning naming the reason', () => {
    const warnings: Array<{ fields: Record<string, unknown>; message: string }> = [];
    const transport = createTransport("auto", handlers, { warn: (fields, message) => warnings.push({ fields, message }), error: () => {} });
    if (loadsHere) {
      expect(transport.name).toBe("uws");
      expect(warnings).toEqual([]);
    } else {
      expect(transport.name).toBe("node");
      expect(warnings).toHaveLength(1);
      expect(warnings[0]!.fields.reason).toBe(reason);
      expect(reason.length).toBeGreaterThan(0);
    }
  });

  it('"uws" fails hard with a clear error where uWS cannot load', () => {
    const create = () => createTransport("uws", handlers, { warn: () => {}, error: () => {} });
    if (loadsHere) expect(create().name).toBe("uws");
    else expect(create).toThrow(/SERVER_TRANSPORT=uws but uWebSockets\.js cannot be loaded on this machine: .+/);
  });
});
