import * as v from "valibot";
import { ExitReasonSchema, SignalSchema, StageSchema, StreamSchema } from "./common.ts";

/**
 * Frames between the server and the sidecar-agent inside a sandbox.
 * One WebSocket per sandbox; the server is the client. Files travel as base64 in
 * JSON frames; output flows under a credit window (`ack`) so that a slow reader
 * stops the agent from reading the program's pipes.
 */

/** A path relative to /mnt/data: no absolute paths, no `..`, no NUL. */
export const DataPathSchema = v.pipe(
  v.string(),
  v.minLength(1),
  v.maxLength(4096),
  v.check((p) => !p.startsWith("/") && !p.includes("\0") && !p.split("/").some((s) => s === ".." || s === "."), "must be a relative path inside /mnt/data"),
);

// ---- server -> agent ----

export const AgentExecSchema = v.object({
  type: v.literal("exec"),
  id: v.string(),
  lang: v.string(),
  code: v.string(),
  args: v.optional(v.array(v.string())),
  stdin: v.boolean(),
  timeoutMs: v.pipe(v.number(), v.integer(), v.minValue(1)),
  compileTimeoutMs: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1))),
  maxOutputBytes: v.pipe(v.number(), v.integer(), v.minValue(1)),
  /** Figures (`display` frames) the exec may send; the agent drops the rest and counts them in the exit's `displaysDropped`. */
  maxDisplays: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0))),
  /** The largest figure, in decoded bytes; a larger one is dropped and counted the same way. */
  maxDisplayBytes: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1))),
  /** Bytes the agent may send before it must wait for an `ack`. */
  windowBytes: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1024))),
  /** `out` frames the agent may send before it must wait for an `ack` (bounds the replay log while no client reads). */
  windowFrames: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1))),
  /**
   * Run the code in the sandbox's persistent interpreter of the language
   * (Python only; ignored for the others): what one repl exec defines is there
   * in the next. The interpreter starts on the first repl exec and is lost when
   * a signal other than SIGINT, the wall time, the output cap or the memory
   * limit ends an exec; the next repl exec then starts a fresh one.
   */
  repl: v.optional(v.boolean()),
  /**
   * Programmatic tool calling (repl Python only): each tool becomes a function
   * `py` of the namespace for this exec; a call pauses the program and the agent
   * sends `tool.calls`; `tool.results` resumes it. The wall time does not run while paused.
   */
  tools: v.optional(v.array(v.object({ name: v.string(), py: v.string() }))),
});

// --- programmatic tool calling (issue 8)
export const ToolResultSchema = v.object({
  call_id: v.string(),
  result: v.optional(v.unknown()),
  is_error: v.optional(v.boolean()),
  error_message: v.optional(v.nullable(v.string())),
});
export type ToolResult = v.InferOutput<typeof ToolResultSchema>;
/** The results of the round of calls exec `id` is paused on. */
export const AgentToolResultsSchema = v.object({ type: v.literal("tool.results"), id: v.string(), results: v.array(ToolResultSchema) });
export const ToolCallSchema = v.object({ id: v.string(), name: v.string(), input: v.unknown() });
export type ToolCall = v.InferOutput<typeof ToolCallSchema>;
/** Exec `id` called declared tools (one round: several when it used asyncio.gather) and is paused until `tool.results`. */
export const AgentToolCallsSchema = v.object({ type: v.literal("tool.calls"), id: v.string(), calls: v.array(ToolCallSchema) });
// --- end programmatic tool calling

export const AgentStdinSchema = v.object({ type: v.literal("stdin"), id: v.string(), data: v.optional(v.string()), eof: v.optional(v.boolean()) });
export const AgentSignalSchema = v.object({ type: v.literal("signal"), id: v.string(), signal: SignalSchema });
/** The server has delivered `bytes` more output bytes, in `frames` more `out` frames, of exec `id` to its clients. */
export const AgentAckSchema = v.object({
  type: v.literal("ack"),
  id: v.string(),
  bytes: v.pipe(v.number(), v.integer(), v.minValue(0)),
  frames: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0))),
});

