/**
 * The two generations of the real LibreChat code-execution client, loaded from
 * the npm packages installed as devDependencies, plus the few HTTP calls that the
 * LibreChat *app* (not the agents package) makes to the Code API: uploads,
 * priming lookups and downloads. The packages do not contain those; they are
 * replicated here with plain fetch/FormData, request for request, from the app's
 * sources (see docs/LIBRECHAT-CLIENTS.md for the exact references).
 *
 * - current: `librechat-agents-3` = @librechat/agents 3.9.x, ESM main entry.
 * - legacy:  `librechat-agents-2` = @librechat/agents 2.4.x, its CodeExecutor
 *   module imported directly (the main entry pulls optional provider SDKs).
 *
 * Typed loosely on purpose: the packages' own types drag in two LangChain
 * generations; the tests only need the few shapes declared below.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { REPO_ROOT } from "./server-process.ts";

export const LIBRECHAT_USER_AGENT = "LibreChat/1.0";

const CURRENT_DIR = join(REPO_ROOT, "node_modules/librechat-agents-3");
const LEGACY_DIR = join(REPO_ROOT, "node_modules/librechat-agents-2");
const LEGACY_CODE_EXECUTOR = join(LEGACY_DIR, "dist/esm/tools/CodeExecutor.mjs");

function packageVersion(dir: string): string {
  return (JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { version: string }).version;
}

export const CURRENT_CLIENT_VERSION = packageVersion(CURRENT_DIR);
export const LEGACY_CLIENT_VERSION = packageVersion(LEGACY_DIR);

// ---------------------------------------------------------------- shapes the tests use

/** A file reference as the Code API returns it in `files` of an exec response. */
export interface FileRefLike {
  id: string;
  name: string;
  path?: string;
  session_id?: string;
  storage_session_id?: string;
  resource_id?: string;
  kind?: string;
  version?: number;
  inherited?: boolean;
}

/** The artifact the code tools return next to their text (content_and_artifact). */
export interface ExecArtifact {
  session_id?: string;
  files?: FileRefLike[];
  [key: string]: unknown;
}

export interface ToolResult {
  /** The text the model would see. */
  content: string;
  artifact: ExecArtifact | undefined;
}

/** A LangChain structured tool, as both generations build it. */
export interface CodeTool {
  name: string;
  invoke(input: unknown, config?: unknown): Promise<unknown>;
}

/** `CodeEnvFile` of agents 3.x: how the current client references a stored file. */
export interface CodeEnvFile {
  id: string;
  resource_id: string;
  name: string;
  storage_session_id: string;
  kind: "user" | "agent" | "skill";
  version?: number;
}

/** `{id, session_id, name}`: how the legacy client references a stored file. */
export interface LegacyFileRef {
  id: string;
  session_id: string;
  name: string;
}

export type AuthHeaders = Record<string, string>;

export interface CurrentClient {
  version: string;
  /** `createCodeExecutionTool(params)` of agents 3.9 (execute_code). */
  createCodeExecutionTool(params: Record<string, unknown>): CodeTool;
  /** `createProgrammaticToolCallingTool(params)` of agents 3.9 (POST /exec/programmatic). */
  createProgrammaticToolCallingTool(params: Record<string, unknown>): CodeTool;
  /** `createBashExecutionTool(params)` of agents 3.9 (bash_tool). */
  createBashExecutionTool(params: Record<string, unknown>): CodeTool;
  /** `createBashProgrammaticToolCallingTool(params)` of agents 3.9 (run_tools_with_bash: POST /exec/programmatic with lang bash). */
  createBashProgrammaticToolCallingTool(params: Record<string, unknown>): CodeTool;
  /** `fetchSessionFiles(baseUrl, sessionId, scope, authHeaders)` of agents 3.9 (GET /files/{id}?detail=full&kind=&id=). */
  fetchSessionFiles(
    baseUrl: string,
    sessionId: string,
    scope: { kind: string; id: string; version?: number },
    authHeaders?: AuthHeaders,
  ): Promise<CodeEnvFile[]>;
}

