/**
 * The OpenAPI 3.1 document of the HTTP API (the contract of HTTP-API.md, field
 * names exact), built in code so that it follows the configured key header and
 * the routes this server really answers: an operation the router does not
 * serve yet carries `x-implemented: false`, so the docs never claim more than
 * there is.
 */
import { MAX_KEY_NAME_LENGTH, MAX_RATE_LIMIT } from "../../protocol/admin-bodies.ts";
import { LANGUAGE_CODES, WS_SUBPROTOCOL } from "../../protocol/index.ts";
import type { ErrorType } from "./errors.ts";

// --- The subset of OpenAPI 3.1 this document uses ---------------------------------

export interface JsonSchema {
  $ref?: string;
  type?: JsonType | JsonType[];
  description?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  oneOf?: JsonSchema[];
  anyOf?: JsonSchema[];
  enum?: readonly (string | number | boolean | null)[];
  const?: string | number | boolean | null;
  default?: unknown;
  examples?: unknown[];
  format?: string;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  contentMediaType?: string;
}

export type JsonType = "string" | "integer" | "number" | "boolean" | "object" | "array" | "null";
export type HttpMethod = "get" | "post" | "patch" | "delete";

export interface ParameterObject {
  name: string;
  in: "path" | "query" | "header";
  required?: boolean;
  description?: string;
  schema: JsonSchema;
}

export interface HeaderObject {
  description?: string;
  schema: JsonSchema;
}

export interface MediaTypeObject {
  schema?: JsonSchema;
}

export interface Reference {
  $ref: string;
}

export interface ResponseObject {
  description: string;
  headers?: Record<string, HeaderObject | Reference>;
  content?: Record<string, MediaTypeObject>;
}

export interface RequestBodyObject {
  required?: boolean;
  description?: string;
  content: Record<string, MediaTypeObject>;
}

/** Frame tables of the WebSocket endpoint (an extension: OpenAPI has no WebSocket operations). */
export interface WebSocketDescription {
  subprotocol: string;
  clientFrames: FrameDoc[];
  serverFrames: FrameDoc[];
  closeCodes: Record<string, string>;
}

export interface FrameDoc {
  type: string;
  fields: string;
  meaning: string;
}

export interface OperationObject {
  operationId: string;
  tags: string[];
  summary: string;
  description?: string;
  parameters?: (ParameterObject | Reference)[];
  requestBody?: RequestBodyObject;
  responses: Record<string, ResponseObject | Reference>;
  /** Omitted: the document-wide requirement. `[]`: no auth. `[{}, ...]`: auth optional. */
  security?: Record<string, string[]>[];
  "x-implemented"?: false;
  "x-websocket"?: WebSocketDescription;
}

export interface SecuritySchemeObject {
  type: "apiKey" | "http";
  description?: string;
  name?: string;
  in?: "header";
  scheme?: "basic" | "bearer";
}

export interface OpenApiDocument {
  openapi: "3.1.0";
  info: { title: string; version: string; description: string };
  tags: { name: string; description: string }[];
  security: Record<string, string[]>[];
  paths: Record<string, Partial<Record<HttpMethod, OperationObject>>>;
  components: {
    schemas: Record<string, JsonSchema>;
    parameters: Record<string, ParameterObject>;
    headers: Record<string, HeaderObject>;
    responses: Record<string, ResponseObject>;
    securitySchemes: Record<string, SecuritySchemeObject>;
  };
}

// --- Route identity ----------------------------------------------------------------

/**
 * "GET /files/{}": the method and the path shape, whatever the parameter names are
 * called (`:sessionId` in the router, `{session_id}` here), so both can be compared.
 */
export function routeKey(method: string, path: string): string {
  const shape = path
    .split("/")
    .filter(Boolean)
    .map((segment) => (segment.startsWith(":") || (segment.startsWith("{") && segment.endsWith("}")) ? "{}" : segment))
    .join("/");
  return `${method.toUpperCase()} /${shape}`;
}

// --- Schema helpers ----------------------------------------------------------------

const ref = (name: string): JsonSchema => ({ $ref: `#/components/schemas/${name}` });
const text = (description?: string): JsonSchema => (description ? { type: "string", description } : { type: "string" });
const integer = (description?: string): JsonSchema => (description ? { type: "integer", description } : { type: "integer" });
const bool = (description?: string): JsonSchema => (description ? { type: "boolean", description } : { type: "boolean" });
const list = (items: JsonSchema, description?: string): JsonSchema => ({ type: "array", items, ...(description ? { description } : {}) });
const isoTime = (description?: string): JsonSchema => ({ type: "string", format: "date-time", ...(description ? { description } : {}) });
const binary: JsonSchema = { type: "string", contentMediaType: "application/octet-stream" };

function object(properties: Record<string, JsonSchema>, required: string[] = [], description?: string): JsonSchema {
  return { type: "object", ...(description ? { description } : {}), properties, ...(required.length > 0 ? { required } : {}) };
}

const json = (schema: JsonSchema): Record<string, MediaTypeObject> => ({ "application/json": { schema } });
const responseRef = (name: string): Reference => ({ $ref: `#/components/responses/${name}` });
const parameterRef = (name: string): Reference => ({ $ref: `#/components/parameters/${name}` });
const headerRef = (name: string): Reference => ({ $ref: `#/components/headers/${name}` });

