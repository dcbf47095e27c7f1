import { type ChildProcess, spawn } from "node:child_process";
import { constants } from "node:os";
import type { Duplex, Readable, Writable } from "node:stream";

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
  /** The agent failed to run it (logged). */
  internal?: boolean;
}

/** What an exec drives: one program's process, or one exec of the persistent interpreter. */
export interface RunningProgram {
  readonly startedAt: number;
  /** A pipe to the program's stdin, when the exec asked for one. */
  readonly stdin: Writable | null;
  /** It has ended: a signal now would reach nobody. */
  readonly exited: boolean;
  /** Settles once it ended and its output is all read. */
  readonly done: Promise<ProcessOutcome>;
  /** Read its output, or stop reading it (the program then blocks in write once the pipes are full). */
  setReading(on: boolean): void;
  /** Send a signal; false when there was nobody to signal. */
  kill(signal: NodeJS.Signals): boolean;
}

export interface SpawnOptions {
  argv: readonly string[];
  cwd: string;
  env: Record<string, string>;
  /** A stdin pipe; otherwise stdin is /dev/null. */
  stdin: boolean;
  /** Path of the launcher binary, or null to spawn the program directly. */
  launcher: string | null;
  /** The launcher's options before its report fd (--seccomp FILE, --jail). */
  launcherOptions?: readonly string[];
  /**
   * A two-way control socket for the program (a long-lived interpreter's
   * channel to the agent), kept open through the launcher. Its fd number in
   * the program is `controlFd`.
   */
  control?: boolean;
}

/** The fd of the control socket: after the launcher's report pipe when there is a launcher. */
export function controlFd(launcher: string | null): number {
  return launcher ? 4 : 3;
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
export class ProgramProcess implements RunningProgram {
  readonly child: ChildProcess;
  readonly stdout: Readable;
  readonly stderr: Readable;
  readonly stdin: Writable | null;
  readonly control: Duplex | null;
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
    if (options.control) stdio.push("pipe"); // Node's stdio pipes are socket pairs: two-way
    const keep = options.control ? ["--keep-fd", String(controlFd(options.launcher))] : [];
    const [file, fileArgs] = options.launcher
      ? [options.launcher, [...(options.launcherOptions ?? []), "3", ...keep, "--", program, ...args]]
      : [program, args];
    this.child = spawn(file, fileArgs, { cwd: options.cwd, env: options.env, stdio, detached: true, windowsHide: true });
    this.stdout = this.child.stdout!;
    this.stderr = this.child.stderr!;
    this.stdin = this.child.stdin;
    this.stdin?.on("error", () => {}); // EPIPE once the program has gone
    this.control = options.control ? (this.child.stdio[controlFd(options.launcher)] as Duplex) : null;
    this.control?.on("error", () => {});
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

  setReading(on: boolean): void {
    for (const stream of [this.stdout, this.stderr]) {
      if (on) stream.resume();
      else stream.pause();
    }
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
    for (const stream of this.child.stdio.slice(1)) (stream as Readable | null)?.destroy();
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
