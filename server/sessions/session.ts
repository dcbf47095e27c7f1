import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import {
  type AgentExit,
  type ErrorCodes,
  type ExitReason,
  type FileRef,
  findLanguage,
  type SessionLimits,
  type SignalName,
  type ToolCall,
  type ToolResult,
} from "../../protocol/index.ts";
import type { EventBus } from "../events/event-bus.ts";
import type { FileStore, StoredFile } from "../files/file-store.ts";
import { AGENT_MIN_BYTES_PER_MS, AGENT_REQUEST_BASE_MS, AGENT_STATE_MIN_MS, AgentClient, AgentRequestError } from "../sandbox/agent-client.ts";
import { tenantId } from "../sandbox/egress/skill-deps.ts";
import type { LeasedSandbox } from "../sandbox/pool.ts";
import type { Sandbox, SandboxLimits, SandboxProvider } from "../sandbox/provider.ts";
import { AdmissionError } from "./admission.ts";
import { ReplayLog, type ReplayLogSnapshot } from "./replay-log.ts";
import { type FileLimits, SandboxFiles } from "./sandbox-files.ts";
import type { SessionHandle } from "./session-handle.ts";
import type { ParkedStream, SessionRecord } from "./session-store.ts";
import type { StateKeeper } from "./state-keeper.ts";
import { StreamSeq, type StreamSeqOptions } from "./stream-seq.ts";

/** A client attached to a session: one WebSocket, seen through what the session needs. */
export interface SessionClient {
  /** False when the socket's send buffer is above its high-water mark; the transport then calls `clientDrained` once it is below. */
  send(text: string): boolean;
  /** Close the client's connection (its session moved to another replica). */
  disconnect?(code: number, reason: string): void;
}

/** Someone other than the WebSocket clients who wants one exec's output and exit (an HTTP /exec). */
export interface ExecObserver {
  out(stream: "stdout" | "stderr", data: string, encoding?: "base64"): void;
  exit(frame: ExitFrameBody): void;
  /** The exec could not start for lack of capacity (told before its exit). */
  refused?(error: AdmissionError): void;
  /** Programmatic tool calling: the program is paused on these calls until `Session.toolResults`. */
  toolCalls?(calls: ToolCall[]): void;
}

export interface ExecRequest {
  id: string;
  lang: string;
  code: string;
  args?: string[];
  stdin?: boolean;
  timeoutMs?: number;
  /** Files of other sessions to place in /mnt/data for this run (already checked by the caller). */
  inputs?: StoredFile[];
  /** Programmatic tool calling (Python, bash): declared tools, as functions `py` of the program. */
  tools?: Array<{ name: string; py: string }>;
}

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];
/** What became of a round's results (Session.toolResults). */
export type ToolResultsOutcome = "resumed" | "not_paused" | "unknown_call_id";
export interface ExecRefusal {
  code: ErrorCode;
  message: string;
}

export interface ExitFrameBody {
  type: "exit";
  id: string;
  code: number | null;
  signal: string | null;
  reason: ExitReason;
  wallMs: number;
  cpuMs?: number;
  memBytes?: number;
  truncated: boolean;
  files: FileRef[];
}

export interface SessionOptions {
  record: SessionRecord;
  limits: SessionLimits;
  sandboxLimits: SandboxLimits;
  compileTimeoutMs: number;
  /** The longest a new sandbox may take to start and answer (the provider's own deadline; default 30 s): part of an exec's watchdog. */
  sandboxStartMs?: number;
  replayFrames: number;
  replayBytes: number;
  idleGraceMs: number;
  fileLimits: FileLimits;
  /** Languages this instance can run now. */
  availableLanguages: () => readonly string[];
  provider: SandboxProvider;
  files: FileStore;
  events: EventBus;
  logger: Logger;
  /** The session was used (an exec started or ended): its record's lastActiveAt moves. */
  onActivity: (session: Session) => void;
  /** Called once the session has ended, so its manager can forget it. */
  onEnded: (session: Session) => void;
  /**
   * Where the stream goes on from: the last seq sent and how far seqs are
   * reserved (a revived session), and the replay log it had when parked.
   * Default: a new stream, nothing reserved.
   */
  stream?: StreamSeqOptions & { replay?: ReplayLogSnapshot };
  /** Every logged frame, as sent: other replicas' clients and the shared replay log get them from here. */
  onFrame?: (seq: number, text: string) => void;
  /** PROGRAMMATIC_PAUSE_SECONDS in ms: how long a programmatic run may wait for its tool results. */
  toolPauseMs: number;
  /** Where the Python namespace goes when the sandbox is reclaimed (STATE_PERSISTENCE_ENABLED). */
  state?: StateKeeper;
  /** Save the Python state after every Python run (STATE_CHECKPOINT_AFTER_RUN), also after failed ones with onError. */
  checkpoint?: { onError: boolean } | undefined;
  // --- warm pool and admission (server/sandbox/pool.ts, ./admission.ts) ---
  /** Ready sandboxes with their agent: #startSandbox leases one when there is one. */
  pool?: { lease(sessionId?: string, lang?: string): LeasedSandbox | undefined };
  /**
   * Called before this session gets a sandbox: makes room (MAX_LIVE_SANDBOXES) or throws AdmissionError.
   * Its argument reserves the slot (see `holdsSandboxSlot`) in the tick the room was found.
   */
  sandboxRoom?: (reserve: () => void) => Promise<void>;
}