// Every ErrorType, checked exhaustive by the compiler.
const ERROR_TYPE_FLAGS: Record<ErrorType, true> = {
  authentication: true,
  authorization: true,
  validation: true,
  resource_not_found: true,
  resource_conflict: true,
  resource_exhausted: true,
  execution_failed: true,
  timeout: true,
  rate_limited: true,
  internal_server: true,
  service_unavailable: true,
};
export const ERROR_TYPES = Object.keys(ERROR_TYPE_FLAGS) as ErrorType[];

const ENTITY_ID: JsonSchema = { type: "string", pattern: "^[A-Za-z0-9_-]{1,40}$", description: "Groups sessions of one agent or assistant" };
const FILE_VERSION: JsonSchema = { type: ["integer", "string"], description: "Version of the file in the caller's storage" };

// --- Components --------------------------------------------------------------------

const SCHEMAS: Record<string, JsonSchema> = {
  ErrorBody: object(
    {
      error: text("Human-readable message"),
      error_type: { type: "string", enum: ERROR_TYPES, description: "Kind of error" },
      details: { type: ["array", "null"], items: ref("ErrorDetail"), description: "Per-field problems, or null" },
      request_id: text("The X-Request-ID of this response"),
      timestamp: isoTime(),
    },
    ["error", "error_type", "details", "request_id", "timestamp"],
    "The body of every error response.",
  ),
  ErrorDetail: object({ field: text(), message: text(), code: text("Machine-readable code, e.g. unsupported_language, empty_code") }, [
    "field",
    "message",
    "code",
  ]),
  AuthErrorBody: {
    ...object(
      {
        error: { type: "string", enum: ["API key is required", "Invalid API key", "API key is disabled"] },
        error_type: { type: "string", const: "authentication" },
        request_id: text(),
        timestamp: isoTime(),
      },
      ["error"],
      "401: the API key is missing, wrong or disabled.",
    ),
    additionalProperties: true,
  },
  RateLimitedBody: {
    ...object(
      {
        error: { type: "string", const: "rate_limited" },
        retry_after_seconds: integer("Seconds to wait before the next attempt (as Retry-After)"),
        error_type: { type: "string", const: "rate_limited" },
        message: text("What was exceeded: a window of the key's limits, or the auth failures of the caller's address"),
        details: { type: "null" },
        request_id: text(),
        timestamp: isoTime(),
      },
      ["error", "retry_after_seconds"],
      "429: over the key's rate limit, or too many failed authentications from one address.",
    ),
    additionalProperties: true,
  },
  InputFile: object(
    {
      id: text("File id"),
      name: text("File name (a relative path for nested files)"),
      session_id: text("Session holding the file (older clients)"),
      storage_session_id: text("Session holding the file (current clients)"),
      resource_id: text(),
      kind: text(),
      version: FILE_VERSION,
      entity_id: ENTITY_ID,
    },
    ["id", "name"],
    "A file to place in /mnt/data before the run. Either session_id or storage_session_id names where it lives.",
  ),
  FileRef: object(
    {
      id: text("File id (no '.' and no '/')"),
      name: text("File name; nested files keep their relative path"),
      path: text(),
      session_id: text(),
      storage_session_id: text(),
      inherited: bool("An input file the run did not change"),
      modified_from: object({ id: text(), storage_session_id: text() }, ["id", "storage_session_id"], "The input file this one replaces"),
      kind: text(),
      resource_id: text(),
      version: FILE_VERSION,
    },
    ["id", "name", "session_id", "storage_session_id"],
    "A file the run created or changed in /mnt/data.",
  ),
  ExecRequest: object(
    {
      code: { type: "string", minLength: 1, description: "Source code (not empty)" },
      lang: { type: "string", description: `Language code: ${LANGUAGE_CODES.join(", ")}`, examples: [...LANGUAGE_CODES] },
      args: { description: "Program arguments: a string becomes [s], an array its items as strings, anything else [String(x)]" },
      session_id: text("Continue this session (its files and, for Python, interpreter state)"),
      user_id: text(),
      entity_id: ENTITY_ID,
      files: list(ref("InputFile"), "Files to place in the working directory /mnt/data"),
      timeout: { type: "integer", minimum: 1000, maximum: 300000, description: "Milliseconds, clamped to MAX_EXECUTION_TIME" },
    },
    ["code", "lang"],
  ),
  ExecResponse: object(
    {
      session_id: text(),
      stdout: text("Ends with a newline when not empty"),
      stderr: text("Includes the failure text when the program fails or times out"),
      files: list(ref("FileRef"), "Files the run created or changed, recursively"),
    },
    ["session_id", "stdout", "stderr", "files"],
  ),
  ToolDefinition: object(
    { name: text("Function (Python) or command (bash) name"), description: text(), parameters: { type: "object", description: "JSON Schema of the input" } },
    ["name", "description", "parameters"],
  ),
  ToolResult: object(
    { call_id: text("The id of the tool call answered"), result: { description: "Any JSON value" }, is_error: bool(), error_message: text() },
    ["call_id", "result", "is_error"],
  ),
  ToolCall: object({ id: text(), name: text(), input: { type: "object" } }, ["id", "name", "input"]),
  ProgrammaticRequest: object(
    {
      code: text("Program to run (omitted on a continuation)"),
      lang: { type: "string", enum: ["py", "bash"], default: "py" },
      tools: list(ref("ToolDefinition"), "Tools the program may call"),
      session_id: text(),
      user_id: text(),
      entity_id: ENTITY_ID,
      timeout: integer("Milliseconds"),
      files: list(ref("InputFile")),
      continuation_token: text("From a tool_call_required response: resume that run"),
      tool_results: list(ref("ToolResult"), "Answers to the tool calls of the paused run"),
    },
    ["tools"],
  ),
  ProgrammaticResponse: object(
    {
      status: { type: "string", enum: ["tool_call_required", "completed", "error"] },
      session_id: text(),
      continuation_token: text("Send it back with tool_results to resume (expires after 300 s)"),
      tool_calls: list(ref("ToolCall")),
      stdout: text("Everything the program printed so far, earlier rounds included"),
      stderr: text("Likewise"),
      files: list(ref("FileRef")),
      error: text(),
    },
    ["status", "session_id", "stdout", "stderr", "files"],
  ),
  CancelRequest: object({ request_id: text("The X-LibreChat-Code-Request-ID the run was started with") }, ["request_id"]),
  UploadRequest: object(
    {
      file: binary,
      files: list(binary, "Several files in one request"),
      entity_id: ENTITY_ID,
      kind: text(),
      id: text(),
      version: text(),
      filepath: text("Relative path to keep for the file"),
    },
    [],
    "Multipart form: `file` (one) or `files` (several).",
  ),
  UploadResponse: object(
    {
      message: { type: "string", const: "success" },
      session_id: text(),
      storage_session_id: text(),
      files: list(object({ fileId: text(), filename: text() }, ["fileId", "filename"])),
    },
    ["message", "session_id", "storage_session_id", "files"],
  ),
  BatchUploadRequest: object(
    {
      file: list(binary, "The field `file`, repeated"),
      entity_id: ENTITY_ID,
      kind: { type: "string", enum: ["skill", "agent", "user"] },
      read_only: { type: "string", enum: ["1", "true", "yes"], description: "Mount the files read-only in the sandbox" },
    },
    ["file"],
  ),
  BatchUploadResponse: object(
    {
      message: { type: "string", enum: ["success", "partial", "error"] },
      session_id: text(),
      storage_session_id: text(),
      files: list({
        oneOf: [
          object({ status: { type: "string", const: "success" }, fileId: text(), filename: text() }, ["status", "fileId", "filename"]),
          object({ status: { type: "string", const: "error" }, filename: text(), error: text() }, ["status", "filename", "error"]),
        ],
      }),
      succeeded: integer(),
      failed: integer(),
    },
    ["message", "session_id", "storage_session_id", "files", "succeeded", "failed"],
  ),
  FileSummaryEntry: object({ name: text("<session_id>/<fileId>"), lastModified: isoTime() }, ["name", "lastModified"], "detail=summary"),
  FileSimpleEntry: object({ id: text(), name: text(), path: text() }, ["id", "name", "path"], "detail=simple"),
  FileDetailEntry: object(
    {
      name: text("<session_id>/<fileId>: older clients take the id after the '/'"),
      id: text(),
      session_id: text(),
      storage_session_id: text(),
      content: { type: "null" },
      size: integer("Bytes"),
      lastModified: isoTime(),
      etag: text(),
      metadata: object({ "content-type": text(), "original-filename": text() }, ["content-type", "original-filename"]),
      contentType: text(),
    },
    ["name", "id", "session_id", "storage_session_id", "content", "size", "lastModified", "etag", "metadata", "contentType"],
    "detail=full (the default)",
  ),
  ObjectInfo: object({ lastModified: isoTime() }, ["lastModified"]),
  Health: object({ status: { type: "string", const: "healthy" }, version: text(), service: text() }, ["status", "version", "service"]),
  DependencyStatus: { ...object({ status: text("ok, degraded or down") }, ["status"]), additionalProperties: true },
  StartupCheck: object(
    {
      status: {
        type: "string",
        enum: ["pending", "ok", "failed", "off"],
        description: "The start-up check (SANDBOX_STARTUP_CHECK): a probe sandbox started and ran `echo probe`",
      },
      error: text("The last failed attempt's reason, in the sandbox backend's words"),
      ms: integer("How long the attempt that passed took"),
      attempts: integer(),
      retryInMs: integer("After a failure: when the next attempt starts"),
      poolWait: object(
        {
          status: { type: "string", enum: ["off", "not_started", "waiting", "reached", "timed_out"] },
          size: integer(),
          target: integer(),
          waitMs: integer("READY_WAIT_FOR_POOL_SECONDS, in ms"),
          waitedMs: integer(),
        },
        ["status", "size", "target", "waitMs"],
        "/ready waits for the warm pool to hold its start target (at most waitMs)",
      ),
    },
    ["status", "attempts", "poolWait"],
  ),
  DetailedHealth: {
    ...object(
      {
        status: { type: "string", enum: ["healthy", "degraded", "unhealthy"] },
        version: text(),
        service: text(),
        checks: object(
          {
            store: ref("DependencyStatus"),
            files: ref("DependencyStatus"),
            sandbox: ref("DependencyStatus"),
            pool: ref("DependencyStatus"),
            startup: ref("StartupCheck"),
          },
          ["store", "files", "sandbox", "pool", "startup"],
        ),
        timestamp: isoTime(),
      },
      ["status", "checks"],
    ),
    additionalProperties: true,
  },
  Language: object({ code: text(), name: text(), available: bool("The toolchain is installed and answers"), version: { type: ["string", "null"] } }, [
    "code",
    "name",
    "available",
    "version",
  ]),
  ...adminSchemas(),
};

