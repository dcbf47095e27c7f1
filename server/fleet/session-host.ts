import type { SignalName, ToolResult } from "../../protocol/index.ts";
import type { StoredFile } from "../files/file-store.ts";
import type { ErrorCode, ExecRequest, Session } from "../sessions/session.ts";
import type { FleetBus } from "./fleet-bus.ts";

/** A proxy that stops renewing its lease (its replica died) is dropped after this long. */
const LEASE_TTL_MS = 20_000;

export interface SessionHostDeps {
  bus: FleetBus;
  /** The live session `id` held by this replica. */
  live: (id: string) => Session | undefined;
  /** End a session for good (session.close from another replica's client). */
  deleteSession: (id: string) => Promise<void>;
  idleWaitMs: number;
}

/**
 * The holder's side of remote sessions: answers the requests that other
 * replicas' proxies send for the sessions held here, and drops the leases of
 * proxies that stopped renewing them.
 */
export class SessionHost {
  readonly #deps: SessionHostDeps;
  /** `${sessionId} ${replicaId}` -> lease expiry (epoch ms). */
  readonly #leases = new Map<string, number>();
  readonly #timer: NodeJS.Timeout;

  constructor(deps: SessionHostDeps) {
    this.#deps = deps;
    deps.bus.onRequest((body, from) => this.#handle(body, from));
    this.#timer = setInterval(() => this.#expireLeases(), 5_000);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  async #handle(body: Record<string, unknown>, from: string): Promise<unknown> {
    const sessionId = body.sessionId as string;
    if (body.kind === "close") {
      await this.#deps.deleteSession(sessionId);
      return null;
    }
    const session = this.#deps.live(sessionId);
    if (!session || session.ended) throw new Error(`session ${sessionId} is not held by this replica`);
    switch (body.kind) {
      case "ping":
        return true;
      case "attach":
        this.#leases.set(`${sessionId} ${from}`, Date.now() + LEASE_TTL_MS);
        return session.attachRemote(from);
      case "lease":
        this.#leases.set(`${sessionId} ${from}`, Date.now() + LEASE_TTL_MS);
        session.keepRemote(from);
        return true;
      case "detach":
        this.#leases.delete(`${sessionId} ${from}`);
        session.detachRemote(from);
        return null;
      case "pong":
        return session.takeSeq();
      case "error":
        session.error(body.code as ErrorCode, body.message as string, body.id as string | undefined);
        return null;
      case "exec":
        session.exec(body.request as ExecRequest);
        return null;
      case "startExec": {
        // The proxy reads the output from the published frames; a silent observer here keeps output credit flowing.
        const refusal = session.startExec(body.request as ExecRequest, { out() {}, exit() {} });
        return refusal ?? null;
      }
      case "whenIdle":
        await session.whenIdle();
        return null;
      case "toolResults":
        return session.toolResults(body.id as string, body.results as ToolResult[]);
      case "observe":
        // The asking replica reads the frames; a silent observer here keeps output credit flowing. The seq tells
        // it where the paused run resumes: every frame of the exec after it belongs to the coming round.
        return session.observe(body.id as string, { out() {}, exit() {} }) ? { seq: session.seq } : false;
      case "stdin":
        session.stdin(body.id as string, body.data as string | undefined, body.eof as boolean | undefined);
        return null;
      case "signal":
        session.signal(body.id as string, body.signal as SignalName);
        return null;
      case "fileDeleted":
        await session.fileDeleted(body.file as StoredFile);
        return null;
      default:
        throw new Error(`unknown request ${String(body.kind)}`);
    }
  }

  #expireLeases(): void {
    const now = Date.now();
    for (const [key, expires] of this.#leases) {
      if (expires > now) continue;
      this.#leases.delete(key);
      const [sessionId, replicaId] = key.split(" ") as [string, string];
      this.#deps.live(sessionId)?.detachRemote(replicaId);
    }
  }
}