export const AgentFilePutSchema = v.object({
  type: v.literal("file.put"),
  reqId: v.string(),
  path: DataPathSchema,
  data: v.string(),
  readOnly: v.optional(v.boolean()),
});
export const AgentFileGetSchema = v.object({ type: v.literal("file.get"), reqId: v.string(), path: DataPathSchema });
export const AgentFileListSchema = v.object({ type: v.literal("file.list"), reqId: v.string() });
export const AgentFileDeleteSchema = v.object({ type: v.literal("file.delete"), reqId: v.string(), path: DataPathSchema });

/**
 * Save the persistent Python interpreter's user namespace (the `__main__`
 * globals the execs run in, without dunder names; modules by name). Answered
 * by `state.result` with `data`; refused (error) while an exec runs.
 */
export const AgentStateSaveSchema = v.object({
  type: v.literal("state.save"),
  reqId: v.string(),
  /** Largest state (compressed bytes) to send; a larger one is an error, without data. */
  maxBytes: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0))),
});
/** Load a state that `state.save` produced into the interpreter (started if needed). Answered by `state.result`. */
export const AgentStateRestoreSchema = v.object({ type: v.literal("state.restore"), reqId: v.string(), data: v.string() });

export const ServerToAgentSchema = v.variant("type", [
  AgentExecSchema,
  AgentStdinSchema,
  AgentSignalSchema,
  AgentAckSchema,
  AgentFilePutSchema,
  AgentFileGetSchema,
  AgentFileListSchema,
  AgentFileDeleteSchema,
  AgentStateSaveSchema,
  AgentStateRestoreSchema,
  AgentToolResultsSchema,
]);
export type ServerToAgent = v.InferOutput<typeof ServerToAgentSchema>;
export type AgentExec = v.InferOutput<typeof AgentExecSchema>;

// ---- agent -> server ----

/** A file under /mnt/data, as the agent reports it. */
export const AgentFileInfoSchema = v.object({
  path: v.string(),
  size: v.number(),
  mtimeMs: v.number(),
  readOnly: v.optional(v.boolean()),
});
export type AgentFileInfo = v.InferOutput<typeof AgentFileInfoSchema>;

export const AgentFileChangeSchema = v.object({
  ...AgentFileInfoSchema.entries,
  change: v.picklist(["created", "modified"]),
});
export type AgentFileChange = v.InferOutput<typeof AgentFileChangeSchema>;

export const AgentReadySchema = v.object({
  type: v.literal("ready"),
  version: v.string(),
  pid: v.number(),
  /**
   * Only when the agent preloads Python modules (AGENT_PYTHON_PRELOAD): true
   * once the interpreter has imported them (a `warm` frame said so), false
   * while it is still importing.
   */
  warm: v.optional(v.boolean()),
});
/**
 * The persistent Python interpreter has started and imported the preloaded
 * modules: the sandbox is fully warm. Sent once per interpreter start (again
 * after an interpreter died and a new one was preloaded); queued like exec
 * frames while no server is connected.
 */
export const AgentWarmSchema = v.object({
  type: v.literal("warm"),
  /** The interpreter's pid (in the sandbox's pid namespace). */
  pid: v.optional(v.number()),
  /** Modules imported, and those that failed to import (with the error). */
  modules: v.array(v.string()),
  failed: v.array(v.object({ name: v.string(), error: v.string() })),
  /** Time from the interpreter's start to the end of the imports. */
  ms: v.number(),
  /** The interpreter's memory once warm (/proc/self/smaps_rollup), when readable. */
  rssBytes: v.optional(v.number()),
  pssBytes: v.optional(v.number()),
  error: v.optional(v.string()),
});
/**
 * Answer to `state.save` (data, bytes, names, skipped) or `state.restore`
 * (names). `error` set: the operation failed or was refused; a save over
 * `maxBytes` has bytes and names but no data.
 */
