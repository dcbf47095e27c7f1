import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import type { FileInput, SessionLimits } from "../../protocol/index.ts";
import type { Principal } from "../auth/api-keys.ts";
import type { AppConfig } from "../config/types.ts";
import type { EventBus } from "../events/event-bus.ts";
import type { FileStore, StoredFile } from "../files/file-store.ts";
import type { FleetBus } from "../fleet/fleet-bus.ts";
import type { HolderRegistry } from "../fleet/holders.ts";
import { RemoteSession } from "../fleet/remote-session.ts";
import { SessionHost } from "../fleet/session-host.ts";
import type { SharedStream } from "../fleet/shared-stream.ts";
import { randomId } from "../ids.ts";
import type { SandboxPools } from "../sandbox/pool-set.ts";
import type { SandboxLimits, SandboxProvider } from "../sandbox/provider.ts";
import { type Admission, AdmissionError } from "./admission.ts";
import type { ReplayLogSnapshot } from "./replay-log.ts";
import type { FileLimits } from "./sandbox-files.ts";
import { Session } from "./session.ts";
import type { SessionHandle } from "./session-handle.ts";
import type { SessionRecord, SessionStore } from "./session-store.ts";
import type { StateKeeper } from "./state-keeper.ts";
import { SEQ_RESERVE_BLOCK, type StreamSeqOptions } from "./stream-seq.ts";

export interface SessionManagerDeps {
  config: AppConfig;
  provider: SandboxProvider;
  events: EventBus;
  logger: Logger;
  availableLanguages: () => readonly string[];
  store: SessionStore;
  files: FileStore;
  /** Several replicas share sessions (Redis): who holds which, the shared frame stream, and requests between replicas. */
  fleet?: Fleet;
  /** Saved Python state between a session's sandboxes. */
  state?: StateKeeper;
  /** Run a background task once across the fleet (a lock), or here when alone. */
  runOnce?: (name: string, everyMs: number, task: () => Promise<unknown>) => Promise<unknown>;
  // --- warm pool and admission (server/sandbox/pool.ts, ./admission.ts)
  pool?: SandboxPools;
  admission?: Admission;
}

export interface Fleet {
  bus: FleetBus;
  holders: HolderRegistry;
  stream: SharedStream;
}

/** A session taken over from a replica that died continues its seq past this margin: the dead replica's last per-client frames (session.ready, pong) were never logged. */
const TAKEOVER_SEQ_MARGIN = 1000;

/** Where the stream of a record written before seqs were reserved goes on: far past any stream a client can have seen. */
const UNRESERVED_SEQ_FLOOR = 1_000_000;
/** Sessions suspended at once at shutdown (each saves its Python state: CPU in its sandbox, a write to the state store). */
const SHUTDOWN_CONCURRENCY = 4;
/** How long an exec interrupted at shutdown gets to come back to its prompt (its variables are saved then). */
const SHUTDOWN_STOP_WAIT_MS = 2_000;
/** After the grace, saving states may take this long in all; sessions left then end without a save. */
export const SHUTDOWN_SAVE_BUDGET_MS = 20_000;
/** The shortest time one state save is given, even at the end of the budget. */
const MIN_SAVE_TIMEOUT_MS = 1_000;

/** What a shutdown did: for the log and the benchmark. */
export interface ShutdownReport {
  sessions: number;
  /** Execs still running after the grace, ended with server_restart. */
  interrupted: number;
  statesSaved: number;
  /** Time from the end of the grace until every session was let go. */
  suspendMs: number;
  /** Median and longest time one session took to suspend (save its state) and park its stream. */
  medianSessionMs: number;
  slowestSessionMs: number;
}

/** Who asks, and for which end user (LibreChat's `user_id`). */
export interface Caller {
  principal: Principal;
  userId?: string;
}

export type InputResolution = { ok: true; files: StoredFile[] } | { ok: false; index: number; message: string };