interface RunningExec {
  id: string;
  lang: string;
  stdin: boolean;
  startedAt: number;
  observer?: ExecObserver;
  /** Output bytes and frames forwarded and not yet acknowledged to the agent. */
  pendingBytes: number;
  pendingFrames: number;
  /** Set when the server, not the program or the client, ended the exec. */
  overrideReason?: ExitReason;
  watchdog?: NodeJS.Timeout;
  /** The agent's exit arrived; files are being collected. */
  exiting: boolean;
  /** Rich outputs of an exec with an observer, stored as files at its end (at most the output file cap: AgentClient keeps the figure limits). */
  displays: { mime: string; data: string; name?: string }[];
  /** Programmatic tool calling: the exec waits for tool results; this fails its calls when they do not come. */
  pauseTimer?: NodeJS.Timeout;
  /** Set once a pause expired: the error every later tool call of this exec gets at once. */
  toolsExpired?: string;
  /** Ids of the calls of the round it is paused on. */
  pendingCalls?: string[];
  /** The tool names the request declared: a call to any other name is refused, never sent to the client. */
  toolNames: ReadonlySet<string>;
  /** The refused (undeclared) calls of the round it is paused on: their error results go to the agent with the client's. */
  refusedCalls?: ToolResult[];
  /** An undeclared call of this exec was logged. */
  refusedLogged?: boolean;
  watchdogMs?: number;
  /** stdin and signals that came before the agent had the exec (sandbox starting, files being placed): sent in order once it has. */
  beforeStart?: Array<(agent: AgentClient) => void>;
}

/** Output the agent may send ahead of the clients: bytes and frames. */
const OUTPUT_WINDOW_BYTES = 256 * 1024;
const OUTPUT_WINDOW_FRAMES = 256;
/** Exec ids remembered for the uniqueness rule. */
const MAX_REMEMBERED_EXEC_IDS = 10_000;
/** How long past its own limits an exec may go silent before the sandbox is presumed lost. */
const WATCHDOG_SLACK_MS = 15_000;
const DEFAULT_SANDBOX_START_MS = 30_000;

/**
 * One live session: the sandbox it leases (started on demand), the exec
 * running in it (one at a time), its files kept in step with the file store,
 * the frame stream with its seq numbers and replay log, and the WebSocket
 * clients attached to it. Its record and files outlive the sandbox: when the
 * sandbox goes (idle, lost, the last client gone past the grace), the next
 * exec starts a new one with the same files.
 */
export class Session implements SessionHandle {
  readonly id: string;
  readonly ownerKeyHash: string;
  readonly userId?: string;
  readonly entityId?: string;
  lastActiveAt = Date.now();

  readonly #options: SessionOptions;
  readonly #log: ReplayLog;
  readonly #files: SandboxFiles;
  readonly #clients = new Set<SessionClient>();
  /** Clients whose send buffer is full: while any is, output is not acknowledged, which stops the agent reading the program's pipes. */
  readonly #blockedClients = new Set<SessionClient>();
  readonly #execIds = new Set<string>();
  readonly #seq: StreamSeq;
  #sandbox?: Sandbox;
  #agent?: AgentClient;
  #agentStarting?: Promise<AgentClient>;
  /** Room for the sandbox being started was reserved (MAX_LIVE_SANDBOXES) and it is not held yet. */
  #sandboxReserved = false;
  /** provider.sandboxClass of the sandbox held now. */
  #sandboxClass = "default";
  /** The state save that follows a Python run (options.checkpoint); the next run waits for it. */
  #checkpoint: Promise<void> = Promise.resolve();
  /** releaseIdleSandbox is saving the state and dropping the sandbox. */
  #releasing = false;
  #exec?: RunningExec;
  #graceTimer?: NodeJS.Timeout;
  #ended = false;
  /** Callers waiting for the running exec to end (HTTP /exec queues; WebSocket clients get `busy`). */
  #idleWaiters: Array<() => void> = [];
  /** This sandbox's interpreter ran Python (so it has a namespace worth saving). */
  #replUsed = false;
  /** The saved state was looked for in this sandbox already. */
  #stateChecked = false;
  /** A problem saving the state, told on the next Python exec's stderr. */
  #stateNote: string | undefined;
  /** Replicas with clients of this session: each counts as one attached client (for the grace and for output credit). */
  readonly #remoteLeases = new Map<string, SessionClient>();