/** The admin API's bodies: exact, as protocol/admin-bodies.ts validates them and routes/admin.ts answers. */
function adminSchemas(): Record<string, JsonSchema> {
  const windows = ["second", "minute", "hour", "day", "month"] as const;
  const limit = (window: string, nullMeans: string): JsonSchema => ({
    type: ["integer", "null"],
    minimum: 1,
    maximum: MAX_RATE_LIMIT,
    description: `Requests per ${window === "day" || window === "month" ? `${window} (UTC${window === "month" ? " calendar month" : ""})` : window}; null: ${nullMeans}`,
  });
  const limits = (nullMeans: string, description: string): JsonSchema => ({
    ...object(Object.fromEntries(windows.map((w) => [`per_${w}`, limit(w, nullMeans)])), [], description),
    additionalProperties: false,
  });
  const name: JsonSchema = { type: "string", maxLength: MAX_KEY_NAME_LENGTH, description: "A label for people (trimmed)" };
  const key = object(
    {
      key_hash: { type: "string", pattern: "^[0-9a-f]{64}$", description: "SHA-256 of the key, hex: the only form stored, and the key's id in this API" },
      name: text(),
      created_at: isoTime(),
      enabled: bool("A disabled key gets 401 `API key is disabled`"),
      rate_limits: {
        ...object(
          Object.fromEntries(windows.map((w) => [`per_${w}`, { type: ["integer", "null"], description: `Requests per ${w}; null: no limit` } as JsonSchema])),
          windows.map((w) => `per_${w}`),
        ),
      },
      usage: object(
        {
          requests: integer("Requests admitted with this key (HTTP requests, WebSocket session.open and exec)"),
          last_used_at: { type: ["string", "null"], format: "date-time" },
        },
        ["requests", "last_used_at"],
      ),
    },
    ["key_hash", "name", "created_at", "enabled", "rate_limits", "usage"],
    "A managed key (admin API or `keys` CLI).",
  );
  return {
    AdminKeyCreate: object(
      {
        name,
        enabled: { type: "boolean", default: true },
        rate_limits: limits("no limit in that window", "Windows left out get the server's RATE_LIMIT_DEFAULT_PER_* (0 there: no limit)."),
      },
      [],
      "Every field optional; an empty body creates an unnamed key with the default limits.",
    ),
    AdminKeyUpdate: object(
      {
        name,
        enabled: bool("false: the key gets 401 until enabled again"),
        rate_limits: limits("remove that window's limit", "Merged window by window: a window left out keeps its limit."),
      },
      [],
      "What is left out stays as it is.",
    ),
    AdminKey: key,
    AdminKeyCreated: {
      ...key,
      properties: {
        key: { type: "string", pattern: "^sk-[0-9A-Za-z]{48}$", description: "The key itself: in this response only, never again" },
        ...key.properties,
      },
      required: ["key", ...(key.required ?? [])],
    },
    AdminKeyDeleted: object({ deleted: { type: "boolean", const: true }, key_hash: text() }, ["deleted", "key_hash"]),
    AdminStats: object(
      {
        keys: object({ total: integer(), enabled: integer(), disabled: integer() }, ["total", "enabled", "disabled"]),
        usage: object(
          {
            requests: integer("Over every managed key"),
            last_used_at: { type: ["string", "null"], format: "date-time" },
            by_key: list(
              object({ key_hash: text(), name: text(), requests: integer(), last_used_at: { type: ["string", "null"], format: "date-time" } }, [
                "key_hash",
                "name",
                "requests",
                "last_used_at",
              ]),
            ),
          },
          ["requests", "last_used_at", "by_key"],
        ),
        sessions: { ...object({ active: integer("Live sessions on the replica that answered") }, ["active"]), type: ["object", "null"] },
        key_store: { type: "string", enum: ["local", "redis"] },
        rate_limit_enabled: bool("RATE_LIMIT_ENABLED"),
        timestamp: isoTime(),
      },
      ["keys", "usage", "sessions", "key_store", "rate_limit_enabled", "timestamp"],
    ),
  };
}

