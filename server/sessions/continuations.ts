import { randomBytes } from "node:crypto";
import type { ToolCall } from "../../protocol/index.ts";
import type { RedisClient } from "../redis/connection.ts";
import type { AdmissionError } from "./admission.ts";
import type { ExecObserver, ExitFrameBody } from "./session.ts";
import type { SessionHandle } from "./session-handle.ts";

/** At most this many rounds of tool calls per programmatic run. */
export const MAX_TOOL_ROUNDS = 50;

/** What a programmatic run does next: call tools (and wait), or end. */
export type RunEvent = { kind: "calls"; calls: ToolCall[] } | { kind: "exit"; exit: ExitFrameBody };

/**
 * One programmatic run (POST /exec/programmatic) seen from the server: the
 * observer of its exec, collecting the output of the current round, and the
 * rounds of tool calls it makes until it exits.
 */
export class ProgrammaticRun implements ExecObserver {
  readonly session: SessionHandle;
  readonly execId: string;
  readonly timeoutMs: number | undefined;
  #stdout: string[] = [];
  #stderr: string[] = [];
  #events: RunEvent[] = [];
  #waiter: ((event: RunEvent) => void) | undefined;
  #exited = false;
  /** Set when the exec could not start for lack of capacity. */
  refusal: AdmissionError | undefined;

  /** `before`: what the run printed in its earlier rounds (a follow-up's run starts from it). */
  constructor(session: SessionHandle, execId: string, timeoutMs?: number, before?: { stdout: string; stderr: string }) {
    this.session = session;
    this.execId = execId;
    this.timeoutMs = timeoutMs;
    if (before?.stdout) this.#stdout.push(before.stdout);
    if (before?.stderr) this.#stderr.push(before.stderr);
  }

  get exited(): boolean {
    return this.#exited;
  }

  out(stream: "stdout" | "stderr", data: string, encoding?: "base64"): void {
    const text = encoding === "base64" ? Buffer.from(data, "base64").toString("utf8") : data;
    (stream === "stdout" ? this.#stdout : this.#stderr).push(text);
  }

  exit(frame: ExitFrameBody): void {
    this.#exited = true;
    this.#push({ kind: "exit", exit: frame });
  }

  refused(error: AdmissionError): void {
    this.refusal = error;
  }

  toolCalls(calls: ToolCall[]): void {
    this.#push({ kind: "calls", calls });
  }

  /** The next round of calls, or the exit. */
  next(): Promise<RunEvent> {
    const event = this.#events.shift();
    if (event) return Promise.resolve(event);
    return new Promise((resolve) => {
      this.#waiter = resolve;
    });
  }

  /**
   * Everything the run printed so far, earlier rounds included: the LibreChat
   * client shows the model only the last response's output, so the final one
   * must hold what was printed before the first call too.
   */
  output(): { stdout: string; stderr: string } {
    const output = { stdout: this.#stdout.join(""), stderr: this.#stderr.join("") };
    this.#stdout = output.stdout ? [output.stdout] : [];
    this.#stderr = output.stderr ? [output.stderr] : [];
    return output;
  }

  #push(event: RunEvent): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    if (waiter) waiter(event);
    else this.#events.push(event);
  }
}

/** A paused run, by its continuation token. Plain data: any replica can serve the follow-up. */
export interface Continuation {
  token: string;
  sessionId: string;
  execId: string;
  /** Ids of the calls of the round the run is paused on. */
  callIds: string[];
  /** Rounds answered so far, this one included (MAX_TOOL_ROUNDS). */
  round: number;
  /** The run's own time limit (for the error text of its end). */
  timeoutMs?: number;
  /** What the run printed so far (each response carries all of it). */
  stdout: string;
  stderr: string;
}

/**
 * Continuation tokens of paused programmatic runs. A token is good for one
 * follow-up (`take` uses it up; the next round gets a new one) and expires
 * with the pause (PROGRAMMATIC_PAUSE_SECONDS). The paused exec itself stays in
 * its sandbox, held by whichever replica holds the session; the token only
 * says which session and exec, so any replica can take it.
 */
export interface ContinuationStore {
  /** PROGRAMMATIC_PAUSE_SECONDS in ms. */
  readonly pauseMs: number;
  add(entry: Omit<Continuation, "token">): Promise<Continuation>;
  /** The continuation of `token` when it is known and not expired (it stays until `take`). */
  get(token: string): Promise<Continuation | undefined>;
  /** Use the token up; false when it was used (or expired) meanwhile. */
  take(token: string): Promise<boolean>;
  /** Remember which run a client's request id (X-LibreChat-Code-Request-ID) names, for /exec/programmatic/cancel on any replica. */
  nameRun(requestId: string, run: NamedRun): Promise<void>;
  findRun(requestId: string): Promise<NamedRun | undefined>;
}

/** The run a request id names. */
export interface NamedRun {
  sessionId: string;
  execId: string;
}

/** How long a request id names its run (a run lasts at most its time limit plus its paused rounds). */
const RUN_NAME_TTL_MS = 3_600_000;

function newToken(): string {
  return `ct_${randomBytes(24).toString("base64url")}`;
}

/** One replica without Redis: tokens in memory. */
export class LocalContinuationStore implements ContinuationStore {
  readonly #byToken = new Map<string, { entry: Continuation; expiresAt: number }>();
  readonly #runs = new Map<string, { run: NamedRun; expiresAt: number }>();
  readonly pauseMs: number;

