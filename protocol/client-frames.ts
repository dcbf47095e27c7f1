import * as v from "valibot";
import { ToolResultSchema } from "./agent-frames.ts";
import { ClientIdSchema, EntityIdSchema, FileInputSchema, SessionIdSchema, SignalSchema, ToolDefSchema, UserIdSchema } from "./common.ts";

/** Frames a WebSocket client sends to the server (PROTOCOL.md, "Client -> server"). */
export const AuthFrameSchema = v.object({
  type: v.literal("auth"),
  // An API key, or a LibreChat-minted token (an RS256 one with every claim is about 1 KiB).
  apiKey: v.pipe(v.string(), v.minLength(1), v.maxLength(8192)),
});

export const SessionOpenFrameSchema = v.object({
  type: v.literal("session.open"),
  sessionId: v.optional(SessionIdSchema),
  lang: v.optional(v.pipe(v.string(), v.minLength(1), v.maxLength(16))),
  entityId: v.optional(EntityIdSchema),
  userId: v.optional(UserIdSchema),
  lastSeq: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0))),
});

export const ExecFrameSchema = v.object({
  type: v.literal("exec"),
  id: ClientIdSchema,
  lang: v.pipe(v.string(), v.minLength(1), v.maxLength(16)),
  code: v.string(),
  args: v.optional(v.pipe(v.array(v.pipe(v.string(), v.maxLength(65536))), v.maxLength(256))),
  files: v.optional(v.pipe(v.array(FileInputSchema), v.maxLength(1000))),
  timeoutMs: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1))),
  stdin: v.optional(v.boolean()),
  /** Programmatic tool calling: each tool becomes a function of the program (Python) or a command (bash). */
  tools: v.optional(v.pipe(v.array(ToolDefSchema), v.maxLength(500))),
});

/** The results of the round of `tool_call`s exec `id` is paused on. */
export const ToolResultFrameSchema = v.object({
  type: v.literal("tool_result"),
  id: ClientIdSchema,
  results: v.pipe(v.array(ToolResultSchema), v.maxLength(1000)),
});

export const StdinFrameSchema = v.object({
  type: v.literal("stdin"),
  id: ClientIdSchema,
  data: v.optional(v.string()),
  eof: v.optional(v.boolean()),
});

export const SignalFrameSchema = v.object({
  type: v.literal("signal"),
  id: ClientIdSchema,
  signal: SignalSchema,
});

export const SubscribeFrameSchema = v.object({
  type: v.literal("subscribe"),
  topic: v.picklist(["pool", "executions"]),
});

export const PingFrameSchema = v.object({ type: v.literal("ping") });
export const SessionCloseFrameSchema = v.object({ type: v.literal("session.close") });

export const ClientFrameSchema = v.variant("type", [
  AuthFrameSchema,
  SessionOpenFrameSchema,
  ExecFrameSchema,
  StdinFrameSchema,
  SignalFrameSchema,
  SubscribeFrameSchema,
  PingFrameSchema,
  SessionCloseFrameSchema,
  ToolResultFrameSchema,
]);

export type ClientFrame = v.InferOutput<typeof ClientFrameSchema>;
export type AuthFrame = v.InferOutput<typeof AuthFrameSchema>;
export type SessionOpenFrame = v.InferOutput<typeof SessionOpenFrameSchema>;
export type ExecFrame = v.InferOutput<typeof ExecFrameSchema>;
export type StdinFrame = v.InferOutput<typeof StdinFrameSchema>;
export type SignalFrame = v.InferOutput<typeof SignalFrameSchema>;
export type SubscribeFrame = v.InferOutput<typeof SubscribeFrameSchema>;
export type ToolResultFrame = v.InferOutput<typeof ToolResultFrameSchema>;

/** The WebSocket subprotocol of this version of the protocol. */
export const WS_SUBPROTOCOL = "code-interpreter.v1";

/** WebSocket close codes (PROTOCOL.md). */
export const CloseCodes = {
  authFailed: 4001,
  protocolError: 4002,
  sessionNotFound: 4003,
  rateLimited: 4008,
  idleTimeout: 4009,
  /** RFC 6455 "Service Restart": the server is stopping (SIGTERM); reconnect and resume with lastSeq. */
  serviceRestart: 1012,
  /** RFC 6455 "Try Again Later": the session exists but its replica does not answer yet; open it again shortly. */
  tryAgainLater: 1013,
} as const;
