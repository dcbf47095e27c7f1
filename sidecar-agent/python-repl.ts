import { randomBytes } from "node:crypto";
import { constants, mkdtempSync, openSync, rmSync } from "node:fs";
import { Socket } from "node:net";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import type { StreamName } from "../protocol/index.ts";
import { MarkerSplitter } from "./marker-splitter.ts";
import { controlFd, type ProcessOutcome, ProgramProcess, type RunningProgram } from "./process.ts";

export interface PythonReplOptions {
  /** The interpreter running the driver, e.g. ["python3", "-u", "/opt/agent/python-repl-driver.py"]. */
  argv: readonly string[];
  env: Record<string, string>;
  /** The interpreter's first working directory (each exec sets its own). */
  cwd: string;
  launcher: string | null;
  /** The launcher's options (program-jail.ts). */
  launcherOptions?: readonly string[];
  /** A private folder for the stdin FIFO is made here. */
  workDir: string;
  /** Modules to import as soon as the interpreter starts (before its first exec runs). */
  preload?: readonly string[];
  log(line: string): void;
}

/** The end of a preload: what was imported, how long it took, the interpreter's memory then. */
export interface PreloadResult {
  modules: string[];
  failed: Array<{ name: string; error: string }>;
  ms: number;
  pid: number | null;
  rssBytes?: number;
  pssBytes?: number;
  error?: string;
}

/** The reply to a state save. */
export interface SaveResult {
  data?: string;
  bytes: number;
  names: string[];
  skipped: Array<{ name: string; error: string }>;
  error?: string;
}

/** The reply to a state restore. */
export interface RestoreResult {
  names: string[];
  error?: string;
}

/** One rich output of an exec (a figure that plt.show() sent). */
export interface DisplayItem {
  mime: string;
  data: string;
  name?: string;
}

export interface ReplRequest {
  code: string;
  /** Working directory at the start of the exec. */
  cwd: string;
  args: readonly string[];
  /** Give the exec a stdin of its own (else /dev/null). */
  stdin: boolean;
  /** Programmatic tool calling: the declared tools, by name and Python function name. */
  tools?: ReadonlyArray<{ name: string; py: string }>;
}

/** Where one exec's output goes: `end` once per stream, when the exec's part of that pipe is complete. */
export interface OutputSink {
  data(stream: StreamName, chunk: Buffer): void;
  end(stream: StreamName): void;
  /** Rich output (a figure) of the exec, while it runs. */
  display?(item: DisplayItem): void;
  /** The program called declared tools and is paused until ReplExec.toolResults. */
  toolCalls?(calls: Array<{ id: string; name: string; input: unknown }>): void;
}

/** Messages of python-repl-driver.py. */
type DriverMessage =
  | { ready: true }
  | { running: number; cpuUs: number }
  | { display: number; mime: string; data: string; name?: string }
  | { result: number }
  | { toolCalls: number; calls: Array<{ id: string; name: string; input: unknown }>; sync?: number }
  | { done: number; code: number | null; signal: string | null; cpuMs: number; memBytes: number };

const STREAMS = ["stdout", "stderr"] as const;
/** Markers numbered from here are sync points of tool-call rounds, not exec ends (see the driver's tool_round). */
const SYNC_BASE = 10 ** 15;

/**
 * The persistent Python interpreter of one agent: python-repl-driver.py run
 * through the launcher (own process group, oom_score_adj, rusage on death),
 * started on the first repl exec and kept until it dies or is killed. Execs
 * run one at a time; each one's output is the bytes its pipes carry up to the
 * end marker the driver writes after it. Between execs the pipes are not read,
 * so what a left-over thread prints waits for (and goes to) the next exec.
 */