const PARAMETERS: Record<string, ParameterObject> = {
  SessionId: { name: "session_id", in: "path", required: true, schema: text() },
  FileId: { name: "fileId", in: "path", required: true, schema: text() },
  RequestId: { name: "X-Request-ID", in: "header", description: "Echoed in the response (1-128 of [A-Za-z0-9_.:-]); generated when absent", schema: text() },
};

const HEADERS: Record<string, HeaderObject> = {
  RequestId: { description: "Request id: the caller's X-Request-ID, or a generated one", schema: text() },
  RetryAfter: { description: "Seconds to wait", schema: integer() },
  RateLimitLimit: { description: "Requests allowed in the window described (the key's tightest one; when refused, the one that refused)", schema: integer() },
  RateLimitRemaining: { description: "Requests left in that window", schema: integer() },
  RateLimitReset: { description: "When that window resets, in Unix epoch seconds", schema: integer() },
};

const errorResponse = (description: string): ResponseObject => ({
  description,
  headers: { "X-Request-ID": headerRef("RequestId") },
  content: json(ref("ErrorBody")),
});

const RESPONSES: Record<string, ResponseObject> = {
  Unauthorized: { description: "Missing, wrong or disabled API key", headers: { "X-Request-ID": headerRef("RequestId") }, content: json(ref("AuthErrorBody")) },
  Forbidden: errorResponse("Not allowed (admin routes: not the master key)"),
  NotFound: errorResponse("Not found"),
  ValidationFailed: errorResponse("The body does not validate"),
  TooLarge: errorResponse("Over MAX_FILE_SIZE_MB or MAX_FILES_PER_SESSION"),
  RateLimited: {
    description: "Rate limited",
    headers: {
      "Retry-After": headerRef("RetryAfter"),
      "X-RateLimit-Limit": headerRef("RateLimitLimit"),
      "X-RateLimit-Remaining": headerRef("RateLimitRemaining"),
      "X-RateLimit-Reset": headerRef("RateLimitReset"),
      "X-Request-ID": headerRef("RequestId"),
    },
    content: json(ref("RateLimitedBody")),
  },
  InternalError: errorResponse("Unexpected server failure"),
};

