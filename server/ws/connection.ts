import type { Logger } from "pino";
import {
  type ClientFrame,
  ClientFrameSchema,
  CloseCodes,
  type ErrorCodes,
  type ExecFrame,
  findLanguage,
  parseJsonFrame,
  type SessionOpenFrame,
} from "../../protocol/index.ts";
import type { Principal } from "../auth/api-keys.ts";
import { callerUserId } from "../auth/api-keys.ts";
import type { AuthGate, Refusal } from "../auth/auth-gate.ts";
import { extractApiKey } from "../auth/credentials.ts";
import type { EventBus } from "../events/event-bus.ts";
import { FileStoreUnavailableError, type StoredFile } from "../files/file-store.ts";
import { isRedisUnavailable } from "../redis/connection.ts";
import { type Admission, AdmissionError } from "../sessions/admission.ts";
import type { SessionClient } from "../sessions/session.ts";
import type { SessionHandle } from "../sessions/session-handle.ts";
import type { SessionManager } from "../sessions/session-manager.ts";
import { programTools } from "../sessions/tool-names.ts";
import type { UpgradeRequest, WsConnection, WsSocket } from "../transport/types.ts";

export interface ConnectionDeps {
  sessions: SessionManager;
  /** Admission control: over a limit, an `error` frame and close 4008. */
  admission?: Admission;
  /** Keys, the auth-failure limiter and per-key rate limits, shared with HTTP. */
  gate: AuthGate;
  keyHeader: string;
  events: EventBus;
  logger: Logger;
  /** Time a browser has to send its `auth` frame. */
  authTimeoutMs: number;
  /** A connection with no session activity and no frame for this long is closed with 4009. */
  idleTimeoutMs: number;
  securityLog: (event: string, fields: Record<string, unknown>) => void;
  /** Metrics hooks (server/metrics/registry.ts): connection opened and closed, each text frame sent. */
  metrics?: { wsOpened(): void; wsClosed(): void; wsFrameSent(text: string): void };
}

type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** Frames a client may send while its credentials are being checked. */
const MAX_INBOX_FRAMES = 64;

/**
 * One client WebSocket speaking PROTOCOL.md: authentication (upgrade headers or
 * a first `auth` frame), then at most one session attached at a time, whose
 * frames it relays, plus operational event subscriptions for the master key.
 */
export class ClientConnection implements WsConnection, SessionClient {
  readonly #socket: WsSocket;
  readonly #deps: ConnectionDeps;
  #principal?: Principal;
  readonly #remoteAddress: string;
  /** Credentials being checked (a key store lookup may take a moment): frames wait in #inbox meanwhile, in order. */
  #authenticating = false;
  readonly #inbox: string[] = [];
  #session?: SessionHandle;
  /** Frames that touch the session, handled one after the other. */
  #pending: Promise<void> = Promise.resolve();
  #closed = false;
  #authTimer?: NodeJS.Timeout;
  #idleTimer?: NodeJS.Timeout;
  readonly #unsubscribers = new Map<string, () => void>();

  constructor(socket: WsSocket, request: UpgradeRequest, deps: ConnectionDeps) {
    this.#socket = socket;
    this.#deps = deps;
    this.#remoteAddress = request.remoteAddress;
    const key = extractApiKey(request.headers, deps.keyHeader);
    this.#authTimer = setTimeout(() => this.#fail(CloseCodes.authFailed, "auth_required", "no credentials within the auth timeout"), deps.authTimeoutMs);
    // Without credentials on the upgrade, a browser sends an `auth` frame (unless auth is off).
    if (key || !deps.gate.authEnabled) this.#authenticate(key);
    this.#touch();
    deps.metrics?.wsOpened();
  }

  // ---- SessionClient ----

