import * as v from "valibot";
import { SessionIdSchema } from "../../../protocol/common.ts";
import { contentDisposition } from "../../files/file-names.ts";
import type { StoredFile } from "../../files/file-store.ts";
import type { SessionManager } from "../../sessions/session-manager.ts";
import { sendError, sendJson } from "../errors.ts";
import type { RouteContext, RouteHandler, Router } from "../router.ts";

export interface FilesRouteDeps {
  sessions: SessionManager;
  authenticated: (handler: RouteHandler) => RouteHandler;
}

/**
 * The file routes of HTTP-API.md: listing in three detail modes, download
 * (streamed), delete, and the object timestamp. A session the caller may not
 * see is reported like one that does not exist.
 */
export function addFileRoutes(router: Router, deps: FilesRouteDeps): void {
  const auth = deps.authenticated;
  router.add(
    "GET",
    "/files/:sessionId",
    auth((ctx) => listFiles(ctx, deps)),
  );
  router.add(
    "GET",
    "/download/:sessionId/:fileId",
    auth((ctx) => download(ctx, deps)),
  );
  router.add(
    "DELETE",
    "/files/:sessionId/:fileId",
    auth((ctx) => deleteFile(ctx, deps)),
  );
  router.add(
    "GET",
    "/sessions/:sessionId/objects/:fileId",
    auth(async (ctx) => {
      const file = await findFile(ctx, deps);
      if (!file) return notFound(ctx);
      sendJson(ctx.res, 200, { lastModified: file.lastModified });
    }),
  );
}

async function visibleFiles(ctx: RouteContext, deps: FilesRouteDeps): Promise<StoredFile[] | undefined> {
  const sessionId = ctx.params.sessionId!;
  if (!v.is(SessionIdSchema, sessionId)) return undefined;
  const record = await deps.sessions.record(sessionId, ctx.principal!);
  if (!record) return undefined;
  // A session of an end user is not another user's (the rule of /exec and WebSocket): a request naming
  // another user is answered like one for a missing session. Requests naming no user (the legacy client) pass.
  if (record.userId !== undefined && namedUsers(ctx).some((user) => user !== record.userId)) return undefined;
  return (await deps.sessions.files.list(sessionId)).filter((file) => !file.internal);
}

/**
 * The end users a file request names: the `User-Id` header, and `kind=user&id=<user>` (the current LibreChat client);
 * for a token's caller, its `sub` alone.
 */
function namedUsers(ctx: RouteContext): string[] {
  if (ctx.principal?.userId !== undefined) return [ctx.principal.userId];
  const users: string[] = [];
  const header = ctx.req.headers["user-id"];
  if (typeof header === "string" && header !== "") users.push(header);
  const id = ctx.req.query.get("id");
  if (ctx.req.query.get("kind") === "user" && id) users.push(id);
  return users;
}

async function findFile(ctx: RouteContext, deps: FilesRouteDeps): Promise<StoredFile | undefined> {
  const files = await visibleFiles(ctx, deps);
  return files?.find((file) => file.id === ctx.params.fileId);
}

function notFound(ctx: RouteContext): void {
  sendError(ctx.res, ctx.requestId, 404, "resource_not_found", `File ${ctx.params.fileId} not found in session ${ctx.params.sessionId}`);
}

async function listFiles(ctx: RouteContext, deps: FilesRouteDeps): Promise<void> {
  const { req, res } = ctx;
  const sessionId = ctx.params.sessionId!;
  let files = (await visibleFiles(ctx, deps))?.filter((file) => !file.superseded) ?? [];
  // LibreChat asks for one resource with kind/id/version; empty values mean "any".
  const kind = req.query.get("kind");
  const resourceId = req.query.get("id");
  const version = req.query.get("version");
  if (kind) files = files.filter((file) => file.kind === kind);
  if (resourceId) files = files.filter((file) => file.resourceId === resourceId || file.id === resourceId);
  if (version) files = files.filter((file) => String(file.version ?? "") === version);
  const detail = req.query.get("detail") ?? "full";
  if (detail === "summary") {
    sendJson(
      res,
      200,
      files.map((file) => ({ name: `${sessionId}/${file.id}`, lastModified: file.lastModified })),
    );
    return;
  }
  if (detail === "simple") {
    sendJson(
      res,
      200,
      files.map((file) => ({ id: file.id, name: file.name, path: `/mnt/data/${file.name}` })),
    );
    return;
  }
  sendJson(
    res,
    200,
    files.map((file) => ({
      name: `${sessionId}/${file.id}`,
      id: file.id,
      session_id: sessionId,
      storage_session_id: sessionId,
      content: null,
      size: file.size,
      lastModified: file.lastModified,
      etag: file.etag,
      metadata: { "content-type": file.contentType, "original-filename": file.name },
      contentType: file.contentType,
      ...(file.kind ? { kind: file.kind } : {}),
      ...(file.resourceId ? { resource_id: file.resourceId } : {}),
      ...(file.version !== undefined ? { version: file.version } : {}),
      ...(file.readOnly ? { read_only: true } : {}),
    })),
  );
}

async function download(ctx: RouteContext, deps: FilesRouteDeps): Promise<void> {
  const { res, req } = ctx;
  const file = await findFile(ctx, deps);
  if (!file) return notFound(ctx);
  const stream = await deps.sessions.files.open(file.sessionId, file.id);
  if (!stream) return notFound(ctx);
  res
    .status(200)
    .header("content-type", file.contentType)
    .header("content-length", String(file.size))
    .header("content-disposition", contentDisposition(file.name))
    .header("etag", `"${file.etag}"`)
    .header("last-modified", new Date(file.lastModified).toUTCString());
  if (req.method === "HEAD") {
    stream.destroy();
    res.end();
    return;
  }
  res.onAborted(() => stream.destroy());
  try {
    for await (const chunk of stream) {
      if (res.aborted) break;
      if (!res.write(chunk as Buffer)) await res.drained();
    }
  } finally {
    stream.destroy();
  }
  if (!res.aborted) res.end();
}

async function deleteFile(ctx: RouteContext, deps: FilesRouteDeps): Promise<void> {
  const file = await findFile(ctx, deps);
  if (!file) return notFound(ctx);
  await deps.sessions.deleteFile(file);
  sendJson(ctx.res, 200, { message: "File deleted successfully", session_id: file.sessionId, file_id: file.id });
}
