import type { Logger } from "pino";
import type { SessionLimits, SignalName, ToolCall, ToolResult } from "../../protocol/index.ts";
import type { StoredFile } from "../files/file-store.ts";
import type { ErrorCode, ExecObserver, ExecRefusal, ExecRequest, ExitFrameBody, SessionClient, ToolResultsOutcome } from "../sessions/session.ts";
import type { SessionHandle } from "../sessions/session-handle.ts";
import type { SessionRecord } from "../sessions/session-store.ts";
import type { FleetBus } from "./fleet-bus.ts";
import { SharedStream } from "./shared-stream.ts";

export interface RemoteSessionDeps {
  bus: FleetBus;
  stream: SharedStream;
  logger: Logger;
  /** How long an HTTP caller may wait for the holder's running exec to end. */
  idleWaitMs: number;
  /** The proxy stopped: its holder went away or the session ended. */
  onEnded: (session: RemoteSession) => void;
}

interface ClientState {
  /** Highest seq this client has been sent. */
  sentUpTo: number;
  /** Live frames that came while the client's replay was being read. */
  buffer: { seq: number; text: string }[] | undefined;
}

/**
 * An HTTP observer of an exec the holder runs. Its output is collected by seq
 * and handed over only when the exec pauses (tool_call) or ends (exit), after
 * the frames are checked against the session's replay log in Redis: a frame
 * published before this replica's subscription took effect (possible in a
 * Redis Cluster) is then still delivered, in order.
 */
interface RemoteObserver {
  observer: ExecObserver;
  /** Frames of the exec up to this seq belong to rounds the caller already has. */
  afterSeq: number;
  outs: Map<number, { stream: "stdout" | "stderr"; data: string; encoding?: "base64" }>;
  /** Its `exec.start` came live: every later frame did too (one channel, in order), so the log need not be read. */
  sawStart: boolean;
  /** Frames that came while the holder had not yet said where the round starts (observe): sorted out once it has. */
  early?: Record<string, unknown>[];
}

/** How often a proxy renews its lease on the holder, and checks that the holder is still there. */
const LEASE_RENEW_MS = 5_000;

/**
 * A session held by another replica, as seen from this one: calls go to the
 * holder as fleet requests; the session's frames come back on its pub/sub
 * channel and its replay log in Redis, and go to this replica's clients and
 * HTTP observers. No frame is lost or repeated for a client: each one is sent
 * the replay after its `lastSeq`, then live frames past what it was sent.
 */
export class RemoteSession implements SessionHandle {
  readonly id: string;
  readonly ownerKeyHash: string;
  readonly userId?: string;
  readonly entityId?: string;
  readonly holder: string;
  readonly #deps: RemoteSessionDeps;
  readonly #clients = new Map<SessionClient, ClientState>();
  readonly #observers = new Map<string, RemoteObserver>();
  #unsubscribe: Promise<() => Promise<void>> | undefined;
  #leaseTimer: NodeJS.Timeout | undefined;
  #ended = false;
  /** The exec running on the holder, from the frames seen here. */
  #runningExec: string | undefined;

  constructor(record: SessionRecord, holder: string, deps: RemoteSessionDeps) {
    this.id = record.id;
    this.ownerKeyHash = record.ownerKeyHash;
    this.userId = record.userId;
    this.entityId = record.entityId;
    this.holder = holder;
    this.#deps = deps;
  }

  get ended(): boolean {
    return this.#ended;
  }

  get running(): boolean {
    return this.#runningExec !== undefined;
  }