// --- Operations --------------------------------------------------------------------

const PUBLIC: Record<string, string[]>[] = [];
const REQUIRED_AUTH: Record<string, string[]>[] = [{ ApiKeyHeader: [] }, { BasicAuth: [] }, { BearerAuth: [] }];
const OPTIONAL_AUTH: Record<string, string[]>[] = [{}, { ApiKeyHeader: [] }, { BasicAuth: [] }, { BearerAuth: [] }];

const reply = (description: string, schema?: JsonSchema, contentType = "application/json"): ResponseObject => ({
  description,
  headers: { "X-Request-ID": headerRef("RequestId") },
  ...(schema ? { content: { [contentType]: { schema } } } : {}),
});

/** The responses every authenticated route can give, beside its own. */
const authErrors = { "401": responseRef("Unauthorized"), "429": responseRef("RateLimited") };

interface DocumentedOperation {
  method: HttpMethod;
  path: string;
  /** "transport": upgraded by the transport before routing; not a router route. */
  servedBy: "router" | "transport";
  operation: OperationObject;
}

const WEBSOCKET: WebSocketDescription = {
  subprotocol: WS_SUBPROTOCOL,
  clientFrames: [
    { type: "auth", fields: "apiKey", meaning: "authenticate (first frame only, within 5 s, when the upgrade carried no credentials)" },
    {
      type: "session.open",
      fields: "sessionId?, lang?, entityId?, userId?, lastSeq?",
      meaning: "open or attach to a session; with lastSeq, replay what followed",
    },
    { type: "exec", fields: "id, lang, code, args?, files?, timeoutMs?, stdin?", meaning: "run code in the session's sandbox" },
    { type: "stdin", fields: "id, data?, eof?", meaning: "write to the running program's stdin (exec sent with stdin: true)" },
    { type: "signal", fields: "id, signal (SIGINT, SIGTERM, SIGKILL)", meaning: "signal the program's process group" },
    { type: "subscribe", fields: "topic (pool, executions)", meaning: "live operational events (master key only)" },
    { type: "ping", fields: "", meaning: "the server answers pong" },
    { type: "session.close", fields: "", meaning: "end the session and free its sandbox" },
  ],
  serverFrames: [
    { type: "session.ready", fields: "sessionId, seq, resumed, gap?, limits, languages", meaning: "the session is usable" },
    { type: "exec.start", fields: "id, lang", meaning: "the exec was accepted" },
    { type: "exec.stage", fields: "id, stage (compile, run)", meaning: "compiled languages report both stages" },
    { type: "out", fields: "id, stream (stdout, stderr), data, encoding?", meaning: "output as it is produced; encoding: base64 for bytes that are not UTF-8" },
    { type: "display", fields: "id, mime, data (base64), name?", meaning: "a rich result such as a plot" },
    { type: "exit", fields: "id, code, signal, reason, wallMs, cpuMs?, memBytes?, truncated, files", meaning: "always the last frame of an exec" },
    { type: "error", fields: "code, message, id?", meaning: "a request was refused or failed" },
    { type: "event", fields: "topic, kind, at, ...", meaning: "operational event (after subscribe)" },
    { type: "pong", fields: "", meaning: "answer to ping" },
  ],
  closeCodes: {
    "4001": "auth failed or missing",
    "4002": "protocol error (invalid frame)",
    "4003": "session not found or expired",
    "4008": "rate limited or over quota",
    "4009": "idle timeout",
  },
};

