import { timingSafeEqual } from "node:crypto";
import { accessSync, constants, existsSync } from "node:fs";
import { mkdir, unlink } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname } from "node:path";
import type { Duplex } from "node:stream";
import { fileURLToPath } from "node:url";
import { type RawData, WebSocket, WebSocketServer } from "ws";
import {
  AGENT_PROTOCOL_VERSION,
  AGENT_TOKEN_HEADER,
  type AgentFileResult,
  type AgentStateResult,
  type AgentToServer,
  findLanguage,
  type LanguageSpec,
  parseJsonFrame,
  type ServerToAgent,
  ServerToAgentSchema,
} from "../protocol/index.ts";
import { type ExecContext, ExecRun } from "./exec.ts";
import { DataDir, FileOpError } from "./files.ts";
import { setUpLauncher } from "./program-jail.ts";
import { PythonRepl } from "./python-repl.ts";
import { killStrayProcesses } from "./stray-processes.ts";

export type ListenAddress = { kind: "unix"; path: string } | { kind: "tcp"; host: string; port: number };

export interface AgentOptions {
  /** Where to listen: a unix socket path, or a TCP host and port (0 picks a free port). */
  listen: ListenAddress;
  /** Shared secret the server sends in the `x-agent-token` header. */
  token: string;
  /** Programs' working directory; file operations are confined to it. Created if missing. */
  dataDir: string;
  /** Parent of the per-exec build folders. Created if missing. */
  workDir: string;
  /** The launcher binary; null or a missing file: programs are spawned directly. */
  launcher?: string | null;
  /** The programs' syscall filter (BPF), installed by the launcher in each program. */
  programFilter?: string | null;
  /** Run each program in the launcher's jail, out of the agent's reach (when the sandbox allows it). */
  jail?: boolean;
  /** Folder of the sandbox's memory cgroup files, to tell OOM kills apart. */
  cgroupDir?: string | null;
  /** The whole environment programs get. */
  programEnv?: Record<string, string>;
  /** The persistent Python interpreter's driver; default: python-repl-driver.py next to this module (or bundle). */
  pythonDriver?: string;
  /**
   * Python modules to import in the persistent interpreter as soon as it
   * starts: the interpreter is then started with the agent, not at the first
   * repl exec (which waits for the imports), and a `warm` frame reports the end.
   */
  pythonPreload?: readonly string[];
  /** stdbuf for line-buffered languages; default /usr/bin/stdbuf when present, null to never use it. */
  stdbuf?: string | null;
  /** Where agent errors go; default stderr. */
  log?: (line: string) => void;
}

export interface Agent {
  /** Where the agent listens (for TCP, with the real port). */
  readonly address: ListenAddress;
  /** Real path of the data folder. */
  readonly dataDir: string;
  /** Launcher in use, or null. */
  readonly launcher: string | null;
  /** Kill what runs, close the connection and stop listening. */
  close(): Promise<void>;
}

export const DEFAULT_PROGRAM_ENV: Readonly<Record<string, string>> = {
  PATH: "/usr/local/bin:/usr/bin:/bin",
  HOME: "/tmp",
  LANG: "C.UTF-8",
  TMPDIR: "/tmp",
};

/** Close code sent to a connection that a newer one replaced. */
export const CLOSE_REPLACED = 4000;
/** Frames kept for a server that is not connected (the pipes are paused meanwhile, so few). */
const MAX_QUEUED_FRAMES = 10_000;
const MAX_PAYLOAD = 256 * 1024 * 1024;
/** Largest saved Python state sent in a `state.result` (compressed bytes; it travels as base64). */
export const MAX_STATE_BYTES = 128 * 1024 * 1024;
const DEFAULT_PYTHON_DRIVER = fileURLToPath(new URL("./python-repl-driver.py", import.meta.url));

/** `unix:/path` or `tcp:HOST:PORT` (IPv6 hosts in brackets). */
export function parseListen(value: string): ListenAddress {
  if (value.startsWith("unix:")) {
    const path = value.slice(5);
    if (!path) throw new Error(`AGENT_LISTEN: empty unix socket path in "${value}"`);
    return { kind: "unix", path };
  }
  if (value.startsWith("tcp:")) {
    const rest = value.slice(4);
    const colon = rest.lastIndexOf(":");
    const host = rest.slice(0, colon).replace(/^\[(.*)\]$/, "$1");
    const port = Number(rest.slice(colon + 1));
    if (colon < 0 || !host || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`AGENT_LISTEN: expected tcp:HOST:PORT, got "${value}"`);
    return { kind: "tcp", host, port };
  }
  throw new Error(`AGENT_LISTEN: expected unix:/path or tcp:HOST:PORT, got "${value}"`);
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function rawText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString("utf8");
  if (Array.isArray(data)) return Buffer.concat(data).toString("utf8");
  return Buffer.from(data).toString("utf8");
}

