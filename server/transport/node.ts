/**
 * The fallback transport: node:http / node:https and `ws` (noServer), one server per
 * listening port, with the same semantics as the uWebSockets.js transport.
 *
 * Binary WebSocket frames go to `WsConnection.binary` when the connection has one;
 * otherwise the socket is closed with 1003 (unsupported data).
 */

import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { WebSocket, WebSocketServer } from "ws";
import { CloseCodes } from "../../protocol/index.ts";
import { clientAddress, type TrustedProxies } from "./client-address.ts";
import {
  ChunkQueue,
  DEFAULT_BODY_HIGH_WATER_MARK,
  DEFAULT_BODY_PACE,
  DEFAULT_WS_HIGH_WATER_MARK,
  declaredLength,
  INTERNAL_ERROR_BODY,
  normalizeAddress,
  sendableCloseCode,
  statusLine,
  statusText,
  toBuffer,
  truncateCloseReason,
} from "./common.ts";
import { ConnectionCap } from "./connection-cap.ts";
import { loadTlsMaterial } from "./tls.ts";
import {
  BodyConsumedError,
  type BodyPace,
  BodyTooLargeError,
  type HttpRequest,
  type HttpResponse,
  type ListenOptions,
  RequestAbortedError,
  type Transport,
  type TransportHandlers,
  type TransportOptions,
  type UpgradeRefusal,
  type UpgradeRequest,
  type WsConnection,
  type WsSocket,
} from "./types.ts";

export interface NodeTransportOptions extends TransportOptions {
  /** Ping every WebSocket this often; a peer that did not answer the previous ping is terminated. Default 30 s. */
  wsPingIntervalMs?: number;
  /** How long close() waits for WebSocket close handshakes before terminating. Default 1 s. */
  closeGraceMs?: number;
  /**
   * Connections one address may hold open (0: no cap); trusted proxies are not capped. Default 0.
   * Node transport only: uWebSockets.js reports a closing connection without its address, so it cannot be counted off.
   */
  maxConnectionsPerAddress?: number;
}

/**
 * A client has 10 s to send its request headers, checked every second (node's
 * defaults, 60 s checked every 30 s, let slow-header clients hold sockets).
 */
const SLOW_HEADERS = { headersTimeout: 10_000, connectionsCheckingInterval: 1_000 };

type ErrorReporter = (error: unknown, context: { where: "http" | "ws"; method?: string; path?: string }) => void;

function splitUrl(url: string | undefined): { path: string; query: URLSearchParams } {
  const raw = url ?? "/";
  const q = raw.indexOf("?");
  if (q < 0) return { path: raw, query: new URLSearchParams() };
  return { path: raw.slice(0, q), query: new URLSearchParams(raw.slice(q + 1)) };
}

/** Lower-cased names, repeated headers joined with ", " (including the ones node would drop or keep as arrays). */
function collectHeaders(req: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, values] of Object.entries(req.headersDistinct)) {
    if (values) headers[name] = values.join(", ");
  }
  return headers;
}

// ---------------------------------------------------------------- HTTP

class NodeHttpRequest implements HttpRequest {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: Readonly<Record<string, string>>;
  readonly remoteAddress: string;
  #consumed = false;
  #queue: ChunkQueue | undefined;
  #discarded = false;

  constructor(
    private readonly req: IncomingMessage,
    readonly secure: boolean,
    private readonly highWaterMark: number,
    private readonly pace: BodyPace = DEFAULT_BODY_PACE,
    trustedProxies?: TrustedProxies,
  ) {
    this.method = (req.method ?? "GET").toUpperCase();
    const { path, query } = splitUrl(req.url);
    this.path = path;
    this.query = query;
    this.headers = collectHeaders(req);
    this.remoteAddress = clientAddress(normalizeAddress(req.socket.remoteAddress), this.headers["x-forwarded-for"], trustedProxies);
  }

  /** Whether the response must close the connection (a body we stopped reading). */
  get unfinished(): boolean {
    return this.#discarded && !this.req.complete;
  }