export interface LegacyClient {
  version: string;
  baseUrl: string;
  /** `createCodeExecutionTool(params)` of agents 2.4: params are spread into every /exec body. */
  createCodeExecutionTool(params: Record<string, unknown>): CodeTool;
}

// ---------------------------------------------------------------- loading

let current: Promise<CurrentClient> | undefined;

/** The current client, from the package's ESM main entry (what LibreChat imports). */
export function loadCurrentClient(): Promise<CurrentClient> {
  current ??= import("librechat-agents-3").then((loaded) => {
    const mod = loaded as unknown as Omit<CurrentClient, "version">;
    for (const name of [
      "createCodeExecutionTool",
      "createProgrammaticToolCallingTool",
      "createBashExecutionTool",
      "createBashProgrammaticToolCallingTool",
      "fetchSessionFiles",
    ] as const) {
      if (typeof mod[name] !== "function") throw new Error(`@librechat/agents ${CURRENT_CLIENT_VERSION} does not export ${name}`);
    }
    return {
      version: CURRENT_CLIENT_VERSION,
      createCodeExecutionTool: mod.createCodeExecutionTool,
      createProgrammaticToolCallingTool: mod.createProgrammaticToolCallingTool,
      createBashExecutionTool: mod.createBashExecutionTool,
      createBashProgrammaticToolCallingTool: mod.createBashProgrammaticToolCallingTool,
      fetchSessionFiles: mod.fetchSessionFiles,
    };
  });
  return current;
}

/**
 * The legacy client bound to one base URL. agents 2.4 reads LIBRECHAT_CODE_BASEURL
 * once, when its module is evaluated (`const EXEC_ENDPOINT = ...`), so every base
 * URL gets its own module instance (a distinct import URL).
 */
export async function loadLegacyClient(baseUrl: string): Promise<LegacyClient> {
  const previous = process.env.LIBRECHAT_CODE_BASEURL;
  process.env.LIBRECHAT_CODE_BASEURL = baseUrl;
  try {
    const url = `${pathToFileURL(LEGACY_CODE_EXECUTOR).href}?base=${encodeURIComponent(baseUrl)}`;
    const mod = (await import(/* @vite-ignore */ url)) as { createCodeExecutionTool?: LegacyClient["createCodeExecutionTool"] };
    if (typeof mod.createCodeExecutionTool !== "function") throw new Error(`@librechat/agents ${LEGACY_CLIENT_VERSION}: no createCodeExecutionTool`);
    return { version: LEGACY_CLIENT_VERSION, baseUrl, createCodeExecutionTool: mod.createCodeExecutionTool };
  } finally {
    if (previous === undefined) delete process.env.LIBRECHAT_CODE_BASEURL;
    else process.env.LIBRECHAT_CODE_BASEURL = previous;
  }
}

// ---------------------------------------------------------------- invoking a tool

/**
 * Invoke a code tool the way LangGraph's ToolNode does: with a ToolCall, so that
 * the tool returns a ToolMessage with `content` and `artifact`, and so that extra
 * fields of the call (`session_id`, `_injected_files`) reach the tool as
 * `config.toolCall`.
 */
export async function invokeTool(tool: CodeTool, args: Record<string, unknown>, extra: Record<string, unknown> = {}, config?: unknown): Promise<ToolResult> {
  const message = (await tool.invoke({ type: "tool_call", id: `call_${randomUUID().replaceAll("-", "")}`, name: tool.name, args, ...extra }, config)) as {
    content?: unknown;
    artifact?: ExecArtifact;
  };
  const content = typeof message.content === "string" ? message.content : JSON.stringify(message.content);
  return { content, artifact: message.artifact };
}

