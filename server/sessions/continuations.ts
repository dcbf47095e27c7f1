import { randomBytes } from "node:crypto";
import type { ToolCall } from "../../protocol/index.ts";
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

  constructor(session: SessionHandle, execId: string, timeoutMs?: number) {
    this.session = session;
    this.execId = execId;
    this.timeoutMs = timeoutMs;
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

  /** The output since the last call (each round returns what the program printed during it). */
  takeOutput(): { stdout: string; stderr: string } {
    const output = { stdout: this.#stdout.join(""), stderr: this.#stderr.join("") };
    this.#stdout = [];
    this.#stderr = [];
    return output;
  }

  #push(event: RunEvent): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    if (waiter) waiter(event);
    else this.#events.push(event);
  }
}

/** A paused run, by its continuation token: {sessionId, execId, callIds, round}. */
export interface Continuation {
  token: string;
  sessionId: string;
  execId: string;
  callIds: string[];
  round: number;
  expiresAt: number;
  run: ProgrammaticRun;
}

/**
 * Continuation tokens of the paused programmatic runs of this replica. A token
 * is good for one follow-up: resuming takes it out; a new round gets a new one.
 * Tokens expire with the pause (PROGRAMMATIC_PAUSE_SECONDS), when the session ends
 * the paused exec too.
 *
 * The run itself (its observer) lives in this process, so a token is only
 * usable on the replica that issued it (see the report on issue 8).
 */
export class ContinuationStore {
  readonly #byToken = new Map<string, Continuation>();
  readonly #pauseMs: number;

  constructor(pauseMs: number) {
    this.#pauseMs = pauseMs;
  }

  /** PROGRAMMATIC_PAUSE_SECONDS in ms. */
  get pauseMs(): number {
    return this.#pauseMs;
  }

  add(entry: Omit<Continuation, "token" | "expiresAt">): Continuation {
    this.#sweep();
    const continuation: Continuation = { ...entry, token: `ct_${randomBytes(24).toString("base64url")}`, expiresAt: Date.now() + this.#pauseMs };
    this.#byToken.set(continuation.token, continuation);
    return continuation;
  }

  /** The continuation of `token` when it is known and not expired (it stays until `take`). */
  get(token: string): Continuation | undefined {
    this.#sweep();
    return this.#byToken.get(token);
  }

  /** Use the token up. */
  take(token: string): void {
    this.#byToken.delete(token);
  }

  get size(): number {
    return this.#byToken.size;
  }

  #sweep(): void {
    const now = Date.now();
    for (const [token, entry] of this.#byToken) {
      if (entry.expiresAt <= now || entry.run.exited) this.#byToken.delete(token);
    }
  }
}
