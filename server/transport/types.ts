/**
 * The small request/response/socket interface that routes and WebSocket session
 * logic are written against. Each transport (uWebSockets.js, ws on node:http) is
 * an adapter that implements it; handlers never see the underlying library.
 */
import type { TrustedProxies } from "./client-address.ts";

export interface HttpRequest {
  /** Upper-case method. */
  readonly method: string;
  /** Path without the query string, percent-decoding left to the router. */
  readonly path: string;
  readonly query: URLSearchParams;
  /** Header names lower-cased; repeated headers joined with ", ". */
  readonly headers: Readonly<Record<string, string>>;
  readonly remoteAddress: string;
  /** True when the request arrived over TLS. */
  readonly secure: boolean;
  /** The whole body; rejects with BodyTooLargeError past `limitBytes` (and stops reading). */
  body(limitBytes: number): Promise<Buffer>;
  /** The body as a stream of chunks, read with backpressure (for multipart). */
  bodyStream(): AsyncIterable<Uint8Array>;
}

export interface HttpResponse {
  /** Set the status (before the first write). */
  status(code: number): this;
  /** Set a header (before the first write). */
  header(name: string, value: string): this;
  /** Write a chunk; false when the transport is buffering and the caller should await `drained()`. */
  write(chunk: string | Uint8Array): boolean;
  /** Resolves when buffered data has been flushed, or the client went away. */
  drained(): Promise<void>;
  /** Finish the response, optionally with a last chunk. */
  end(chunk?: string | Uint8Array): void;
  /** Called once if the client disconnects before `end`. */
  onAborted(listener: () => void): void;
  readonly aborted: boolean;
  readonly headersSent: boolean;
}

export type HttpHandler = (req: HttpRequest, res: HttpResponse) => void | Promise<void>;

export class BodyTooLargeError extends Error {
  constructor(readonly limitBytes: number) {
    super(`request body exceeds ${limitBytes} bytes`);
  }
}

/** A request body that stalled, or trickled in under the minimum rate (slow-loris): the request is dropped. */
export class BodyTooSlowError extends Error {}

/** How slowly a client may send a body: `stallMs` with no data at all, or under `minBytesPerSecond` once it has waited `stallMs`. */
export interface BodyPace {
  stallMs: number;
  minBytesPerSecond: number;
}

/** `body()` or `bodyStream()` was called a second time on the same request. */
export class BodyConsumedError extends Error {
  constructor() {
    super("request body already consumed");
  }
}

/** The client went away before the whole body arrived (body() rejects, bodyStream() throws). */
export class RequestAbortedError extends Error {
  constructor() {
    super("request aborted by the client");
  }
}

/** One accepted WebSocket, as the session logic sees it. */
export interface WsSocket {
  /** Queue a text frame. Returns false once the send buffer is above the high-water mark. */
  send(text: string): boolean;
  /** Bytes queued and not yet written to the network. */
  bufferedAmount(): number;
  close(code?: number, reason?: string): void;
  /** Drop the connection without a close handshake (tests, abuse). */
  terminate(): void;
  readonly remoteAddress: string;
}

/** What the upgrade request carried, captured before the socket is accepted. */
export interface UpgradeRequest {
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: Readonly<Record<string, string>>;
  readonly remoteAddress: string;
  readonly secure: boolean;
}

export interface WsConnection {
  message(text: string): void;
  /**
   * A binary frame arrived. Optional: when the connection does not implement it, the
   * transport closes the socket with 1003 (unsupported data). Binary frames are never
   * passed to `message` as text.
   */
  binary?(data: Uint8Array): void;
  /** The send buffer went below the high-water mark. */
  drain(): void;
  close(code: number, reason: string): void;
}

export interface WsHandler {
  /** Paths that accept an upgrade, e.g. ["/ws"]. */
  readonly paths: readonly string[];
  /** Largest frame accepted; a larger one closes the socket with 1009. */
  readonly maxPayloadBytes: number;
  /** Subprotocol to select when the client offers it. */
  readonly subprotocol: string;
  /** Called once the socket is open; returns the listener for its events. */
  open(socket: WsSocket, request: UpgradeRequest): WsConnection;
  /**
   * Optional: answer an upgrade on one of `paths` with a plain HTTP response instead of
   * accepting it (a plain listener that sends clients to wss://). Called before `open`.
   */
  refuse?(request: UpgradeRequest): UpgradeRefusal | undefined;
}

/** The HTTP response that replaces an upgrade (no body; the connection is closed). */
export interface UpgradeRefusal {
  status: number;
  headers?: Readonly<Record<string, string>>;
}

export interface TlsOptions {
  /** PEM certificate, optionally followed by its intermediates. */
  certFile: string;
  keyFile: string;
  /** PEM bundle the certificate's chain is completed from (see tls.ts); no client certificates are asked for. */
  caFile?: string;
}

export interface ListenOptions {
  host: string;
  port: number;
  tls?: TlsOptions;
  /** This listener's handlers, made from the transport's own (e.g. a plain listener that redirects to HTTPS). */
  handlers?: (own: TransportHandlers) => TransportHandlers;
}

export interface Transport {
  readonly name: "uws" | "node";
  /**
   * Start a listener; resolves with the bound port (useful with port 0). May be called
   * more than once (plain and TLS side by side); every listener shares the transport's
   * sockets, and `close()` stops them all.
   */
  listen(options: ListenOptions): Promise<{ port: number }>;
  /** Stop accepting on every listener, close open sockets, resolve when done. */
  close(): Promise<void>;
}

/** Tuning shared by both transports; every field has a default. */
export interface TransportOptions {
  /** `WsSocket.send` returns false above this many queued bytes (default 1 MiB). */
  wsHighWaterMark?: number;
  /** A request body is paused while this many bytes wait unread (default 1 MiB). */
  bodyHighWaterMark?: number;
  /** Slow-loris guard for request bodies (default: 15 s stall, 1 KiB/s). */
  bodyPace?: BodyPace;
  /** TRUSTED_PROXIES: from these peers, `remoteAddress` is the client that X-Forwarded-For names. */
  trustedProxies?: TrustedProxies;
  /** Told about a handler that threw or rejected (the transport already answered 500). */
  onError?: (error: unknown, context: { where: "http" | "ws"; method?: string; path?: string }) => void;
}

export interface TransportHandlers {
  http: HttpHandler;
  ws: WsHandler;
}
