import type { FileInput } from "../../protocol/index.ts";
import { callerUserId } from "../auth/api-keys.ts";
import type { StoredFile } from "../files/file-store.ts";
import { AdmissionError, type ExecPermit } from "../sessions/admission.ts";
import type { SessionHandle } from "../sessions/session-handle.ts";
import { sendError } from "./errors.ts";
import type { RouteContext } from "./router.ts";
import type { ExecRouteDeps } from "./routes/exec.ts";

export interface ExecSessionRequest {
  session_id?: string | null;
  user_id?: string | null;
  entity_id?: string | null;
  files?: FileInput[] | null;
}

/**
 * What `/exec` and `/exec/programmatic` do before running: resolve the file
 * references (404 for a missing or foreign one), choose the session (the
 * rules of HTTP-API.md), and take an exec slot (MAX_CONCURRENT_EXECUTIONS,
 * MAX_SESSIONS_PER_ENTITY: 429/503 with Retry-After). Returns undefined when
 * it has already answered the request.
 */
export async function admitExecSession(
  ctx: RouteContext,
  deps: ExecRouteDeps,
  body: ExecSessionRequest,
  slot: { permit?: ExecPermit },
): Promise<{ session: SessionHandle; inputs: StoredFile[] } | undefined> {
  const { req, res, requestId } = ctx;
  const { sessions } = deps;
  const userId = callerUserId(ctx.principal!, body.user_id);
  const caller = { principal: ctx.principal!, ...(userId ? { userId } : {}) };
  const resolved = await sessions.resolveInputs(body.files ?? [], caller);
  if (!resolved.ok) {
    sendError(res, requestId, 404, "resource_not_found", resolved.message, [
      { field: `files[${resolved.index}]`, message: resolved.message, code: "file_not_found" },
    ]);
    return undefined;
  }
  try {
    const session = await sessions.choose(
      { ...(body.session_id ? { sessionId: body.session_id } : {}), ...(body.entity_id ? { entityId: body.entity_id } : {}), inputs: resolved.files },
      caller,
    );
    slot.permit = await deps.admission?.acquireExec(() => res.aborted);
    // Files of the chosen session are in its sandbox already; only other sessions' files are inputs.
    return { session, inputs: resolved.files.filter((file) => file.sessionId !== session.id) };
  } catch (error) {
    if (!(error instanceof AdmissionError)) throw error;
    deps.onRefused(error.kind === "limit" ? "sessions_per_entity" : error.kind, req.remoteAddress);
    if (res.aborted) return undefined;
    res.header("retry-after", String(error.retryAfterSeconds));
    sendError(res, requestId, error.status, error.kind === "limit" ? "rate_limited" : "service_unavailable", error.message);
    return undefined;
  }
}
