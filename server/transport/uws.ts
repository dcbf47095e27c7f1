/**
 * The uWebSockets.js transport: HTTP and WebSocket on each listening port, one
 * App (plain) or SSLApp (TLS) per listener.
 *
 * uWS objects are only valid inside their callbacks (HttpRequest) or until the
 * response ends / the client aborts (HttpResponse) / the socket closes (WebSocket);
 * touching them afterwards throws or crashes. Everything here copies what it needs
 * synchronously and guards every later call with its own state flags.
 *
 * Binary WebSocket frames go to `WsConnection.binary` when the connection has one;
 * otherwise the socket is closed with 1003 (unsupported data).
 */

import type * as UWS from "uWebSockets.js";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CloseCodes } from "../../protocol/index.ts";
import { clientAddress } from "./client-address.ts";
import {
  ChunkQueue,
  DEFAULT_BODY_HIGH_WATER_MARK,
  DEFAULT_BODY_PACE,
  DEFAULT_WS_HIGH_WATER_MARK,
  declaredLength,
  formatAddress,
  hasBody,
  INTERNAL_ERROR_BODY,
  normalizeAddress,
  selectSubprotocol,
  sendableCloseCode,
  statusLine,
  toBuffer,
  truncateCloseReason,
} from "./common.ts";
import { loadTlsMaterial } from "./tls.ts";
import {
  BodyConsumedError,
  type BodyPace,
  BodyTooLargeError,
  type HttpRequest,
  type HttpResponse,
  type ListenOptions,
  RequestAbortedError,
  type TlsOptions,
  type Transport,
  type TransportHandlers,
  type TransportOptions,
  type UpgradeRequest,
  type WsConnection,
  type WsSocket,
} from "./types.ts";

export type UwsModule = typeof UWS;

/** uWebSockets.js cannot be loaded here (glibc too old, musl, unsupported Node ABI, not installed). */
export class UwsUnavailableError extends Error {
  constructor(
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`uWebSockets.js cannot be loaded: ${reason}`, options);
    this.name = "UwsUnavailableError";
  }
}

let loaded: { module: UwsModule } | { error: UwsUnavailableError } | undefined;

/** The one line of a load failure worth showing, e.g. "version `GLIBC_2.38' not found (required by ...)". */
function loadFailureReason(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const lines = message
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
  // uws.js wraps the dlopen error after a generic banner: the last line is the real cause.
  const last = lines.length > 1 ? lines[lines.length - 1]! : (lines[0] ?? "unknown error");
  return last.replace(/^Error:\s*/, "");
}

/** Load the native module once; throws UwsUnavailableError with the reason when it cannot load. */
export function loadUws(): UwsModule {
  if (!loaded) {
    try {
      loaded = { module: createRequire(import.meta.url)("uWebSockets.js") as UwsModule };
    } catch (error) {
      loaded = { error: new UwsUnavailableError(loadFailureReason(error), { cause: error }) };
    }
  }
  if ("error" in loaded) throw loaded.error;
  return loaded.module;
}

export interface UwsTransportOptions extends TransportOptions {
  /** The module to use instead of loading "uWebSockets.js" (tests). */
  uws?: UwsModule;
  /** Seconds without any frame before uWS closes a WebSocket (pings are sent automatically). Default 120. */
  wsIdleTimeoutSeconds?: number;
  /**
   * Hard cap on bytes queued for one WebSocket. `send` returns false long before (at
   * `wsHighWaterMark`); a peer that lets the queue grow past this cap is terminated
   * rather than having frames dropped. Default 256 MiB.
   */
  wsMaxBackpressure?: number;
  /**
   * uWS drops a socket whose frame exceeds its maxPayloadLength without a close frame
   * (the peer sees 1006). So uWS gets this larger ceiling and the transport itself closes
   * with 1009 for frames between `maxPayloadBytes` and the ceiling; only frames above the
   * ceiling are dropped the uWS way. Default: max(2 x maxPayloadBytes, maxPayloadBytes + 1 MiB).
   */
  wsPayloadCeilingBytes?: number;
}