export class PythonRepl {
  readonly #proc: ProgramProcess;
  readonly #dir: string;
  readonly #fifo: string;
  readonly #log: (line: string) => void;
  readonly #splitters: Record<StreamName, MarkerSplitter>;
  /** Output read past an exec's end marker: it belongs to the next exec. */
  readonly #carry: Record<StreamName, Buffer[]> = { stdout: [], stderr: [] };
  /** The last sync point read on each pipe, and a round of tool calls waiting for both pipes to reach its own. */
  readonly #synced: Record<StreamName, number> = { stdout: 0, stderr: 0 };
  #pendingRound: { exec: ReplExec; calls: Array<{ id: string; name: string; input: unknown }>; sync: number } | undefined;
  #controlText: string[] = [];
  /** Operations (preload, save, restore) sent to the driver and waiting for its result, by number. */
  readonly #ops = new Map<number, (result: Record<string, unknown>) => void>();
  #opCount = 0;
  /** The preload's end, when the interpreter was started with modules to preload. */
  readonly warm: Promise<PreloadResult> | null = null;
  #ready = false;
  #exited = false;
  #killed = false;
  #count = 0;
  #current: ReplExec | null = null;

  private constructor(options: PythonReplOptions) {
    this.#log = options.log;
    const marker = randomBytes(16);
    this.#splitters = { stdout: new MarkerSplitter(marker), stderr: new MarkerSplitter(marker) };
    this.#dir = mkdtempSync(join(options.workDir, "repl-"));
    this.#fifo = join(this.#dir, "stdin");
    const argv = [...options.argv, String(controlFd(options.launcher)), this.#fifo, marker.toString("hex")];
    try {
      this.#proc = new ProgramProcess({
        argv,
        cwd: options.cwd,
        env: options.env,
        stdin: false,
        launcher: options.launcher,
        launcherOptions: options.launcherOptions,
        control: true,
      });
    } catch (error) {
      rmSync(this.#dir, { recursive: true, force: true });
      throw error;
    }
    for (const stream of STREAMS) {
      const pipe = this.#proc[stream];
      pipe.on("data", (chunk: Buffer) => this.#onOutput(stream, chunk));
      pipe.on("end", () => this.#onOutputEnd(stream));
    }
    this.#proc.control!.setEncoding("utf8");
    this.#proc.control!.on("data", (text: string) => this.#onControl(text));
    this.#updateReading();
    // Drain what a dead interpreter left in its pipes, so that its process can be reaped.
    this.#proc.child.on("exit", () => this.#updateReading());
    void this.#proc.done.then((outcome) => this.#onExit(outcome));
    if (options.preload?.length) {
      const startedAt = performance.now();
      this.warm = this.#operation({ op: "preload", modules: options.preload }).then((result) => ({
        modules: [],
        failed: [],
        pid: null,
        ...(result as Partial<PreloadResult>),
        ms: Math.round(performance.now() - startedAt), // the interpreter's start included
      }));
    }
  }

  /**
   * Pickle the user's namespace (cloudpickle, zlib, base64). Handled by the
   * driver between execs, in order with them; the caller makes sure no exec runs.
   */
  async save(maxBytes?: number): Promise<SaveResult> {
    const result = await this.#operation({ op: "save", ...(maxBytes !== undefined ? { maxBytes } : {}) });
    return { bytes: 0, names: [], skipped: [], ...(result as Partial<SaveResult>) };
  }

  /** Load a saved namespace into this interpreter's. */
  async restore(data: string): Promise<RestoreResult> {
    const result = await this.#operation({ op: "restore", data });
    return { names: [], ...(result as Partial<RestoreResult>) };
  }

  /** Any exec or operation is in the works. */
  get busy(): boolean {
    return this.#current !== null || this.#ops.size > 0;
  }

  #operation(message: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (!this.alive) return Promise.resolve({ error: "the interpreter has exited" });
    const k = ++this.#opCount;
    return new Promise((resolve) => {
      this.#ops.set(k, resolve);
      // Written at once: the driver reads its control lines in order, so this runs between execs.
      this.#proc.control!.write(`${JSON.stringify({ ...message, k })}\n`);
    });
  }

  /** Start the interpreter; it becomes ready in the background (execs wait for it). */
  static start(options: PythonReplOptions): PythonRepl {
    return new PythonRepl(options);
  }

  /** Pid of the interpreter's launcher (the interpreter is its child). */
  get launcherPid(): number | undefined {
    return this.#proc.pid;
  }

  /** The interpreter process is alive (a new one is needed otherwise). */
  get alive(): boolean {
    return !this.#exited && !this.#killed && !this.#proc.exited;
  }

  /** Run one exec; only one at a time. */
  exec(request: ReplRequest, sink: OutputSink): ReplExec {
    if (this.#current) throw new Error("the interpreter is busy");
    if (!this.alive) throw new Error("the interpreter has exited");
    const exec = new ReplExec(++this.#count, request, sink, this);
    this.#current = exec;
    // Once the caller holds the exec (output may already hit its cap), hand over what waited for it.
    queueMicrotask(() => {
      if (this.#current !== exec) return;
      for (const stream of STREAMS) {
        for (const chunk of this.#carry[stream].splice(0)) this.#route(stream, chunk);
      }
      if (this.#ready) this.#send(exec);
      this.#updateReading();
    });
    return exec;
  }

  /** SIGKILL the interpreter's whole process group: its state is lost. */
  kill(): void {
    this.#killed = true;
    this.#proc.kill("SIGKILL");
  }

  /** @internal The results of a paused exec's tool calls (the driver reads them while it runs that exec). */
  writeToolResults(exec: ReplExec, results: unknown[]): void {
    if (this.#current !== exec || !this.alive) return;
    this.#proc.control!.write(`${JSON.stringify({ toolResults: exec.n, results })}\n`);
  }

  /** @internal Signal the interpreter's process group. */
  signalGroup(signal: NodeJS.Signals): boolean {
    return this.#proc.kill(signal);
  }

  /** @internal The exec's credit window allows reading, or not. */
  updateReading(): void {
    this.#updateReading();
  }

  /** @internal The exec ended (done message and both markers, or the interpreter died). */
  released(exec: ReplExec): void {
    if (this.#current === exec) this.#current = null;
    this.#updateReading();
  }

  #send(exec: ReplExec): void {
    try {
      if (exec.request.stdin) {
        // The driver made the FIFO before its last message. Opened read-write, this open never waits
        // for a reader, and the driver's read end sees EOF exactly when this fd closes.
        const fd = openSync(this.#fifo, constants.O_RDWR | constants.O_NONBLOCK);
        exec.setStdinFifo(new Socket({ fd, readable: false, writable: true }));
      }
      const { code, cwd, args, stdin, tools } = exec.request;
      this.#proc.control!.write(`${JSON.stringify({ n: exec.n, code, cwd, args, stdin, ...(tools?.length ? { tools } : {}) })}\n`);
    } catch (error) {
      this.#log(`python repl: cannot start exec ${exec.n}: ${(error as Error).message}`);
      exec.failed();
      this.kill(); // its state is unknown now
    }
  }

  #onControl(text: string): void {
    // Lines can be large (a saved state, a figure): look for the end only in what is new.
    let newline = text.indexOf("\n");
    if (newline < 0) {
      this.#controlText.push(text);
      return;
    }
    let rest = text;
    while (newline >= 0) {
      this.#controlText.push(rest.slice(0, newline));
      const line = this.#controlText.join("");
      this.#controlText = [];
      rest = rest.slice(newline + 1);
      newline = rest.indexOf("\n");
      let message: DriverMessage;
      try {
        message = JSON.parse(line) as DriverMessage;
      } catch {
        this.#log(`python repl: bad control line: ${line.slice(0, 200)}`);
        continue;
      }
      const exec = this.#current;
      if ("ready" in message) {
        this.#ready = true;
        if (exec) this.#send(exec);
      } else if ("running" in message) {
        if (exec?.n === message.running) exec.running(message.cpuUs);
      } else if ("display" in message) {
        if (exec?.n === message.display) exec.sink.display?.({ mime: message.mime, data: message.data, ...(message.name ? { name: message.name } : {}) });
      } else if ("toolCalls" in message) {
        if (exec?.n === message.toolCalls) {
          this.#pendingRound = { exec, calls: message.calls, sync: message.sync ?? 0 };
          this.#deliverRound();
        }
      } else if ("result" in message) {
        const { result: k, ...fields } = message as { result: number } & Record<string, unknown>;
        const resolve = this.#ops.get(k);
        this.#ops.delete(k);
        resolve?.(fields);
      } else if ("done" in message) {
        if (exec?.n === message.done) exec.completed({ code: message.code, signal: message.signal, cpuMs: message.cpuMs, memBytes: message.memBytes });
      }
    }
    if (rest) this.#controlText.push(rest);
  }

  #onOutput(stream: StreamName, chunk: Buffer): void {
    for (const item of this.#splitters[stream].push(chunk)) this.#route(stream, item);
    this.#updateReading();
  }

  /** Hand a round of tool calls on once both pipes were read up to its sync point: the output before the calls comes first. */
  #deliverRound(): void {
    const round = this.#pendingRound;
    if (!round || this.#synced.stdout < round.sync || this.#synced.stderr < round.sync) return;
    this.#pendingRound = undefined;
    if (this.#current === round.exec) round.exec.sink.toolCalls?.(round.calls);
  }

  #route(stream: StreamName, item: Buffer | number): void {
    const exec = this.#current;
    const open = exec !== null && !exec.hasEnded(stream);
    if (typeof item === "number" && item >= SYNC_BASE) {
      this.#synced[stream] = item;
      this.#deliverRound();
      return;
    }
    if (typeof item === "number") {
      if (open && item === exec.n) exec.streamEnded(stream);
      return; // a marker of an exec that already ended another way: nothing to do
    }
    if (open) exec.sink.data(stream, item);
    else if (!this.#proc.exited) this.#carry[stream].push(item);
  }

  #onOutputEnd(stream: StreamName): void {
    const held = this.#splitters[stream].end();
    if (held) this.#route(stream, held);
    const exec = this.#current;
    if (exec && !exec.hasEnded(stream)) exec.streamEnded(stream);
  }

  #onExit(outcome: ProcessOutcome): void {
    this.#exited = true;
    rmSync(this.#dir, { recursive: true, force: true });
    this.#current?.interpreterExited(outcome);
    for (const resolve of this.#ops.values()) resolve({ error: "the interpreter exited" });
    this.#ops.clear();
    this.#updateReading();
  }

  /** Read a pipe only while the current exec may take its output; once the interpreter is gone, drain it. */
  #updateReading(): void {
    const exec = this.#current;
    for (const stream of STREAMS) {
      const pipe = this.#proc[stream];
      const on = exec && !exec.hasEnded(stream) ? exec.reading : this.#proc.exited;
      if (on) pipe.resume();
      else pipe.pause();
    }
  }
}

/** One exec in the persistent interpreter, as ExecRun drives it. */
export class ReplExec implements RunningProgram {
  readonly n: number;
  readonly request: ReplRequest;
  readonly sink: OutputSink;
  readonly startedAt = performance.now();
  readonly stdin: PassThrough | null;
  readonly done: Promise<ProcessOutcome>;
  readonly #repl: PythonRepl;
  readonly #ended: Record<StreamName, boolean> = { stdout: false, stderr: false };
  #resolve!: (outcome: ProcessOutcome) => void;
  #stdinSocket: Socket | null = null;
  #result: ProcessOutcome | null = null;
  /** The driver has the exec: a SIGINT now reaches its code (or waits for its first line). */
  #running = false;
  #interruptPending = false;
  #cpuAtStartUs: number | null = null;
  #finished = false;
  #reading = true;

  constructor(n: number, request: ReplRequest, sink: OutputSink, repl: PythonRepl) {
    this.n = n;
    this.request = request;
    this.sink = sink;
    this.#repl = repl;
    this.stdin = request.stdin ? new PassThrough() : null;
    this.stdin?.on("error", () => {}); // written to after the exec ended
    this.done = new Promise((resolve) => {
      this.#resolve = resolve;
    });
  }

  get exited(): boolean {
    return this.#finished;
  }

  get reading(): boolean {
    return this.#reading;
  }

  hasEnded(stream: StreamName): boolean {
    return this.#ended[stream];
  }

  setReading(on: boolean): void {
    this.#reading = on;
    this.#repl.updateReading();
  }

  /**
   * SIGINT interrupts the exec's code (KeyboardInterrupt) and the interpreter
   * lives on; any other signal goes to the whole group, as for a one-shot
   * program (SIGTERM and SIGKILL end the interpreter).
   */
  kill(signal: NodeJS.Signals): boolean {
    if (this.#finished) return false;
    if (signal === "SIGINT" && !this.#running) {
      this.#interruptPending = true; // sent once the driver has the exec
      return true;
    }
    return this.#repl.signalGroup(signal);
  }

  /** Resume the exec paused on tool calls with their results. */
  toolResults(results: unknown[]): void {
    if (!this.#finished) this.#repl.writeToolResults(this, results);
  }

  /** @internal The write end of the exec's stdin FIFO. */
  setStdinFifo(socket: Socket): void {
    socket.on("error", () => {}); // the exec ended meanwhile
    this.#stdinSocket = socket;
  }

  /** @internal The driver has the exec and its stdin open. */
  running(cpuUs: number): void {
    this.#running = true;
    this.#cpuAtStartUs = cpuUs;
    // Only now: an EOF (closing the only writer) before the driver opened its end would drop what was written.
    if (this.#stdinSocket) this.stdin?.pipe(this.#stdinSocket);
    if (this.#interruptPending) this.#repl.signalGroup("SIGINT");
  }

  /** @internal The driver's result; the exec ends once both pipes reached its marker. */
  completed(result: ProcessOutcome): void {
    this.#result = result;
    this.#finishIfComplete();
  }

  /** @internal This exec's part of a pipe is complete. */
  streamEnded(stream: StreamName): void {
    if (this.#ended[stream]) return;
    this.#ended[stream] = true;
    this.sink.end(stream);
    this.#finishIfComplete();
  }

  /** @internal The interpreter died during the exec: its outcome (and, from the launcher, its CPU time since the exec began) is the exec's. */
  interpreterExited(outcome: ProcessOutcome): void {
    for (const stream of STREAMS) this.streamEnded(stream);
    if (this.#finished) return;
    const result: ProcessOutcome = { ...outcome };
    // The first exec of an interpreter counts its start-up too, as a one-shot run does.
    const startUs = this.#cpuAtStartUs ?? (this.n === 1 ? 0 : null);
    if (outcome.cpuMs !== undefined) {
      if (startUs === null) delete result.cpuMs;
      else result.cpuMs = Math.max(0, outcome.cpuMs - Math.round(startUs / 1000));
    }
    this.#finish(result);
  }

  /** @internal The exec could not be handed to the driver. */
  failed(): void {
    this.#finish({ code: null, signal: null, internal: true });
  }

  #finishIfComplete(): void {
    if (this.#result && this.#ended.stdout && this.#ended.stderr) this.#finish(this.#result);
  }

  #finish(outcome: ProcessOutcome): void {
    if (this.#finished) return;
    this.#finished = true;
    this.stdin?.unpipe();
    this.stdin?.destroy();
    this.#stdinSocket?.destroy();
    this.#repl.released(this);
    this.#resolve(outcome);
  }
}