const OPERATIONS: readonly DocumentedOperation[] = [
  // --- Execution
  {
    method: "post",
    path: "/exec",
    servedBy: "router",
    operation: {
      operationId: "exec",
      tags: ["Execution"],
      summary: "Run code and wait for the result",
      description:
        "Session choice, in order: a live `session_id`; else the session of a referenced file of the same `user_id`; else the newest live session of the same `entity_id` and user; else a new session.\n\n" +
        "Answers 200 also when the program fails or times out (the failure text is in `stderr`). A long run streams keep-alive whitespace before the JSON body so that idle proxies do not cut it.",
      parameters: [parameterRef("RequestId")],
      requestBody: { required: true, content: json(ref("ExecRequest")) },
      responses: {
        "200": reply("The run's output and files", ref("ExecResponse")),
        "400": errorResponse("Unsupported language (`details[0].code = unsupported_language`) or empty code (`empty_code`)"),
        ...authErrors,
        "422": responseRef("ValidationFailed"),
        "503": errorResponse(
          "`service_unavailable` with `Retry-After`: over capacity, a shared store away, or no sandbox could be started (the sandbox backend, such as the Kubernetes API, is unreachable)",
        ),
      },
    },
  },
  {
    method: "post",
    path: "/exec/programmatic",
    servedBy: "router",
    operation: {
      operationId: "execProgrammatic",
      tags: ["Execution"],
      summary: "Run code that calls the caller's tools",
      description:
        "The program calls the declared tools as functions (Python: async functions, sync calls work too) or commands (bash: `tool '{\"json\": 1}'` prints the result; an error goes to stderr with status 1). " +
        "Calls made together (`asyncio.gather`, bash `&` + `wait`) come as one round. Each round pauses the run and answers `tool_call_required`; " +
        "send `continuation_token` and `tool_results` to resume it, on any replica (a token serves one follow-up). At most 50 round trips; " +
        "a round not answered within PROGRAMMATIC_PAUSE_SECONDS (300 s) fails its calls inside the program.",
      parameters: [
        parameterRef("RequestId"),
        { name: "X-LibreChat-Code-Request-ID", in: "header", description: "Names the run so that /exec/programmatic/cancel can stop it", schema: text() },
      ],
      requestBody: { required: true, content: json(ref("ProgrammaticRequest")) },
      responses: {
        "200": reply("Paused for tool calls, completed, or failed", ref("ProgrammaticResponse")),
        ...authErrors,
        "400": errorResponse(
          "Unsupported language (`unsupported_language`: py and bash only), a tool name that cannot become a function (`invalid_tool_name`), a result for a call not made (`unknown_call_id`)",
        ),
        "404": errorResponse("Unknown, expired or used continuation token, or the paused run ended (`continuation_not_found`)"),
        "422": responseRef("ValidationFailed"),
      },
    },
  },
  {
    method: "post",
    path: "/exec/programmatic/cancel",
    servedBy: "router",
    operation: {
      operationId: "execProgrammaticCancel",
      tags: ["Execution"],
      summary: "Cancel a programmatic run",
      description:
        "Cancels the run started with the header `X-LibreChat-Code-Request-ID: <request_id>`, on any replica: a paused run's calls fail, then the program gets SIGINT (the interpreter and its variables stay). `cancelled` is false for an unknown request id.",
      parameters: [parameterRef("RequestId")],
      requestBody: { required: true, content: json(ref("CancelRequest")) },
      responses: { "200": reply("Cancelled"), ...authErrors, "422": responseRef("ValidationFailed") },
    },
  },
  // --- Files
  {
    method: "post",
    path: "/upload",
    servedBy: "router",
    operation: {
      operationId: "upload",
      tags: ["Files"],
      summary: "Upload files into a new session",
      description: "Filenames are sanitised: no absolute paths, no `..`, no NUL, at most `MAX_FILENAME_LENGTH`; a nested name is kept as a relative path.",
      parameters: [parameterRef("RequestId")],
      requestBody: { required: true, content: { "multipart/form-data": { schema: ref("UploadRequest") } } },
      responses: {
        "200": reply("Stored", ref("UploadResponse")),
        ...authErrors,
        "413": responseRef("TooLarge"),
        "422": errorResponse("No file in the form"),
      },
    },
  },
  {
    method: "post",
    path: "/upload/batch",
    servedBy: "router",
    operation: {
      operationId: "uploadBatch",
      tags: ["Files"],
      summary: "Upload several files, each reported on its own",
      parameters: [parameterRef("RequestId")],
      requestBody: { required: true, content: { "multipart/form-data": { schema: ref("BatchUploadRequest") } } },
      responses: {
        "200": reply("Per-file outcome", ref("BatchUploadResponse")),
        ...authErrors,
        "413": responseRef("TooLarge"),
        "422": errorResponse("No file in the form"),
      },
    },
  },
  {
    method: "get",
    path: "/files/{session_id}",
    servedBy: "router",
    operation: {
      operationId: "listFiles",
      tags: ["Files"],
      summary: "List a session's files",
      description: "An unknown session gives `[]` (200). File ids contain no `.` and no `/`.",
      parameters: [
        parameterRef("SessionId"),
        {
          name: "detail",
          in: "query",
          description: "summary, simple, or anything else for the full listing",
          schema: { type: "string", enum: ["summary", "simple", "full"], default: "full" },
        },
        { name: "kind", in: "query", description: "Accepted (current client)", schema: text() },
        { name: "id", in: "query", description: "Accepted (current client)", schema: text() },
        { name: "version", in: "query", description: "Accepted (current client)", schema: text() },
        parameterRef("RequestId"),
      ],
      responses: {
        "200": reply("The listing, in the shape `detail` asks for", {
          oneOf: [list(ref("FileDetailEntry")), list(ref("FileSimpleEntry")), list(ref("FileSummaryEntry"))],
        }),
        ...authErrors,
      },
    },
  },
  {
    method: "get",
    path: "/download/{session_id}/{fileId}",
    servedBy: "router",
    operation: {
      operationId: "downloadFile",
      tags: ["Files"],
      summary: "Download a file",
      parameters: [parameterRef("SessionId"), parameterRef("FileId"), parameterRef("RequestId")],
      responses: {
        "200": {
          description: "The bytes, streamed",
          headers: {
            "Content-Type": { description: "Guessed from the file name", schema: text() },
            "Content-Disposition": { description: "attachment; filename=\"<ascii>\"; filename*=UTF-8''<pct-encoded>", schema: text() },
            "X-Request-ID": headerRef("RequestId"),
          },
          content: { "application/octet-stream": { schema: binary } },
        },
        ...authErrors,
        "404": responseRef("NotFound"),
      },
    },
  },
  {
    method: "delete",
    path: "/files/{session_id}/{fileId}",
    servedBy: "router",
    operation: {
      operationId: "deleteFile",
      tags: ["Files"],
      summary: "Delete a file",
      parameters: [parameterRef("SessionId"), parameterRef("FileId"), parameterRef("RequestId")],
      responses: { "200": reply("Deleted"), ...authErrors, "404": responseRef("NotFound") },
    },
  },
  {
    method: "get",
    path: "/sessions/{session_id}/objects/{fileId}",
    servedBy: "router",
    operation: {
      operationId: "getFileObject",
      tags: ["Files"],
      summary: "When a file was last modified",
      parameters: [parameterRef("SessionId"), parameterRef("FileId"), parameterRef("RequestId")],
      responses: { "200": reply("The file exists", ref("ObjectInfo")), ...authErrors, "404": responseRef("NotFound") },
    },
  },
  // --- Health and operations
  {
    method: "get",
    path: "/health",
    servedBy: "router",
    operation: {
      operationId: "health",
      tags: ["Health"],
      summary: "Liveness",
      security: PUBLIC,
      responses: { "200": reply("The process answers", ref("Health")) },
    },
  },
  {
    method: "get",
    path: "/ready",
    servedBy: "router",
    operation: {
      operationId: "ready",
      tags: ["Health"],
      summary:
        "Readiness: a sandbox starts, the warm pool holds its start target, the stores and the sandbox backend answer, and the server is not shutting down",
      security: PUBLIC,
      responses: {
        "200": reply("Ready", object({ status: { type: "string", const: "ready" } }, ["status"])),
        "503": reply("Not ready", object({ status: { type: "string", const: "not_ready" }, reason: text() }, ["status"])),
      },
    },
  },
  {
    method: "get",
    path: "/health/detailed",
    servedBy: "router",
    operation: {
      operationId: "healthDetailed",
      tags: ["Health"],
      summary: "Per-dependency status: store, files, sandbox backend, pool, start-up check",
      responses: {
        "200": {
          description: "Healthy or degraded",
          headers: {
            "X-Health-Status": { description: "`degraded` when degraded", schema: { type: "string", const: "degraded" } },
            "X-Request-ID": headerRef("RequestId"),
          },
          content: json(ref("DetailedHealth")),
        },
        ...authErrors,
        "503": reply("Unhealthy", ref("DetailedHealth")),
      },
    },
  },
  {
    method: "get",
    path: "/languages",
    servedBy: "router",
    operation: {
      operationId: "languages",
      tags: ["Health"],
      summary: "Languages this instance can run now, with versions",
      description: "Whether a key is required is the operator's choice.",
      security: OPTIONAL_AUTH,
      responses: { "200": reply("One entry per language", list(ref("Language"))) },
    },
  },
  {
    method: "get",
    path: "/metrics",
    servedBy: "router",
    operation: {
      operationId: "metrics",
      tags: ["Health"],
      summary: "Prometheus metrics",
      description:
        "This replica's metrics in the Prometheus text format (prom-client): executions by language and exit reason, exec latency, HTTP requests by route and status, WebSocket connections, live sessions and sandboxes, streamed bytes, the sandbox pool, process metrics. " +
        "Who may read it follows METRICS_AUTH: any valid API key (api_key, the default), the master key only (master), or anyone (none); METRICS_ENABLED=false removes the route.",
      responses: { "200": reply("Prometheus text format", text(), "text/plain; version=0.0.4; charset=utf-8"), ...authErrors },
    },
  },
  // --- Admin (master key)
  ...adminOperations(),
  // --- WebSocket
  {
    method: "get",
    path: "/ws",
    servedBy: "transport",
    operation: {
      operationId: "websocket",
      tags: ["WebSocket"],
      summary: `Live execution over WebSocket (subprotocol ${WS_SUBPROTOCOL})`,
      description:
        "Upgrade to a WebSocket with `Sec-WebSocket-Protocol: " +
        WS_SUBPROTOCOL +
        '`. Credentials as for HTTP on the upgrade request, or, for browsers, a first frame `{"type":"auth","apiKey":"..."}` within 5 s. ' +
        "Text frames carry one JSON object each; every server frame of a session has `sessionId` and `seq` (+1 per frame, across reconnects). " +
        "A session opened here is the session HTTP `/exec` sees with that `session_id`. The frames are listed below; docs/PROTOCOL.md has the details.",
      security: OPTIONAL_AUTH,
      parameters: [
        { name: "Upgrade", in: "header", required: true, schema: { type: "string", const: "websocket" } },
        { name: "Sec-WebSocket-Protocol", in: "header", schema: { type: "string", const: WS_SUBPROTOCOL } },
      ],
      responses: { "101": { description: "Switching protocols: the WebSocket is open" } },
      "x-websocket": WEBSOCKET,
    },
  },
  // --- Documentation
  ...(
    [
      ["/openapi.json", "openapi", "This document", "application/json"],
      ["/docs", "docs", "This document as a readable page", "text/html"],
      ["/redoc", "redoc", "Same page as /docs (the path the reference servers use)", "text/html"],
    ] as const
  ).map(
    ([path, operationId, summary, contentType]): DocumentedOperation => ({
      method: "get",
      path,
      servedBy: "router",
      operation: {
        operationId,
        tags: ["Documentation"],
        summary,
        description: "Served when ENABLE_DOCS is true.",
        security: PUBLIC,
        responses: { "200": reply(summary, contentType === "text/html" ? text() : { type: "object" }, contentType) },
      },
    }),
  ),
];