export const AgentStateResultSchema = v.object({
  type: v.literal("state.result"),
  reqId: v.string(),
  /** base64 of the zlib-compressed cloudpickle of the namespace. Missing: nothing to save (no interpreter) or an error. */
  data: v.optional(v.string()),
  /** Size of the compressed state (before base64). */
  bytes: v.optional(v.number()),
  /** Names saved (or restored), modules included. */
  names: v.array(v.string()),
  /** Names left out of a save because they could not be pickled. */
  skipped: v.optional(v.array(v.object({ name: v.string(), error: v.string() }))),
  error: v.optional(v.string()),
});
export const AgentStageSchema = v.object({ type: v.literal("exec.stage"), id: v.string(), stage: StageSchema });
export const AgentOutSchema = v.object({
  type: v.literal("out"),
  id: v.string(),
  stream: StreamSchema,
  data: v.string(),
  encoding: v.optional(v.literal("base64")),
  /** Raw byte count of this chunk, for the credit window. */
  bytes: v.number(),
});
/** The decoded size of a frame's base64 `data` (a figure's bytes, against `maxDisplayBytes`). */
export function base64Bytes(data: string): number {
  const padding = data.endsWith("==") ? 2 : data.endsWith("=") ? 1 : 0;
  return Math.floor((data.length * 3) / 4) - padding;
}
export const AgentDisplaySchema = v.object({ type: v.literal("display"), id: v.string(), mime: v.string(), data: v.string(), name: v.optional(v.string()) });
export const AgentExitSchema = v.object({
  type: v.literal("exit"),
  id: v.string(),
  code: v.nullable(v.number()),
  signal: v.nullable(v.string()),
  reason: ExitReasonSchema,
  wallMs: v.number(),
  cpuMs: v.optional(v.number()),
  memBytes: v.optional(v.number()),
  truncated: v.boolean(),
  files: v.array(AgentFileChangeSchema),
  /** Paths of regular files under /mnt/data that were there when the exec started and are gone at its end. */
  deleted: v.optional(v.array(v.string())),
  /** Figures the exec showed but the agent did not send (past `maxDisplays`, or larger than `maxDisplayBytes`). */
  displaysDropped: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0))),
});
export const AgentErrorSchema = v.object({
  type: v.literal("error"),
  code: v.string(),
  message: v.string(),
  id: v.optional(v.string()),
  reqId: v.optional(v.string()),
});
export const AgentFileResultSchema = v.object({
  type: v.literal("file.result"),
  reqId: v.string(),
  ok: v.boolean(),
  error: v.optional(v.string()),
  data: v.optional(v.string()),
  file: v.optional(AgentFileInfoSchema),
  files: v.optional(v.array(AgentFileInfoSchema)),
});

export const AgentToServerSchema = v.variant("type", [
  AgentReadySchema,
  AgentStageSchema,
  AgentOutSchema,
  AgentDisplaySchema,
  AgentExitSchema,
  AgentErrorSchema,
  AgentFileResultSchema,
  AgentWarmSchema,
  AgentStateResultSchema,
  AgentToolCallsSchema,
]);
export type AgentToServer = v.InferOutput<typeof AgentToServerSchema>;
export type AgentExit = v.InferOutput<typeof AgentExitSchema>;
export type AgentOut = v.InferOutput<typeof AgentOutSchema>;
export type AgentFileResult = v.InferOutput<typeof AgentFileResultSchema>;
export type AgentStateResult = v.InferOutput<typeof AgentStateResultSchema>;
export type AgentWarm = v.InferOutput<typeof AgentWarmSchema>;

/** Header that carries the per-sandbox token on the agent's upgrade request. */
export const AGENT_TOKEN_HEADER = "x-agent-token";
export const AGENT_PROTOCOL_VERSION = "1";