  async body(limitBytes: number): Promise<Buffer> {
    this.#claim();
    const declared = declaredLength(this.headers);
    if (declared !== undefined && declared > limitBytes) {
      this.#discard();
      throw new BodyTooLargeError(limitBytes);
    }
    const queue = this.#open();
    const parts: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = await queue.next().catch((error: unknown) => {
        this.#discard(); // a stalled or trickling client: stop reading, the response closes the connection
        throw error;
      });
      if (!chunk) break;
      total += chunk.length;
      if (total > limitBytes) {
        this.#discard();
        throw new BodyTooLargeError(limitBytes);
      }
      parts.push(chunk);
    }
    return Buffer.concat(parts, total);
  }

  bodyStream(): AsyncIterable<Uint8Array> {
    this.#claim();
    const queue = this.#open();
    const discard = () => this.#discard();
    return (async function* stream() {
      let finished = false;
      try {
        for (;;) {
          const chunk = await queue.next();
          if (!chunk) {
            finished = true;
            return;
          }
          yield chunk;
        }
      } finally {
        if (!finished) discard();
      }
    })();
  }

  #claim(): void {
    if (this.#consumed) throw new BodyConsumedError();
    this.#consumed = true;
  }

  /** Start reading the IncomingMessage into a queue that pauses it above the high-water mark. */
  #open(): ChunkQueue {
    const req = this.req;
    const queue = new ChunkQueue(
      this.highWaterMark,
      () => {
        if (!this.#discarded) req.resume();
      },
      this.pace,
    );
    this.#queue = queue;
    req.on("data", (chunk: Buffer) => {
      if (this.#discarded) return;
      if (!queue.push(chunk)) req.pause();
    });
    req.on("end", () => queue.end());
    // The only errors an IncomingMessage reports are the connection going away ("aborted", ECONNRESET).
    req.on("error", () => queue.fail(new RequestAbortedError()));
    req.on("close", () => {
      if (!req.complete) queue.fail(new RequestAbortedError());
    });
    return queue;
  }

  /** Stop reading; the response will carry Connection: close. */
  #discard(): void {
    if (this.req.complete) return;
    this.#discarded = true;
    this.#queue?.clear();
    this.req.pause();
  }
}

class NodeHttpResponse implements HttpResponse {
  #status = 200;
  readonly #headers = new Map<string, [string, string]>();
  #started = false;
  #ended = false;
  #aborted = false;
  #abortListeners: (() => void)[] = [];

