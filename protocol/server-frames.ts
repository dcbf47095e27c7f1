import * as v from "valibot";
import { ToolCallSchema } from "./agent-frames.ts";
import { ExitReasonSchema, FileRefSchema, SessionLimitsSchema, StageSchema, StreamSchema } from "./common.ts";

/** Frames the server sends to a WebSocket client (PROTOCOL.md, "Server -> client"). */
const sessionFields = {
  sessionId: v.optional(v.string()),
  seq: v.optional(v.pipe(v.number(), v.integer())),
};

export const SessionReadyFrameSchema = v.object({
  type: v.literal("session.ready"),
  sessionId: v.string(),
  seq: v.number(),
  resumed: v.boolean(),
  gap: v.optional(v.boolean()),
  limits: SessionLimitsSchema,
  languages: v.array(v.string()),
});

export const ExecStartFrameSchema = v.object({ type: v.literal("exec.start"), ...sessionFields, id: v.string(), lang: v.string() });
export const ExecStageFrameSchema = v.object({ type: v.literal("exec.stage"), ...sessionFields, id: v.string(), stage: StageSchema });
export const OutFrameSchema = v.object({
  type: v.literal("out"),
  ...sessionFields,
  id: v.string(),
  stream: StreamSchema,
  data: v.string(),
  encoding: v.optional(v.literal("base64")),
});
export const DisplayFrameSchema = v.object({
  type: v.literal("display"),
  ...sessionFields,
  id: v.string(),
  mime: v.string(),
  data: v.string(),
  name: v.optional(v.string()),
});
export const ExitFrameSchema = v.object({
  type: v.literal("exit"),
  ...sessionFields,
  id: v.string(),
  code: v.nullable(v.number()),
  signal: v.nullable(v.string()),
  reason: ExitReasonSchema,
  wallMs: v.number(),
  cpuMs: v.optional(v.number()),
  memBytes: v.optional(v.number()),
  truncated: v.boolean(),
  files: v.array(FileRefSchema),
});
export const ErrorFrameSchema = v.object({
  type: v.literal("error"),
  ...sessionFields,
  code: v.string(),
  message: v.string(),
  id: v.optional(v.string()),
});
/** Programmatic tool calling: exec `id` called these tools (one round) and is paused until a `tool_result` frame. */
export const ToolCallFrameSchema = v.object({ type: v.literal("tool_call"), ...sessionFields, id: v.string(), calls: v.array(ToolCallSchema) });
export const EventFrameSchema = v.looseObject({ type: v.literal("event"), ...sessionFields, topic: v.string() });
export const PongFrameSchema = v.object({ type: v.literal("pong"), ...sessionFields });

export const ServerFrameSchema = v.variant("type", [
  SessionReadyFrameSchema,
  ExecStartFrameSchema,
  ExecStageFrameSchema,
  OutFrameSchema,
  DisplayFrameSchema,
  ExitFrameSchema,
  ErrorFrameSchema,
  EventFrameSchema,
  PongFrameSchema,
  ToolCallFrameSchema,
]);

export type ServerFrame = v.InferOutput<typeof ServerFrameSchema>;
export type SessionReadyFrame = v.InferOutput<typeof SessionReadyFrameSchema>;
export type OutFrame = v.InferOutput<typeof OutFrameSchema>;
export type ExitFrame = v.InferOutput<typeof ExitFrameSchema>;
export type ErrorFrame = v.InferOutput<typeof ErrorFrameSchema>;

/** Error codes carried by `error` frames. */
export const ErrorCodes = {
  invalidFrame: "invalid_frame",
  authRequired: "auth_required",
  authFailed: "auth_failed",
  sessionNotFound: "session_not_found",
  sessionNotOpen: "session_not_open",
  sessionAlreadyOpen: "session_already_open",
  unsupportedLanguage: "unsupported_language",
  languageUnavailable: "language_unavailable",
  codeTooLarge: "code_too_large",
  emptyCode: "empty_code",
  busy: "busy",
  unknownExec: "unknown_exec",
  stdinNotEnabled: "stdin_not_enabled",
  duplicateExecId: "duplicate_exec_id",
  invalidToolName: "invalid_tool_name",
  notPaused: "not_paused",
  unknownCallId: "unknown_call_id",
  fileNotFound: "file_not_found",
  forbidden: "forbidden",
  sandboxUnavailable: "sandbox_unavailable",
  serviceUnavailable: "service_unavailable",
  rateLimited: "rate_limited",
  idleTimeout: "idle_timeout",
  internal: "internal",
} as const;