  send(text: string): boolean {
    if (this.#closed) return false;
    this.#deps.metrics?.wsFrameSent(text);
    return this.#socket.send(text);
  }

  disconnect(code: number, reason: string): void {
    this.#socket.close(code, reason);
  }

  // ---- WsConnection ----

  message(text: string): void {
    if (this.#closed) return;
    if (this.#authenticating) {
      if (this.#inbox.length >= MAX_INBOX_FRAMES) return this.#fail(CloseCodes.protocolError, "invalid_frame", "too many frames before authentication ended");
      this.#inbox.push(text);
      return;
    }
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
    if (!this.#closed) this.#deps.metrics?.wsClosed();
    this.#closed = true;
    clearTimeout(this.#authTimer);
    clearTimeout(this.#idleTimer);
    for (const unsubscribe of this.#unsubscribers.values()) unsubscribe();
    this.#unsubscribers.clear();
    this.#session?.detach(this);
    this.#session = undefined;
  }

  // ---- internals ----

  #authenticate(apiKey: string | undefined): void {
    this.#authenticating = true;
    void this.#deps.gate
      .authenticate(apiKey, this.#remoteAddress)
      .catch((): Refusal => ({ ok: false, kind: "unavailable" }))
      .then((outcome) => {
        this.#authenticating = false;
        if (this.#closed) return;
        if (!outcome.ok) return this.#refuse(outcome);
        clearTimeout(this.#authTimer);
        this.#principal = outcome.principal;
        for (const text of this.#inbox.splice(0)) this.message(text);
      });
  }

  /** Count a session.open or exec against the key's rate limits; false (and the socket closed) when refused. */
  async #admit(): Promise<boolean> {
    const outcome = await this.#deps.gate.admit(this.#principal!, this.#remoteAddress);
    if (!outcome.ok) this.#refuse(outcome);
    return outcome.ok && !this.#closed;
  }

  /** Close for a refusal of the auth path: 4008 when rate limited, 4001 for a bad key, 1011 when the key store does not answer. */
  #refuse(refusal: Refusal): void {
    if (refusal.kind === "rate_limited") {
      const what =
        refusal.scope === "key" ? `rate limit exceeded: ${refusal.rate.limit} per ${refusal.rate.window}` : "too many failed authentications from this address";
      this.#fail(CloseCodes.rateLimited, "rate_limited", `${what}; retry in ${refusal.rate.retryAfterSeconds} s`);
    } else if (refusal.kind === "unauthenticated") {
      this.#fail(CloseCodes.authFailed, "auth_failed", refusal.reason === "disabled" ? "API key is disabled" : "invalid API key");
    } else {
      this.#fail(1011, "internal", "the API key store does not answer; try again shortly");
    }
  }

  #handle(frame: ClientFrame): void {
    switch (frame.type) {
      case "auth":
        return this.#error("session_already_open", "auth must come before session.open");
      case "session.open":
        this.#queue(() => this.#open(frame));
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
    // Frames that need the session run in arrival order, behind a session.open or an exec still resolving its files.
    this.#queue(async () => {
      const session = this.#session;
      if (!session || session.ended) {
        this.#error("session_not_open", `send session.open before ${frame.type}`, "id" in frame ? frame.id : undefined);
        return;
      }
      switch (frame.type) {
        case "exec":
          return this.#exec(session, frame);
        case "stdin":
          return session.stdin(frame.id, frame.data, frame.eof);
        case "signal":
          return session.signal(frame.id, frame.signal);
        case "tool_result": {
          const outcome = await session.toolResults(frame.id, frame.results);
          if (outcome === "not_paused") session.error("not_paused", `exec "${frame.id}" is not waiting for tool results`, frame.id);
          else if (outcome === "unknown_call_id") session.error("unknown_call_id", `a result names a call exec "${frame.id}" did not make`, frame.id);
          return;
        }
        case "session.close":
          this.#session = undefined;
          session.detach(this);
          await this.#deps.sessions.delete(session.id);
          this.#socket.close(1000, "session closed");
          return;
      }
    });
  }

  #queue(task: () => void | Promise<void>): void {
    this.#pending = this.#pending.then(task).catch((error: unknown) => {
      this.#deps.logger.error({ err: error }, "frame handling failed");
      this.#error("internal", "the server failed to handle the frame");
    });
  }

  async #exec(session: SessionHandle, frame: ExecFrame): Promise<void> {
    if (!(await this.#admit())) return;
    let inputs: StoredFile[] = [];
    if (frame.files && frame.files.length > 0) {
      const resolved = await this.#deps.sessions.resolveInputs(frame.files, { principal: this.#principal!, userId: session.userId });
      if (!resolved.ok) return session.error("file_not_found", resolved.message, frame.id);
      inputs = resolved.files;
    }
    // Admission: an exec slot (waits in the bounded queue), released once the session is idle again.
    let permit: Awaited<ReturnType<Admission["acquireExec"]>> | undefined;
    try {
      permit = await this.#deps.admission?.acquireExec(() => this.#closed);
    } catch (error) {
      if (error instanceof AdmissionError) return this.#admissionRefused(error);
      throw error;
    }
    if (permit)
      void Promise.resolve()
        .then(() => session.whenIdle())
        .finally(() => permit.release());
    let tools: Array<{ name: string; py: string }> | undefined;
    if (frame.tools && frame.tools.length > 0) {
      const lang = findLanguage(frame.lang)?.code;
      if (lang !== "py" && lang !== "bash")
        return session.error("unsupported_language", "tools are offered to Python and bash programs (lang py or bash)", frame.id);
      const declared = programTools(frame.tools, lang);
      if (!declared.ok) return session.error("invalid_tool_name", declared.message, frame.id);
      tools = declared.tools;
    }
    session.exec({
      id: frame.id,
      lang: frame.lang,
      code: frame.code,
      ...(tools ? { tools } : {}),
      ...(frame.args ? { args: frame.args } : {}),
      ...(frame.stdin !== undefined ? { stdin: frame.stdin } : {}),
      ...(frame.timeoutMs !== undefined ? { timeoutMs: frame.timeoutMs } : {}),
      inputs,
    });
  }

  async #open(frame: SessionOpenFrame): Promise<void> {
    if (this.#session) return this.#error("session_already_open", "this connection already has a session");
    if (!(await this.#admit())) return;
    const { sessions, logger } = this.#deps;
    // A token's caller is its `sub`, whatever the frame says.
    const userId = callerUserId(this.#principal!, frame.userId);
    if (frame.sessionId) {
      let found: SessionHandle | undefined;
      try {
        found = await sessions.get(frame.sessionId, this.#principal!);
      } catch (error) {
        if (error instanceof AdmissionError) return this.#admissionRefused(error);
        throw error;
      }
      if (this.#closed) return;
      // A session of one end user is not another's, even under the same key (the HTTP rule); the master key sees all.
      const session = found && (found.userId === undefined || found.userId === userId || this.#principal!.isMaster) ? found : undefined;
      if (!session) {
        this.#fail(CloseCodes.sessionNotFound, "session_not_found", `session ${frame.sessionId} does not exist or has expired`);
        return;
      }
      this.#session = session;
      if (!(await session.attach(this, frame.lastSeq))) {
        this.#session = undefined;
        // Its replica does not answer (killed: its claim runs out within seconds) or it just ended here: not gone, retry.
        this.#fail(CloseCodes.tryAgainLater, "service_unavailable", `session ${frame.sessionId} is not reachable now: try again`);
      }
      return;
    }
    try {
      const session = await sessions.create(
        { principal: this.#principal!, ...(userId !== undefined ? { userId } : {}) },
        {
          ...(frame.entityId !== undefined ? { entityId: frame.entityId } : {}),
          startSandbox: true,
        },
      );
      if (this.#closed) return; // the session waits out its TTL like any other; the sandbox goes with the idle sweep
      this.#session = session;
      session.attach(this);
    } catch (error) {
      if (error instanceof AdmissionError) return this.#admissionRefused(error);
      logger.error({ err: error }, "session could not be opened");
      if (isRedisUnavailable(error) || error instanceof FileStoreUnavailableError) {
        this.#error("service_unavailable", "a shared store (Redis or S3) is unavailable; try again shortly");
      } else {
        this.#error("sandbox_unavailable", "no sandbox could be started; see the server log and /health/detailed");
      }
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

  /** Over an admission limit: `error` (rate_limited) and close 4008, as for rate limits; the server stopping: close 1012, to reconnect. */
  #admissionRefused(error: AdmissionError): void {
    if (error.kind === "draining") return this.#fail(CloseCodes.serviceRestart, "service_unavailable", error.message);
    this.#fail(CloseCodes.rateLimited, "rate_limited", `${error.message}; retry in ${error.retryAfterSeconds} s`);
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
