import type { Logger } from "pino";
import {
  type AgentExit,
  type AgentFileChange,
  type ErrorCodes,
  type ExecFrame,
  type ExitReason,
  type FileRef,
  findLanguage,
  type SessionLimits,
  type SignalFrame,
  type StdinFrame,
} from "../../protocol/index.ts";
import type { Principal } from "../auth/api-keys.ts";
import type { EventBus } from "../events/event-bus.ts";
import { randomId } from "../ids.ts";
import { AgentClient } from "../sandbox/agent-client.ts";
import type { Sandbox, SandboxLimits, SandboxProvider } from "../sandbox/provider.ts";
import { ReplayLog } from "./replay-log.ts";

/** A client attached to a session: one WebSocket, seen through what the session needs. */
export interface SessionClient {
  /** False when the socket's send buffer is above its high-water mark; the transport then calls `clientDrained` once it is below. */
  send(text: string): boolean;
}

export interface SessionOptions {
  id: string;
  owner: Principal;
  userId?: string;
  entityId?: string;
  limits: SessionLimits;
  sandboxLimits: SandboxLimits;
  compileTimeoutMs: number;
  replayFrames: number;
  replayBytes: number;
  idleGraceMs: number;
  /** Languages this instance can run now. */
  availableLanguages: () => readonly string[];
  provider: SandboxProvider;
  events: EventBus;
  logger: Logger;
  /** Called once the session has ended, so its manager can forget it. */
  onEnded: (session: Session) => void;
}

type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

interface RunningExec {
  id: string;
  lang: string;
  stdin: boolean;
  startedAt: number;
  /** Output bytes and frames forwarded to clients and not yet acknowledged to the agent. */
  pendingBytes: number;
  pendingFrames: number;
  /** Set when the server, not the program or the client, ended the exec. */
  overrideReason?: ExitReason;
  watchdog?: NodeJS.Timeout;
}

/** Output the agent may send ahead of the clients: bytes and frames. */
const OUTPUT_WINDOW_BYTES = 256 * 1024;
const OUTPUT_WINDOW_FRAMES = 256;
/** Exec ids remembered for the uniqueness rule. */
const MAX_REMEMBERED_EXEC_IDS = 10_000;
/** How long past its own limits an exec may go silent before the sandbox is presumed lost. */
const WATCHDOG_SLACK_MS = 15_000;

/**
 * One session: a sandbox leased for the session's life, the exec running in it
 * (one at a time), the frame stream with its seq numbers and replay log, and
 * the clients attached to it. A session outlives its last client by the idle
 * grace, so that a dropped connection can come back and resume.
 */
export class Session {
  readonly id: string;
  readonly owner: Principal;
  readonly userId?: string;
  readonly entityId?: string;
  readonly createdAt = Date.now();
  lastActiveAt = Date.now();

  readonly #options: SessionOptions;
  readonly #log: ReplayLog;
  readonly #clients = new Set<SessionClient>();
  /** Clients whose send buffer is full: while any is, output is not acknowledged, which stops the agent reading the program's pipes. */
  readonly #blockedClients = new Set<SessionClient>();
  readonly #execIds = new Set<string>();
  /** Ids of files in /mnt/data by path, so a changed file gets a new id that names the old one. */
  readonly #fileIds = new Map<string, string>();
  #seq = 0;
  #sandbox?: Sandbox;
  #agent?: AgentClient;
  #agentStarting?: Promise<AgentClient>;
  #exec?: RunningExec;
  #graceTimer?: NodeJS.Timeout;
  #ended = false;

  constructor(options: SessionOptions) {
    this.#options = options;
    this.id = options.id;
    this.owner = options.owner;
    this.userId = options.userId;
    this.entityId = options.entityId;
    this.#log = new ReplayLog(options.replayFrames, options.replayBytes);
  }

  get ended(): boolean {
    return this.#ended;
  }

  get clientCount(): number {
    return this.#clients.size;
  }

  get running(): boolean {
    return this.#exec !== undefined;
  }

  /** Start the sandbox now rather than on the first exec, so that `session.ready` means ready. */
  async start(): Promise<void> {
    await this.#ensureAgent();
  }

