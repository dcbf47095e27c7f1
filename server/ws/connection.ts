import type { Logger } from "pino";
import { type ClientFrame, ClientFrameSchema, CloseCodes, type ErrorCodes, parseJsonFrame, type SessionOpenFrame } from "../../protocol/index.ts";
import type { ApiKeyVerifier, Principal } from "../auth/api-keys.ts";
import { extractApiKey } from "../auth/credentials.ts";
import type { EventBus } from "../events/event-bus.ts";
import type { Session, SessionClient } from "../sessions/session.ts";
import type { SessionManager } from "../sessions/session-manager.ts";
import type { UpgradeRequest, WsConnection, WsSocket } from "../transport/types.ts";

export interface ConnectionDeps {
  sessions: SessionManager;
  verifier: ApiKeyVerifier;
  keyHeader: string;
  events: EventBus;
  logger: Logger;
  /** Time a browser has to send its `auth` frame. */
  authTimeoutMs: number;
  /** A connection with no session activity and no frame for this long is closed with 4009. */
  idleTimeoutMs: number;
  securityLog: (event: string, fields: Record<string, unknown>) => void;
}

type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/**
 * One client WebSocket speaking PROTOCOL.md: authentication (upgrade headers or
 * a first `auth` frame), then at most one session attached at a time, whose
 * frames it relays, plus operational event subscriptions for the master key.
 */
export class ClientConnection implements WsConnection, SessionClient {
  readonly #socket: WsSocket;
  readonly #deps: ConnectionDeps;
  #principal?: Principal;
  #session?: Session;
  #opening = false;
  #closed = false;
  #authTimer?: NodeJS.Timeout;
  #idleTimer?: NodeJS.Timeout;
  readonly #unsubscribers = new Map<string, () => void>();

  constructor(socket: WsSocket, request: UpgradeRequest, deps: ConnectionDeps) {
    this.#socket = socket;
    this.#deps = deps;
    const key = extractApiKey(request.headers, deps.keyHeader);
    const result = deps.verifier.verify(key);
    if (result.ok && (key || !deps.verifier.authEnabled)) {
      this.#principal = result.principal;
    } else if (key) {
      // Credentials were sent and are wrong: say so and close.
      deps.securityLog("auth_failed", { transport: "ws", remoteAddress: request.remoteAddress });
      this.#fail(CloseCodes.authFailed, "auth_failed", "invalid API key");
      return;
    }
    if (!this.#principal) {
      this.#authTimer = setTimeout(() => this.#fail(CloseCodes.authFailed, "auth_required", "no credentials within the auth timeout"), deps.authTimeoutMs);
    }
    this.#touch();
  }

  // ---- SessionClient ----

  send(text: string): boolean {
    return this.#closed ? false : this.#socket.send(text);
  }

  // ---- WsConnection ----