const MAX_BACKPRESSURE_DEFAULT = 256 * 1024 * 1024;

function remoteAddressOf(res: UWS.HttpResponse): string {
  try {
    // getRemoteAddressAsText() prints IPv6 uncompressed ("0000:...:ffff:7f00:0001"):
    // format the binary form the way node does instead.
    const formatted = formatAddress(new Uint8Array(res.getRemoteAddress()));
    return formatted || normalizeAddress(Buffer.from(res.getRemoteAddressAsText()).toString());
  } catch {
    return "";
  }
}

/** Header names arrive lower-cased; repeated headers are joined with ", ". */
function collectHeaders(req: UWS.HttpRequest): Record<string, string> {
  const headers: Record<string, string> = {};
  req.forEach((key, value) => {
    const existing = headers[key];
    headers[key] = existing === undefined ? value : `${existing}, ${value}`;
  });
  return headers;
}

// ---------------------------------------------------------------- HTTP

class UwsHttpResponse implements HttpResponse {
  #status = 200;
  readonly #headers = new Map<string, [string, string]>();
  #reportedLength: number | undefined;
  #started = false;
  #ended = false;
  #aborted = false;
  #needDrain = false;
  #writableArmed = false;
  #drainWaiters: (() => void)[] = [];
  #abortListeners: (() => void)[] = [];
  /** Set by the request: whether its body was fully received, and how to stop reading it. */
  request: UwsHttpRequest | undefined;

