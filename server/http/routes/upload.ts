import * as v from "valibot";
import { EntityIdSchema } from "../../../protocol/common.ts";
import { callerUserId } from "../../auth/api-keys.ts";
import { sanitizeFileName } from "../../files/file-names.ts";
import type { FileMetaChanges, StoredFile } from "../../files/file-store.ts";
import type { SessionManager } from "../../sessions/session-manager.ts";
import { RequestAbortedError } from "../../transport/types.ts";
import { type ErrorDetail, sendError, sendJson } from "../errors.ts";
import { MultipartError, type MultipartFile, readMultipart } from "../multipart.ts";
import type { RouteContext, RouteHandler, Router } from "../router.ts";

export interface UploadRouteDeps {
  sessions: SessionManager;
  filenameLength: number;
  authenticated: (handler: RouteHandler) => RouteHandler;
  /** A refused upload (size, count, name), for the security log. */
  onRefused: (reason: string, remoteAddress: string) => void;
}

type FileOutcome = { ok: true; file: StoredFile } | { ok: false; filename: string; error: string; status: 413 | 400 };

const TRUE_VALUES = new Set(["1", "true", "yes", "on"]);

/**
 * POST /upload and POST /upload/batch: multipart bodies streamed into a new
 * session's file store. /upload is all or nothing; /upload/batch reports each
 * file and keeps the good ones.
 */
export function addUploadRoutes(router: Router, deps: UploadRouteDeps): void {
  router.add(
    "POST",
    "/upload",
    deps.authenticated((ctx) => handleUpload(ctx, deps, false)),
  );
  router.add(
    "POST",
    "/upload/batch",
    deps.authenticated((ctx) => handleUpload(ctx, deps, true)),
  );
}