function adminOperations(): DocumentedOperation[] {
  const admin = (method: HttpMethod, path: string, operationId: string, summary: string, extra: Partial<OperationObject>): DocumentedOperation => ({
    method,
    path,
    servedBy: "router",
    operation: {
      operationId,
      tags: ["Admin"],
      summary,
      description:
        "Requires MASTER_API_KEY (as API key, Basic or Bearer), whatever AUTH_ENABLED says: 401 without a key, 403 with any other key, " +
        "and 403 with `details[0].code = master_key_not_configured` when the server has no MASTER_API_KEY. " +
        "Wrong keys count towards the auth-failure limiter of the caller's address (429).",
      ...extra,
      responses: {
        ...extra.responses,
        ...authErrors,
        "403": responseRef("Forbidden"),
      },
    },
  });
  const keyHash: ParameterObject = {
    name: "key_hash",
    in: "path",
    required: true,
    description: "SHA-256 of the key, as listed (not the key itself: 422)",
    schema: { type: "string", pattern: "^[0-9a-f]{64}$" },
  };
  const cacheNote = "This replica applies the change at once; other replicas within API_KEY_CACHE_TTL.";
  return [
    admin("get", "/api/v1/admin/keys", "adminListKeys", "List managed API keys", {
      responses: { "200": reply("The keys, oldest first", list(ref("AdminKey"))) },
    }),
    admin("post", "/api/v1/admin/keys", "adminCreateKey", "Create an API key (sk-<random>, shown once)", {
      requestBody: { required: false, content: json(ref("AdminKeyCreate")) },
      responses: { "201": reply("The new key, with the key itself (this once)", ref("AdminKeyCreated")), "422": responseRef("ValidationFailed") },
    }),
    admin("patch", "/api/v1/admin/keys/{key_hash}", "adminUpdateKey", "Change a key (name, limits, enabled)", {
      parameters: [keyHash],
      requestBody: { required: true, content: json(ref("AdminKeyUpdate")) },
      responses: { "200": reply(`The updated key. ${cacheNote}`, ref("AdminKey")), "404": responseRef("NotFound"), "422": responseRef("ValidationFailed") },
    }),
    admin("delete", "/api/v1/admin/keys/{key_hash}", "adminDeleteKey", "Revoke a key for good", {
      parameters: [keyHash],
      responses: { "200": reply(`Deleted. ${cacheNote}`, ref("AdminKeyDeleted")), "404": responseRef("NotFound"), "422": responseRef("ValidationFailed") },
    }),
    admin("get", "/api/v1/admin/stats", "adminStats", "Keys, usage and sessions", {
      responses: { "200": reply("Statistics", ref("AdminStats")) },
    }),
  ];
}