/**
 * What ToolNode of agents 3.x does around code tools, reduced to the part that
 * reaches the wire: it keeps one code session per run (`Graph.sessions`), seeded by
 * the app with the primed files (`seedCodeFilesIntoSessions`), updated from each
 * result's artifact (`updateCodeSession`), and injects `session_id` and
 * `_injected_files` (`toInjectedFileRef`) into every code tool call.
 */
export class CodeSessionTracker {
  sessionId: string | undefined;
  files: FileRefLike[] = [];

  /** The app seeding the run with primed files: the representative id is the first file's storage session. */
  seed(files: CodeEnvFile[]): void {
    for (const file of files) {
      if (!this.files.some((known) => known.id === file.id && known.storage_session_id === file.storage_session_id)) this.files.push({ ...file });
    }
    this.sessionId ??= files[0]?.storage_session_id;
  }

  /** The extra ToolCall fields ToolNode injects (nothing before the first session exists). */
  injection(): Record<string, unknown> {
    if (this.sessionId === undefined || this.sessionId === "") return {};
    const execSessionId = this.sessionId;
    if (this.files.length === 0) return { session_id: execSessionId };
    const injected = this.files.map((file) => {
      const base = {
        id: file.id,
        resource_id: file.resource_id ?? file.id,
        name: file.name,
        storage_session_id: file.storage_session_id ?? execSessionId,
      };
      if (file.kind === "skill" && file.version !== undefined) return { ...base, kind: "skill", version: file.version };
      return { ...base, kind: file.kind === "agent" ? "agent" : "user" };
    });
    return { session_id: execSessionId, _injected_files: injected };
  }

  /** Fold a result's artifact into the session: new and changed files replace same-named ones. */
  update(artifact: ExecArtifact | undefined): void {
    const execSessionId = artifact?.session_id;
    if (typeof execSessionId !== "string" || execSessionId === "") return;
    for (const file of artifact?.files ?? []) {
      if (file.inherited === true && this.files.some((known) => known.name === file.name)) continue;
      const withSession = { ...file, storage_session_id: file.storage_session_id ?? execSessionId };
      const previous = this.files.findIndex((known) => known.name === file.name);
      if (previous >= 0) this.files[previous] = { ...this.files[previous], ...withSession };
      else this.files.push(withSession);
    }
    this.sessionId = execSessionId;
  }
}

// ---------------------------------------------------------------- the LibreChat app's own Code API calls

/** A LibreChat user id (a MongoDB ObjectId: 24 hex digits). */
export function librechatUserId(): string {
  return randomBytes(12).toString("hex");
}

/** A LibreChat agent id (`agent_` + a nanoid of 21), used as `entity_id` by the legacy app. */
export function librechatAgentId(): string {
  return `agent_${randomBytes(16).toString("base64url").slice(0, 21)}`;
}

async function failure(what: string, response: Response): Promise<Error> {
  const text = await response.text().catch(() => "");
  return new Error(`${what} -> HTTP ${response.status}: ${text.slice(0, 300)}`);
}

async function readJson(what: string, response: Response): Promise<unknown> {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`${what} -> HTTP ${response.status}, not JSON: ${text.slice(0, 300)}`);
  }
}

/**
 * Legacy app (agents 2.4 era), api/server/services/Files/Code/crud.js `uploadCodeEnvFile`:
 * POST {base}/upload, multipart `entity_id`? then `file`; headers User-Agent, User-Id,
 * X-API-Key. Returns the app's `fileIdentifier`: `<session_id>/<fileId>[?entity_id=<id>]`.
 */
