import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { AgentExec, AgentToServer, ExitReason, LanguageSpec, SignalName, StreamName } from "../protocol/index.ts";
import { base64Bytes, javaMainClass } from "../protocol/index.ts";
import { BashToolBridge } from "./bash-tools.ts";
import { deletedFiles, diffSnapshots, type Snapshot, snapshot } from "./files.ts";
import { type ProcessOutcome, ProgramProcess, type RunningProgram } from "./process.ts";
import type { PythonRepl } from "./python-repl.ts";
import { Utf8Chunker, type Utf8Segment } from "./utf8-chunker.ts";

export const DEFAULT_WINDOW_BYTES = 256 * 1024;

/** What an exec needs from the agent around it. */
export interface ExecContext {
  /** Send a frame of this exec; frames wait in a queue while no server is connected. */
  send(frame: AgentToServer): void;
  /** A server is connected (no connection counts as no credit). */
  readonly connected: boolean;
  /** Real path of the data folder: programs' working directory. */
  readonly dataDir: string;
  /** Where per-exec build folders are made. */
  readonly workDir: string;
  readonly launcher: string | null;
  /** The launcher's options for every program (program-jail.ts). */
  readonly launcherOptions: readonly string[];
  readonly cgroupDir: string | null;
  readonly programEnv: Readonly<Record<string, string>>;
  /** Path of stdbuf, when installed. */
  readonly stdbuf: string | null;
  /** The live persistent interpreter of the language (started if needed), or null when it has none. */
  persistentInterpreter(spec: LanguageSpec): PythonRepl | null;
  /** End every process a program started that is still running (the persistent interpreter excepted). */
  endStrayProcesses(): Promise<void>;
  log(line: string): void;
}

/** Read the cgroup's OOM kill counter (v2 memory.events, v1 memory.oom_control). */
export async function readOomKills(cgroupDir: string | null): Promise<number | null> {
  if (!cgroupDir) return null;
  for (const file of ["memory.events", "memory.oom_control"]) {
    try {
      const match = /^oom_kill\s+(\d+)\s*$/m.exec(await readFile(join(cgroupDir, file), "utf8"));
      if (match) return Number(match[1]);
    } catch {
      // not this cgroup version
    }
  }
  return null;
}

type Outcome = ProcessOutcome & { wallMs: number };

/**
 * One exec: build folder, optional compile stage, run stage (or, for a repl
 * exec, the code run in the persistent interpreter), output under a credit
 * window and a byte cap, signals, timeout, and the final `exit` frame (sent
 * once the program exited, or the interpreter finished the code, and all of
 * its output was read).
 */
export class ExecRun {
  readonly id: string;
  readonly #frame: AgentExec;
  readonly #spec: LanguageSpec;
  readonly #ctx: ExecContext;
  readonly #window: number;
  readonly #frameWindow: number;
  #proc: RunningProgram | null = null;
  #chunkers = { stdout: new Utf8Chunker(), stderr: new Utf8Chunker() };
  /** Bytes sent in `out` frames, and of those, acknowledged; the same in frames. */
  #sent = 0;
  #acked = 0;
  #sentFrames = 0;
  #ackedFrames = 0;
  /** Output bytes taken from the pipes (all stages), against maxOutputBytes. */
  #outBytes = 0;
  #truncated = false;
  /** Past the output cap: pipes are read and dropped until they end. */
  #discarding = false;
  #displaysSent = 0;
  #displaysDropped = 0;
  /** Why we SIGKILLed the group ourselves. */
  #agentKill: "timeout" | "output_limit" | null = null;
  #clientSignaled = false;
  /** A client signal that came while no process was alive: delivered to the next one. */
  #pendingSignal: SignalName | null = null;
  #stdinQueue: string[] = [];
  #stdinEof = false;
  #finished = false;
  #aborted = false;
  /** Programmatic tool calling: where results go (the repl exec, or the bash functions' bridge), and the wall-time timer's pause and resume. */
  #toolSink: { toolResults(results: never[]): void } | null = null;
  #bashTools: BashToolBridge | null = null;
  #pauseTimer: (() => void) | null = null;
  #resumeTimer: (() => void) | null = null;

  constructor(frame: AgentExec, spec: LanguageSpec, ctx: ExecContext) {
    this.id = frame.id;
    this.#frame = frame;
    this.#spec = spec;
    this.#ctx = ctx;
    this.#window = frame.windowBytes ?? DEFAULT_WINDOW_BYTES;
    this.#frameWindow = frame.windowFrames ?? Number.POSITIVE_INFINITY;
  }

  get acceptsStdin(): boolean {
    return this.#frame.stdin;
  }

  get finished(): boolean {
    return this.#finished;
  }

