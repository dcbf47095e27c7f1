/**
 * The start-up check: before the server calls itself ready, prove that a
 * sandbox really starts here. One probe sandbox is created, its agent
 * reached, `echo probe` run in bash, and the sandbox destroyed (always).
 * provider.health() only asks whether bwrap runs at all; a real sandbox also
 * meets SANDBOX_BASE_DIR, the agent bundle, the uid's view of both, or (pods)
 * a cluster that never starts one. A failure keeps the provider's own words
 * (bwrap's stderr tail: the path, "Permission denied", a missing tool) and is
 * tried again with a doubling back-off, so a machine fixed while the server
 * runs becomes ready without a restart.
 */
import { StartRefusal } from "../start-refusal.ts";
import { AgentClient, type ExecListener } from "./agent-client.ts";
import type { Sandbox, SandboxLimits, SandboxProvider } from "./provider.ts";

type LogFn = (obj: Record<string, unknown>, msg?: string) => void;
export interface StartupCheckLogger {
  info: LogFn;
  warn: LogFn;
}

/** What the probe needs of an agent connection (tests pass a fake). */
export type ProbeAgent = Pick<AgentClient, "startExec" | "forgetExec" | "close" | "closed">;

export type StartupCheckStatus = "pending" | "ok" | "failed" | "off";

export interface StartupCheckReport {
  status: StartupCheckStatus;
  /** The last failed attempt's reason, while the check has not passed since. */
  error?: string;
  /** How long the attempt that passed took. */
  ms?: number;
  attempts: number;
  /** After a failure: when the next attempt starts. */
  retryInMs?: number;
}

export interface StartupCheckOptions {
  provider: SandboxProvider;
  /** The limits the probe sandbox gets (the sessions' own). */
  limits: SandboxLimits;
  logger: StartupCheckLogger;
  /** One attempt (create, connect, exec) fails past this (default 30 s; pods need their start timeout). */
  deadlineMs?: number;
  /** Back-off after the first failure, doubled after each next one up to maxBackoffMs (defaults 1 s and 30 s). */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  connect?: (sandbox: Sandbox) => Promise<ProbeAgent>;
}

const DEFAULT_DEADLINE_MS = 30_000;
const PROBE_CODE = "echo probe";
const PROBE_OUTPUT = "probe";
/** Enough of a failed probe's output to say why. */
const OUTPUT_KEPT = 500;

/** The wait after `failures` failed attempts in a row: initial, doubling, at most max. */
export function startupBackoffMs(failures: number, initialMs: number, maxMs: number): number {
  return Math.min(maxMs, initialMs * 2 ** Math.max(0, failures - 1));
}

class DeadlineError extends Error {}

let probes = 0;

export class StartupCheck {
  readonly #options: StartupCheckOptions;
  readonly #connect: (sandbox: Sandbox) => Promise<ProbeAgent>;
  #status: "pending" | "ok" | "failed" = "pending";
  #error?: string;
  #ms?: number;
  #attempts = 0;
  #failuresInRow = 0;
  #retryAt?: number;
  #stopped = false;
  #wake?: () => void;
  #timer?: NodeJS.Timeout;

  constructor(options: StartupCheckOptions) {
    this.#options = options;
    this.#connect = options.connect ?? ((sandbox) => AgentClient.connect(sandbox));
  }

