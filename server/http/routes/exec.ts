import { ExecRequestSchema, normalizeArgs } from "../../../protocol/http-bodies.ts";
import { findLanguage, LANGUAGE_CODES } from "../../../protocol/index.ts";
import { randomId } from "../../ids.ts";
import type { Admission, ExecPermit } from "../../sessions/admission.ts";
import type { ExecRefusal, ExitFrameBody } from "../../sessions/session.ts";
import type { SessionManager } from "../../sessions/session-manager.ts";
import { sendError, sendJson } from "../errors.ts";
import { ExecCollector } from "../exec-result.ts";
import { admitExecSession } from "../exec-session.ts";
import { readJsonBody } from "../json-body.ts";
import type { RouteContext, RouteHandler, Router } from "../router.ts";

/** A call to a busy session waits at most this many of its longest runs before it gets 409. */
const QUEUE_WAIT_EXEC_TIMES = 3;

export interface ExecRouteDeps {
  sessions: SessionManager;
  /** Admission control (MAX_CONCURRENT_EXECUTIONS, MAX_SESSIONS_PER_ENTITY): over a limit, 429/503 with Retry-After. */
  admission?: Admission;
  availableLanguages: () => readonly string[];
  /** Wraps a handler so it requires a valid API key. */
  authenticated: (handler: RouteHandler) => RouteHandler;
  /** A run still going after this long gets its 200 and headers, then a space now and then until the JSON (idle proxies must not cut it). */
  keepAliveAfterMs: number;
  keepAliveEveryMs: number;
  /** A request refused by a limit, for the security log. */
  onRefused: (reason: string, remoteAddress: string) => void;
}

/** POST /exec: run code in a session chosen by the rules of HTTP-API.md and answer with its whole output. */
export function addExecRoute(router: Router, deps: ExecRouteDeps): void {
  router.add(
    "POST",
    "/exec",
    deps.authenticated(async (ctx) => {
      // Admission: the exec slot taken in handleExec is released however the request ends.
      const slot: { permit?: ExecPermit } = {};
      try {
        await handleExec(ctx, deps, slot);
      } finally {
        slot.permit?.release();
      }
    }),
  );
}