  constructor(options: SessionOptions) {
    this.#options = options;
    this.id = options.record.id;
    this.ownerKeyHash = options.record.ownerKeyHash;
    this.userId = options.record.userId;
    this.entityId = options.record.entityId;
    this.lastActiveAt = options.record.lastActiveAt;
    this.#log = new ReplayLog(options.replayFrames, options.replayBytes);
    const stream = options.stream ?? { start: 0, reserved: 0 };
    if (stream.replay) this.#log.restore(stream.replay.frames, stream.replay.droppedUpTo);
    this.#seq = new StreamSeq({
      ...stream,
      onReserveFailed: (error) => options.logger.warn({ err: error, sessionId: this.id }, "seqs could not be reserved in the session store"),
    });
    this.#files = new SandboxFiles(this.id, options.files, options.fileLimits);
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

  get hasSandbox(): boolean {
    return this.#sandbox !== undefined;
  }

  /** Holds a sandbox, or has room reserved for the one it is starting (MAX_LIVE_SANDBOXES counts both). */
  get holdsSandboxSlot(): boolean {
    return this.#sandbox !== undefined || this.#sandboxReserved;
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
      gap = !replay.complete || lastSeq > this.#seq.current;
      for (const frame of replay.frames) this.#sendTo(client, frame.text);
    }
    this.#clients.add(client);
    this.#touch();
    // session.ready is per attachment: it takes a seq but is not logged, so a later replay never repeats it.
    const ready = {
      type: "session.ready",
      sessionId: this.id,
      seq: this.#seq.next(),
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

  /**
   * Another replica has clients of this session: they read the published
   * frames, so the lease just keeps the session attached. Returns the seq of
   * the `session.ready` that replica sends them.
   */
  attachRemote(replicaId: string): { seq: number; limits: SessionLimits; languages: readonly string[] } {
    this.keepRemote(replicaId);
    this.#touch();
    return { seq: this.#seq.next(), limits: this.#options.limits, languages: this.#options.availableLanguages() };
  }

  /** Hold (or renew) the lease of another replica's clients, without a new seq. */
  keepRemote(replicaId: string): void {
    if (this.#remoteLeases.has(replicaId) || this.#ended) return;
    const lease: SessionClient = { send: () => true };
    this.#remoteLeases.set(replicaId, lease);
    clearTimeout(this.#graceTimer);
    this.#graceTimer = undefined;
    this.#clients.add(lease);
    this.#releaseCredit();
  }

  detachRemote(replicaId: string): void {
    const lease = this.#remoteLeases.get(replicaId);
    if (!lease) return;
    this.#remoteLeases.delete(replicaId);
    this.detach(lease);
  }

  /** A seq for a frame another replica sends one of its clients (pong). */
  takeSeq(): number {
    return this.#seq.next();
  }

  /** The last seq of the stream (for a replica that takes the session over). */
  get seq(): number {
    return this.#seq.current;
  }

  /** Answer one client's ping. Like session.ready it takes a seq but is not logged or sent to other clients. */
  pong(client: SessionClient): void {
    if (this.#ended) return; // no seq after the session ended here: its stream may be parked already
    this.#sendTo(client, JSON.stringify({ type: "pong", sessionId: this.id, seq: this.#seq.next() }));
  }

  /** Send an `error` frame to the session's clients. */
  error(code: ErrorCode, message: string, id?: string): void {
    this.#emit({ type: "error", code, message, ...(id !== undefined ? { id } : {}) });
  }

  /**
   * Start an exec. A refusal (busy, unknown language, too large...) is returned
   * and nothing runs; otherwise `exec.start` goes out and the exec runs.
   */
  startExec(request: ExecRequest, observer?: ExecObserver): ExecRefusal | undefined {
    const refusal = this.#check(request);
    if (refusal) return refusal;
    this.#rememberExecId(request.id);
    const spec = findLanguage(request.lang)!;
    const limit = this.#options.limits.wallTimeMs;
    const timeoutMs = Math.min(request.timeoutMs ?? limit, limit);
    const exec: RunningExec = {
      id: request.id,
      lang: spec.code,
      stdin: request.stdin ?? false,
      startedAt: Date.now(),
      observer,
      pendingBytes: 0,
      pendingFrames: 0,
      exiting: false,
      displays: [],
      beforeStart: [],
      toolNames: new Set((request.tools ?? []).map((tool) => tool.name)),
    };
    this.#exec = exec;
    this.#touch();
    this.#emit({ type: "exec.start", id: exec.id, lang: exec.lang });
    this.#options.events.publish({ topic: "executions", kind: "started", at: new Date().toISOString(), sessionId: this.id, execId: exec.id, lang: exec.lang });
    // The watchdog covers the whole exec from here: the sandbox's start, file placement and state restore (each agent
    // request has its own deadline too: a stopped agent is caught sooner), then the run (re-armed when it starts).
    this.#arm(exec, this.#preparationBoundMs(request), "was not started");
    void this.#runExec(exec, request, timeoutMs);
    return undefined;
  }

  /** (Re)start the exec's watchdog: past `ms`, the sandbox counts as lost (the exec ends with sandbox_lost, the sandbox is destroyed). */
  #arm(exec: RunningExec, ms: number, what: string): void {
    clearTimeout(exec.watchdog);
    exec.watchdog = setTimeout(() => {
      if (this.#exec === exec) this.#sandboxLost(`exec ${exec.id} ${what} within ${ms} ms`);
    }, ms);
  }

  /** The longest an exec's preparation may take: a sandbox start, the previous checkpoint and this restore, every file placed at the slowest allowed rate. */
  #preparationBoundMs(request: ExecRequest): number {
    const fileBytes = this.#options.fileLimits.totalBytes + (request.inputs ?? []).reduce((sum, file) => sum + file.size, 0);
    const stateBytes = this.#options.state?.enabled ? this.#options.state.maxBytes : 0;
    const transfer = Math.ceil(((fileBytes + 2 * stateBytes) * 4) / 3 / AGENT_MIN_BYTES_PER_MS);
    return (this.#options.sandboxStartMs ?? DEFAULT_SANDBOX_START_MS) + 2 * AGENT_STATE_MIN_MS + transfer + WATCHDOG_SLACK_MS;
  }

  /** The longest collecting a run's files may take: every output file fetched at the slowest allowed rate. */
  #collectionBoundMs(): number {
    const limits = this.#options.fileLimits;
    const transfer = Math.ceil((Math.min(limits.totalBytes, limits.outputFiles * limits.fileBytes) * 4) / 3 / AGENT_MIN_BYTES_PER_MS);
    return (limits.outputFiles + 1) * AGENT_REQUEST_BASE_MS + transfer + WATCHDOG_SLACK_MS;
  }

  /** Resolves once no exec runs (at once when none does), or the session ended. */
  whenIdle(): Promise<void> {
    if (!this.#exec || this.#ended) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** A WebSocket exec: a refusal becomes an `error` frame on the session stream. */
  exec(request: ExecRequest): void {
    const refusal = this.startExec(request);
    if (refusal) this.error(refusal.code, refusal.message, request.id);
  }

  stdin(id: string, data: string | undefined, eof: boolean | undefined): void {
    const exec = this.#exec;
    if (!exec || exec.id !== id) return this.error("unknown_exec", `no running exec "${id}"`, id);
    if (!exec.stdin) return this.error("stdin_not_enabled", `exec "${id}" did not ask for stdin (send exec with stdin: true)`, id);
    this.#toAgent(exec, (agent) => agent.stdin(id, data, eof));
  }

  signal(id: string, signal: SignalName): void {
    const exec = this.#exec;
    if (!exec || exec.id !== id) return this.error("unknown_exec", `no running exec "${id}"`, id);
    // A program paused on tool calls is blocked waiting for them: its calls fail first (and any later ones), then the signal.
    if (exec.pendingCalls) this.#failToolCalls(exec, `the run was interrupted (${signal})`);
    this.#toAgent(exec, (agent) => agent.signal(id, signal));
  }

  /**
   * --- programmatic tool calling: resume exec `id`, paused on a round of tool
   * calls, with their results (a call left unanswered gets an error result).
   * Refused when that exec is not paused, or for a call it did not make.
   */
  toolResults(id: string, results: ToolResult[]): ToolResultsOutcome {
    const exec = this.#exec;
    if (!exec || exec.id !== id || exec.exiting || !exec.pauseTimer || !exec.pendingCalls || !this.#agent) return "not_paused";
    const pending = exec.pendingCalls;
    if (results.some((result) => !pending.includes(result.call_id))) return "unknown_call_id";
    const answered = new Set(results.map((result) => result.call_id));
    const all = [...results, ...(exec.refusedCalls ?? [])];
    for (const callId of pending) if (!answered.has(callId)) all.push({ call_id: callId, is_error: true, error_message: "no result was given for this call" });
    clearTimeout(exec.pauseTimer);
    exec.pauseTimer = undefined;
    exec.pendingCalls = undefined;
    exec.refusedCalls = undefined;
    exec.watchdog = setTimeout(() => this.#sandboxLost(`exec ${exec.id} went silent`), exec.watchdogMs ?? WATCHDOG_SLACK_MS);
    this.#touch();
    this.#agent.toolResults(id, all);
    return "resumed";
  }

  /** Give running exec `id` a new observer (a programmatic run's follow-up on this replica). False when it is not running. */
  observe(id: string, observer: ExecObserver): boolean {
    const exec = this.#exec;
    if (!exec || exec.id !== id || exec.exiting) return false;
    exec.observer = observer;
    return true;
  }

  #toolCalls(exec: RunningExec, agent: AgentClient, calls: ToolCall[]): void {
    if (this.#exec !== exec) return;
    clearTimeout(exec.watchdog);
    clearTimeout(exec.pauseTimer);
    if (exec.toolsExpired) {
      // The run outlived its pause once: every later call fails at once, nobody is waiting to answer.
      agent.toolResults(
        exec.id,
        calls.map((call) => ({ call_id: call.id, is_error: true, error_message: exec.toolsExpired })),
      );
      exec.watchdog = setTimeout(() => this.#sandboxLost(`exec ${exec.id} went silent`), exec.watchdogMs ?? WATCHDOG_SLACK_MS);
      return;
    }
    // Only the tools the request declared may be called (the program can reach the driver and name any tool):
    // a call to another name fails inside the program and is never sent to the client.
    const undeclared = calls.filter((call) => !exec.toolNames.has(call.name));
    const declared = undeclared.length === 0 ? calls : calls.filter((call) => exec.toolNames.has(call.name));
    const refused = undeclared.map((call) => ({
      call_id: call.id,
      is_error: true,
      error_message: `tool ${JSON.stringify(call.name)} was not declared for this run`,
    }));
    if (undeclared.length > 0 && !exec.refusedLogged) {
      // Once per exec: a program looping on undeclared calls does not flood the log.
      exec.refusedLogged = true;
      const names = [...new Set(undeclared.map((call) => call.name.slice(0, 200)))].slice(0, 20);
      this.#options.logger.warn({ sessionId: this.id, execId: exec.id, tools: names }, "a program called tools its request did not declare; refused");
    }
    if (declared.length === 0) {
      agent.toolResults(exec.id, refused);
      exec.watchdog = setTimeout(() => this.#sandboxLost(`exec ${exec.id} went silent`), exec.watchdogMs ?? WATCHDOG_SLACK_MS);
      return;
    }
    exec.refusedCalls = refused.length > 0 ? refused : undefined;
    exec.pendingCalls = declared.map((call) => call.id);
    exec.pauseTimer = setTimeout(() => {
      // Expire the pause, not the interpreter: the calls fail with this error inside the program (its state stays).
      this.#failToolCalls(exec, `no tool results came within ${this.#options.toolPauseMs / 1000} s; the paused run expired`);
    }, this.#options.toolPauseMs);
    exec.pauseTimer.unref();
    this.#touch();
    // Clients see the round (and may answer it with tool_result); HTTP follow-ups on any replica read it from the stream.
    this.#emit({ type: "tool_call", id: exec.id, calls: declared });
    exec.observer?.toolCalls?.(declared);
  }
  // --- end programmatic tool calling

  /** End the pause of a run without results: its calls, and every later one, fail with `message` inside the program. */
  #failToolCalls(exec: RunningExec, message: string): void {
    const calls = exec.pendingCalls;
    if (this.#exec !== exec || !calls || !this.#agent) return;
    clearTimeout(exec.pauseTimer);
    exec.pauseTimer = undefined;
    exec.pendingCalls = undefined;
    const refused = exec.refusedCalls ?? [];
    exec.refusedCalls = undefined;
    exec.toolsExpired = message;
    const text = `Programmatic tool calling: ${message}\n`;
    this.#emit({ type: "out", id: exec.id, stream: "stderr", data: text });
    exec.observer?.out("stderr", text);
    this.#agent.toolResults(exec.id, [...calls.map((callId) => ({ call_id: callId, is_error: true, error_message: message })), ...refused]);
    exec.watchdog = setTimeout(() => this.#sandboxLost(`exec ${exec.id} went silent`), exec.watchdogMs ?? WATCHDOG_SLACK_MS);
  }

  #toAgent(exec: RunningExec, send: (agent: AgentClient) => void): void {
    if (exec.beforeStart) exec.beforeStart.push(send);
    else if (this.#agent) send(this.#agent);
  }

  /** A stored file was deleted: take it out of the sandbox too. */
  async fileDeleted(file: StoredFile): Promise<void> {
    const agent = this.#agent;
    if (agent && !agent.isClosed) await this.#files.remove(agent, file);
  }

  /** An exec of this session that ran on a replica that died: its stream ends with sandbox_lost. */
  reportLostExec(execId: string): void {
    this.#emit({ type: "exit", id: execId, code: null, signal: null, reason: "sandbox_lost", wallMs: 0, truncated: false, files: [] });
  }

  /** Release the sandbox when nothing uses it (idle sweep). Returns whether it did. */
  async releaseIdleSandbox(idleMs: number): Promise<boolean> {
    // One release at a time: a second caller (the sweep and a reclaim, or two reclaims) must not count this sandbox as freed by it too.
    if (this.#releasing || !this.#sandbox || this.#exec || this.#clients.size > 0 || Date.now() - this.lastActiveAt < idleMs) return false;
    this.#releasing = true;
    try {
      const sandbox = this.#sandbox;
      await this.#saveState();
      // An exec may have started while the state was being saved: it keeps its sandbox.
      if (this.#exec || this.#sandbox !== sandbox) return false;
      await this.#dropSandbox();
      return true;
    } finally {
      this.#releasing = false;
    }
  }

  /**
   * The server is stopping: a running exec is interrupted (SIGINT, so the
   * interpreter and its variables stay) and ends with server_restart, for good
   * after `stopWaitMs`; then the Python state is saved (within
   * `saveTimeoutMs`). The manager then closes the session and parks its stream.
   */
  async suspend({ stopWaitMs, saveTimeoutMs }: { stopWaitMs: number; saveTimeoutMs: number }): Promise<{ interrupted: boolean; stateSaved: boolean }> {
    const exec = this.#exec;
    let interpreterIdle = true;
    if (exec) {
      exec.overrideReason = "server_restart";
      if (exec.pendingCalls) this.#failToolCalls(exec, "the server is restarting");
      this.#toAgent(exec, (agent) => agent.signal(exec.id, "SIGINT"));
      await Promise.race([this.whenIdle(), sleep(stopWaitMs, undefined, { ref: false })]);
      if (this.#exec === exec) {
        interpreterIdle = false;
        this.#emitExit(exec, this.#lostExit(exec, "server_restart"), []);
      }
    }
    await this.#checkpoint;
    // An interpreter still inside the run cannot pickle its namespace.
    const stateSaved = interpreterIdle && (await this.#saveState(saveTimeoutMs));
    return { interrupted: exec !== undefined, stateSaved };
  }

  /** The stream as it stands now, for whoever revives the session next. */
  parkedStream(): ParkedStream {
    return { seq: this.#seq.current, ...this.#log.snapshot() };
  }

  /** End the live session: stop its exec, destroy its sandbox, forget it. Its record and files are the manager's business. */
  async close(reason: ExitReason = "killed"): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    clearTimeout(this.#graceTimer);
    const exec = this.#exec;
    if (exec) this.#emitExit(exec, this.#lostExit(exec, reason), []);
    this.#clients.clear();
    this.#blockedClients.clear();
    for (const wake of this.#idleWaiters.splice(0)) wake();
    await this.#dropSandbox();
    this.#options.onEnded(this);
  }

  // ---- internals ----

  #check(request: ExecRequest): ExecRefusal | undefined {
    if (this.#ended) return { code: "session_not_found", message: "the session has ended" };
    const spec = findLanguage(request.lang);
    if (!spec) return { code: "unsupported_language", message: `language "${request.lang}" is not supported` };
    if (!this.#options.availableLanguages().includes(spec.code)) {
      return { code: "language_unavailable", message: `the ${spec.name} toolchain is not installed on this server` };
    }
    if (this.#exec) return { code: "busy", message: `exec "${this.#exec.id}" is still running; one exec runs at a time` };
    if (this.#execIds.has(request.id)) return { code: "duplicate_exec_id", message: `exec id "${request.id}" was already used in this session` };
    const codeBytes = Buffer.byteLength(request.code);
    if (codeBytes === 0 || request.code.trim() === "") return { code: "empty_code", message: "code is empty" };
    if (codeBytes > this.#options.limits.codeBytes) {
      return { code: "code_too_large", message: `code is ${codeBytes} bytes; the limit is ${this.#options.limits.codeBytes}` };
    }
    return undefined;
  }

  #touch(): void {
    this.lastActiveAt = Date.now();
    this.#options.onActivity(this);
  }

  #emit(frame: Record<string, unknown>): void {
    const seq = this.#seq.next();
    const text = JSON.stringify({ ...frame, sessionId: this.id, seq });
    this.#log.append(seq, text);
    this.#options.onFrame?.(seq, text);
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

  async #runExec(exec: RunningExec, request: ExecRequest, timeoutMs: number): Promise<void> {
    let agent: AgentClient;
    // The agent answers one request at a time: the previous run's checkpoint first.
    await this.#checkpoint;
    try {
      // A sandbox of another class (pods of another image) cannot run this language: save the state, swap it.
      if (this.#agent && !this.#agent.isClosed && this.#options.provider.sandboxClass(exec.lang) !== this.#sandboxClass) {
        await this.#saveState();
        await this.#dropSandbox();
      }
      agent = await this.#ensureAgent(exec.lang);
      if (this.#exec !== exec) return;
      await this.#files.prepare(agent, request.inputs);
      if (this.#exec !== exec) return;
      if (exec.lang === "py") await this.#restoreState(exec, agent);
    } catch (error) {
      if (this.#exec !== exec) return;
      if (error instanceof AgentRequestError && this.#agent?.isClosed) {
        // The agent stopped answering (a request passed its deadline) or went away while the run was being prepared.
        this.#sandboxLost(`preparing exec ${exec.id}: ${error.message}`);
        return;
      }
      if (error instanceof AdmissionError) {
        // Over capacity (no room for another sandbox): the caller should come back later, not report a failure.
        this.#emit({ type: "error", code: error.status === 429 ? "rate_limited" : "service_unavailable", message: error.message, id: exec.id });
        exec.observer?.refused?.(error);
      } else {
        this.#options.logger.error({ err: error, sessionId: this.id }, "sandbox could not be prepared");
        this.#emit({ type: "error", code: "sandbox_unavailable", message: "no sandbox could be started for this session", id: exec.id });
        // HTTP callers get 503 with Retry-After: the backend (Kubernetes, bubblewrap) may be back shortly.
        exec.observer?.refused?.(new AdmissionError("capacity", "No sandbox could be started for this session; try again shortly", 5));
      }
      this.#emitExit(exec, this.#lostExit(exec, "internal"), []);
      return;
    }
    if (this.#exec !== exec) return;
    if (agent.isClosed) return this.#sandboxLost(`the agent of exec ${exec.id} went away while the run was being prepared`);
    const spec = findLanguage(exec.lang)!;
    const compileTimeoutMs = this.#options.compileTimeoutMs;
    exec.watchdogMs = timeoutMs + compileTimeoutMs + WATCHDOG_SLACK_MS;
    this.#arm(exec, exec.watchdogMs, "went silent");
    agent.startExec(
      {
        id: exec.id,
        lang: exec.lang,
        code: request.code,
        ...(request.args ? { args: request.args } : {}),
        stdin: exec.stdin,
        timeoutMs,
        compileTimeoutMs,
        maxOutputBytes: this.#options.limits.outputBytes,
        ...this.#files.figureLimits,
        windowBytes: OUTPUT_WINDOW_BYTES,
        // While no client reads, at most this many frames pile up: well inside the replay log.
        windowFrames: Math.max(1, Math.min(OUTPUT_WINDOW_FRAMES, Math.floor(this.#options.replayFrames / 4))),
        ...(spec.code === "py" ? { repl: true } : {}),
        ...((spec.code === "py" || spec.code === "bash") && request.tools?.length ? { tools: request.tools } : {}),
      },
      {
        stage: (stage) => this.#emit({ type: "exec.stage", id: exec.id, stage }),
        out: (out) => {
          this.#emit({ type: "out", id: exec.id, stream: out.stream, data: out.data, ...(out.encoding ? { encoding: out.encoding } : {}) });
          exec.observer?.out(out.stream, out.data, out.encoding);
          exec.pendingBytes += out.bytes;
          exec.pendingFrames++;
          this.#releaseCredit();
        },
        display: (display) => {
          this.#emit({ type: "display", id: exec.id, mime: display.mime, data: display.data, ...(display.name ? { name: display.name } : {}) });
          // HTTP callers have no display frames: they get each image as a generated file, kept for storing at the end.
          if (exec.observer) exec.displays.push(display);
        },
        toolCalls: (calls) => this.#toolCalls(exec, agent, calls),
        exit: (exit) => void this.#finishExec(exec, agent, exit),
        error: (code, message) => {
          this.#emit({ type: "error", code, message, id: exec.id });
          this.#emitExit(exec, this.#lostExit(exec, "internal"), []);
        },
      },
    );
    const early = exec.beforeStart ?? [];
    exec.beforeStart = undefined;
    for (const send of early) send(agent);
  }

  /** Acknowledge forwarded output to the agent while everyone who reads it keeps up. */
  #releaseCredit(): void {
    const exec = this.#exec;
    if (!exec || exec.pendingFrames === 0) return;
    // With no reader at all (no client, no observer), output waits for a client to come back.
    if (this.#clients.size === 0 && !exec.observer) return;
    if (this.#blockedClients.size > 0) return;
    this.#agent?.ack(exec.id, exec.pendingBytes, exec.pendingFrames);
    exec.pendingBytes = 0;
    exec.pendingFrames = 0;
  }

  /** The agent's exit: store the files the run changed, then send the exit frame. */
  async #finishExec(exec: RunningExec, agent: AgentClient, exit: AgentExit): Promise<void> {
    if (this.#exec !== exec || exec.exiting) return;
    exec.exiting = true;
    // Collecting the files has a bound too (each file request has its deadline; an agent answering each one just in time still ends here).
    this.#arm(exec, this.#collectionBoundMs(), "did not hand back its files");
    clearTimeout(exec.pauseTimer);
    agent.forgetExec(exec.id);
    let files: FileRef[] = [];
    try {
      const collected = await this.#files.collect(agent, exit);
      files = collected.refs;
      for (const [index, display] of exec.displays.entries()) {
        const figure = await this.#files.storeDisplay(display, index, collected.notes);
        if (figure) files.push(figure);
      }
      if (exit.displaysDropped) collected.notes.push(this.#files.figuresDroppedNote(exit.displaysDropped));
      if (collected.notes.length > 0 && this.#exec === exec) {
        const text = collected.notes.map((note) => `[files] ${note}\n`).join("");
        this.#emit({ type: "out", id: exec.id, stream: "stderr", data: text });
        exec.observer?.out("stderr", text);
      }
    } catch (error) {
      if (agent.isClosed && this.#exec === exec) {
        // A file request passed its deadline (the agent stopped answering) or the agent went away: the sandbox is lost.
        this.#sandboxLost(`collecting the files of exec ${exec.id}: ${(error as Error).message}`);
        return;
      }
      this.#options.logger.error({ err: error, sessionId: this.id, execId: exec.id }, "files of the run could not be stored");
    }
    if (this.#exec !== exec) return;
    this.#emitExit(exec, exit, files);
    const checkpoint = this.#options.checkpoint;
    if (checkpoint && exec.lang === "py" && (exit.code === 0 || checkpoint.onError)) this.#checkpoint = this.#saveState().then(() => {});
  }

  #emitExit(exec: RunningExec, exit: AgentExit, files: FileRef[]): void {
    if (this.#exec !== exec) return;
    this.#exec = undefined;
    clearTimeout(exec.watchdog);
    clearTimeout(exec.pauseTimer);
    this.#agent?.forgetExec(exec.id);
    const reason = exec.overrideReason ?? exit.reason;
    const frame: ExitFrameBody = {
      type: "exit",
      id: exec.id,
      code: exit.code,
      signal: exit.signal,
      reason,
      wallMs: exit.wallMs,
      ...(exit.cpuMs !== undefined ? { cpuMs: exit.cpuMs } : {}),
      ...(exit.memBytes !== undefined ? { memBytes: exit.memBytes } : {}),
      truncated: exit.truncated,
      files,
    };
    this.#emit({ ...frame });
    exec.observer?.exit(frame);
    this.#touch();
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const wake of waiters) wake();
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

  /** The session's agent, starting a sandbox (of the class that runs `lang`, when given) if it has none. */
  #ensureAgent(lang?: string): Promise<AgentClient> {
    if (this.#agent && !this.#agent.isClosed) return Promise.resolve(this.#agent);
    this.#agentStarting ??= this.#startSandbox(lang).finally(() => {
      this.#agentStarting = undefined;
    });
    return this.#agentStarting;
  }

  async #startSandbox(lang?: string): Promise<AgentClient> {
    // --- warm pool and admission: room for one more sandbox, then a pooled sandbox+agent when there is one, else a new one as before.
    let leased: LeasedSandbox | undefined;
    let made: LeasedSandbox;
    try {
      await this.#options.sandboxRoom?.(() => {
        this.#sandboxReserved = true;
      });
      leased = this.#options.pool?.lease(this.id, lang);
      if (leased && this.#ended) {
        leased.agent.close();
        await leased.sandbox.destroy();
        throw new Error("session ended while its sandbox was starting");
      }
      made = leased ?? (await this.#createSandbox(lang));
    } finally {
      this.#sandboxReserved = false;
    }
    const { sandbox, agent } = made;
    // --- end warm pool
    this.#sandbox = sandbox;
    this.#agent = agent;
    this.#sandboxClass = this.#options.provider.sandboxClass(lang);
    this.#files.reset();
    this.#stateChecked = false;
    this.#replUsed = false;
    this.#options.events.publish({
      topic: "pool",
      kind: "sandbox.leased",
      at: new Date().toISOString(),
      sessionId: this.id,
      sandboxId: sandbox.id,
      fromPool: leased !== undefined,
    });
    void agent.closed.then((why) => {
      if (this.#agent === agent) this.#sandboxLost(why);
    });
    void sandbox.exited.then((exit) => {
      if (this.#sandbox === sandbox) this.#sandboxLost(`sandbox exited: ${exit.reason}`);
    });
    return agent;
  }

  /** A new sandbox and its agent, made for this session (no pooled one was ready). */
  async #createSandbox(lang?: string): Promise<LeasedSandbox> {
    const sandbox = await this.#options.provider.create({
      sessionId: this.id,
      limits: this.#options.sandboxLimits,
      tenant: tenantId(this.ownerKeyHash, this.userId),
      ...(lang ? { lang } : {}),
    });
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
    return { sandbox, agent };
  }

  /** The sandbox died or stopped answering: end the running exec with sandbox_lost; the next exec gets a new sandbox. */
  #sandboxLost(why: string): void {
    if (this.#ended) return;
    this.#options.logger.warn({ sessionId: this.id, why }, "sandbox lost");
    const exec = this.#exec;
    if (exec) this.#emitExit(exec, this.#lostExit(exec, "sandbox_lost"), []);
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

  /** The last client left and did not come back: a running exec ends with client_gone and the sandbox goes; the session and its files stay. */
  #graceExpired(): void {
    this.#graceTimer = undefined;
    if (this.#clients.size > 0 || this.#ended) return;
    const exec = this.#exec;
    if (exec && !exec.observer) {
      this.#emitExit(exec, this.#lostExit(exec, "client_gone"), []);
    } else if (exec) {
      return; // an HTTP caller still waits for this exec
    }
    void this.#saveState().then(() => (this.#exec || this.#clients.size > 0 ? undefined : this.#dropSandbox()));
  }

  /**
   * Before the sandbox goes: pickle the Python namespace (when this sandbox ran
   * Python) into the state keeper, so that the next sandbox gets it back.
   */
  async #saveState(timeoutMs?: number): Promise<boolean> {
    const keeper = this.#options.state;
    const agent = this.#agent;
    if (!keeper?.enabled || !agent || agent.isClosed || !this.#replUsed) return false;
    try {
      const result = await agent.saveState(keeper.maxBytes, timeoutMs);
      if (!result.data) return false;
      await keeper.save(this.id, { data: Buffer.from(result.data, "base64"), names: result.names, skipped: result.skipped ?? [], savedAt: Date.now() });
      this.#replUsed = false;
      return true;
    } catch (error) {
      this.#options.logger.warn({ err: error, sessionId: this.id }, "Python state not saved");
      this.#stateNote = `the Python state could not be saved when the previous sandbox was reclaimed: ${(error as Error).message}`;
      return false;
    }
  }

  /** Before the first Python exec in a new sandbox: restore the saved namespace; say on stderr what could not come back. */
  async #restoreState(exec: RunningExec, agent: AgentClient): Promise<void> {
    this.#replUsed = true;
    const keeper = this.#options.state;
    if (this.#stateChecked || !keeper?.enabled) return;
    this.#stateChecked = true;
    const notes: string[] = this.#stateNote ? [this.#stateNote] : [];
    this.#stateNote = undefined;
    try {
      const saved = await keeper.load(this.id);
      if (saved) {
        await agent.restoreState(saved.data.toString("base64"));
        for (const skipped of saved.skipped) notes.push(`${skipped.name} was not kept when the previous sandbox was reclaimed: ${skipped.error}`);
      }
    } catch (error) {
      notes.push(`the saved Python state could not be restored: ${(error as Error).message}`);
    }
    if (notes.length === 0 || this.#exec !== exec) return;
    const text = notes.map((note) => `[state] ${note}\n`).join("");
    this.#emit({ type: "out", id: exec.id, stream: "stderr", data: text });
    exec.observer?.out("stderr", text);
  }
}