  async attach(client: SessionClient, lastSeq?: number): Promise<boolean> {
    if (this.#ended) return false;
    const state: ClientState = { sentUpTo: lastSeq ?? 0, buffer: [] };
    this.#clients.set(client, state);
    await this.#listen();
    let ready: { seq: number; limits: SessionLimits; languages: string[] };
    try {
      ready = (await this.#request({ kind: "attach" })) as typeof ready;
    } catch (error) {
      this.#clients.delete(client);
      this.#deps.logger.warn({ err: error, sessionId: this.id, holder: this.holder }, "holder did not take the attach");
      this.#holderLost();
      return false;
    }
    const replay = lastSeq !== undefined ? await this.#deps.stream.read(this.id) : { frames: [], droppedUpTo: 0 };
    const gap = lastSeq !== undefined && (replay.droppedUpTo > lastSeq || lastSeq > ready.seq);
    if (lastSeq === undefined) state.sentUpTo = ready.seq;
    // What was missed before the ready, the ready itself, then what came since.
    for (const frame of replay.frames) if (frame.seq > state.sentUpTo && frame.seq < ready.seq) this.#sendTo(client, state, frame);
    const readyFrame = {
      type: "session.ready",
      sessionId: this.id,
      seq: ready.seq,
      resumed: lastSeq !== undefined,
      ...(gap ? { gap: true } : {}),
      limits: ready.limits,
      languages: ready.languages,
    };
    client.send(JSON.stringify(readyFrame));
    state.sentUpTo = Math.max(state.sentUpTo, ready.seq);
    for (const frame of replay.frames) if (frame.seq > state.sentUpTo) this.#sendTo(client, state, frame);
    const buffered = state.buffer ?? [];
    state.buffer = undefined;
    for (const frame of buffered) if (frame.seq > state.sentUpTo) this.#sendTo(client, state, frame);
    return true;
  }

  detach(client: SessionClient): void {
    if (!this.#clients.delete(client)) return;
    if (this.#clients.size === 0) {
      void this.#request({ kind: "detach" }).catch(() => {});
      this.#quietIfUnused();
    }
  }

  clientDrained(): void {
    // The holder publishes regardless of this replica's sockets: nothing is held back for them here.
  }

  pong(client: SessionClient): void {
    this.#request({ kind: "pong" }).then(
      (seq) => client.send(JSON.stringify({ type: "pong", sessionId: this.id, seq })),
      () => client.send(JSON.stringify({ type: "pong", sessionId: this.id })),
    );
  }

  error(code: ErrorCode, message: string, id?: string): void {
    void this.#request({ kind: "error", code, message, ...(id !== undefined ? { id } : {}) }).catch(() => {});
  }

  exec(request: ExecRequest): void {
    void this.#request({ kind: "exec", request }).catch((error: Error) => this.#tellClients("sandbox_unavailable", error.message, request.id));
  }

  async startExec(request: ExecRequest, observer?: ExecObserver): Promise<ExecRefusal | undefined> {
    if (observer) this.#observers.set(request.id, { observer, afterSeq: 0, outs: new Map(), sawStart: false });
    await this.#listen();
    try {
      const refusal = (await this.#request({ kind: "startExec", request })) as ExecRefusal | null;
      if (refusal) this.#observers.delete(request.id);
      return refusal ?? undefined;
    } catch (error) {
      this.#observers.delete(request.id);
      this.#quietIfUnused();
      return { code: "sandbox_unavailable", message: `the replica holding this session did not answer: ${(error as Error).message}` };
    }
  }

  async whenIdle(): Promise<void> {
    await this.#request({ kind: "whenIdle" }, this.#deps.idleWaitMs).catch(() => {});
  }

  stdin(id: string, data: string | undefined, eof: boolean | undefined): void {
    void this.#request({ kind: "stdin", id, ...(data !== undefined ? { data } : {}), ...(eof !== undefined ? { eof } : {}) }).catch(() => {});
  }

  signal(id: string, signal: SignalName): Promise<void> {
    return this.#request({ kind: "signal", id, signal }).then(
      () => {},
      () => {},
    );
  }

  async fileDeleted(file: StoredFile): Promise<void> {
    await this.#request({ kind: "fileDeleted", file }).catch(() => {});
  }

  async toolResults(id: string, results: ToolResult[]): Promise<ToolResultsOutcome> {
    return ((await this.#request({ kind: "toolResults", id, results }).catch(() => undefined)) as ToolResultsOutcome | undefined) ?? "not_paused";
  }

  /** Follow exec `id` from here: its frames reach `observer` through the shared stream; the holder keeps it observed. */
  async observe(id: string, observer: ExecObserver): Promise<boolean> {
    const entry: RemoteObserver = { observer, afterSeq: Number.POSITIVE_INFINITY, outs: new Map(), sawStart: false, early: [] };
    this.#observers.set(id, entry);
    await this.#listen();
    const reply = await this.#request({ kind: "observe", id }).catch(() => false);
    // A holder of an older version answers `true` without a seq: then only live frames count.
    const running = reply === true || (typeof reply === "object" && reply !== null);
    entry.afterSeq = typeof reply === "object" && reply !== null ? Number((reply as { seq: number }).seq) : -1;
    if (!running) {
      this.#observers.delete(id);
      this.#quietIfUnused();
      return false;
    }
    // A Redis Cluster may deliver frames of earlier rounds after the subscription: those before the seq are not this round's.
    const early = entry.early ?? [];
    entry.early = undefined;
    for (const frame of early) this.#route(entry, frame);
    return true;
  }

  /** Ask the holder to end the session (session.close). */
  async close(): Promise<void> {
    await this.#request({ kind: "close" }).catch(() => {});
    this.#end();
  }

  // ---- internals ----

  #request(body: Record<string, unknown>, timeoutMs?: number): Promise<unknown> {
    return this.#deps.bus.request(this.holder, { ...body, sessionId: this.id }, timeoutMs);
  }

  #listen(): Promise<unknown> {
    this.#unsubscribe ??= this.#deps.bus.subscribe(SharedStream.channel(this.id), (frame) => this.#onFrame(frame as Record<string, unknown>));
    if (!this.#leaseTimer) {
      this.#leaseTimer = setInterval(() => void this.#renew(), LEASE_RENEW_MS);
      this.#leaseTimer.unref();
    }
    return this.#unsubscribe;
  }

  #quietIfUnused(): void {
    if (this.#clients.size > 0 || this.#observers.size > 0) return;
    clearInterval(this.#leaseTimer);
    this.#leaseTimer = undefined;
    const unsubscribe = this.#unsubscribe;
    this.#unsubscribe = undefined;
    void unsubscribe?.then((fn) => fn());
  }

  async #renew(): Promise<void> {
    try {
      if (this.#clients.size > 0) await this.#request({ kind: "lease" });
      else await this.#request({ kind: "ping" });
    } catch {
      this.#holderLost();
    }
  }

  #onFrame(frame: Record<string, unknown>): void {
    const seq = frame.seq as number;
    const text = JSON.stringify(frame);
    for (const [client, state] of this.#clients) {
      if (state.buffer) state.buffer.push({ seq, text });
      else if (seq > state.sentUpTo) this.#sendTo(client, state, { seq, text });
    }
    const id = frame.id as string | undefined;
    if (frame.type === "exec.start") this.#runningExec = id;
    if (frame.type === "exit" && this.#runningExec === id) this.#runningExec = undefined;
    const entry = id !== undefined ? this.#observers.get(id) : undefined;
    if (!entry) return;
    if (entry.early) entry.early.push(frame);
    else this.#route(entry, frame);
  }

  /** One frame of an observed exec: output is kept by seq; a pause or the exit of this round settles it. Older frames are not this round's. */
  #route(entry: RemoteObserver, frame: Record<string, unknown>): void {
    const seq = frame.seq as number;
    if (frame.type === "exec.start") entry.sawStart = true;
    if (seq <= entry.afterSeq) return;
    if (frame.type === "out") {
      entry.outs.set(seq, {
        stream: frame.stream as "stdout" | "stderr",
        data: frame.data as string,
        ...(frame.encoding ? { encoding: "base64" as const } : {}),
      });
    }
    if (frame.type === "tool_call" || frame.type === "exit") void this.#settle(frame.id as string, entry, frame, seq);
  }

  /** The exec paused or ended: complete its output from the replay log, hand it over in seq order, then the pause or the exit. */
  async #settle(id: string, entry: RemoteObserver, frame: Record<string, unknown>, endSeq: number): Promise<void> {
    if (frame.type === "exit") this.#observers.delete(id);
    if (!entry.sawStart && Number.isFinite(entry.afterSeq) && entry.afterSeq >= 0) {
      const logged = await this.#deps.stream.read(this.id).catch(() => undefined);
      for (const { seq, text } of logged?.frames ?? []) {
        if (seq <= entry.afterSeq || seq >= endSeq || entry.outs.has(seq)) continue;
        const parsed = JSON.parse(text) as Record<string, unknown>;
        if (parsed.type !== "out" || parsed.id !== id) continue;
        entry.outs.set(seq, {
          stream: parsed.stream as "stdout" | "stderr",
          data: parsed.data as string,
          ...(parsed.encoding ? { encoding: "base64" as const } : {}),
        });
      }
    }
    this.#flush(entry);
    entry.afterSeq = endSeq;
    if (frame.type === "tool_call") entry.observer.toolCalls?.(frame.calls as ToolCall[]);
    else {
      entry.observer.exit(frame as unknown as ExitFrameBody);
      this.#quietIfUnused();
    }
  }

  #flush(entry: RemoteObserver): void {
    for (const seq of [...entry.outs.keys()].sort((a, b) => a - b)) {
      const out = entry.outs.get(seq)!;
      entry.observer.out(out.stream, out.data, out.encoding);
    }
    entry.outs.clear();
  }

