/**
 * What /ready and /health/detailed say about start-up and shutdown, on top of
 * the dependency checks: the start-up check (a sandbox really starts), the
 * wait for the warm pool, and draining (set by the shutdown, so that load
 * balancers stop sending work before the listeners close).
 */
import type { PoolWaitReport } from "../sandbox/pool-wait.ts";
import type { StartupCheckReport } from "../sandbox/startup-check.ts";

export interface ReadinessParts {
  /** Absent: SANDBOX_STARTUP_CHECK=off. */
  startup?: { report(): StartupCheckReport };
  poolWait: { reason(): string | undefined; report(): PoolWaitReport };
}

/** checks.startup of /health/detailed. */
export type StartupReport = StartupCheckReport & { poolWait: PoolWaitReport };

export class Readiness {
  readonly #parts: ReadinessParts;
  #draining = false;

  constructor(parts: ReadinessParts) {
    this.#parts = parts;
  }

  /** The server is shutting down: /ready says 503 from now on. */
  drain(): void {
    this.#draining = true;
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** The start-up check failed its last attempt (overall health: unhealthy). */
  get failed(): boolean {
    return this.#parts.startup?.report().status === "failed";
  }

  /** Why the server is not ready, as far as start-up and shutdown go; undefined: ready. */
  reason(): string | undefined {
    if (this.#draining) return "shutting down";
    const startup = this.#parts.startup?.report();
    if (startup?.status === "pending") return "checking that a sandbox can start";
    if (startup?.status === "failed") return `no sandbox can start: ${startup.error ?? "unknown error"}`;
    return this.#parts.poolWait.reason();
  }

  report(): StartupReport {
    const startup = this.#parts.startup?.report() ?? { status: "off" as const, attempts: 0 };
    return { ...startup, poolWait: this.#parts.poolWait.report() };
  }
}
