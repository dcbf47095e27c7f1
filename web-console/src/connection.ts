import type { ClientFrame, ServerFrame } from "../../protocol/index.ts";
import { WS_SUBPROTOCOL } from "../../protocol/index.ts";

export type LinkStatus = "connecting" | "connected" | "reconnecting" | "resumed" | "disconnected";

export interface SessionLinkOptions {
  apiKey: string;
  /** Attach to this session instead of opening a new one. */
  sessionId?: string;
  onFrame: (frame: ServerFrame) => void;
  onStatus: (status: LinkStatus, detail?: string) => void;
}

/** Close codes after which a retry cannot help (bad key, unknown session, protocol error). */
const FINAL_CLOSES = new Set([4001, 4002, 4003]);
const MAX_BACKOFF_MS = 5_000;

export function wsUrl(): string {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
}

/**
 * One console session over WebSocket: `auth` frame (browsers cannot set
 * headers), `session.open`, and after a drop a reconnect with backoff that
 * resumes from the last seq seen, so nothing is lost or shown twice.
 */
export class SessionLink {
  sessionId: string | undefined;
  #lastSeq: number | undefined;
  #socket: WebSocket | undefined;
  #attempt = 0;
  #closed = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  readonly #opts: SessionLinkOptions;

  constructor(opts: SessionLinkOptions) {
    this.#opts = opts;
    this.sessionId = opts.sessionId;
    this.#connect();
  }

  send(frame: ClientFrame): boolean {
    if (this.#socket?.readyState !== WebSocket.OPEN || !this.sessionId) return false;
    this.#socket.send(JSON.stringify(frame));
    return true;
  }

  /** Drop the socket as a network blip would (the tests use it); the link reconnects. */
  dropSocket(): void {
    this.#socket?.close();
  }

  close(endSession = false): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    if (endSession && this.#socket?.readyState === WebSocket.OPEN) this.#socket.send(JSON.stringify({ type: "session.close" }));
    this.#socket?.close();
  }

  #connect(): void {
    const resuming = this.#attempt > 0;
    this.#opts.onStatus(resuming ? "reconnecting" : "connecting");
    const socket = new WebSocket(wsUrl(), WS_SUBPROTOCOL);
    this.#socket = socket;
    socket.onopen = () => {
      socket.send(JSON.stringify({ type: "auth", apiKey: this.#opts.apiKey }));
      const open: ClientFrame = { type: "session.open" };
      if (this.sessionId) open.sessionId = this.sessionId;
      if (this.sessionId && this.#lastSeq !== undefined) open.lastSeq = this.#lastSeq;
      socket.send(JSON.stringify(open));
    };
    socket.onmessage = (message) => {
      const frame = JSON.parse(String(message.data)) as ServerFrame;
      if (frame.type === "session.ready") {
        this.sessionId = frame.sessionId;
        this.#attempt = 0;
        this.#opts.onStatus(frame.resumed ? "resumed" : "connected", frame.gap ? "some output was lost (gap)" : undefined);
        this.#opts.onFrame(frame);
        return;
      }
      // Replayed frames we already showed are skipped; pong's seq is not part of the stream.
      if (frame.type !== "pong" && frame.seq !== undefined) {
        if (this.#lastSeq !== undefined && frame.seq <= this.#lastSeq) return;
        this.#lastSeq = frame.seq;
      }
      this.#opts.onFrame(frame);
    };
    socket.onclose = (event) => {
      if (this.#socket !== socket || this.#closed) return;
      if (FINAL_CLOSES.has(event.code)) {
        this.#opts.onStatus("disconnected", event.reason || `closed ${event.code}`);
        return;
      }
      // Exponential backoff with jitter: a server restart is not stormed by every console at once.
      const delay = Math.min(MAX_BACKOFF_MS, 250 * 2 ** this.#attempt) * (0.75 + Math.random() / 2);
      this.#attempt++;
      this.#opts.onStatus("reconnecting");
      this.#timer = setTimeout(() => this.#connect(), delay);
    };
  }
}

/** A master-key socket subscribed to operational events (no session). */
export function subscribeEvents(apiKey: string, onEvent: (frame: ServerFrame) => void, onStatus: (s: LinkStatus) => void): () => void {
  let socket: WebSocket | undefined;
  let closed = false;
  let attempt = 0;
  const connect = () => {
    socket = new WebSocket(wsUrl(), WS_SUBPROTOCOL);
    socket.onopen = () => {
      socket?.send(JSON.stringify({ type: "auth", apiKey }));
      socket?.send(JSON.stringify({ type: "subscribe", topic: "executions" }));
      socket?.send(JSON.stringify({ type: "subscribe", topic: "pool" }));
      attempt = 0;
      onStatus("connected");
    };
    socket.onmessage = (message) => onEvent(JSON.parse(String(message.data)) as ServerFrame);
    socket.onclose = (event) => {
      if (closed) return;
      if (event.code === 4001) return onStatus("disconnected");
      onStatus("reconnecting");
      setTimeout(connect, Math.min(MAX_BACKOFF_MS, 250 * 2 ** attempt++));
    };
  };
  connect();
  return () => {
    closed = true;
    socket?.close();
  };
}