/** The `id` and `reqId` of a frame that failed validation, when it has them, so that the server can route the error. */
function idsOf(text: string): { id?: string; reqId?: string } {
  try {
    const value: unknown = JSON.parse(text);
    if (!value || typeof value !== "object") return {};
    const { id, reqId } = value as { id?: unknown; reqId?: unknown };
    return { ...(typeof id === "string" ? { id } : {}), ...(typeof reqId === "string" ? { reqId } : {}) };
  } catch {
    return {};
  }
}

function send(socket: WebSocket, frame: AgentToServer): void {
  if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
}

/**
 * Start the sidecar-agent: one WebSocket server, one active connection (a new
 * authenticated connection replaces the old one), one exec at a time. An exec
 * outlives its connection: while no server is connected its pipes are paused
 * and its frames wait, and a reconnecting server receives the rest.
 */
export async function startAgent(options: AgentOptions): Promise<Agent> {
  if (!options.token) throw new Error("the agent needs a token");
  const log = options.log ?? ((line: string) => process.stderr.write(`agent: ${line}\n`));
  const expected = Buffer.from(options.token, "utf8");
  const data = await DataDir.open(options.dataDir);
  await mkdir(options.workDir, { recursive: true, mode: 0o700 });
  const launcher = options.launcher && isExecutable(options.launcher) ? options.launcher : null;
  const launcherSetup = setUpLauncher({ launcher, programFilter: options.programFilter, jail: options.jail, log });
  const stdbuf = options.stdbuf === undefined ? (existsSync("/usr/bin/stdbuf") ? "/usr/bin/stdbuf" : null) : options.stdbuf;

  let current: WebSocket | null = null;
  let queue: string[] = [];
  let exec: ExecRun | null = null;
  let execDone: Promise<void> = Promise.resolve();
  let python: PythonRepl | null = null;
  const programEnv = options.programEnv ?? DEFAULT_PROGRAM_ENV;
  const preload = (options.pythonPreload ?? []).filter((name) => name.length > 0);
  /** With a preload: whether the live interpreter has imported it (reported in `ready`). */
  let warm = false;

  const context: ExecContext = {
    send(frame) {
      const text = JSON.stringify(frame);
      if (current && current.readyState === WebSocket.OPEN) {
        current.send(text);
        return;
      }
      if (queue.length >= MAX_QUEUED_FRAMES) {
        queue.shift();
        log("frame queue full while disconnected: dropped the oldest frame");
      }
      queue.push(text);
    },
    get connected() {
      return current !== null && current.readyState === WebSocket.OPEN;
    },
    dataDir: data.root,
    workDir: options.workDir,
    launcher,
    launcherOptions: launcherSetup.options,
    cgroupDir: options.cgroupDir ?? null,
    programEnv,
    stdbuf,
    persistentInterpreter(spec: LanguageSpec) {
      if (spec.code !== "py") return null;
      if (!python?.alive) {
        // The one-shot command with the driver in place of the source: same interpreter, same flags.
        const driver = options.pythonDriver ?? DEFAULT_PYTHON_DRIVER;
        const argv = spec.run.map((arg) => (arg === "{src}" ? driver : arg));
        const started = PythonRepl.start({
          argv,
          env: { ...programEnv, ...spec.env },
          cwd: data.root,
          launcher,
          launcherOptions: launcherSetup.options,
          workDir: options.workDir,
          preload,
          log,
        });
        python = started;
        warm = false;
        void started.warm?.then((result) => {
          if (python !== started || !started.alive) return;
          warm = true;
          if (result.error) log(`python preload: ${result.error}`);
          context.send({
            type: "warm",
            ...(result.pid !== null ? { pid: result.pid } : {}),
            modules: result.modules,
            failed: result.failed,
            ms: result.ms,
            ...(result.rssBytes !== undefined ? { rssBytes: result.rssBytes } : {}),
            ...(result.pssBytes !== undefined ? { pssBytes: result.pssBytes } : {}),
            ...(result.error ? { error: result.error } : {}),
          });
        });
      }
      return python;
    },
    async endStrayProcesses() {
      // The interpreter runs under the launcher (or directly, without one): both stay, and whatever the launcher forked.
      const interpreter = python?.alive ? python.launcherPid : undefined;
      const keep = new Set([process.pid, ...(interpreter !== undefined ? [interpreter] : [])]);
      const killed = killStrayProcesses(keep, new Set(interpreter !== undefined && launcher ? [interpreter] : []));
      if (killed > 0) log(`ended ${killed} process(es) left running by the exec`);
    },
    log,
  };

  const fileOp = async (socket: WebSocket, frame: Extract<ServerToAgent, { type: `file.${string}` }>): Promise<void> => {
    let result: AgentFileResult;
    try {
      switch (frame.type) {
        case "file.put": {
          const file = await data.put(frame.path, Buffer.from(frame.data, "base64"), frame.readOnly === true);
          result = { type: "file.result", reqId: frame.reqId, ok: true, file };
          break;
        }
        case "file.get": {
          const got = await data.get(frame.path);
          result = { type: "file.result", reqId: frame.reqId, ok: true, data: got.data.toString("base64"), file: got.file };
          break;
        }
        case "file.list":
          result = { type: "file.result", reqId: frame.reqId, ok: true, files: await data.list() };
          break;
        case "file.delete":
          await data.delete(frame.path);
          result = { type: "file.result", reqId: frame.reqId, ok: true };
          break;
      }
    } catch (error) {
      const message = error instanceof FileOpError ? error.message : `${frame.type} failed: ${(error as Error).message}`;
      if (!(error instanceof FileOpError)) log(message);
      result = { type: "file.result", reqId: frame.reqId, ok: false, error: message };
    }
    send(socket, result);
  };

  /** state.save / state.restore: only between execs, in the persistent Python interpreter. */
  const stateOp = async (socket: WebSocket, frame: Extract<ServerToAgent, { type: "state.save" | "state.restore" }>): Promise<void> => {
    let result: AgentStateResult;
    try {
      if (exec) {
        result = {
          type: "state.result",
          reqId: frame.reqId,
          names: [],
          error: `exec ${exec.id} is running: the state can be saved or restored only between execs`,
        };
      } else if (frame.type === "state.save") {
        if (!python?.alive) {
          result = { type: "state.result", reqId: frame.reqId, bytes: 0, names: [], skipped: [] }; // nothing to save
        } else {
          const saved = await python.save(Math.min(frame.maxBytes ?? MAX_STATE_BYTES, MAX_STATE_BYTES));
          result = { type: "state.result", reqId: frame.reqId, ...saved };
        }
      } else {
        const interpreter = context.persistentInterpreter(findLanguage("py")!)!;
        const restored = await interpreter.restore(frame.data);
        result = { type: "state.result", reqId: frame.reqId, ...restored };
      }
    } catch (error) {
      const message = `${frame.type} failed: ${(error as Error).message}`;
      log(message);
      result = { type: "state.result", reqId: frame.reqId, names: [], error: message };
    }
    send(socket, result);
  };

  const dispatch = (socket: WebSocket, frame: ServerToAgent): void => {
    switch (frame.type) {
      case "exec": {
        if (exec) {
          send(socket, { type: "error", code: "busy", message: `exec ${exec.id} is still running`, id: frame.id });
          return;
        }
        const spec = findLanguage(frame.lang);
        if (!spec) {
          send(socket, { type: "error", code: "unsupported_language", message: `unsupported language: ${frame.lang}`, id: frame.id });
          return;
        }
        const run = new ExecRun(frame, spec, context);
        exec = run;
        execDone = run.run().finally(() => {
          if (exec === run) exec = null;
        });
        return;
      }
      case "stdin": {
        if (!exec || exec.id !== frame.id || exec.finished) {
          send(socket, { type: "error", code: "unknown_exec", message: `no running exec ${frame.id}`, id: frame.id });
        } else if (!exec.acceptsStdin) {
          send(socket, { type: "error", code: "stdin_not_enabled", message: `exec ${frame.id} did not ask for stdin`, id: frame.id });
        } else {
          exec.stdin(frame.data, frame.eof);
        }
        return;
      }
      case "signal": {
        if (!exec || exec.id !== frame.id || exec.finished) {
          send(socket, { type: "error", code: "unknown_exec", message: `no running exec ${frame.id}`, id: frame.id });
        } else {
          exec.signal(frame.signal);
        }
        return;
      }
      case "ack":
        if (exec && exec.id === frame.id) exec.ack(frame.bytes, frame.frames);
        return;
      case "tool.results": // programmatic tool calling
        if (exec && exec.id === frame.id && !exec.finished) exec.toolResults(frame.results);
        else send(socket, { type: "error", code: "unknown_exec", message: `no running exec ${frame.id}`, id: frame.id });
        return;
      case "state.save":
      case "state.restore":
        void stateOp(socket, frame);
        return;
      default:
        void fileOp(socket, frame);
    }
  };

  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_PAYLOAD, perMessageDeflate: false });

  wss.on("connection", (socket: WebSocket) => {
    const old = current;
    current = socket;
    if (old) old.close(CLOSE_REPLACED, "replaced by a newer connection");
    socket.on("error", (error) => log(`connection error: ${error.message}`));
    socket.on("close", () => {
      if (current === socket) {
        current = null;
        exec?.connectionChanged();
      }
    });
    socket.on("message", (raw, isBinary) => {
      if (current !== socket) return; // replaced: the newer connection is in charge
      try {
        if (isBinary) {
          send(socket, { type: "error", code: "invalid_frame", message: "binary frames are not accepted" });
          return;
        }
        const text = rawText(raw);
        const parsed = parseJsonFrame(ServerToAgentSchema, text);
        if (!parsed.ok) {
          send(socket, { type: "error", code: "invalid_frame", message: parsed.message, ...idsOf(text) });
          return;
        }
        dispatch(socket, parsed.value);
      } catch (error) {
        log(`frame failed: ${(error as Error).message}`);
        send(socket, { type: "error", code: "internal", message: "the agent failed to handle this frame" });
      }
    });
    send(socket, { type: "ready", version: AGENT_PROTOCOL_VERSION, pid: process.pid, ...(preload.length ? { warm } : {}) });
    const waiting = queue;
    queue = [];
    for (const text of waiting) socket.send(text);
    exec?.connectionChanged();
  });

  const server: Server = createServer((_req, res) => {
    res.writeHead(426, { "content-type": "text/plain", connection: "close" });
    res.end("WebSocket upgrade required\n");
  });
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => {});
    const given = req.headers[AGENT_TOKEN_HEADER];
    const candidate = typeof given === "string" ? Buffer.from(given, "utf8") : null;
    if (!candidate || candidate.length !== expected.length || !timingSafeEqual(candidate, expected)) {
      socket.once("finish", () => socket.destroy());
      socket.end("HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nUnauthorized\n");
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit("connection", ws, req));
  });
  server.on("clientError", (_error, socket) => socket.destroy());

  let address: ListenAddress;
  if (options.listen.kind === "unix") {
    const path = options.listen.path;
    await mkdir(dirname(path), { recursive: true });
    await unlink(path).catch(() => {}); // a stale socket of an earlier agent
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, () => {
        server.off("error", reject);
        resolve();
      });
    });
    address = { kind: "unix", path };
  } else {
    const { host, port } = options.listen;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    address = { kind: "tcp", host, port: (server.address() as AddressInfo).port };
  }
  server.on("error", (error) => log(`server error: ${error.message}`));
  // Warm from the start: the interpreter imports the preload while the server connects.
  if (preload.length) {
    try {
      context.persistentInterpreter(findLanguage("py")!);
    } catch (error) {
      log(`python preload: cannot start the interpreter: ${(error as Error).message}`);
    }
  }

  let closing: Promise<void> | null = null;
  return {
    address,
    dataDir: data.root,
    launcher,
    close() {
      closing ??= (async () => {
        exec?.abort();
        python?.kill();
        await Promise.race([execDone, new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
        for (const client of wss.clients) client.terminate();
        current = null;
        await new Promise<void>((resolve) => wss.close(() => resolve()));
        await new Promise<void>((resolve) => server.close(() => resolve()));
        if (address.kind === "unix") await unlink(address.path).catch(() => {});
      })();
      return closing;
    },
  };
}