/** Every documented (method, path), paths in OpenAPI form; `servedBy: "transport"` is not a router route. */
export const DOCUMENTED_ROUTES: readonly { method: string; path: string; servedBy: "router" | "transport" }[] = OPERATIONS.map(
  ({ method, path, servedBy }) => ({
    method: method.toUpperCase(),
    path,
    servedBy,
  }),
);

const TAGS = [
  { name: "Execution", description: "Run code: one-shot, or with calls back to the caller's tools." },
  { name: "Files", description: "Session files: upload, list, download, delete." },
  { name: "Health", description: "Liveness, readiness, dependencies, languages, metrics." },
  { name: "Admin", description: "Managed API keys and statistics (master key)." },
  { name: "WebSocket", description: "The real-time protocol: output streamed while the program runs, stdin, signals, resume." },
  { name: "Documentation", description: "This document." },
];

// --- The document ------------------------------------------------------------------

export interface OpenApiOptions {
  version: string;
  /** The API key header (API_KEY_HEADER), as configured. */
  keyHeader: string;
  /** routeKey()s of what the server answers; every other operation gets `x-implemented: false`. */
  implemented: ReadonlySet<string>;
  title?: string;
}

export function buildOpenApi({ version, keyHeader, implemented, title = "Code Interpreter API" }: OpenApiOptions): OpenApiDocument {
  const paths: OpenApiDocument["paths"] = {};
  for (const { method, path, operation } of OPERATIONS) {
    const item = paths[path] ?? {};
    paths[path] = item;
    item[method] = implemented.has(routeKey(method, path)) ? operation : { ...operation, "x-implemented": false };
  }
  // Deep copy: callers may serialise or change the document without touching the shared tables.
  return structuredClone({
    openapi: "3.1.0",
    info: {
      title,
      version,
      description:
        "Code execution service, a drop-in replacement for the LibreChat Code Interpreter API, plus a WebSocket protocol that streams output live.\n\n" +
        `**Authentication**, in this order: the \`${keyHeader}\` header; \`Authorization: Basic base64(<key>:)\` (key in the user part, or the password part when the user part is empty); \`Authorization: Bearer <key>\`. ` +
        "AUTH_ENABLED=false turns auth off for every non-admin route; admin routes always need MASTER_API_KEY.\n\n" +
        "**Rate limits**: a managed key (admin API) may have limits per second, minute, hour, day and month; its responses carry `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (epoch seconds), and over a limit it gets 429 with `Retry-After`. " +
        "Repeated wrong keys from one address get 429 too (AUTH_FAILURE_LIMIT per AUTH_FAILURE_WINDOW).\n\n" +
        "**Errors** share one body: `error`, `error_type`, `details`, `request_id`, `timestamp`. Every response carries `X-Request-ID` (the caller's when it sent a valid one).\n\n" +
        "Operations marked `x-implemented: false` are part of the contract but not served by this version yet.",
    },
    tags: TAGS,
    security: REQUIRED_AUTH,
    paths,
    components: {
      schemas: SCHEMAS,
      parameters: PARAMETERS,
      headers: HEADERS,
      responses: RESPONSES,
      securitySchemes: {
        ApiKeyHeader: { type: "apiKey", in: "header", name: keyHeader, description: "The API key (API_KEY, API_KEYS or a managed key)" },
        BasicAuth: { type: "http", scheme: "basic", description: "The key as the user name with an empty password (or as the password with an empty user)" },
        BearerAuth: { type: "http", scheme: "bearer", description: "The key as a bearer token" },
      },
    },
  } satisfies OpenApiDocument);
}