  constructor(
    private readonly res: ServerResponse,
    private readonly request: NodeHttpRequest,
  ) {
    res.on("close", () => {
      if (this.#ended || this.#aborted) return;
      this.#aborted = true;
      const listeners = this.#abortListeners;
      this.#abortListeners = [];
      for (const l of listeners) {
        try {
          l();
        } catch {
          // a listener's failure must not reach the server
        }
      }
    });
    // A write after the peer went away reports an error on the response: nothing to do with it.
    res.on("error", () => {});
  }

  get aborted(): boolean {
    return this.#aborted;
  }

  get headersSent(): boolean {
    return this.#started;
  }

  get done(): boolean {
    return this.#ended || this.#aborted;
  }

  status(code: number): this {
    if (!this.#started) this.#status = code;
    return this;
  }

  header(name: string, value: string): this {
    if (!this.#started) this.#headers.set(name.toLowerCase(), [name, value]);
    return this;
  }

  write(chunk: string | Uint8Array): boolean {
    if (this.done) return false;
    this.#writeHead();
    const data = toBuffer(chunk);
    if (data.length === 0) return !this.res.writableNeedDrain;
    return this.res.write(data);
  }

  drained(): Promise<void> {
    if (this.done || !this.res.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const finish = () => {
        this.res.off("drain", finish);
        this.res.off("close", finish);
        resolve();
      };
      this.res.on("drain", finish);
      this.res.on("close", finish);
    });
  }

  end(chunk?: string | Uint8Array): void {
    if (this.done) return;
    this.#ended = true;
    const data = chunk === undefined ? undefined : toBuffer(chunk);
    // Whole response in one piece: say how long it is. Node does so itself except for HEAD,
    // where a missing length makes it close the connection.
    const bodiless = this.#status === 204 || this.#status === 304 || this.#status < 200;
    if (!this.#started && !bodiless && !this.#headers.has("content-length") && !this.#headers.has("transfer-encoding")) {
      this.#headers.set("content-length", ["Content-Length", String(data?.length ?? 0)]);
    }
    this.#writeHead();
    if (data === undefined) this.res.end();
    else this.res.end(data);
  }

  onAborted(listener: () => void): void {
    if (this.#aborted) {
      queueMicrotask(listener);
      return;
    }
    if (!this.#ended) this.#abortListeners.push(listener);
  }

  fail(): void {
    if (this.done) return;
    if (!this.#started) {
      this.#status = 500;
      this.#headers.clear();
      this.#headers.set("content-type", ["Content-Type", "application/json"]);
      this.end(INTERNAL_ERROR_BODY);
    } else {
      this.end();
    }
  }

  #writeHead(): void {
    if (this.#started) return;
    this.#started = true;
    const headers: Record<string, string> = {};
    for (const [name, value] of this.#headers.values()) headers[name] = value;
    // A body we stopped reading: do not keep the connection for another request.
    if (this.request.unfinished) headers.Connection = "close";
    const text = statusText(this.#status);
    if (text) this.res.writeHead(this.#status, text, headers);
    else this.res.writeHead(this.#status, headers);
  }
}

// ---------------------------------------------------------------- WebSocket

class NodeWsSocket implements WsSocket {
  connection: WsConnection | undefined;
  alive = true;
  #high = false;

  constructor(
    readonly ws: WebSocket,
    readonly remoteAddress: string,
    private readonly highWaterMark: number,
  ) {}

  get closed(): boolean {
    return this.ws.readyState !== WebSocket.OPEN;
  }

  send(text: string): boolean {
    if (this.closed) return false;
    this.ws.send(text);
    if (this.ws.bufferedAmount > this.highWaterMark) {
      this.#high = true;
      return false;
    }
    return true;
  }

  bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  close(code?: number, reason?: string): void {
    if (this.closed) return;
    if (code === undefined) this.ws.close();
    else this.ws.close(sendableCloseCode(code) ?? 1011, truncateCloseReason(reason));
  }

  terminate(): void {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    this.ws.terminate();
  }

  onDrain(): void {
    if (!this.#high || this.closed) return;
    if (this.ws.bufferedAmount > this.highWaterMark) return;
    this.#high = false;
    this.connection?.drain();
  }
}

// ---------------------------------------------------------------- transport

export function createNodeTransport(handlers: TransportHandlers, options: NodeTransportOptions = {}): Transport {
  const connectionCap = new ConnectionCap(options.maxConnectionsPerAddress ?? 0, options.trustedProxies);
  const wsHighWaterMark = options.wsHighWaterMark ?? DEFAULT_WS_HIGH_WATER_MARK;
  const bodyHighWaterMark = options.bodyHighWaterMark ?? DEFAULT_BODY_HIGH_WATER_MARK;
  const bodyPace = options.bodyPace ?? DEFAULT_BODY_PACE;
  const pingIntervalMs = options.wsPingIntervalMs ?? 30_000;
  const closeGraceMs = options.closeGraceMs ?? 1_000;
  const report: ErrorReporter = (error, context) => {
    try {
      options.onError?.(error, context);
    } catch {
      // the reporter must not crash the transport
    }
  };

  /** One server per listener, each with its own `ws` server (its handlers may differ); sockets are shared. */
  interface Listener {
    server: Server;
    wss: WebSocketServer;
    handlers: TransportHandlers;
    wsPaths: Set<string>;
    closed: boolean;
  }
  const listeners: Listener[] = [];
  let pinger: NodeJS.Timeout | undefined;
  const sockets = new Set<NodeWsSocket>();

  const onRequest = (req: IncomingMessage, res: ServerResponse, secure: boolean, handlers: TransportHandlers) => {
    let request: NodeHttpRequest;
    let response: NodeHttpResponse;
    try {
      request = new NodeHttpRequest(req, secure, bodyHighWaterMark, bodyPace, options.trustedProxies);
      response = new NodeHttpResponse(res, request);
    } catch (error) {
      report(error, { where: "http", method: req.method, path: req.url });
      if (!res.headersSent) res.writeHead(500, { "Content-Type": "application/json" });
      res.end(INTERNAL_ERROR_BODY);
      return;
    }
    const fail = (error: unknown) => {
      // A body read that failed because the client left is not a handler bug.
      if (!(response.aborted && error instanceof RequestAbortedError)) report(error, { where: "http", method: request.method, path: request.path });
      try {
        response.fail();
      } catch (inner) {
        report(inner, { where: "http", method: request.method, path: request.path });
        res.destroy();
      }
    };
    try {
      const result = handlers.http(request, response);
      if (result && typeof (result as Promise<void>).then === "function") (result as Promise<void>).then(undefined, fail);
    } catch (error) {
      fail(error);
    }
  };

  /** Answer an upgrade with a plain response and close the connection. */
  const refuseUpgrade = (socket: Duplex, refusal: UpgradeRefusal) => {
    let head = `HTTP/1.1 ${statusLine(refusal.status)}\r\n`;
    for (const [name, value] of Object.entries(refusal.headers ?? {})) {
      // Never let a value end the header block early.
      if (!/[\r\n]/.test(name + value)) head += `${name}: ${value}\r\n`;
    }
    socket.once("finish", () => socket.destroy());
    socket.end(`${head}Connection: close\r\nContent-Length: 0\r\n\r\n`);
  };

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer, secure: boolean, listener: Listener) => {
    socket.on("error", () => {});
    const { path, query } = splitUrl(req.url);
    const handlers = listener.handlers;
    if (listener.closed || !listener.wsPaths.has(path)) {
      refuseUpgrade(socket, { status: 404 });
      return;
    }
    const headers = collectHeaders(req);
    const request: UpgradeRequest = {
      path,
      query,
      headers,
      remoteAddress: clientAddress(normalizeAddress(req.socket.remoteAddress), headers["x-forwarded-for"], options.trustedProxies),
      secure,
    };
    let refusal: UpgradeRefusal | undefined;
    try {
      refusal = handlers.ws.refuse?.(request);
    } catch (error) {
      report(error, { where: "ws", path });
      refusal = { status: 500 };
    }
    if (refusal) {
      refuseUpgrade(socket, refusal);
      return;
    }
    listener.wss.handleUpgrade(req, socket, head, (ws) => {
      const wrapped = new NodeWsSocket(ws, request.remoteAddress, wsHighWaterMark);
      sockets.add(wrapped);
      ws.on("error", () => {
        // Protocol errors (too big, invalid UTF-8) already close the socket with the right code.
      });
      ws.on("pong", () => {
        wrapped.alive = true;
      });
      ws.on("message", (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
        const connection = wrapped.connection;
        if (!connection || wrapped.closed) return;
        const buffer = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
        try {
          if (isBinary) {
            if (connection.binary) connection.binary(buffer);
            else wrapped.close(1003, "binary frames are not supported");
            return;
          }
          connection.message(buffer.toString("utf8"));
        } catch (error) {
          report(error, { where: "ws", path });
          wrapped.close(1011, "internal error");
        }
      });
      ws.on("close", (code: number, reason: Buffer) => {
        sockets.delete(wrapped);
        socket.off("drain", onDrain);
        try {
          wrapped.connection?.close(code, reason.toString("utf8"));
        } catch (error) {
          report(error, { where: "ws", path });
        }
      });
      const onDrain = () => {
        try {
          wrapped.onDrain();
        } catch (error) {
          report(error, { where: "ws", path });
        }
      };
      socket.on("drain", onDrain);
      try {
        wrapped.connection = handlers.ws.open(wrapped, request);
      } catch (error) {
        report(error, { where: "ws", path });
        wrapped.close(1011, "internal error");
      }
    });
  };

  return {
    name: "node",

    async listen(listenOptions: ListenOptions): Promise<{ port: number }> {
      const tls = listenOptions.tls;
      const secure = Boolean(tls);
      const listenerHandlers = listenOptions.handlers?.(handlers) ?? handlers;
      let created: Server;
      if (tls) {
        // Checked files, with the chain completed from the CA bundle (see tls.ts), the same as on uWS.
        const { cert, key } = loadTlsMaterial(tls);
        created = createHttpsServer({ cert, key, ...SLOW_HEADERS });
      } else {
        created = createHttpServer(SLOW_HEADERS);
      }
      const subprotocol = listenerHandlers.ws.subprotocol;
      const listener: Listener = {
        server: created,
        wss: new WebSocketServer({
          noServer: true,
          maxPayload: listenerHandlers.ws.maxPayloadBytes,
          perMessageDeflate: false,
          clientTracking: false,
          // Only called when the client offered protocols: ours if offered, else none (the client decides).
          handleProtocols: (offered: Set<string>) => (offered.has(subprotocol) ? subprotocol : false),
        }),
        handlers: listenerHandlers,
        wsPaths: new Set(listenerHandlers.ws.paths),
        closed: false,
      };
      created.on("connection", (socket: Socket) => {
        const release = connectionCap.admit(normalizeAddress(socket.remoteAddress));
        if (release) socket.once("close", release);
        else socket.destroy();
      });
      created.on("request", (req: IncomingMessage, res: ServerResponse) => onRequest(req, res, secure, listenerHandlers));
      created.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => onUpgrade(req, socket, head, secure, listener));
      await new Promise<void>((resolve, reject) => {
        created.once("error", reject);
        created.listen({ host: listenOptions.host, port: listenOptions.port, exclusive: true }, () => {
          created.off("error", reject);
          resolve();
        });
      });
      listeners.push(listener);
      pinger ??= setInterval(() => {
        for (const socket of sockets) {
          if (!socket.alive) {
            socket.terminate();
            continue;
          }
          socket.alive = false;
          try {
            socket.ws.ping();
          } catch {
            // closing already
          }
        }
      }, pingIntervalMs);
      pinger.unref();
      const address = created.address();
      return { port: typeof address === "object" && address ? address.port : listenOptions.port };
    },

    async close(): Promise<void> {
      const closing = listeners.splice(0);
      if (closing.length === 0) return;
      clearInterval(pinger);
      pinger = undefined;
      const closed = closing.map(({ server }) => new Promise<void>((resolve) => server.close(() => resolve())));
      for (const listener of closing) {
        listener.closed = true;
        listener.server.closeAllConnections();
      }
      const open = [...sockets];
      for (const socket of open) socket.close(CloseCodes.serviceRestart, "server restarting");
      if (open.length > 0) {
        const deadline = Date.now() + closeGraceMs;
        while (sockets.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
        for (const socket of [...sockets]) socket.terminate();
      }
      for (const { wss } of closing) wss.close();
      await Promise.all(closed);
    },
  };
}