  report(): StartupCheckReport {
    return {
      status: this.#status,
      ...(this.#status === "failed" && this.#error !== undefined ? { error: this.#error } : {}),
      ...(this.#status === "ok" && this.#ms !== undefined ? { ms: this.#ms } : {}),
      attempts: this.#attempts,
      ...(this.#status === "failed" && this.#retryAt !== undefined ? { retryInMs: Math.max(0, this.#retryAt - Date.now()) } : {}),
    };
  }

  /** Attempts until one passes (true), waiting the back-off between them; false once stopped first. */
  async run(): Promise<boolean> {
    while (!this.#stopped) {
      if (await this.attempt()) return true;
      if (this.#stopped) break;
      const { initialBackoffMs = 1_000, maxBackoffMs = 30_000 } = this.#options;
      const waitMs = startupBackoffMs(this.#failuresInRow, initialBackoffMs, maxBackoffMs);
      this.#retryAt = Date.now() + waitMs;
      this.#options.logger.warn({ err: this.#error, attempts: this.#attempts, retryInMs: waitMs }, "no sandbox can start; trying again");
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        this.#timer = setTimeout(resolve, waitMs);
        this.#timer.unref();
      });
      this.#retryAt = undefined;
    }
    return false;
  }

  /** One attempt: true when the probe sandbox started, answered, and was destroyed. */
  async attempt(): Promise<boolean> {
    this.#attempts++;
    const started = Date.now();
    try {
      await this.#probe();
    } catch (error) {
      this.#status = "failed";
      this.#error = error instanceof Error ? error.message : String(error);
      this.#failuresInRow++;
      return false;
    }
    this.#ms = Date.now() - started;
    const healed = this.#status === "failed";
    this.#status = "ok";
    this.#error = undefined;
    this.#failuresInRow = 0;
    this.#options.logger.info({ ms: this.#ms, attempts: this.#attempts }, healed ? "a sandbox starts again: start-up check passed" : "start-up check passed");
    return true;
  }

  /** Stop trying (shutdown): a pending run() resolves false. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#wake?.();
  }

  /** Create, connect, exec; the sandbox is destroyed whatever happens, even when it comes after the deadline. */
  async #probe(): Promise<void> {
    const deadlineMs = this.#options.deadlineMs ?? DEFAULT_DEADLINE_MS;
    let late = false;
    let sandbox: Sandbox | undefined;
    let agent: ProbeAgent | undefined;
    const cleanUp = async () => {
      agent?.close();
      await sandbox?.destroy().catch(() => {});
    };
    const steps = (async () => {
      sandbox = await this.#options.provider.create({ sessionId: "startup-check", limits: this.#options.limits });
      if (late) return;
      agent = await this.#connect(sandbox);
      if (late) return;
      await probeExec(agent, deadlineMs);
    })();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new DeadlineError(`the probe sandbox did not start and answer within ${deadlineMs} ms`)), deadlineMs);
      timer.unref();
    });
    try {
      await Promise.race([steps, deadline]);
    } catch (error) {
      if (error instanceof DeadlineError) {
        late = true;
        // What the steps still make is destroyed once they end.
        void steps.catch(() => {}).finally(cleanUp);
      }
      throw error;
    } finally {
      clearTimeout(timer);
      if (!late) await cleanUp();
    }
  }
}

/** `echo probe` in bash: resolves when it printed "probe" and exited 0, rejects with what happened instead. */
function probeExec(agent: ProbeAgent, timeoutMs: number): Promise<void> {
  const id = `startup-probe-${++probes}`;
  let output = "";
  let settled = false;
  return new Promise<void>((resolve, reject) => {
    const finish = (error?: Error) => {
      if (settled) return;
      settled = true;
      agent.forgetExec(id);
      if (error) reject(error);
      else resolve();
    };
    // A closing connection ends no exec by itself: say so instead of waiting for the deadline.
    void agent.closed.then((why) => finish(new Error(`the probe sandbox's agent went away: ${why}`)));
    const listener: ExecListener = {
      stage: () => {},
      out: (frame) => {
        if (output.length < OUTPUT_KEPT) output += frame.encoding === "base64" ? Buffer.from(frame.data, "base64").toString() : frame.data;
      },
      display: () => {},
      exit: (exit) => {
        const said = output.trim().slice(0, OUTPUT_KEPT);
        if (exit.code === 0 && said === PROBE_OUTPUT) finish();
        else finish(new Error(`the probe exec ended with code ${exit.code ?? exit.signal} (${exit.reason})${said ? `: ${said}` : ""}`));
      },
      error: (code, message) => finish(new Error(`the agent refused the probe exec: ${code}: ${message}`)),
    };
    agent.startExec({ id, lang: "bash", code: PROBE_CODE, stdin: false, timeoutMs, maxOutputBytes: 4096 }, listener);
  });
}

/** SANDBOX_STARTUP_CHECK=exit and the check failed: main.ts prints `fatal: <message>` (no stack) and exits 1. */
export class StartupCheckFailed extends StartRefusal {
  constructor(reason: string) {
    super(`no sandbox can start: ${reason}`);
    this.name = "StartupCheckFailed";
  }
}
