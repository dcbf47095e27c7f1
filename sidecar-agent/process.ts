import { type ChildProcess, spawn } from "node:child_process";
import { constants } from "node:os";
import type { Readable, Writable } from "node:stream";

/** How one program (a compiler or the user's program) ended. */
export interface ProcessOutcome {
  code: number | null;
  /** Signal name ("SIGKILL"), or null. */
  signal: string | null;
  /** From the launcher's report, when there is one. */
  cpuMs?: number;
  memBytes?: number;
  /** The program could not be started at all. */
  spawnError?: NodeJS.ErrnoException;
}

export interface SpawnOptions {
  argv: readonly string[];
  cwd: string;
  env: Record<string, string>;
  /** A stdin pipe; otherwise stdin is /dev/null. */
  stdin: boolean;
  /** Path of the launcher binary, or null to spawn the program directly. */
  launcher: string | null;
}

/** The launcher's one-line report (launcher.c). */
interface LauncherReport {
  exited?: boolean;
  code?: number;
  signaled?: boolean;
  signal?: number;
  utime_us?: number;
  stime_us?: number;
  maxrss_kb?: number;
}

const signalNames = new Map<number, string>(Object.entries(constants.signals).map(([name, num]) => [num, name]));

export function signalName(num: number): string {
  return signalNames.get(num) ?? `SIG${num}`;
}

/** After the main process exited, pipes idle this long (while we read them) are given up on. */
const DRAIN_IDLE_MS = 1000;

/**
 * One program in its own process group (the agent spawns it detached, so it
 * leads a new session; the launcher's own setsid() then fails harmlessly).
 * `done` settles once the main process exited and every pipe closed. When the
 * main process exits, whatever else is left in its group is SIGKILLed.
 */
export class ProgramProcess {
  readonly child: ChildProcess;
  readonly stdout: Readable;
  readonly stderr: Readable;
  readonly stdin: Writable | null;
  readonly done: Promise<ProcessOutcome>;
  readonly startedAt = performance.now();
  #exited = false;
  #lastActivity = performance.now();
  #drainTimer: NodeJS.Timeout | undefined;

  constructor(options: SpawnOptions) {
    const [program, ...args] = options.argv;
    if (!program) throw new Error("empty command");
    const stdio: Array<"pipe" | "ignore"> = [options.stdin ? "pipe" : "ignore", "pipe", "pipe"];
    if (options.launcher) stdio.push("pipe");
    const [file, fileArgs] = options.launcher ? [options.launcher, ["3", "--", program, ...args]] : [program, args];
    this.child = spawn(file, fileArgs, { cwd: options.cwd, env: options.env, stdio, detached: true, windowsHide: true });
    this.stdout = this.child.stdout!;
    this.stderr = this.child.stderr!;
    this.stdin = this.child.stdin;
    this.stdin?.on("error", () => {}); // EPIPE once the program has gone
    const report = options.launcher ? (this.child.stdio[3] as Readable | null) : null;
    let reportText = "";
    report?.setEncoding("utf8");
    report?.on("data", (text: string) => {
      if (reportText.length < 4096) reportText += text;
    });
    for (const stream of [this.stdout, this.stderr]) {
      stream.on("data", () => {
        this.#lastActivity = performance.now();
      });
      stream.on("error", () => {});
    }
    report?.on("error", () => {});

    this.done = new Promise((resolve) => {
      let exitCode: number | null = null;
      let exitSignal: string | null = null;
      this.child.on("error", (error: NodeJS.ErrnoException) => {
        if (this.child.pid === undefined) {
          this.#exited = true;
          this.#destroyPipes();
          resolve({ code: null, signal: null, spawnError: error });
        }
      });
      this.child.on("exit", (code, signal) => {
        this.#exited = true;
        exitCode = code;
        exitSignal = signal;
        this.kill("SIGKILL"); // leftovers of the group (background jobs)
        this.#drainTimer = setInterval(() => {
          const reading = !this.stdout.isPaused() || !this.stderr.isPaused();
          if (reading && performance.now() - this.#lastActivity > DRAIN_IDLE_MS) {
            // Something outside the group (it left with setsid) still holds the pipes.
            this.#destroyPipes();
          }
        }, DRAIN_IDLE_MS / 4);
        this.#drainTimer.unref();
      });
      this.child.on("close", () => {
        clearInterval(this.#drainTimer);
        const outcome: ProcessOutcome = { code: exitCode, signal: exitSignal };
        const parsed = parseReport(reportText);
        if (parsed) {
          if (parsed.signaled && typeof parsed.signal === "number") {
            outcome.code = null;
            outcome.signal = signalName(parsed.signal);
          } else if (parsed.exited && typeof parsed.code === "number") {
            outcome.code = parsed.code;
            outcome.signal = null;
          }
          if (typeof parsed.utime_us === "number" && typeof parsed.stime_us === "number") {
            outcome.cpuMs = Math.round((parsed.utime_us + parsed.stime_us) / 1000);
          }
          if (typeof parsed.maxrss_kb === "number") outcome.memBytes = parsed.maxrss_kb * 1024;
        }
        resolve(outcome);
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** The main process has exited (or never started). */
  get exited(): boolean {
    return this.#exited;
  }

  /** Signal the whole process group; false when there was nobody to signal. */
  kill(signal: NodeJS.Signals): boolean {
    const pid = this.child.pid;
    if (pid === undefined) return false;
    try {
      process.kill(-pid, signal);
      return true;
    } catch {
      return false; // ESRCH: the group is empty
    }
  }

  #destroyPipes(): void {
    for (const stream of [this.stdout, this.stderr, this.child.stdio[3] as Readable | null]) stream?.destroy();
  }
}

function parseReport(text: string): LauncherReport | null {
  const line = text.split("\n", 1)[0]?.trim();
  if (!line) return null;
  try {
    const value: unknown = JSON.parse(line);
    return value && typeof value === "object" ? (value as LauncherReport) : null;
  } catch {
    return null;
  }
}