  #sendTo(client: SessionClient, state: ClientState, frame: { seq: number; text: string }): void {
    client.send(frame.text);
    state.sentUpTo = frame.seq;
  }

  #tellClients(code: ErrorCode, message: string, id?: string): void {
    const text = JSON.stringify({ type: "error", code, message, sessionId: this.id, ...(id !== undefined ? { id } : {}) });
    for (const client of this.#clients.keys()) client.send(text);
  }

  /** The holder stopped answering: running execs are lost; clients are told to reconnect (any replica then takes the session over). */
  #holderLost(): void {
    if (this.#ended) return;
    this.#deps.logger.warn({ sessionId: this.id, holder: this.holder }, "the replica holding the session is gone");
    for (const [id, entry] of this.#observers) {
      this.#flush(entry);
      entry.observer.exit({ type: "exit", id, code: null, signal: null, reason: "sandbox_lost", wallMs: 0, truncated: false, files: [] });
    }
    this.#observers.clear();
    this.#tellClients("sandbox_unavailable", "the replica holding this session went away: reconnect with session.open {sessionId, lastSeq} to continue");
    for (const client of this.#clients.keys()) client.disconnect?.(1012, "session moved: reconnect");
    this.#end();
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#clients.clear();
    this.#quietIfUnused();
    this.#deps.onEnded(this);
  }
}
