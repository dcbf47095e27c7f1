/**
 * Small pieces both transports share: status texts, the 500 body, subprotocol
 * selection, close-code hygiene and a byte-counting chunk queue for request bodies.
 */
import { type BodyPace, BodyTooSlowError } from "./types.ts";

export const DEFAULT_WS_HIGH_WATER_MARK = 1024 * 1024;
export const DEFAULT_BODY_HIGH_WATER_MARK = 1024 * 1024;
export const DEFAULT_BODY_PACE: BodyPace = { stallMs: 15_000, minBytesPerSecond: 1024 };

export const INTERNAL_ERROR_BODY = JSON.stringify({ error: "Internal server error", error_type: "internal_server" });

const STATUS_TEXT: Readonly<Record<number, string>> = {
  100: "Continue",
  101: "Switching Protocols",
  200: "OK",
  201: "Created",
  202: "Accepted",
  204: "No Content",
  206: "Partial Content",
  301: "Moved Permanently",
  302: "Found",
  303: "See Other",
  304: "Not Modified",
  307: "Temporary Redirect",
  308: "Permanent Redirect",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  406: "Not Acceptable",
  408: "Request Timeout",
  409: "Conflict",
  410: "Gone",
  411: "Length Required",
  412: "Precondition Failed",
  413: "Payload Too Large",
  414: "URI Too Long",
  415: "Unsupported Media Type",
  416: "Range Not Satisfiable",
  422: "Unprocessable Entity",
  426: "Upgrade Required",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

/** "404 Not Found"; unknown codes get an empty reason phrase, which HTTP/1.1 allows. */
export function statusLine(code: number): string {
  return `${code} ${STATUS_TEXT[code] ?? ""}`.trimEnd();
}

export function statusText(code: number): string | undefined {
  return STATUS_TEXT[code];
}

/**
 * The subprotocol to select from a `Sec-WebSocket-Protocol` offer: ours when offered,
 * otherwise none (clients that offer nothing are accepted; a client that offered only
 * other protocols sees no selection and decides for itself).
 */
export function selectSubprotocol(offered: string | undefined, ours: string): string | undefined {
  if (!offered) return undefined;
  for (const candidate of offered.split(",")) {
    if (candidate.trim() === ours) return ours;
  }
  return undefined;
}

/** "::ffff:127.0.0.1" and "127.0.0.1" are the same peer; report the plain form on both transports. */
export function normalizeAddress(address: string | undefined): string {
  if (!address) return "";
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
}

/**
 * Text form of a binary IP address (4 or 16 bytes), the way node reports it: dotted
 * IPv4 (also for IPv4-mapped IPv6), RFC 5952 compressed IPv6 otherwise.
 */
export function formatAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join(".");
  if (bytes.length !== 16) return "";
  const mapped = bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  if (mapped) return bytes.subarray(12).join(".");
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  // The longest run of at least two zero groups becomes "::" (the first one on a tie).
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number) =>
    groups
      .slice(from, to)
      .map((g) => g.toString(16))
      .join(":");
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLength, 8)}`;
}

/** A close code that may be sent on the wire (RFC 6455 section 7.4), else undefined. */
export function sendableCloseCode(code: number | undefined): number | undefined {
  if (code === undefined || !Number.isInteger(code)) return undefined;
  if (code >= 3000 && code <= 4999) return code;
  if (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) return code;
  return undefined;
}

/** Close reasons are limited to 123 bytes of UTF-8; cut on a character boundary. */
export function truncateCloseReason(reason: string | undefined): string {
  if (!reason) return "";
  if (Buffer.byteLength(reason) <= 123) return reason;
  let out = "";
  let bytes = 0;
  for (const ch of reason) {
    const n = Buffer.byteLength(ch);
    if (bytes + n > 123) break;
    out += ch;
    bytes += n;
  }
  return out;
}

export function toBuffer(chunk: string | Uint8Array): Buffer {
  if (typeof chunk === "string") return Buffer.from(chunk, "utf8");
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

/** Declared Content-Length, or undefined when absent or malformed. */
export function declaredLength(headers: Readonly<Record<string, string>>): number | undefined {
  const raw = headers["content-length"];
  if (raw === undefined || !/^\d+$/.test(raw.trim())) return undefined;
  return Number(raw.trim());
}

/** Whether the request carries a body at all (RFC 9112 section 6.3: Transfer-Encoding or a non-zero Content-Length). */
export function hasBody(headers: Readonly<Record<string, string>>): boolean {
  if (headers["transfer-encoding"] !== undefined) return true;
  const length = declaredLength(headers);
  return length !== undefined && length > 0;
}

/**
 * Chunks received from the network and not yet read by the handler. The producer
 * pushes and is told to pause above `highWaterMark`; `onLow` is called when the
 * reader has brought the queue back under half of it.
 *
 * Slow-loris guard (`pace`): the reader waits at most `stallMs` for the next
 * chunk, and once it has waited that long in all, the client must have sent
 * `minBytesPerSecond` of the time the reader spent waiting for it (the server's
 * own slowness, between reads, does not count against the client).
 */
export class ChunkQueue {
  #chunks: Buffer[] = [];
  #bytes = 0;
  #ended = false;
  #error: Error | undefined;
  #waiter: (() => void) | undefined;
  #received = 0;
  #waitedMs = 0;

  constructor(
    readonly highWaterMark: number,
    private readonly onLow: () => void,
    private readonly pace: BodyPace = DEFAULT_BODY_PACE,
  ) {}

  get bytes(): number {
    return this.#bytes;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Returns false when the producer should pause. */
  push(chunk: Buffer): boolean {
    if (this.#ended || this.#error) return true;
    if (chunk.length > 0) {
      this.#chunks.push(chunk);
      this.#bytes += chunk.length;
      this.#received += chunk.length;
    }
    this.#wake();
    return this.#bytes <= this.highWaterMark;
  }

  end(): void {
    this.#ended = true;
    this.#wake();
  }

  fail(error: Error): void {
    if (this.#ended) return;
    this.#error ??= error;
    this.#wake();
  }

  /** Drop everything queued (the reader gave up). */
  clear(): void {
    this.#chunks = [];
    this.#bytes = 0;
  }

  /** Next chunk, or undefined at the end of the body. */
  async next(): Promise<Buffer | undefined> {
    for (;;) {
      const chunk = this.#chunks.shift();
      if (chunk) {
        const wasHigh = this.#bytes > this.highWaterMark / 2;
        this.#bytes -= chunk.length;
        if (wasHigh && this.#bytes <= this.highWaterMark / 2) this.onLow();
        return chunk;
      }
      if (this.#error) throw this.#error;
      if (this.#ended) return undefined;
      this.onLow();
      await this.#waitForClient();
    }
  }

  async #waitForClient(): Promise<void> {
    const { stallMs, minBytesPerSecond } = this.pace;
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.#waiter = resolve;
      timer = setTimeout(() => this.fail(new BodyTooSlowError(`the request body stalled: no data for ${stallMs / 1000} s`)), stallMs);
    });
    clearTimeout(timer);
    this.#waitedMs += performance.now() - started;
    const rate = this.#received / (this.#waitedMs / 1000);
    if (!this.#error && !this.#ended && this.#waitedMs >= stallMs && rate < minBytesPerSecond) {
      this.fail(new BodyTooSlowError(`the request body arrived at ${Math.round(rate)} bytes/s, under the minimum of ${minBytesPerSecond}`));
    }
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.();
  }
}
