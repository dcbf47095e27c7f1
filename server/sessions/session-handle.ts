import type { SignalName, ToolResult } from "../../protocol/index.ts";
import type { StoredFile } from "../files/file-store.ts";
import type { ErrorCode, ExecObserver, ExecRefusal, ExecRequest, SessionClient, ToolResultsOutcome } from "./session.ts";

/**
 * A session as WebSocket connections and HTTP routes use it: the live
 * `Session` on the replica that holds its sandbox, or a `RemoteSession` that
 * carries every call to that replica and its frames back.
 */
export interface SessionHandle {
  readonly id: string;
  readonly ownerKeyHash: string;
  readonly userId?: string;
  readonly entityId?: string;
  readonly ended: boolean;
  /** An exec is running (as far as this replica knows). */
  readonly running: boolean;
  attach(client: SessionClient, lastSeq?: number): boolean | Promise<boolean>;
  detach(client: SessionClient): void;
  clientDrained(client: SessionClient): void;
  pong(client: SessionClient): void;
  error(code: ErrorCode, message: string, id?: string): void;
  /** A WebSocket exec: a refusal becomes an `error` frame. */
  exec(request: ExecRequest): void;
  /** An exec whose output and exit `observer` receives; a refusal is returned and nothing runs. */
  startExec(request: ExecRequest, observer?: ExecObserver): ExecRefusal | undefined | Promise<ExecRefusal | undefined>;
  whenIdle(): Promise<void>;
  stdin(id: string, data: string | undefined, eof: boolean | undefined): void;
  /** Settles once the session holding the exec has taken the signal (at once locally; after the holder's answer from another replica). */
  signal(id: string, signal: SignalName): void | Promise<void>;
  fileDeleted(file: StoredFile): Promise<void>;
  /** Programmatic tool calling: resume exec `id`, paused on a round of tool calls, with their results. */
  toolResults(id: string, results: ToolResult[]): ToolResultsOutcome | Promise<ToolResultsOutcome>;
  /** Give running exec `id` a new observer (a follow-up request of a programmatic run). False when it is not running. */
  observe(id: string, observer: ExecObserver): boolean | Promise<boolean>;
}