  /** Run the exec to its end; always sends exactly one `exit` frame; never rejects. */
  async run(): Promise<void> {
    let buildDir: string | null = null;
    let before: Snapshot | null = null;
    let outcome: Outcome;
    let oomBefore: number | null = null;
    try {
      const env = { ...this.#ctx.programEnv, ...this.#spec.env };
      // Asked for now, so that a new interpreter boots while the snapshot is taken.
      const interpreter = this.#frame.repl ? this.#ctx.persistentInterpreter(this.#spec) : null;
      if (interpreter) {
        before = await snapshot(this.#ctx.dataDir);
        oomBefore = await readOomKills(this.#ctx.cgroupDir);
        // Asked again after the awaits and handed the exec at once: one that died meanwhile (an interpreter
        // that cannot start dies within milliseconds) is replaced, and the replacement's end is this exec's.
        outcome = await this.#replStage(this.#ctx.persistentInterpreter(this.#spec) ?? interpreter);
      } else {
        buildDir = await mkdtemp(join(this.#ctx.workDir, "exec-"));
        const main = this.#spec.code === "java" ? javaMainClass(this.#frame.code) : "Code";
        const src = join(buildDir, this.#spec.sourceFile.replaceAll("{main}", main));
        const bin = join(buildDir, "main");
        const dir = buildDir;
        const fill = (arg: string) => arg.replaceAll("{src}", src).replaceAll("{dir}", dir).replaceAll("{bin}", bin).replaceAll("{main}", main);
        await writeFile(src, this.#frame.code, { mode: 0o644 });
        if (this.#spec.code === "bash" && this.#frame.tools?.length) Object.assign(env, await this.#openBashTools(buildDir));
        before = await snapshot(this.#ctx.dataDir);
        oomBefore = await readOomKills(this.#ctx.cgroupDir);

        let compiled = true;
        outcome = { code: 0, signal: null, wallMs: 0 };
        if (this.#spec.compile) {
          this.#ctx.send({ type: "exec.stage", id: this.id, stage: "compile" });
          outcome = await this.#stage(this.#spec.compile.map(fill), buildDir, env, this.#frame.compileTimeoutMs ?? this.#frame.timeoutMs, false);
          compiled = outcome.code === 0 && outcome.signal === null && !outcome.internal && this.#agentKill === null;
          if (compiled && !this.#aborted) this.#ctx.send({ type: "exec.stage", id: this.id, stage: "run" });
        }
        if (compiled) {
          let argv = [...this.#spec.run.map(fill), ...(this.#frame.args ?? [])];
          if (this.#spec.lineBuffer && this.#ctx.stdbuf) argv = [this.#ctx.stdbuf, "-oL", "-eL", ...argv];
          outcome = await this.#stage(argv, this.#ctx.dataDir, env, this.#frame.timeoutMs, this.#frame.stdin);
        }
      }
    } catch (error) {
      this.#ctx.log(`exec ${this.id}: ${(error as Error).message}`);
      outcome = { code: null, signal: null, wallMs: 0, internal: true };
    }

    // Before the files are looked at: a daemon the program left must neither go on nor write more.
    await this.#ctx.endStrayProcesses().catch((error: unknown) => this.#ctx.log(`exec ${this.id}: stray processes: ${(error as Error).message}`));
    try {
      const oomAfter = oomBefore === null ? null : await readOomKills(this.#ctx.cgroupDir);
      const oomKilled = oomBefore !== null && oomAfter !== null && oomAfter > oomBefore;
      const after = before ? await snapshot(this.#ctx.dataDir) : null;
      const files = before && after ? diffSnapshots(before, after) : [];
      const deleted = before && after ? await deletedFiles(this.#ctx.dataDir, before, after) : [];
      this.#bashTools?.close();
      if (buildDir) await rm(buildDir, { recursive: true, force: true }).catch(() => {});
      this.#finished = true;
      this.#ctx.send({
        type: "exit",
        id: this.id,
        code: outcome.code,
        signal: outcome.signal,
        reason: this.#reason(outcome, oomKilled),
        wallMs: Math.round(outcome.wallMs),
        ...(outcome.cpuMs !== undefined ? { cpuMs: outcome.cpuMs } : {}),
        ...(outcome.memBytes !== undefined ? { memBytes: outcome.memBytes } : {}),
        truncated: this.#truncated,
        files,
        deleted,
        ...(this.#displaysDropped > 0 ? { displaysDropped: this.#displaysDropped } : {}),
      });
    } catch (error) {
      this.#ctx.log(`exec ${this.id}: ${(error as Error).message}`);
      this.#finished = true;
      this.#ctx.send({
        type: "exit",
        id: this.id,
        code: null,
        signal: null,
        reason: "internal",
        wallMs: 0,
        truncated: this.#truncated,
        files: [],
        deleted: [],
      });
    }
  }

  #reason(outcome: Outcome, oomKilled: boolean): ExitReason {
    if (this.#agentKill) return this.#agentKill;
    if (outcome.internal) return "internal";
    const bySignal = outcome.signal !== null;
    if (this.#clientSignaled && bySignal) return "killed";
    // 137: a shell or wrapper reporting a child the OOM killer took.
    if (oomKilled && (outcome.signal === "SIGKILL" || outcome.code === 137)) return "memory";
    if (bySignal) return "signaled";
    return "exited";
  }

  /** Run one command to its end, streaming its output. */
  async #stage(argv: string[], cwd: string, env: Record<string, string>, timeoutMs: number, stdin: boolean): Promise<Outcome> {
    if (this.#aborted) return { code: null, signal: null, wallMs: 0, internal: true };
    this.#chunkers = { stdout: new Utf8Chunker(), stderr: new Utf8Chunker() };
    let proc: ProgramProcess;
    try {
      proc = new ProgramProcess({ argv, cwd, env, stdin, launcher: this.#ctx.launcher, launcherOptions: this.#ctx.launcherOptions });
    } catch (error) {
      this.#ctx.log(`exec ${this.id}: spawn ${argv[0]}: ${(error as Error).message}`);
      return { code: null, signal: null, wallMs: 0, internal: true };
    }
    for (const stream of ["stdout", "stderr"] as const) {
      const readable = stream === "stdout" ? proc.stdout : proc.stderr;
      readable.on("data", (chunk: Buffer) => this.#onData(stream, chunk));
      readable.on("end", () => this.#onEnd(stream));
    }
    return this.#supervise(proc, argv[0]!, timeoutMs);
  }

  /** Run the exec's code in the persistent interpreter. */
  async #replStage(interpreter: PythonRepl): Promise<Outcome> {
    if (this.#aborted) return { code: null, signal: null, wallMs: 0, internal: true };
    this.#chunkers = { stdout: new Utf8Chunker(), stderr: new Utf8Chunker() };
    const request = {
      code: this.#frame.code,
      cwd: this.#ctx.dataDir,
      args: this.#frame.args ?? [],
      stdin: this.#frame.stdin,
      ...(this.#frame.tools?.length ? { tools: this.#frame.tools } : {}),
    };
    const run = interpreter.exec(request, {
      // --- programmatic tool calling: the program waits for results; its wall time stops meanwhile.
      toolCalls: (calls) => {
        this.#pauseTimer?.();
        this.#ctx.send({ type: "tool.calls", id: this.id, calls });
      },
      data: (stream, chunk) => this.#onData(stream, chunk),
      end: (stream) => this.#onEnd(stream),
      display: (item) => this.#onDisplay(item),
    });
    this.#toolSink = run;
    return this.#supervise(run, this.#spec.run[0]!, this.#frame.timeoutMs);
  }

  /** Bash with tools: a function per tool, answered through a loopback bridge; returns the environment that defines them. */
  async #openBashTools(dir: string): Promise<Record<string, string>> {
    const { bridge, env } = await BashToolBridge.open(dir, this.id, this.#frame.tools ?? [], (calls) => {
      this.#pauseTimer?.();
      this.#ctx.send({ type: "tool.calls", id: this.id, calls });
    });
    this.#bashTools = bridge;
    this.#toolSink = { toolResults: (results) => bridge.results(results) };
    return env;
  }

  /** Resume a program paused on tool calls (programmatic tool calling). */
  toolResults(results: unknown[]): void {
    if (!this.#toolSink || this.#finished) return;
    this.#resumeTimer?.();
    this.#toolSink.toolResults(results as never[]);
  }

  /** Stdin, signals, wall time and flow control of what runs, to its end. */
  async #supervise(proc: RunningProgram, program: string, timeoutMs: number): Promise<Outcome> {
    this.#proc = proc;
    if (proc.stdin) {
      for (const data of this.#stdinQueue) proc.stdin.write(data, "utf8");
      this.#stdinQueue = [];
      if (this.#stdinEof) proc.stdin.end();
    }
    if (this.#pendingSignal) {
      this.#clientSignaled = true;
      proc.kill(this.#pendingSignal);
      this.#pendingSignal = null;
    }
    const expire = () => {
      if (proc.exited) return;
      if (this.#agentKill === null) this.#agentKill = "timeout";
      proc.kill("SIGKILL");
    };
    let timer = setTimeout(expire, timeoutMs);
    // --- programmatic tool calling: the time left stops while the program waits for tool results.
    let left = timeoutMs;
    let since = performance.now();
    this.#pauseTimer = () => {
      clearTimeout(timer);
      left = Math.max(0, left - (performance.now() - since));
    };
    this.#resumeTimer = () => {
      clearTimeout(timer);
      since = performance.now();
      timer = setTimeout(expire, left);
    };
    this.#flow();
    const result = await proc.done;
    clearTimeout(timer);
    this.#pauseTimer = this.#resumeTimer = null;
    const wallMs = performance.now() - proc.startedAt;
    if (!this.#discarding) {
      this.#emit("stdout", this.#chunkers.stdout.end());
      this.#emit("stderr", this.#chunkers.stderr.end());
    }
    if (result.spawnError) {
      const err = result.spawnError;
      if (!this.#ctx.launcher && (err.code === "ENOENT" || err.code === "EACCES")) {
        // Like a shell (and the launcher): a message on stderr and code 127.
        const text = `agent: cannot run ${program}: ${err.message}\n`;
        this.#onData("stderr", Buffer.from(text));
        this.#emit("stderr", this.#chunkers.stderr.end());
        return { code: 127, signal: null, wallMs };
      }
      this.#ctx.log(`exec ${this.id}: spawn ${program}: ${err.message}`);
      return { code: null, signal: null, wallMs, internal: true };
    }
    return { ...result, wallMs };
  }

  /** A figure the program showed: sent within the exec's figure cap and size limit, else counted as dropped. */
  #onDisplay(item: { mime: string; data: string; name?: string }): void {
    if (this.#discarding) return;
    const { maxDisplays = Number.POSITIVE_INFINITY, maxDisplayBytes = Number.POSITIVE_INFINITY } = this.#frame;
    if (this.#displaysSent >= maxDisplays || base64Bytes(item.data) > maxDisplayBytes) {
      this.#displaysDropped++;
      return;
    }
    this.#displaysSent++;
    this.#ctx.send({ type: "display", id: this.id, ...item });
  }

  #onEnd(stream: StreamName): void {
    if (!this.#discarding) this.#emit(stream, this.#chunkers[stream].end());
  }

  #onData(stream: StreamName, chunk: Buffer): void {
    if (this.#discarding) return;
    const room = this.#frame.maxOutputBytes - this.#outBytes;
    const over = chunk.length > room;
    const taken = over ? chunk.subarray(0, room) : chunk;
    this.#outBytes += taken.length;
    this.#emit(stream, this.#chunkers[stream].push(taken));
    if (over) {
      this.#truncated = true;
      this.#discarding = true;
      // Every byte counted goes out: flush what waits for the rest of a character.
      this.#emit("stdout", this.#chunkers.stdout.end());
      this.#emit("stderr", this.#chunkers.stderr.end());
      if (this.#agentKill === null) this.#agentKill = "output_limit";
      this.#proc?.kill("SIGKILL");
    }
    this.#flow();
  }

  #emit(stream: StreamName, segments: Utf8Segment[]): void {
    for (const seg of segments) {
      this.#sent += seg.bytes;
      this.#sentFrames += 1;
      this.#ctx.send(
        seg.encoding
          ? { type: "out", id: this.id, stream, data: seg.data, encoding: seg.encoding, bytes: seg.bytes }
          : { type: "out", id: this.id, stream, data: seg.data, bytes: seg.bytes },
      );
    }
  }

  /** Pause the pipes while the window is used up or no server is connected; else read. */
  #flow(): void {
    const proc = this.#proc;
    if (!proc) return;
    const windowFull = this.#sent - this.#acked >= this.#window || this.#sentFrames - this.#ackedFrames >= this.#frameWindow;
    const blocked = !this.#discarding && (!this.#ctx.connected || windowFull);
    proc.setReading(!blocked);
  }

  ack(bytes: number, frames = 0): void {
    this.#acked = Math.min(this.#sent, this.#acked + bytes);
    this.#ackedFrames = Math.min(this.#sentFrames, this.#ackedFrames + frames);
    this.#flow();
  }

  /**
   * The server connection came or went. A new connection starts with a full
   * window: frames in flight on the old one will never be acknowledged.
   */
  connectionChanged(): void {
    if (this.#ctx.connected) {
      this.#acked = this.#sent;
      this.#ackedFrames = this.#sentFrames;
    }
    this.#flow();
  }

  stdin(data: string | undefined, eof: boolean | undefined): void {
    if (this.#stdinEof) return;
    const pipe = this.#proc?.stdin ?? null;
    if (data) {
      if (pipe) pipe.write(data, "utf8");
      else this.#stdinQueue.push(data);
    }
    if (eof) {
      this.#stdinEof = true;
      pipe?.end();
    }
  }

  /** A client's signal, for the whole process group of what runs now. */
  signal(signal: SignalName): void {
    const proc = this.#proc;
    if (proc && !proc.exited) {
      this.#clientSignaled = true;
      proc.kill(signal);
    } else {
      this.#pendingSignal = signal;
    }
  }

  /** The agent is shutting down: kill whatever runs and run no further stage. */
  abort(): void {
    this.#aborted = true;
    this.#proc?.kill("SIGKILL");
  }
}