  constructor(
    private readonly res: UWS.HttpResponse,
    private readonly method: string,
    private readonly onDone: (response: UwsHttpResponse) => void,
  ) {
    // Must be registered before the route callback returns.
    res.onAborted(() => this.#onAborted());
  }

  get aborted(): boolean {
    return this.#aborted;
  }

  get headersSent(): boolean {
    return this.#started;
  }

  /** Ended or aborted: the uWS response object must not be touched any more. */
  get done(): boolean {
    return this.#ended || this.#aborted;
  }

  status(code: number): this {
    if (!this.#started) this.#status = code;
    return this;
  }

  header(name: string, value: string): this {
    if (this.#started) return this;
    const lower = name.toLowerCase();
    // uWS frames the body itself (Content-Length on end, chunked on write): a second,
    // conflicting framing header would corrupt the response.
    if (lower === "content-length") {
      const n = Number(value);
      this.#reportedLength = Number.isSafeInteger(n) && n >= 0 ? n : undefined;
      return this;
    }
    if (lower === "transfer-encoding") return this;
    this.#headers.set(lower, [name, value]);
    return this;
  }

  write(chunk: string | Uint8Array): boolean {
    if (this.done) return false;
    const data = toBuffer(chunk);
    if (data.length === 0 || this.method === "HEAD") {
      // HEAD responses carry no body (node's http drops it the same way).
      if (!this.#started) this.res.cork(() => this.#writeHead());
      return !this.#needDrain;
    }
    let ok = true;
    this.res.cork(() => {
      this.#writeHead();
      // uWS always takes the whole chunk (buffering what the socket refused); false means backpressure.
      ok = this.res.write(data);
    });
    if (!ok) this.#armDrain();
    return ok && !this.#needDrain;
  }

  drained(): Promise<void> {
    if (!this.#needDrain || this.done) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  end(chunk?: string | Uint8Array): void {
    if (this.done) return;
    this.#ended = true;
    // A body we did not read to the end: do not keep the connection for another request.
    const closeConnection = this.request ? this.request.beforeEnd() : false;
    const data = chunk === undefined ? undefined : toBuffer(chunk);
    this.res.cork(() => {
      const first = !this.#started;
      this.#writeHead();
      if (this.#status === 204 || this.#status === 304 || this.#status < 200) {
        // No body and no Content-Length allowed (uWS's end() would write "Content-Length: 0").
        this.#endWithoutBody(undefined, closeConnection);
      } else if (this.method === "HEAD") {
        // No body; announce the length the GET would have had when we know it.
        const length = first ? (this.#reportedLength ?? (data && data.length > 0 ? data.length : undefined)) : undefined;
        this.#endWithoutBody(length, closeConnection);
      } else {
        this.res.end(data ?? "", closeConnection);
      }
    });
    this.#flushDrainWaiters();
    this.onDone(this);
  }

  onAborted(listener: () => void): void {
    if (this.#aborted) {
      queueMicrotask(listener);
      return;
    }
    if (!this.#ended) this.#abortListeners.push(listener);
  }

  /** The handler failed: 500 JSON when nothing was sent yet, else finish what was started. */
  fail(): void {
    if (this.done) return;
    if (!this.#started) {
      this.#status = 500;
      this.#headers.clear();
      this.#reportedLength = undefined;
      this.#headers.set("content-type", ["Content-Type", "application/json"]);
      this.end(INTERNAL_ERROR_BODY);
    } else {
      this.end();
    }
  }

  /** Transport shutdown: drop the connection (runs the abort path). */
  forceClose(): void {
    if (this.done) return;
    try {
      this.res.close();
    } catch {
      // already gone
    }
  }

  /**
   * endWithoutBody(undefined, ...) writes "Content-Length: 9223372036854775808" and only the
   * zero-argument call omits the header: without a length, say Connection: close ourselves.
   */
  #endWithoutBody(length: number | undefined, closeConnection: boolean): void {
    if (length !== undefined) {
      this.res.endWithoutBody(length, closeConnection);
      return;
    }
    if (closeConnection) this.res.writeHeader("Connection", "close");
    this.res.endWithoutBody();
  }

  #writeHead(): void {
    if (this.#started) return;
    this.#started = true;
    this.res.writeStatus(statusLine(this.#status));
    for (const [name, value] of this.#headers.values()) this.res.writeHeader(name, value);
  }

  #armDrain(): void {
    this.#needDrain = true;
    if (this.#writableArmed) return;
    this.#writableArmed = true;
    // uWS flushes its own buffer first and calls this once everything queued went out.
    this.res.onWritable(() => {
      this.#needDrain = false;
      this.#flushDrainWaiters();
      return true;
    });
  }

  #flushDrainWaiters(): void {
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const w of waiters) w();
  }

  #onAborted(): void {
    if (this.done) return;
    this.#aborted = true;
    this.request?.aborted();
    this.#flushDrainWaiters();
    const listeners = this.#abortListeners;
    this.#abortListeners = [];
    this.onDone(this);
    for (const l of listeners) {
      try {
        l();
      } catch {
        // a listener's failure must not reach uWS
      }
    }
  }
}

class UwsHttpRequest implements HttpRequest {
  readonly #queue: ChunkQueue;
  #paused = false;
  #consumed = false;
  #complete = false;
  #discarding = false;

  constructor(
    private readonly res: UWS.HttpResponse,
    private readonly response: UwsHttpResponse,
    readonly method: string,
    readonly path: string,
    readonly query: URLSearchParams,
    readonly headers: Readonly<Record<string, string>>,
    readonly remoteAddress: string,
    readonly secure: boolean,
    highWaterMark: number,
    pace: BodyPace = DEFAULT_BODY_PACE,
  ) {
    this.#queue = new ChunkQueue(highWaterMark, () => this.#resume(), pace);
    response.request = this;
    // uWS delivers the (empty) last chunk of a bodiless request only after the route
    // callback returns; a response ended synchronously must not see it as unfinished.
    if (!hasBody(headers)) {
      this.#complete = true;
      this.#queue.end();
    }
    // Must be registered before the route callback returns; uWS always sends a last
    // (possibly empty) chunk, even for requests without a body.
    res.onData((chunk, isLast) => {
      if (isLast) this.#complete = true;
      if (this.#discarding || this.response.done) return;
      // The ArrayBuffer is neutered when this callback returns: copy it.
      if (chunk.byteLength > 0 && !this.#queue.push(Buffer.from(new Uint8Array(chunk)))) this.#pause();
      if (isLast) this.#queue.end();
    });
  }

  async body(limitBytes: number): Promise<Buffer> {
    this.#claim();
    const declared = declaredLength(this.headers);
    if (declared !== undefined && declared > limitBytes) {
      this.#discard();
      throw new BodyTooLargeError(limitBytes);
    }
    const parts: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = await this.#queue.next().catch((error: unknown) => {
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
    const queue = this.#queue;
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

  /** Called by the response just before it ends; returns whether to close the connection. */
  beforeEnd(): boolean {
    // Paused sockets do not poll for writable either: resume so the response can flush.
    if (this.#paused) {
      this.#paused = false;
      this.res.resume();
    }
    if (!this.#complete) {
      this.#discarding = true;
      this.#queue.clear();
      this.#queue.fail(new RequestAbortedError());
      return true;
    }
    return false;
  }

  aborted(): void {
    this.#queue.fail(new RequestAbortedError());
  }

  #claim(): void {
    if (this.#consumed) throw new BodyConsumedError();
    this.#consumed = true;
  }

  /** Stop reading: drop what is queued and keep the socket paused until the response ends. */
  #discard(): void {
    if (this.#complete) return;
    this.#discarding = true;
    this.#queue.clear();
    this.#pause();
  }

  #pause(): void {
    if (this.#paused || this.response.done) return;
    this.#paused = true;
    this.res.pause();
  }

  #resume(): void {
    if (!this.#paused || this.#discarding || this.response.done) return;
    this.#paused = false;
    this.res.resume();
  }
}

// ---------------------------------------------------------------- WebSocket

interface SocketData {
  request: UpgradeRequest;
  socket?: UwsWsSocket;
}

class UwsWsSocket implements WsSocket {
  connection: WsConnection | undefined;
  closed = false;
  #high = false;

  constructor(
    private readonly ws: UWS.WebSocket<SocketData>,
    readonly remoteAddress: string,
    private readonly highWaterMark: number,
  ) {}

  send(text: string): boolean {
    if (this.closed) return false;
    let status = 1;
    this.ws.cork(() => {
      status = this.ws.send(text, false, false);
    });
    if (status === 2) {
      // Past maxBackpressure uWS drops the frame; never drop silently: cut the peer off.
      this.terminate();
      return false;
    }
    if (this.ws.getBufferedAmount() > this.highWaterMark) {
      this.#high = true;
      return false;
    }
    return true;
  }

  bufferedAmount(): number {
    return this.closed ? 0 : this.ws.getBufferedAmount();
  }

  close(code?: number, reason?: string): void {
    if (this.closed) return;
    if (code === undefined) {
      this.ws.end();
      return;
    }
    this.ws.end(sendableCloseCode(code) ?? 1011, truncateCloseReason(reason));
  }

  terminate(): void {
    if (this.closed) return;
    this.ws.close();
  }

  onDrain(): void {
    if (this.closed || !this.#high) return;
    if (this.ws.getBufferedAmount() > this.highWaterMark) return;
    this.#high = false;
    this.connection?.drain();
  }
}

// ---------------------------------------------------------------- transport

export function createUwsTransport(handlers: TransportHandlers, options: UwsTransportOptions = {}): Transport {
  const uws = options.uws ?? loadUws();
  const wsHighWaterMark = options.wsHighWaterMark ?? DEFAULT_WS_HIGH_WATER_MARK;
  const bodyHighWaterMark = options.bodyHighWaterMark ?? DEFAULT_BODY_HIGH_WATER_MARK;
  const bodyPace = options.bodyPace ?? DEFAULT_BODY_PACE;
  const report = (error: unknown, context: { where: "http" | "ws"; method?: string; path?: string }) => {
    try {
      options.onError?.(error, context);
    } catch {
      // the reporter must not crash the transport
    }
  };

  /** One App or SSLApp per listener; sockets and pending responses are shared so that close() reaches them all. */
  const listeners: { app: UWS.TemplatedApp; token: UWS.us_listen_socket }[] = [];
  const sockets = new Set<UwsWsSocket>();
  const pending = new Set<UwsHttpResponse>();

  const build = (created: UWS.TemplatedApp, secure: boolean, handlers: TransportHandlers): UWS.TemplatedApp => {
    const wsPaths = new Set(handlers.ws.paths);
    const maxPayload = handlers.ws.maxPayloadBytes;
    const payloadCeiling = Math.max(options.wsPayloadCeilingBytes ?? Math.max(2 * maxPayload, maxPayload + 1024 * 1024), maxPayload);
    created.ws<SocketData>("/*", {
      compression: uws.DISABLED,
      maxPayloadLength: payloadCeiling,
      idleTimeout: options.wsIdleTimeoutSeconds ?? 120,
      sendPingsAutomatically: true,
      maxBackpressure: options.wsMaxBackpressure ?? MAX_BACKPRESSURE_DEFAULT,
      closeOnBackpressureLimit: false,

      upgrade: (res, req, context) => {
        const path = req.getUrl();
        if (!wsPaths.has(path)) {
          res.cork(() => {
            res.writeStatus(statusLine(404)).end("", true);
          });
          return;
        }
        const headers = collectHeaders(req);
        const request: UpgradeRequest = {
          path,
          query: new URLSearchParams(req.getQuery() ?? ""),
          headers,
          remoteAddress: clientAddress(remoteAddressOf(res), headers["x-forwarded-for"], options.trustedProxies),
          secure,
        };
        let refusal: ReturnType<NonNullable<typeof handlers.ws.refuse>>;
        try {
          refusal = handlers.ws.refuse?.(request);
        } catch (error) {
          report(error, { where: "ws", path });
          refusal = { status: 500 };
        }
        if (refusal) {
          const { status, headers: extra = {} } = refusal;
          res.cork(() => {
            res.writeStatus(statusLine(status));
            for (const [name, value] of Object.entries(extra)) res.writeHeader(name, value);
            res.end("", true);
          });
          return;
        }
        const protocol = selectSubprotocol(headers["sec-websocket-protocol"], handlers.ws.subprotocol) ?? "";
        res.upgrade<SocketData>({ request }, headers["sec-websocket-key"] ?? "", protocol, headers["sec-websocket-extensions"] ?? "", context);
      },

      open: (ws) => {
        const data = ws.getUserData();
        const socket = new UwsWsSocket(ws, data.request.remoteAddress, wsHighWaterMark);
        data.socket = socket;
        sockets.add(socket);
        try {
          socket.connection = handlers.ws.open(socket, data.request);
        } catch (error) {
          report(error, { where: "ws", path: data.request.path });
          socket.close(1011, "internal error");
        }
      },

      message: (ws, message, isBinary) => {
        const socket = ws.getUserData().socket;
        const connection = socket?.connection;
        if (!socket || socket.closed || !connection) return;
        if (message.byteLength > maxPayload) {
          socket.close(1009, "message too big");
          return;
        }
        try {
          if (isBinary) {
            if (connection.binary) connection.binary(new Uint8Array(message.slice(0)));
            else socket.close(1003, "binary frames are not supported");
            return;
          }
          // uWS has already checked that text frames are valid UTF-8.
          connection.message(Buffer.from(message).toString("utf8"));
        } catch (error) {
          report(error, { where: "ws" });
          socket.close(1011, "internal error");
        }
      },

      drain: (ws) => {
        const socket = ws.getUserData().socket;
        if (!socket) return;
        try {
          socket.onDrain();
        } catch (error) {
          report(error, { where: "ws" });
        }
      },

      close: (ws, code, message) => {
        const socket = ws.getUserData().socket;
        if (!socket) return;
        socket.closed = true;
        sockets.delete(socket);
        const reason = Buffer.from(message).toString("utf8");
        const connection = socket.connection;
        if (!connection) return;
        // uWS calls this synchronously from end()/close(): deliver it outside the caller's stack
        // so that a session closing its own socket is not re-entered (and to match the node transport).
        queueMicrotask(() => {
          try {
            connection.close(code, reason);
          } catch (error) {
            report(error, { where: "ws" });
          }
        });
      },
    });

    created.any("/*", (res, req) => {
      const method = req.getMethod().toUpperCase();
      const path = req.getUrl();
      const query = new URLSearchParams(req.getQuery() ?? "");
      const headers = collectHeaders(req);
      const response = new UwsHttpResponse(res, method, (r) => pending.delete(r));
      const remoteAddress = clientAddress(remoteAddressOf(res), headers["x-forwarded-for"], options.trustedProxies);
      const request = new UwsHttpRequest(res, response, method, path, query, headers, remoteAddress, secure, bodyHighWaterMark, bodyPace);
      pending.add(response);
      const fail = (error: unknown) => {
        // A body read that failed because the client left is not a handler bug.
        if (!(response.aborted && error instanceof RequestAbortedError)) report(error, { where: "http", method, path });
        try {
          response.fail();
        } catch (inner) {
          report(inner, { where: "http", method, path });
        }
      };
      try {
        const result = handlers.http(request, response);
        if (result && typeof (result as Promise<void>).then === "function") (result as Promise<void>).then(undefined, fail);
      } catch (error) {
        fail(error);
      }
    });
    return created;
  };

  return {
    name: "uws",

    listen(listenOptions: ListenOptions): Promise<{ port: number }> {
      const tls = listenOptions.tls;
      let current: UWS.TemplatedApp;
      try {
        current = build(tls ? sslApp(uws, tls) : uws.App(), Boolean(tls), listenOptions.handlers?.(handlers) ?? handlers);
      } catch (error) {
        return Promise.reject(error);
      }
      return new Promise((resolve, reject) => {
        // LIBUS_LISTEN_EXCLUSIVE_PORT: fail instead of sharing a port another process holds.
        const listen = current.listen as unknown as (
          host: string,
          port: number,
          options: number,
          cb: (token: UWS.us_listen_socket | false) => void,
        ) => UWS.TemplatedApp;
        listen.call(current, listenOptions.host, listenOptions.port, exclusivePort(uws), (token) => {
          if (!token) {
            try {
              current.close();
            } catch {
              // nothing was open
            }
            const what = tls ? " (or the TLS certificate/key could not be used)" : "";
            reject(new Error(`uws transport: cannot listen on ${listenOptions.host}:${listenOptions.port}: address in use or unavailable${what}`));
            return;
          }
          listeners.push({ app: current, token });
          resolve({ port: uws.us_socket_local_port(token as unknown as UWS.us_socket) });
        });
      });
    },

    async close(): Promise<void> {
      const closing = listeners.splice(0);
      if (closing.length === 0) return;
      for (const { token } of closing) uws.us_listen_socket_close(token);
      for (const socket of [...sockets]) socket.close(CloseCodes.serviceRestart, "server restarting");
      for (const response of [...pending]) response.forceClose();
      // Let the close frames reach the sockets, then drop whatever is still open (idle keep-alive connections).
      await new Promise((resolve) => setImmediate(resolve));
      for (const { app } of closing) app.close();
      sockets.clear();
      pending.clear();
    },
  };
}

/**
 * An SSLApp for checked TLS files. uWS reads PEM from files only, and its `ca_file_name`
 * would ask clients for certificates: a chain completed from the CA bundle goes to a
 * private temporary file instead, read by SSLApp() before it returns and removed then.
 */
function sslApp(uws: UwsModule, tls: TlsOptions): UWS.TemplatedApp {
  const material = loadTlsMaterial(tls);
  if (material.fromBundle === 0) return uws.SSLApp({ cert_file_name: tls.certFile, key_file_name: tls.keyFile });
  const dir = mkdtempSync(join(tmpdir(), "uws-tls-"));
  try {
    const chainFile = join(dir, "chain.pem");
    writeFileSync(chainFile, material.cert, { mode: 0o600 });
    return uws.SSLApp({ cert_file_name: chainFile, key_file_name: tls.keyFile });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The listen flag value; typed as an enum member in index.d.ts but exported as a plain number. */
function exclusivePort(uws: UwsModule): number {
  return (uws as unknown as { LIBUS_LISTEN_EXCLUSIVE_PORT?: number }).LIBUS_LISTEN_EXCLUSIVE_PORT ?? 1;
}