  /**
   * Attach a client: replay what it missed after `lastSeq` (when given), then
   * send `session.ready`. Returns false when the session has ended.
   */
  attach(client: SessionClient, lastSeq?: number): boolean {
    if (this.#ended) return false;
    clearTimeout(this.#graceTimer);
    this.#graceTimer = undefined;
    let gap = false;
    if (lastSeq !== undefined) {
      const replay = this.#log.since(lastSeq);
      gap = !replay.complete || lastSeq > this.#seq;
      for (const frame of replay.frames) this.#sendTo(client, frame.text);
    }
    this.#clients.add(client);
    this.lastActiveAt = Date.now();
    // session.ready is per attachment: it takes a seq but is not logged, so a later replay never repeats it.
    const ready = {
      type: "session.ready",
      sessionId: this.id,
      seq: ++this.#seq,
      resumed: lastSeq !== undefined,
      ...(gap ? { gap: true } : {}),
      limits: this.#options.limits,
      languages: this.#options.availableLanguages(),
    };
    this.#sendTo(client, JSON.stringify(ready));
    this.#releaseCredit();
    return true;
  }

  detach(client: SessionClient): void {
    this.#blockedClients.delete(client);
    if (!this.#clients.delete(client) || this.#ended) return;
    if (this.#clients.size === 0) {
      this.#graceTimer = setTimeout(() => this.#graceExpired(), this.#options.idleGraceMs);
      this.#graceTimer.unref();
    }
  }

  /** A client's send buffer drained: output held back for it may flow again. */
  clientDrained(client: SessionClient): void {
    this.#blockedClients.delete(client);
    this.#releaseCredit();
  }

  /** Answer one client's ping. Like session.ready it takes a seq but is not logged or sent to other clients. */
  pong(client: SessionClient): void {
    this.#sendTo(client, JSON.stringify({ type: "pong", sessionId: this.id, seq: ++this.#seq }));
  }

  /** Send an `error` frame to the session's clients. */
  error(code: ErrorCode, message: string, id?: string): void {
    this.#emit({ type: "error", code, message, ...(id !== undefined ? { id } : {}) });
  }

  exec(frame: ExecFrame): void {
    this.lastActiveAt = Date.now();
    const spec = findLanguage(frame.lang);
    if (!spec) return this.error("unsupported_language", `language "${frame.lang}" is not supported`, frame.id);
    if (!this.#options.availableLanguages().includes(spec.code)) {
      return this.error("language_unavailable", `the ${spec.name} toolchain is not installed on this server`, frame.id);
    }
    if (this.#exec) return this.error("busy", `exec "${this.#exec.id}" is still running; one exec runs at a time`, frame.id);
    if (this.#execIds.has(frame.id)) return this.error("duplicate_exec_id", `exec id "${frame.id}" was already used in this session`, frame.id);
    const codeBytes = Buffer.byteLength(frame.code);
    if (codeBytes === 0 || frame.code.trim() === "") return this.error("empty_code", "code is empty", frame.id);
    if (codeBytes > this.#options.limits.codeBytes) {
      return this.error("code_too_large", `code is ${codeBytes} bytes; the limit is ${this.#options.limits.codeBytes}`, frame.id);
    }
    if (frame.files && frame.files.length > 0) {
      return this.error("files_unsupported", "exec.files is not supported yet: files already in the session are in /mnt/data", frame.id);
    }
    this.#rememberExecId(frame.id);
    const timeoutMs = Math.min(frame.timeoutMs ?? this.#options.limits.wallTimeMs, this.#options.limits.wallTimeMs);
    const exec: RunningExec = { id: frame.id, lang: spec.code, stdin: frame.stdin ?? false, startedAt: Date.now(), pendingBytes: 0, pendingFrames: 0 };
    this.#exec = exec;
    this.#emit({ type: "exec.start", id: exec.id, lang: exec.lang });
    this.#options.events.publish({ topic: "executions", kind: "started", at: new Date().toISOString(), sessionId: this.id, execId: exec.id, lang: exec.lang });
    void this.#runExec(exec, frame, timeoutMs);
  }

  stdin(frame: StdinFrame): void {
    const exec = this.#exec;
    if (!exec || exec.id !== frame.id) return this.error("unknown_exec", `no running exec "${frame.id}"`, frame.id);
    if (!exec.stdin) return this.error("stdin_not_enabled", `exec "${frame.id}" did not ask for stdin (send exec with stdin: true)`, frame.id);
    this.#agent?.stdin(frame.id, frame.data, frame.eof);
  }

  signal(frame: SignalFrame): void {
    const exec = this.#exec;
    if (!exec || exec.id !== frame.id) return this.error("unknown_exec", `no running exec "${frame.id}"`, frame.id);
    this.#agent?.signal(frame.id, frame.signal);
  }

  /** End the session: stop its exec, destroy its sandbox, forget it. */
  async close(reason: ExitReason = "killed"): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    clearTimeout(this.#graceTimer);
    const exec = this.#exec;
    if (exec) this.#finishExec(exec, this.#lostExit(exec, reason));
    this.#clients.clear();
    this.#blockedClients.clear();
    await this.#dropSandbox();
    this.#options.onEnded(this);
  }

  // ---- internals ----

  #emit(frame: Record<string, unknown>): void {
    const seq = ++this.#seq;
    const text = JSON.stringify({ ...frame, sessionId: this.id, seq });
    this.#log.append(seq, text);
    for (const client of this.#clients) this.#sendTo(client, text);
  }

  #sendTo(client: SessionClient, text: string): void {
    if (!client.send(text)) this.#blockedClients.add(client);
  }

  #rememberExecId(id: string): void {
    this.#execIds.add(id);
    if (this.#execIds.size > MAX_REMEMBERED_EXEC_IDS) {
      const oldest = this.#execIds.values().next().value;
      if (oldest !== undefined) this.#execIds.delete(oldest);
    }
  }

  async #runExec(exec: RunningExec, frame: ExecFrame, timeoutMs: number): Promise<void> {
    let agent: AgentClient;
    try {
      agent = await this.#ensureAgent();
    } catch (error) {
      this.#options.logger.error({ err: error, sessionId: this.id }, "sandbox could not be started");
      this.#emit({ type: "error", code: "sandbox_unavailable", message: "no sandbox could be started for this session", id: exec.id });
      this.#finishExec(exec, this.#lostExit(exec, "internal"));
      return;
    }
    if (this.#exec !== exec) return;
    const compileTimeoutMs = this.#options.compileTimeoutMs;
    exec.watchdog = setTimeout(() => this.#sandboxLost(`exec ${exec.id} went silent`), timeoutMs + compileTimeoutMs + WATCHDOG_SLACK_MS);
    agent.startExec(
      {
        id: exec.id,
        lang: exec.lang,
        code: frame.code,
        args: frame.args,
        stdin: exec.stdin,
        timeoutMs,
        compileTimeoutMs,
        maxOutputBytes: this.#options.limits.outputBytes,
        windowBytes: OUTPUT_WINDOW_BYTES,
        // While no client reads, at most this many frames pile up: well inside the replay log.
        windowFrames: Math.max(1, Math.min(OUTPUT_WINDOW_FRAMES, Math.floor(this.#options.replayFrames / 4))),
      },
      {
        stage: (stage) => this.#emit({ type: "exec.stage", id: exec.id, stage }),
        out: (out) => {
          this.#emit({ type: "out", id: exec.id, stream: out.stream, data: out.data, ...(out.encoding ? { encoding: out.encoding } : {}) });
          exec.pendingBytes += out.bytes;
          exec.pendingFrames++;
          this.#releaseCredit();
        },
        display: (display) =>
          this.#emit({ type: "display", id: exec.id, mime: display.mime, data: display.data, ...(display.name ? { name: display.name } : {}) }),
        exit: (exit) => this.#finishExec(exec, exit),
        error: (code, message) => {
          this.#emit({ type: "error", code, message, id: exec.id });
          this.#finishExec(exec, this.#lostExit(exec, "internal"));
        },
      },
    );
  }

  /** Acknowledge forwarded output to the agent while every client keeps up (and at least one is attached). */
  #releaseCredit(): void {
    const exec = this.#exec;
    if (!exec || exec.pendingFrames === 0 || this.#clients.size === 0) return;
    if (this.#blockedClients.size > 0) return;
    this.#agent?.ack(exec.id, exec.pendingBytes, exec.pendingFrames);
    exec.pendingBytes = 0;
    exec.pendingFrames = 0;
  }

  #finishExec(exec: RunningExec, exit: AgentExit): void {
    if (this.#exec !== exec) return;
    this.#exec = undefined;
    clearTimeout(exec.watchdog);
    this.#agent?.forgetExec(exec.id);
    const reason = exec.overrideReason ?? exit.reason;
    const frame = {
      type: "exit",
      id: exec.id,
      code: exit.code,
      signal: exit.signal,
      reason,
      wallMs: exit.wallMs,
      ...(exit.cpuMs !== undefined ? { cpuMs: exit.cpuMs } : {}),
      ...(exit.memBytes !== undefined ? { memBytes: exit.memBytes } : {}),
      truncated: exit.truncated,
      files: exit.files.map((change) => this.#fileRef(change)),
    };
    this.#emit(frame);
    this.lastActiveAt = Date.now();
    this.#options.events.publish({
      topic: "executions",
      kind: "finished",
      at: new Date().toISOString(),
      sessionId: this.id,
      execId: exec.id,
      lang: exec.lang,
      reason,
      wallMs: exit.wallMs,
    });
  }

  #lostExit(exec: RunningExec, reason: ExitReason): AgentExit {
    return { type: "exit", id: exec.id, code: null, signal: null, reason, wallMs: Date.now() - exec.startedAt, truncated: false, files: [] };
  }

  #fileRef(change: AgentFileChange): FileRef {
    const previous = this.#fileIds.get(change.path);
    const id = randomId(21);
    this.#fileIds.set(change.path, id);
    return {
      id,
      name: change.path,
      path: `/mnt/data/${change.path}`,
      session_id: this.id,
      storage_session_id: this.id,
      size: change.size,
      ...(change.change === "modified" && previous ? { modified_from: { id: previous, storage_session_id: this.id } } : {}),
    };
  }

  #ensureAgent(): Promise<AgentClient> {
    if (this.#agent && !this.#agent.isClosed) return Promise.resolve(this.#agent);
    this.#agentStarting ??= this.#startSandbox().finally(() => {
      this.#agentStarting = undefined;
    });
    return this.#agentStarting;
  }

  async #startSandbox(): Promise<AgentClient> {
    const sandbox = await this.#options.provider.create({ sessionId: this.id, limits: this.#options.sandboxLimits });
    if (this.#ended) {
      await sandbox.destroy();
      throw new Error("session ended while its sandbox was starting");
    }
    let agent: AgentClient;
    try {
      agent = await AgentClient.connect(sandbox);
    } catch (error) {
      await sandbox.destroy();
      throw error;
    }
    this.#sandbox = sandbox;
    this.#agent = agent;
    this.#options.events.publish({ topic: "pool", kind: "sandbox.leased", at: new Date().toISOString(), sessionId: this.id, sandboxId: sandbox.id });
    void agent.closed.then((why) => {
      if (this.#agent === agent) this.#sandboxLost(why);
    });
    void sandbox.exited.then((exit) => {
      if (this.#sandbox === sandbox) this.#sandboxLost(`sandbox exited: ${exit.reason}`);
    });
    return agent;
  }

  /** The sandbox died or stopped answering: end the running exec with sandbox_lost; the next exec gets a new sandbox. */
  #sandboxLost(why: string): void {
    if (this.#ended) return;
    this.#options.logger.warn({ sessionId: this.id, why }, "sandbox lost");
    const exec = this.#exec;
    if (exec) this.#finishExec(exec, this.#lostExit(exec, "sandbox_lost"));
    void this.#dropSandbox();
  }

  async #dropSandbox(): Promise<void> {
    const sandbox = this.#sandbox;
    const agent = this.#agent;
    this.#sandbox = undefined;
    this.#agent = undefined;
    agent?.close();
    if (sandbox) {
      await sandbox.destroy().catch((error: unknown) => this.#options.logger.error({ err: error, sandboxId: sandbox.id }, "sandbox destroy failed"));
      this.#options.events.publish({ topic: "pool", kind: "sandbox.destroyed", at: new Date().toISOString(), sessionId: this.id, sandboxId: sandbox.id });
    }
  }

  #graceExpired(): void {
    this.#graceTimer = undefined;
    if (this.#clients.size > 0) return;
    const exec = this.#exec;
    if (exec) exec.overrideReason = "client_gone";
    void this.close("client_gone");
  }
}