export async function legacyUploadCodeEnvFile(options: {
  baseUrl: string;
  apiKey: string;
  userId: string;
  entityId?: string;
  filename: string;
  data: Buffer;
  contentType: string;
}): Promise<{ fileIdentifier: string; sessionId: string; fileId: string }> {
  const form = new FormData();
  if (options.entityId) form.append("entity_id", options.entityId);
  form.append("file", new Blob([new Uint8Array(options.data)], { type: options.contentType }), options.filename);
  const response = await fetch(`${options.baseUrl}/upload`, {
    method: "POST",
    headers: { "User-Agent": LIBRECHAT_USER_AGENT, "User-Id": options.userId, "X-API-Key": options.apiKey },
    body: form,
  });
  if (!response.ok) throw await failure("POST /upload", response);
  const result = (await readJson("POST /upload", response)) as { message?: string; session_id?: string; files?: Array<{ fileId?: string; filename?: string }> };
  if (result.message !== "success") throw new Error(`POST /upload: message is ${JSON.stringify(result.message)}, not "success"`);
  const sessionId = result.session_id;
  const fileId = result.files?.[0]?.fileId;
  if (typeof sessionId !== "string" || typeof fileId !== "string") throw new Error(`POST /upload: no session_id/files[0].fileId in ${JSON.stringify(result)}`);
  const fileIdentifier = `${sessionId}/${fileId}`;
  return { fileIdentifier: options.entityId ? `${fileIdentifier}?entity_id=${options.entityId}` : fileIdentifier, sessionId, fileId };
}

/**
 * Legacy app, api/server/services/Files/Code/process.js `getSessionInfo`: GET
 * {base}/files/<session_id>?detail=summary[&entity_id=...] and the `lastModified`
 * of the entry whose `name` starts with `<session_id>/<fileId>`. `primeFiles`
 * re-uploads the file when this is missing or 23 hours old.
 */
export async function legacyGetSessionInfo(options: { baseUrl: string; apiKey: string; fileIdentifier: string }): Promise<string | undefined> {
  const [path = "", queryString] = options.fileIdentifier.split("?");
  const sessionId = path.split("/")[0] ?? "";
  const params = new URLSearchParams({ detail: "summary", ...Object.fromEntries(new URLSearchParams(queryString ?? "")) });
  const response = await fetch(`${options.baseUrl}/files/${sessionId}?${params}`, {
    headers: { "User-Agent": LIBRECHAT_USER_AGENT, "X-API-Key": options.apiKey },
  });
  if (!response.ok) throw await failure(`GET /files/${sessionId}?${params}`, response);
  const listing = (await readJson("GET /files?detail=summary", response)) as Array<{ name?: string; lastModified?: string }>;
  if (!Array.isArray(listing)) throw new Error(`GET /files?detail=summary: not an array: ${JSON.stringify(listing)}`);
  return listing.find((file) => typeof file.name === "string" && file.name.startsWith(path))?.lastModified;
}

/** Legacy app, process.js `checkIfActive`: uploaded less than 23 hours ago. */
export function legacyIsActive(lastModified: string): boolean {
  return (Date.now() - new Date(lastModified).getTime()) / 3_600_000 < 23;
}

/** Legacy app, process.js `primeFiles`: the `{id, session_id, name}` ref passed to createCodeExecutionTool. */
export function legacyFileRef(fileIdentifier: string, filename: string): LegacyFileRef {
  const [path = ""] = fileIdentifier.split("?");
  const [sessionId = "", id = ""] = path.split("/");
  return { id, session_id: sessionId, name: filename };
}

/**
 * Legacy app, process.js `processCodeOutput`: GET {base}/download/<session_id>/<id>
 * (the exec response's top-level session_id and the file's id), X-API-Key, bytes.
 */
export async function legacyDownloadCodeOutput(options: { baseUrl: string; apiKey: string; sessionId: string; fileId: string }): Promise<Buffer> {
  const response = await fetch(`${options.baseUrl}/download/${options.sessionId}/${options.fileId}`, {
    headers: { "User-Agent": LIBRECHAT_USER_AGENT, "X-API-Key": options.apiKey },
  });
  if (!response.ok) throw await failure(`GET /download/${options.sessionId}/${options.fileId}`, response);
  return Buffer.from(await response.arrayBuffer());
}

