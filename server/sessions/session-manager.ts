import type { Logger } from "pino";
import type { SessionLimits } from "../../protocol/index.ts";
import type { Principal } from "../auth/api-keys.ts";
import type { AppConfig } from "../config/types.ts";
import type { EventBus } from "../events/event-bus.ts";
import { randomId } from "../ids.ts";
import type { SandboxLimits, SandboxProvider } from "../sandbox/provider.ts";
import { Session } from "./session.ts";

export interface SessionManagerDeps {
  config: AppConfig;
  provider: SandboxProvider;
  events: EventBus;
  logger: Logger;
  availableLanguages: () => readonly string[];
}

/** The embedded in-process session registry of this replica. */
export class SessionManager {
  readonly #sessions = new Map<string, Session>();
  readonly #deps: SessionManagerDeps;
  readonly limits: SessionLimits;
  readonly #sandboxLimits: SandboxLimits;

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
  }

  get size(): number {
    return this.#sessions.size;
  }

  /** Create a session and start its sandbox; rejects (and forgets the session) when no sandbox can be had. */
  async create(owner: Principal, options: { userId?: string; entityId?: string } = {}): Promise<Session> {
    const { config, provider, events, logger, availableLanguages } = this.#deps;
    const session = new Session({
      id: randomId(config.sessions.idLength),
      owner,
      userId: options.userId,
      entityId: options.entityId,
      limits: this.limits,
      sandboxLimits: this.#sandboxLimits,
      compileTimeoutMs: config.limits.compileTimeoutMs,
      replayFrames: config.sessions.replayFrames,
      replayBytes: config.sessions.replayBytes,
      idleGraceMs: config.sessions.idleGraceMs,
      availableLanguages,
      provider,
      events,
      logger,
      onEnded: (ended) => {
        if (this.#sessions.get(ended.id) === ended) this.#sessions.delete(ended.id);
      },
    });
    this.#sessions.set(session.id, session);
    try {
      await session.start();
    } catch (error) {
      await session.close("internal");
      throw error;
    }
    return session;
  }

  /** The live session `id` as `principal` may see it: another key's session does not exist for it. */
  get(id: string, principal: Principal): Session | undefined {
    const session = this.#sessions.get(id);
    if (!session || session.ended) return undefined;
    if (!principal.isMaster && session.owner.keyHash !== principal.keyHash) return undefined;
    return session;
  }

  async shutdown(): Promise<void> {
    await Promise.all([...this.#sessions.values()].map((session) => session.close("internal")));
  }
}