async function handleUpload(ctx: RouteContext, deps: UploadRouteDeps, batch: boolean): Promise<void> {
  const { req, res, requestId } = ctx;
  const { sessions } = deps;
  const limits = sessions.fileLimits;
  const fields = new Map<string, string>();
  // One slot per file part, in the order of the parts (they are stored concurrently and finish in any order).
  const outcomes: FileOutcome[] = [];
  let fileParts = 0;
  let sessionId: string | undefined;
  let creating: Promise<string> | undefined;
  let totalBytes = 0;

  // busboy moves on to the next part while one is still being written: the first part creates the session, the others wait for it.
  const sessionFor = (): Promise<string> => {
    creating ??= (async () => {
      const userId = callerUserId(ctx.principal!, fields.get("user_id"));
      const entityId = validEntity(fields.get("entity_id"));
      const session = await sessions.create({ principal: ctx.principal!, ...(userId ? { userId } : {}) }, { ...(entityId ? { entityId } : {}) });
      sessionId = session.id;
      return session.id;
    })();
    return creating;
  };

  const storeFile = async (part: MultipartFile): Promise<void> => {
    const slot = fileParts++;
    // A `filepath` field names the nested path of the file that follows it.
    const wanted = fields.get("filepath") || part.filename;
    fields.delete("filepath");
    const name = sanitizeFileName(wanted, deps.filenameLength);
    if (!name.ok) {
      part.stream.resume();
      outcomes[slot] = { ok: false, filename: wanted, error: name.reason, status: 400 };
      return;
    }
    const id = await sessionFor();
    const readOnly = TRUE_VALUES.has((fields.get("read_only") ?? "").toLowerCase());
    const stored = await sessions.files.put(
      id,
      {
        name: name.name,
        readOnly,
        generated: false,
        ...(part.mimeType && part.mimeType !== "application/octet-stream" ? { contentType: part.mimeType } : {}),
        ...metaFromFields(fields),
      },
      part.stream,
      limits.fileBytes + 1,
    );
    if (part.stream.truncated || stored.size > limits.fileBytes) {
      await sessions.files.delete(id, stored.id);
      outcomes[slot] = { ok: false, filename: name.name, error: `file exceeds the ${limits.fileBytes}-byte limit (MAX_FILE_SIZE_MB)`, status: 413 };
      return;
    }
    if (totalBytes + stored.size > limits.totalBytes) {
      await sessions.files.delete(id, stored.id);
      outcomes[slot] = { ok: false, filename: name.name, error: `the session's files would exceed ${limits.totalBytes} bytes`, status: 413 };
      return;
    }
    totalBytes += stored.size;
    outcomes[slot] = { ok: true, file: stored };
  };

  let tooManyFiles = false;
  try {
    ({ tooManyFiles } = await readMultipart(
      req,
      { file: storeFile, field: (name, value) => fields.set(name, value) },
      // A file part past MAX_FILES_PER_SESSION is skipped and reported (tooManyFiles): the request is refused below.
      { fileBytes: limits.fileBytes + 1, files: limits.filesPerSession },
    ));
  } catch (error) {
    // Every part handler has finished (readMultipart waits for them), so the session, if any, exists by now.
    if (sessionId) await sessions.delete(sessionId);
    if (error instanceof RequestAbortedError) return;
    if (error instanceof MultipartError && error.kind === "not_multipart") {
      sendError(res, requestId, 422, "validation", "No file in the request: expected a multipart/form-data body", [
        { field: "file", message: error.message, code: "missing" },
      ]);
      return;
    }
    if (error instanceof MultipartError) {
      sendError(res, requestId, 400, "validation", error.message, [{ field: "(body)", message: error.message, code: "invalid_multipart" }]);
      return;
    }
    throw error;
  }

  // Fields sent after the files still apply to them.
  const late = metaFromFields(fields);
  const readOnlyLate = TRUE_VALUES.has((fields.get("read_only") ?? "").toLowerCase());
  for (const outcome of outcomes) {
    if (!outcome.ok || !sessionId) continue;
    const changes: FileMetaChanges = { ...late, ...(readOnlyLate && !outcome.file.readOnly ? { readOnly: true } : {}) };
    if (Object.keys(changes).length > 0) await sessions.files.update(sessionId, outcome.file.id, changes);
  }
  const entityId = validEntity(fields.get("entity_id"));
  if (sessionId && entityId) {
    const record = await sessions.store.get(sessionId);
    if (record && record.entityId !== entityId) await sessions.store.put({ ...record, entityId });
  }

  const failed = outcomes.filter((o): o is Extract<FileOutcome, { ok: false }> => !o.ok);
  const stored = outcomes.filter((o): o is Extract<FileOutcome, { ok: true }> => o.ok);
  if (tooManyFiles) {
    if (sessionId) await sessions.delete(sessionId);
    deps.onRefused("too_many_files", req.remoteAddress);
    sendError(res, requestId, 413, "resource_exhausted", `At most ${limits.filesPerSession} files per session (MAX_FILES_PER_SESSION)`);
    return;
  }
  if (outcomes.length === 0) {
    if (sessionId) await sessions.delete(sessionId);
    sendError(res, requestId, 422, "validation", "No file in the request", [{ field: "file", message: "a file part is required", code: "missing" }]);
    return;
  }

  if (!batch) {
    if (failed.length > 0) {
      // All or nothing: what this request stored goes with its session.
      if (sessionId) await sessions.delete(sessionId);
      const first = failed[0]!;
      deps.onRefused(first.status === 413 ? "file_too_large" : "invalid_filename", req.remoteAddress);
      const details: ErrorDetail[] = failed.map((f) => ({
        field: "file",
        message: `${f.filename}: ${f.error}`,
        code: f.status === 413 ? "file_too_large" : "invalid_filename",
      }));
      sendError(res, requestId, first.status, first.status === 413 ? "resource_exhausted" : "validation", `${first.filename}: ${first.error}`, details);
      return;
    }
    sendJson(res, 200, {
      message: "success",
      session_id: sessionId,
      storage_session_id: sessionId,
      files: stored.map((o) => ({ fileId: o.file.id, filename: o.file.name })),
    });
    return;
  }

  if (failed.length > 0) deps.onRefused("batch_files_refused", req.remoteAddress);
  if (stored.length === 0 && sessionId) await sessions.delete(sessionId);
  sendJson(res, 200, {
    message: failed.length === 0 ? "success" : stored.length === 0 ? "error" : "partial",
    session_id: stored.length > 0 ? sessionId : null,
    storage_session_id: stored.length > 0 ? sessionId : null,
    files: outcomes.map((o) =>
      o.ok ? { status: "success", fileId: o.file.id, filename: o.file.name } : { status: "error", filename: o.filename, error: o.error },
    ),
    succeeded: stored.length,
    failed: failed.length,
  });
}

function validEntity(value: string | undefined): string | undefined {
  return value && v.is(EntityIdSchema, value) ? value : undefined;
}

/** Optional LibreChat fields of an upload, as file metadata. */
function metaFromFields(fields: ReadonlyMap<string, string>): FileMetaChanges {
  const kind = fields.get("kind");
  const resourceId = fields.get("id");
  const version = fields.get("version");
  const entityId = validEntity(fields.get("entity_id"));
  return {
    ...(kind ? { kind } : {}),
    ...(resourceId ? { resourceId } : {}),
    ...(version ? { version } : {}),
    ...(entityId ? { entityId } : {}),
  };
}