/**
 * The sessions of this replica: live `Session` objects over the records of the
 * session store, with the session-choice rules of HTTP-API.md, the idle
 * sandbox sweep and the TTL sweep of sessions and their files.
 */
export class SessionManager {
  readonly #live = new Map<string, Session>();
  readonly #remote = new Map<string, RemoteSession>();
  readonly #reviving = new Map<string, Promise<SessionHandle | undefined>>();
  /** Parked streams being written: a revival of the same session waits for its write. */
  readonly #parking = new Map<string, Promise<void>>();
  /** Shutting down: no new session here. */
  #draining = false;
  readonly #host: SessionHost | undefined;
  readonly #deps: SessionManagerDeps;
  readonly limits: SessionLimits;
  readonly #sandboxLimits: SandboxLimits;
  readonly fileLimits: FileLimits;
  #timers: NodeJS.Timeout[] = [];

  constructor(deps: SessionManagerDeps) {
    this.#deps = deps;
    const { limits, sandbox } = deps.config;
    this.limits = {
      wallTimeMs: limits.execTimeoutMs,
      memoryBytes: limits.memoryBytes,
      outputBytes: limits.outputBytes,
      codeBytes: limits.codeBytes,
      pids: limits.pids,
    };
    this.#sandboxLimits = {
      memoryBytes: limits.memoryBytes,
      pids: limits.pids,
      cpuQuotaUs: limits.cpuQuotaUs,
      openFiles: limits.openFiles,
      fileSizeBytes: limits.fileSizeBytes,
      dataBytes: sandbox.dataBytes,
      tmpBytes: sandbox.tmpBytes,
    };
    this.fileLimits = {
      fileBytes: limits.fileSizeBytes,
      totalBytes: limits.totalFileSizeBytes,
      filesPerSession: limits.filesPerSession,
      outputFiles: limits.outputFiles,
    };
    if (deps.fleet) {
      this.#host = new SessionHost({
        bus: deps.fleet.bus,
        live: (id) => this.#live.get(id),
        deleteSession: (id) => this.delete(id),
        idleWaitMs: this.#idleWaitMs(),
      });
    }
  }

  /** How long a caller may wait for a running exec to end: its longest possible run and then some. */
  #idleWaitMs(): number {
    const { limits } = this.#deps.config;
    return limits.execTimeoutMs + limits.compileTimeoutMs + 30_000;
  }

  /** The limits every sandbox of this replica gets (the warm pool makes its sandboxes with them). */
  get sandboxLimits(): SandboxLimits {
    return this.#sandboxLimits;
  }

  /** Sessions of this replica holding a sandbox now, or starting one with room reserved (MAX_LIVE_SANDBOXES). */
  get liveSandboxes(): number {
    let count = 0;
    for (const session of this.#live.values()) if (session.holdsSandboxSlot) count++;
    return count;
  }

  /** Sessions of this replica of one principal (API key and end user) holding a sandbox or starting one. */
  principalSandboxes(ownerKeyHash: string, userId: string | undefined): number {
    let count = 0;
    for (const session of this.#live.values()) if (session.holdsSandboxSlot && samePrincipal(session, ownerKeyHash, userId)) count++;
    return count;
  }

  /**
   * Free the sandbox of the least recently used idle session (no exec, no client), of one principal when given;
   * false when none is idle. The session saves its Python state first (releaseIdleSandbox).
   */
  async reclaimLeastRecentlyUsed(principal?: { ownerKeyHash: string; userId: string | undefined }): Promise<boolean> {
    const idle = [...this.#live.values()]
      .filter((session) => session.hasSandbox && !session.running && session.clientCount === 0)
      .filter((session) => !principal || samePrincipal(session, principal.ownerKeyHash, principal.userId))
      .sort((a, b) => a.lastActiveAt - b.lastActiveAt);
    for (const session of idle) if (await session.releaseIdleSandbox(0)) return true;
    return false;
  }

  /** Live sessions (with a Session object) on this replica. */
  get size(): number {
    return this.#live.size;
  }

  get compileTimeoutMs(): number {
    return this.#deps.config.limits.compileTimeoutMs;
  }

  get files(): FileStore {
    return this.#deps.files;
  }

  get store(): SessionStore {
    return this.#deps.store;
  }

  /** Start the sweeps: idle sandboxes, expired sessions. */
  startSweeps(): void {
    const { sandbox, sessions } = this.#deps.config;
    const every = (ms: number, task: () => Promise<unknown>) => {
      const timer = setInterval(() => {
        task().catch((error: unknown) => this.#deps.logger.error({ err: error }, "sweep failed"));
      }, ms);
      timer.unref();
      this.#timers.push(timer);
    };
    const once = this.#deps.runOnce ?? ((_name: string, _everyMs: number, task: () => Promise<unknown>) => task());
    every(Math.min(sandbox.cleanupIntervalMs, sandbox.idleTtlMs), () => this.sweepIdleSandboxes());
    every(sessions.cleanupIntervalMs, () => once("expired-sessions", sessions.cleanupIntervalMs, () => this.sweepExpiredSessions()));
    const state = this.#deps.state;
    const archiveEvery = this.#deps.config.state.archiveCheckIntervalMs;
    if (state) every(archiveEvery, () => once("state-archive", archiveEvery, () => state.archiveIdle()));
    const fleet = this.#deps.fleet;
    if (fleet) every(Math.floor(fleet.holders.ttlMs / 3), () => this.#renewHolders(fleet));
  }

  /** Keep our claim on the sessions held here; a session another replica took over while we were away is closed here. */
  async #renewHolders(fleet: Fleet): Promise<void> {
    const lost = await fleet.holders.renew([...this.#live.keys()]);
    for (const id of lost) {
      this.#deps.logger.warn({ sessionId: id }, "another replica took this session over");
      await this.#live.get(id)?.close("sandbox_lost");
    }
  }

  /** A new session; its sandbox starts now when `startSandbox`, else on its first exec. */
  async create(caller: Caller, options: { entityId?: string; startSandbox?: boolean } = {}): Promise<Session> {
    // Admission: MAX_SESSIONS_PER_ENTITY (live sessions of the entity of this key on this replica); throws AdmissionError.
    const { admission } = this.#deps;
    if (this.#draining) throw new AdmissionError("draining", "the server is restarting; try again shortly", 2);
    if (admission && options.entityId !== undefined) {
      const entityId = options.entityId;
      // Counted per (key, entity_id): another key's sessions of the same entity_id do not use up this key's cap.
      const keyHash = caller.principal.keyHash;
      admission.checkNewSession(entityId, [...this.#live.values()].filter((s) => s.entityId === entityId && s.ownerKeyHash === keyHash && !s.ended).length);
    }
    const now = Date.now();
    const record: SessionRecord = {
      id: randomId(this.#deps.config.sessions.idLength),
      ownerKeyHash: caller.principal.keyHash,
      ...(caller.userId !== undefined ? { userId: caller.userId } : {}),
      ...(options.entityId !== undefined ? { entityId: options.entityId } : {}),
      createdAt: now,
      lastActiveAt: now,
      seqReserved: SEQ_RESERVE_BLOCK,
    };
    await this.#deps.store.put(record);
    await this.#deps.fleet?.holders.claim(record.id);
    const session = this.#materialize(record, { start: 0, reserved: SEQ_RESERVE_BLOCK });
    if (options.startSandbox) {
      try {
        await session.start();
      } catch (error) {
        await this.delete(session.id);
        throw error;
      }
    }
    return session;
  }

  /**
   * The session `id` as `principal` may see it (another key's session does not
   * exist for it): live here, held by another replica (a proxy to it), or
   * revived here from its record and files.
   */
  async get(id: string, principal: Principal): Promise<SessionHandle | undefined> {
    const live = this.#live.get(id) ?? this.#remote.get(id);
    if (live && !live.ended) return this.#mayUse(live.ownerKeyHash, principal) ? live : undefined;
    const record = await this.record(id, principal);
    if (!record) return undefined;
    // Not here any more (let go at shutdown), and this server will not take it back.
    if (this.#draining) throw new AdmissionError("draining", "the server is restarting; reconnect shortly", 2);
    let reviving = this.#reviving.get(id);
    if (!reviving) {
      reviving = this.#revive(record).finally(() => this.#reviving.delete(id));
      this.#reviving.set(id, reviving);
    }
    return reviving;
  }

  async #revive(record: SessionRecord): Promise<SessionHandle> {
    const again = this.#live.get(record.id) ?? this.#remote.get(record.id);
    if (again && !again.ended) return again;
    const fleet = this.#deps.fleet;
    if (fleet) {
      const holder = await fleet.holders.claim(record.id);
      if (holder !== fleet.bus.replicaId) {
        const remote = new RemoteSession(record, holder, {
          bus: fleet.bus,
          stream: fleet.stream,
          logger: this.#deps.logger,
          idleWaitMs: this.#idleWaitMs(),
          onEnded: (ended) => {
            if (this.#remote.get(ended.id) === ended) this.#remote.delete(ended.id);
          },
        });
        this.#remote.set(record.id, remote);
        return remote;
      }
    }
    const { stream, dangling } = await this.#resumedStream(record);
    // Reserve before the first frame: the seqs from here on must be past whatever is stored now.
    const reserved = Math.max(stream.start, record.seqReserved ?? 0) + SEQ_RESERVE_BLOCK;
    await this.#deps.store.reserveSeq(record.id, reserved);
    const session = this.#materialize(record, { ...stream, reserved });
    // Ours now: end what a replica that died left running.
    if (dangling) session.reportLostExec(dangling);
    return session;
  }

  /**
   * Where a revived session's stream goes on: exactly where it was parked;
   * else (its last replica was killed) past every seq it may have sent, with
   * what the shared stream still has (with Redis) or nothing (a gap).
   */
  async #resumedStream(record: SessionRecord): Promise<{ stream: { start: number; replay: ReplayLogSnapshot }; dangling?: string }> {
    await this.#parking.get(record.id);
    const parked = await this.#deps.store.takeParkedStream(record.id);
    if (parked) return { stream: { start: parked.seq, replay: parked } };
    const fleet = this.#deps.fleet;
    if (!fleet) {
      const start = record.seqReserved ?? UNRESERVED_SEQ_FLOOR;
      return { stream: { start, replay: { droppedUpTo: start, frames: [] } } };
    }
    const shared = await fleet.stream.read(record.id);
    const last = Math.max(shared.droppedUpTo, ...shared.frames.map((frame) => frame.seq));
    const start = Math.max(last > 0 ? last + TAKEOVER_SEQ_MARGIN : 0, record.seqReserved ?? 0);
    const dangling = danglingExec(shared.frames);
    return { stream: { start, replay: shared }, ...(dangling ? { dangling } : {}) };
  }

  /** The record of session `id`, when `principal` may see it and it has not expired. */
  async record(id: string, principal: Principal): Promise<SessionRecord | undefined> {
    const record = await this.#deps.store.get(id);
    if (!record || !this.#mayUse(record.ownerKeyHash, principal)) return undefined;
    if (Date.now() - record.lastActiveAt > this.#deps.config.sessions.ttlMs) return undefined;
    return record;
  }

  /**
   * Resolve file references for a run: each must exist and belong to a session
   * the caller may use and, when that session has a user, to the same user.
   * Another user's file is reported exactly like a missing one.
   */
  async resolveInputs(refs: readonly FileInput[], caller: Caller): Promise<InputResolution> {
    const files: StoredFile[] = [];
    for (const [index, ref] of refs.entries()) {
      const sessionId = ref.storage_session_id ?? ref.session_id;
      const missing = { ok: false as const, index, message: `file ${ref.id} (${ref.name}) was not found in session ${sessionId ?? "(none given)"}` };
      if (!sessionId) return missing;
      const record = await this.record(sessionId, caller.principal);
      if (!record || (record.userId !== undefined && record.userId !== caller.userId)) return missing;
      const file = await this.#deps.files.get(sessionId, ref.id);
      if (!file || file.internal) return missing;
      files.push(file);
    }
    return { ok: true, files };
  }

  /**
   * The session an HTTP /exec runs in (HTTP-API.md, in order): a live
   * `session_id` (of no user or the caller's user); else the session of a referenced file of the same user; else
   * the newest session of the same entity and user; else a new session.
   */
  async choose(request: { sessionId?: string; entityId?: string; inputs: readonly StoredFile[] }, caller: Caller): Promise<SessionHandle> {
    if (request.sessionId) {
      const session = await this.get(request.sessionId, caller.principal);
      // A session of another end user is not this caller's, even by id: the same rule as for its files.
      if (session && (session.userId === undefined || session.userId === caller.userId)) return session;
    }
    for (const file of request.inputs) {
      const record = await this.record(file.sessionId, caller.principal);
      if (record && record.userId === caller.userId) {
        const session = await this.get(record.id, caller.principal);
        if (session) return session;
      }
    }
    if (request.entityId) {
      const newest = await this.#deps.store.newestForEntity(request.entityId, caller.userId, caller.principal.keyHash);
      if (newest && Date.now() - newest.lastActiveAt <= this.#deps.config.sessions.ttlMs) {
        const session = await this.get(newest.id, caller.principal);
        if (session) return session;
      }
    }
    return this.create(caller, { ...(request.entityId !== undefined ? { entityId: request.entityId } : {}) });
  }

  /** End a session for good: its sandbox, record and files. */
  async delete(id: string): Promise<void> {
    const live = this.#live.get(id);
    if (live) await live.close("killed");
    const remote = this.#remote.get(id);
    if (remote) await remote.close();
    await this.#deps.fleet?.stream.delete(id).catch(() => {});
    await this.#deps.state?.delete(id).catch(() => {});
    await this.#deps.store.delete(id);
    await this.#deps.files.deleteSession(id);
  }

  /** Delete one file; a live sandbox holding it loses it too. */
  async deleteFile(file: StoredFile): Promise<void> {
    await this.#deps.files.delete(file.sessionId, file.id);
    await (this.#live.get(file.sessionId) ?? this.#remote.get(file.sessionId))?.fileDeleted(file);
  }

  async sweepIdleSandboxes(): Promise<number> {
    let released = 0;
    for (const session of this.#live.values()) {
      if (await session.releaseIdleSandbox(this.#deps.config.sandbox.idleTtlMs)) released++;
    }
    // A live object with no sandbox and nobody attached is only a cache of its record (and its stream, parked).
    for (const session of [...this.#live.values()]) {
      if (!session.hasSandbox && !session.running && session.clientCount === 0) await this.#letGo(session, "killed");
    }
    if (released > 0) this.#deps.logger.info({ released }, "idle sandboxes released");
    return released;
  }

  /** Delete sessions unused for SESSION_TTL_HOURS, and file folders whose session is gone. */
  async sweepExpiredSessions(): Promise<number> {
    const expired = await this.#deps.store.idleSince(Date.now() - this.#deps.config.sessions.ttlMs);
    for (const record of expired) {
      const live = this.#live.get(record.id);
      if (live && (live.running || live.clientCount > 0)) {
        // In use right now: its record must not expire under it (nor its files go with the orphans).
        await this.#deps.store.touch(record.id, Date.now());
        continue;
      }
      await this.delete(record.id);
    }
    for (const id of await this.#deps.files.sessionIds()) {
      if (!(await this.#deps.store.get(id))) await this.#deps.files.deleteSession(id);
    }
    if (expired.length > 0) this.#deps.logger.info({ count: expired.length }, "expired sessions deleted");
    return expired.length;
  }

  /**
   * The server is stopping (SIGTERM): no new session from now on (Admission
   * refuses new execs); running execs get `graceMs` to end by themselves; then
   * every session is suspended (a run still going ends with server_restart, the
   * Python state is saved) and let go with its stream parked, so the next
   * server goes on where this one stopped.
   */
  async shutdown(options: { graceMs?: number } = {}): Promise<ShutdownReport> {
    this.#draining = true;
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers = [];
    this.#host?.stop();
    const running = [...this.#live.values()].filter((session) => session.running);
    if (running.length > 0 && (options.graceMs ?? 0) > 0) {
      await Promise.race([Promise.all(running.map((session) => session.whenIdle())), sleep(options.graceMs, undefined, { ref: false })]);
    }
    const report: ShutdownReport = { sessions: this.#live.size, interrupted: 0, statesSaved: 0, suspendMs: 0, medianSessionMs: 0, slowestSessionMs: 0 };
    const suspendStarted = performance.now();
    const sessionMs: number[] = [];
    const queue = [...this.#live.values()];
    const saveUntil = Date.now() + SHUTDOWN_SAVE_BUDGET_MS;
    const suspendNext = async (): Promise<void> => {
      for (let session = queue.shift(); session; session = queue.shift()) {
        const started = performance.now();
        const saveTimeoutMs = Math.max(MIN_SAVE_TIMEOUT_MS, saveUntil - Date.now());
        const outcome = await session.suspend({ stopWaitMs: SHUTDOWN_STOP_WAIT_MS, saveTimeoutMs }).catch((error: unknown) => {
          this.#deps.logger.warn({ err: error, sessionId: session.id }, "session not suspended cleanly");
          return { interrupted: false, stateSaved: false };
        });
        await this.#letGo(session, "server_restart");
        if (outcome.interrupted) report.interrupted++;
        if (outcome.stateSaved) report.statesSaved++;
        sessionMs.push(performance.now() - started);
      }
    };
    await Promise.all(Array.from({ length: SHUTDOWN_CONCURRENCY }, suspendNext));
    sessionMs.sort((a, b) => a - b);
    report.suspendMs = Math.round(performance.now() - suspendStarted);
    report.medianSessionMs = Math.round(sessionMs[Math.floor(sessionMs.length / 2)] ?? 0);
    report.slowestSessionMs = Math.round(sessionMs.at(-1) ?? 0);
    return report;
  }

  /**
   * Let a session go from this replica: end it here (no seq is sent after
   * this), park its stream, and only then give up the claim, so whoever
   * revives it next finds the parked stream.
   */
  async #letGo(session: Session, reason: "killed" | "server_restart"): Promise<void> {
    // In the same tick: a revival from now on finds the session gone and waits for the parked stream.
    if (this.#live.get(session.id) === session) this.#live.delete(session.id);
    const parking = (async () => {
      await session.close(reason);
      await this.#deps.store.parkStream(session.id, session.parkedStream());
    })().catch((error: unknown) => this.#deps.logger.warn({ err: error, sessionId: session.id }, "session stream not parked: its next revival reports a gap"));
    this.#parking.set(session.id, parking);
    await parking;
    if (this.#parking.get(session.id) === parking) this.#parking.delete(session.id);
    await this.#deps.fleet?.holders.release(session.id).catch(() => {});
  }

  #lastShareWarning = 0;

  /** While Redis is away every frame fails to be shared: say so once in a while, not per frame. Local clients still get them. */
  #warnFrameNotShared(error: unknown, sessionId: string): void {
    if (Date.now() - this.#lastShareWarning < 10_000) return;
    this.#lastShareWarning = Date.now();
    this.#deps.logger.warn({ err: error, sessionId }, "frames not shared with other replicas (Redis unavailable); local clients still get them");
  }

  #mayUse(ownerKeyHash: string, principal: Principal): boolean {
    return principal.isMaster || ownerKeyHash === principal.keyHash;
  }

  #materialize(record: SessionRecord, stream: StreamSeqOptions & { replay?: ReplayLogSnapshot }): Session {
    const { config, provider, events, logger, availableLanguages, files, store, fleet } = this.#deps;
    const session = new Session({
      stream: { ...stream, reserve: (upTo) => store.reserveSeq(record.id, upTo) },
      ...(this.#deps.state
        ? { state: this.#deps.state, checkpoint: config.state.checkpointAfterRun ? { onError: config.state.captureOnError } : undefined }
        : {}),
      ...(fleet
        ? {
            onFrame: (seq: number, text: string) => {
              fleet.stream.append(record.id, seq, text).catch((error: unknown) => this.#warnFrameNotShared(error, record.id));
            },
          }
        : {}),
      record,
      limits: this.limits,
      sandboxLimits: this.#sandboxLimits,
      compileTimeoutMs: config.limits.compileTimeoutMs,
      // Pods: their start deadline and the agent's connect; bubblewrap: its ready wait (15 s) and the connect (10 s).
      sandboxStartMs: config.sandbox.backend === "kubernetes" ? config.kubernetes.podStartTimeoutMs + 10_000 : 30_000,
      toolPauseMs: config.limits.toolPauseMs,
      replayFrames: config.sessions.replayFrames,
      replayBytes: config.sessions.replayBytes,
      idleGraceMs: config.sessions.idleGraceMs,
      fileLimits: this.fileLimits,
      availableLanguages,
      provider,
      files,
      events,
      logger,
      ...(this.#deps.pool ? { pool: this.#deps.pool } : {}),
      ...(this.#deps.admission
        ? {
            sandboxRoom: (reserve: () => void) => {
              const principal = { ownerKeyHash: record.ownerKeyHash, userId: record.userId };
              return this.#deps.admission!.ensureSandboxRoom(
                {
                  live: () => this.liveSandboxes,
                  principalLive: () => this.principalSandboxes(principal.ownerKeyHash, principal.userId),
                  reclaim: () => this.reclaimLeastRecentlyUsed(),
                  reclaimPrincipal: () => this.reclaimLeastRecentlyUsed(principal),
                },
                reserve,
              );
            },
          }
        : {}),
      onActivity: (active) => {
        void store.touch(active.id, active.lastActiveAt).catch((error: unknown) => logger.warn({ err: error }, "session touch failed"));
      },
      onEnded: (ended) => {
        // Let go by #letGo (deleted from #live first): it releases the claim once the stream is parked.
        if (this.#live.get(ended.id) !== ended) return;
        this.#live.delete(ended.id);
        void fleet?.holders.release(ended.id).catch(() => {});
      },
    });
    this.#live.set(record.id, session);
    return session;
  }
}

/** A principal is an API key and, when the request named one, its end user. */
function samePrincipal(session: Session, ownerKeyHash: string, userId: string | undefined): boolean {
  return session.ownerKeyHash === ownerKeyHash && session.userId === userId;
}

/** The exec whose `exec.start` has no `exit` after it in a replayed stream. */
function danglingExec(frames: readonly { text: string }[]): string | undefined {
  let running: string | undefined;
  for (const frame of frames) {
    const parsed = JSON.parse(frame.text) as { type: string; id?: string };
    if (parsed.type === "exec.start") running = parsed.id;
    else if (parsed.type === "exit" && parsed.id === running) running = undefined;
  }
  return running;
}