  message(text: string): void {
    if (this.#closed) return;
    this.#touch();
    const parsed = parseJsonFrame(ClientFrameSchema, text);
    if (!parsed.ok) {
      this.#fail(CloseCodes.protocolError, "invalid_frame", parsed.message);
      return;
    }
    const frame = parsed.value;
    if (!this.#principal || (frame.type === "auth" && !this.#session)) {
      if (frame.type !== "auth") {
        this.#fail(CloseCodes.authFailed, "auth_required", 'authenticate first: send {"type":"auth","apiKey":"..."}');
        return;
      }
      this.#authenticate(frame.apiKey);
      return;
    }
    this.#handle(frame);
  }

  /** The protocol is JSON text frames only. */
  binary(): void {
    if (this.#closed) return;
    this.#fail(CloseCodes.protocolError, "invalid_frame", "binary frames are not part of the protocol: send JSON text frames");
  }

  drain(): void {
    this.#session?.clientDrained(this);
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#authTimer);
    clearTimeout(this.#idleTimer);
    for (const unsubscribe of this.#unsubscribers.values()) unsubscribe();
    this.#unsubscribers.clear();
    this.#session?.detach(this);
    this.#session = undefined;
  }

  // ---- internals ----

  #authenticate(apiKey: string): void {
    const result = this.#deps.verifier.verify(apiKey);
    if (!result.ok) {
      this.#deps.securityLog("auth_failed", { transport: "ws" });
      this.#fail(CloseCodes.authFailed, "auth_failed", "invalid API key");
      return;
    }
    clearTimeout(this.#authTimer);
    this.#principal = result.principal;
  }

  #handle(frame: ClientFrame): void {
    switch (frame.type) {
      case "auth":
        return this.#error("session_already_open", "auth must come before session.open");
      case "session.open":
        void this.#open(frame);
        return;
      case "ping":
        if (this.#session && !this.#session.ended) this.#session.pong(this);
        else this.send(JSON.stringify({ type: "pong" }));
        return;
      case "subscribe":
        return this.#subscribe(frame.topic);
      default:
        break;
    }
    const session = this.#session;
    if (!session || session.ended) {
      this.#error("session_not_open", `send session.open before ${frame.type}`, "id" in frame ? frame.id : undefined);
      return;
    }
    switch (frame.type) {
      case "exec":
        return session.exec(frame);
      case "stdin":
        return session.stdin(frame);
      case "signal":
        return session.signal(frame);
      case "session.close":
        this.#session = undefined;
        void session.close("killed").then(() => this.#socket.close(1000, "session closed"));
        return;
    }
  }

  async #open(frame: SessionOpenFrame): Promise<void> {
    if (this.#session || this.#opening) return this.#error("session_already_open", "this connection already has a session");
    const { sessions, logger } = this.#deps;
    if (frame.sessionId) {
      const session = sessions.get(frame.sessionId, this.#principal!);
      if (!session) {
        this.#fail(CloseCodes.sessionNotFound, "session_not_found", `session ${frame.sessionId} does not exist or has expired`);
        return;
      }
      this.#session = session;
      session.attach(this, frame.lastSeq);
      return;
    }
    this.#opening = true;
    try {
      const session = await sessions.create(this.#principal!, { userId: frame.userId, entityId: frame.entityId });
      if (this.#closed) {
        // The client left while its sandbox started: the session waits out its grace like any other.
        session.detach(this);
        return;
      }
      this.#session = session;
      session.attach(this);
    } catch (error) {
      logger.error({ err: error }, "session could not be opened");
      this.#error("sandbox_unavailable", "no sandbox could be started; see the server log and /health/detailed");
    } finally {
      this.#opening = false;
    }
  }

  #subscribe(topic: "pool" | "executions"): void {
    if (!this.#principal?.isMaster) return this.#error("forbidden", "subscribe needs the master API key");
    if (this.#unsubscribers.has(topic)) return;
    this.#unsubscribers.set(
      topic,
      this.#deps.events.subscribe(topic, (event) => this.send(JSON.stringify({ type: "event", ...event }))),
    );
  }

  /** An error frame: on the session stream when one is open, else straight to this socket. */
  #error(code: ErrorCode, message: string, id?: string): void {
    if (this.#session && !this.#session.ended) this.#session.error(code, message, id);
    else this.send(JSON.stringify({ type: "error", code, message, ...(id !== undefined ? { id } : {}) }));
  }

  /** Send an error frame, then close with `closeCode`. */
  #fail(closeCode: number, code: ErrorCode, message: string): void {
    if (this.#closed) return;
    this.#error(code, message);
    this.#socket.close(closeCode, message.slice(0, 120));
    this.close();
  }

  #touch(): void {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => {
      if (this.#session?.running) return this.#touch();
      this.#fail(CloseCodes.idleTimeout, "idle_timeout", `no frame for ${Math.round(this.#deps.idleTimeoutMs / 1000)} s`);
    }, this.#deps.idleTimeoutMs);
    this.#idleTimer.unref();
  }
}