/**
 * Current app, api/server/services/Files/Code/crud.js `batchUploadCodeEnvFiles`:
 * POST {base}/upload/batch, multipart `kind`, `id`, `version`? (appendCodeEnvFileIdentity),
 * `read_only`?, then one `file` part per file; headers User-Agent, User-Id and the
 * app's Code API auth headers (none unless JWT auth is configured).
 */
export async function batchUploadCodeEnvFiles(options: {
  baseUrl: string;
  authHeaders: AuthHeaders;
  userId: string;
  kind: "user" | "agent" | "skill";
  id: string;
  version?: number;
  readOnly?: boolean;
  files: Array<{ filename: string; data: Buffer; contentType: string }>;
}): Promise<{ storageSessionId: string; files: Array<{ fileId: string; filename: string }> }> {
  const form = new FormData();
  form.append("kind", options.kind);
  form.append("id", options.id);
  if (options.version !== undefined) form.append("version", String(options.version));
  if (options.readOnly) form.append("read_only", "true");
  for (const file of options.files) form.append("file", new Blob([new Uint8Array(file.data)], { type: file.contentType }), file.filename);
  const response = await fetch(`${options.baseUrl}/upload/batch`, {
    method: "POST",
    headers: { "User-Agent": LIBRECHAT_USER_AGENT, "User-Id": options.userId, ...options.authHeaders },
    body: form,
  });
  if (!response.ok) throw await failure("POST /upload/batch", response);
  const result = (await readJson("POST /upload/batch", response)) as {
    message?: string;
    storage_session_id?: string;
    files?: Array<{ status?: string; fileId?: string; filename?: string; error?: string }>;
    failed?: number;
  };
  if (!result || typeof result !== "object" || !result.storage_session_id || !Array.isArray(result.files)) {
    throw new Error(`Unexpected batch upload response: ${JSON.stringify(result).slice(0, 200)}`);
  }
  if (result.message === "error") throw new Error(`All files in batch upload failed: ${JSON.stringify(result.files)}`);
  const files = result.files
    .filter((file) => file.status === "success" && file.fileId)
    .map((file) => ({ fileId: file.fileId as string, filename: file.filename as string }));
  return { storageSessionId: result.storage_session_id, files };
}

/**
 * Current app: the `CodeEnvFile` that primeCodeFiles builds from a stored file's
 * `codeEnvRef` ({kind, id, storage_session_id, file_id}) and hands to the tool
 * (`files` param) and to the run's code session (`seedCodeFilesIntoSessions`).
 */
export function codeEnvFile(options: { fileId: string; filename: string; storageSessionId: string; kind: "user" | "agent"; resourceId: string }): CodeEnvFile {
  return { id: options.fileId, resource_id: options.resourceId, name: options.filename, storage_session_id: options.storageSessionId, kind: options.kind };
}

/**
 * Current app, process.js `processCodeOutput` (via crud.js `getCodeOutputDownloadStream`
 * for the UI route): GET {base}/download/<storage session>/<id>?kind=user&id=<userId>,
 * User-Agent and the auth headers. callbacks.js stamps the file's
 * `storage_session_id` as the session to download from.
 */
export async function downloadCodeOutput(options: {
  baseUrl: string;
  authHeaders: AuthHeaders;
  sessionId: string;
  fileId: string;
  userId: string;
}): Promise<Buffer> {
  const query = new URLSearchParams({ kind: "user", id: options.userId });
  const response = await fetch(`${options.baseUrl}/download/${options.sessionId}/${options.fileId}?${query}`, {
    headers: { "User-Agent": LIBRECHAT_USER_AGENT, ...options.authHeaders },
  });
  if (!response.ok) throw await failure(`GET /download/${options.sessionId}/${options.fileId}?${query}`, response);
  return Buffer.from(await response.arrayBuffer());
}