  constructor(pauseMs: number) {
    this.pauseMs = pauseMs;
  }

  async add(entry: Omit<Continuation, "token">): Promise<Continuation> {
    this.#sweep();
    const continuation = { ...entry, token: newToken() };
    this.#byToken.set(continuation.token, { entry: continuation, expiresAt: Date.now() + this.pauseMs });
    return continuation;
  }

  async get(token: string): Promise<Continuation | undefined> {
    this.#sweep();
    return this.#byToken.get(token)?.entry;
  }

  async take(token: string): Promise<boolean> {
    this.#sweep();
    return this.#byToken.delete(token);
  }

  async nameRun(requestId: string, run: NamedRun): Promise<void> {
    this.#sweep();
    this.#runs.set(requestId, { run, expiresAt: Date.now() + RUN_NAME_TTL_MS });
  }

  async findRun(requestId: string): Promise<NamedRun | undefined> {
    this.#sweep();
    return this.#runs.get(requestId)?.run;
  }

  #sweep(): void {
    const now = Date.now();
    for (const [token, { expiresAt }] of this.#byToken) if (expiresAt <= now) this.#byToken.delete(token);
    for (const [id, { expiresAt }] of this.#runs) if (expiresAt <= now) this.#runs.delete(id);
  }
}

/** Replicas sharing Redis: one key per token, expiring with the pause; GETDEL makes a token single-use fleet-wide. */
export class RedisContinuationStore implements ContinuationStore {
  readonly pauseMs: number;
  readonly #redis: RedisClient;

  constructor(redis: RedisClient, pauseMs: number) {
    this.#redis = redis;
    this.pauseMs = pauseMs;
  }

  static key(token: string): string {
    return `ptc:continuation:${token}`;
  }

  async add(entry: Omit<Continuation, "token">): Promise<Continuation> {
    const continuation = { ...entry, token: newToken() };
    await this.#redis.set(RedisContinuationStore.key(continuation.token), JSON.stringify(continuation), "PX", this.pauseMs);
    return continuation;
  }

  async get(token: string): Promise<Continuation | undefined> {
    const text = await this.#redis.get(RedisContinuationStore.key(token));
    return text ? (JSON.parse(text) as Continuation) : undefined;
  }

  async take(token: string): Promise<boolean> {
    return (await this.#redis.getdel(RedisContinuationStore.key(token))) !== null;
  }

  async nameRun(requestId: string, run: NamedRun): Promise<void> {
    await this.#redis.set(`ptc:request:${requestId}`, JSON.stringify(run), "PX", RUN_NAME_TTL_MS);
  }

  async findRun(requestId: string): Promise<NamedRun | undefined> {
    const text = await this.#redis.get(`ptc:request:${requestId}`);
    return text ? (JSON.parse(text) as NamedRun) : undefined;
  }
}