async function handleExec(ctx: RouteContext, deps: ExecRouteDeps, slot: { permit?: ExecPermit }): Promise<void> {
  const { req, res, requestId } = ctx;
  const { sessions } = deps;
  const limits = sessions.limits;
  // Room for the largest code body, JSON escaping, and file references.
  const parsed = await readJsonBody(req, ExecRequestSchema, limits.codeBytes * 2 + 1024 * 1024);
  if (!parsed.ok) {
    if (parsed.status === 413) deps.onRefused("body_too_large", req.remoteAddress);
    sendError(res, requestId, parsed.status, parsed.status === 413 ? "resource_exhausted" : "validation", parsed.message, parsed.details);
    return;
  }
  const body = parsed.value;
  const spec = findLanguage(body.lang);
  if (!spec) {
    sendError(res, requestId, 400, "validation", `Unsupported language: ${body.lang}`, [
      { field: "lang", message: `supported: ${LANGUAGE_CODES.join(", ")}`, code: "unsupported_language" },
    ]);
    return;
  }
  if (!deps.availableLanguages().includes(spec.code)) {
    sendError(res, requestId, 400, "validation", `The ${spec.name} toolchain is not installed on this server`, [
      { field: "lang", message: "see GET /languages", code: "language_unavailable" },
    ]);
    return;
  }
  if (body.code.trim() === "") {
    sendError(res, requestId, 400, "validation", "Code must not be empty", [{ field: "code", message: "code is empty", code: "empty_code" }]);
    return;
  }
  const codeBytes = Buffer.byteLength(body.code);
  if (codeBytes > limits.codeBytes) {
    deps.onRefused("code_too_large", req.remoteAddress);
    sendError(res, requestId, 413, "resource_exhausted", `Code is ${codeBytes} bytes; the limit is ${limits.codeBytes}`, [
      { field: "code", message: "too large", code: "code_too_large" },
    ]);
    return;
  }

  const admitted = await admitExecSession(ctx, deps, body, slot);
  if (!admitted) return;
  const { session, inputs } = admitted;
  const args = normalizeArgs(body.args);
  const collector = new ExecCollector();
  const execId = `http-${randomId(12)}`;
  const request = {
    id: execId,
    lang: spec.code,
    code: body.code,
    ...(args ? { args } : {}),
    ...(body.timeout ? { timeoutMs: body.timeout } : {}),
    inputs,
  };
  // Nobody will read the result: stop the run rather than let it use the sandbox for nothing.
  res.onAborted(() => session.signal(execId, "SIGKILL"));

  // LibreChat may run tool calls in parallel in one session: a busy session queues the call (within a bound) instead of refusing it.
  const queueDeadline = Date.now() + QUEUE_WAIT_EXEC_TIMES * (limits.wallTimeMs + sessions.compileTimeoutMs);
  const outcome = await withKeepAlive(
    ctx,
    (async (): Promise<{ exit: ExitFrameBody } | { refusal: ExecRefusal }> => {
      for (;;) {
        const refusal = await session.startExec(request, collector);
        if (!refusal) return { exit: await collector.done };
        if (refusal.code !== "busy" || Date.now() > queueDeadline || res.aborted) return { refusal };
        await session.whenIdle();
      }
    })(),
    deps,
  );
  if (res.aborted) return;
  if ("refusal" in outcome) {
    const { refusal } = outcome;
    if (res.headersSent) {
      // Already committed to 200 by the keep-alive: say it where the caller reads failures.
      res.end(JSON.stringify({ session_id: session.id, stdout: "", stderr: `${refusal.message}\n`, files: [] }));
      return;
    }
    const status = refusal.code === "busy" ? 409 : 400;
    sendError(res, requestId, status, status === 409 ? "resource_conflict" : "validation", refusal.message, [
      { field: "session_id", message: refusal.message, code: refusal.code },
    ]);
    return;
  }
  const { exit } = outcome;
  if (collector.refusal && !res.headersSent) {
    const refusal = collector.refusal;
    res.header("retry-after", String(refusal.retryAfterSeconds));
    sendError(res, requestId, refusal.status, refusal.status === 429 ? "rate_limited" : "service_unavailable", refusal.message);
    return;
  }
  if (res.aborted) return;
  // The note on stderr names the limit this run had: the request's timeout, clamped to MAX_EXECUTION_TIME.
  const wallTimeMs = Math.min(body.timeout ?? limits.wallTimeMs, limits.wallTimeMs);
  const result = collector.body(session.id, exit, { ...limits, wallTimeMs });
  ctx.log.debug({ sessionId: session.id, execId, lang: spec.code, reason: exit.reason, wallMs: exit.wallMs, files: exit.files.length }, "exec finished");
  if (res.headersSent) res.end(JSON.stringify(result));
  else sendJson(res, 200, result);
}

/** Wait for `done` (also used by POST /exec/programmatic); if it takes long, commit to 200 and write a space now and then (JSON allows leading whitespace). */
export async function withKeepAlive<T>(ctx: RouteContext, done: Promise<T>, deps: ExecRouteDeps): Promise<T> {
  const { res } = ctx;
  let ticker: NodeJS.Timeout | undefined;
  const starter = setTimeout(() => {
    if (res.aborted) return;
    res.status(200).header("content-type", "application/json");
    res.write(" ");
    ticker = setInterval(() => {
      if (!res.aborted) res.write(" ");
    }, deps.keepAliveEveryMs);
  }, deps.keepAliveAfterMs);
  try {
    return await done;
  } finally {
    clearTimeout(starter);
    clearInterval(ticker);
  }
}
