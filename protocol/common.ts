import * as v from "valibot";

/** Signals a client may send to a running program's process group. */
export const SIGNALS = ["SIGINT", "SIGTERM", "SIGKILL"] as const;
export const SignalSchema = v.picklist(SIGNALS);
export type SignalName = v.InferOutput<typeof SignalSchema>;

/** Why an exec ended (PROTOCOL.md). */
export const EXIT_REASONS = [
  "exited",
  "signaled",
  "timeout",
  "memory",
  "output_limit",
  "killed",
  "client_gone",
  "sandbox_lost",
  "server_restart",
  "internal",
] as const;
export const ExitReasonSchema = v.picklist(EXIT_REASONS);
export type ExitReason = v.InferOutput<typeof ExitReasonSchema>;

export const StreamSchema = v.picklist(["stdout", "stderr"]);
export type StreamName = v.InferOutput<typeof StreamSchema>;

export const StageSchema = v.picklist(["compile", "run"]);
export type Stage = v.InferOutput<typeof StageSchema>;

/** Ids chosen by clients: printable, bounded, no control characters. */
export const ClientIdSchema = v.pipe(v.string(), v.minLength(1), v.maxLength(128), v.regex(/^[\x21-\x7e]+$/, "must be printable ASCII without spaces"));

/** Session, entity and user ids share the LibreChat pattern. */
export const SessionIdSchema = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{1,64}$/, "must match ^[A-Za-z0-9_-]{1,64}$"));
export const EntityIdSchema = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{1,40}$/, "must match ^[A-Za-z0-9_-]{1,40}$"));
export const UserIdSchema = v.pipe(v.string(), v.minLength(1), v.maxLength(200));

/** A file of a session, as HTTP /exec returns it and as WebSocket `exit.files` carries it. */
export const FileRefSchema = v.object({
  id: v.string(),
  name: v.string(),
  path: v.optional(v.string()),
  session_id: v.string(),
  storage_session_id: v.string(),
  size: v.optional(v.number()),
  inherited: v.optional(v.boolean()),
  modified_from: v.optional(v.object({ id: v.string(), storage_session_id: v.string() })),
  kind: v.optional(v.string()),
  resource_id: v.optional(v.string()),
  version: v.optional(v.union([v.string(), v.number()])),
});
export type FileRef = v.InferOutput<typeof FileRefSchema>;

/** A file reference in a request: which stored file to place in /mnt/data. */
export const FileInputSchema = v.object({
  id: v.pipe(v.string(), v.minLength(1), v.maxLength(128)),
  name: v.pipe(v.string(), v.minLength(1), v.maxLength(1024)),
  session_id: v.optional(v.string()),
  storage_session_id: v.optional(v.string()),
  resource_id: v.optional(v.string()),
  kind: v.optional(v.string()),
  version: v.optional(v.union([v.string(), v.number()])),
  entity_id: v.optional(v.string()),
});
export type FileInput = v.InferOutput<typeof FileInputSchema>;

/** Effective limits of a session, reported in `session.ready`. */
export const SessionLimitsSchema = v.object({
  wallTimeMs: v.number(),
  memoryBytes: v.number(),
  outputBytes: v.number(),
  codeBytes: v.number(),
  pids: v.number(),
});
export type SessionLimits = v.InferOutput<typeof SessionLimitsSchema>;

/** A tool a programmatic run may call (POST /exec/programmatic `tools`, the WebSocket exec's `tools`). */
export const ToolDefSchema = v.object({
  name: v.pipe(v.string(), v.minLength(1), v.maxLength(200)),
  description: v.optional(v.unknown()),
  parameters: v.optional(v.unknown()),
});
