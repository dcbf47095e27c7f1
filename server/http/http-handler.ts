import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { AuthGate, Refusal } from "../auth/auth-gate.ts";
import { extractApiKey } from "../auth/credentials.ts";
import type { RateState } from "../auth/rate-limiter.ts";
import { FileStoreUnavailableError } from "../files/file-store.ts";
import { routeLabel } from "../metrics/registry.ts";
import { isRedisUnavailable } from "../redis/connection.ts";
import { AdmissionError } from "../sessions/admission.ts";
import type { HttpHandler, HttpResponse } from "../transport/types.ts";
import { BodyTooSlowError } from "../transport/types.ts";
import { sendError, sendJson } from "./errors.ts";
import type { RouteContext, RouteHandler, Router } from "./router.ts";

const REQUEST_ID = /^[\w.:-]{1,128}$/;

export interface HttpHandlerDeps {
  router: Router;
  logger: Logger;
  accessLogs: boolean;
  /** Called once per request where it is logged (metrics): the route pattern, or "unmatched". */
  observe?: (request: { method: string; route: string; status: number; seconds: number }) => void;
}

/**
 * The transport-facing HTTP entry: request id, routing, one log line per
 * request at a level that follows the status (5xx error, 4xx warn, else debug).
 */
export function createHttpHandler({ router, logger, accessLogs, observe }: HttpHandlerDeps): HttpHandler {
  return async (req, res) => {
    const started = performance.now();
    const incoming = req.headers["x-request-id"];
    const requestId = incoming && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    res.header("x-request-id", requestId);
    let status = 200;
    const originalStatus = res.status.bind(res);
    res.status = (code: number) => {
      status = code;
      return originalStatus(code);
    };
    let route = "unmatched";
    try {
      const match = router.match(req.method, req.path);
      if (observe && match !== undefined && match !== "method") route = routeLabel(req.path, match.params);
      if (match === undefined) sendError(res, requestId, 404, "resource_not_found", `no route for ${req.method} ${req.path}`);
      else if (match === "method") sendError(res, requestId, 405, "validation", `${req.method} is not allowed on ${req.path}`);
      else await match.handler({ req, res, params: match.params, requestId, log: logger.child({ requestId }) });
    } catch (error) {
      // Redis or S3 away: say so, so that callers retry later, instead of reporting a server bug.
      if (error instanceof BodyTooSlowError) {
        // A client that stalls or trickles its body (slow-loris): 408, and the connection closes.
        logger.warn({ requestId, reason: error.message, remoteAddress: req.remoteAddress }, "request body too slow");
        if (!res.headersSent && !res.aborted) sendError(res, requestId, 408, "timeout", `Request body too slow: ${error.message}`);
        else if (!res.aborted) res.end();
        return;
      }
      if (error instanceof AdmissionError && !res.headersSent) {
        // Refused for capacity or a shutdown on the way (a session revived while the server drains): a retry, not a bug.
        res.header("retry-after", String(error.retryAfterSeconds));
        sendError(res, requestId, error.status, error.kind === "limit" ? "rate_limited" : "service_unavailable", error.message);
        return;
      }
      const unavailable = isRedisUnavailable(error) || error instanceof FileStoreUnavailableError;
      logger.error({ err: error, requestId }, unavailable ? "a shared store is unavailable" : "request failed");
      if (res.headersSent) {
        if (!res.aborted) res.end();
      } else if (unavailable) {
        res.header("retry-after", "5");
        sendError(res, requestId, 503, "service_unavailable", "A shared store (Redis or S3) is unavailable; try again shortly");
      } else {
        sendError(res, requestId, 500, "internal_server", "Internal server error");
      }
    } finally {
      observe?.({ method: req.method, route, status, seconds: (performance.now() - started) / 1000 });
      // A 503 from /ready is an answer (starting, warming, draining: said once by the part concerned), not a failure.
      const probe = req.path === "/ready" && status === 503;
      const level = status >= 500 && !probe ? "error" : status >= 400 && !probe ? "warn" : accessLogs ? "info" : "debug";
      logger[level](
        { requestId, method: req.method, path: req.path, status, ms: Math.round(performance.now() - started), remoteAddress: req.remoteAddress },
        "request",
      );
    }
  };
}

// --- Auth: API keys, rate limits, the master key ---------------------------------

export interface AuthGuardDeps {
  /** The shared auth path (server/auth/auth-gate.ts). */
  gate: AuthGate;
  /** API_KEY_HEADER, lower-cased. */
  keyHeader: string;
}

const AUTH_MESSAGES = { missing: "API key is required", invalid: "Invalid API key", disabled: "API key is disabled" } as const;

/**
 * Wrap a user route: the caller's address must not be blocked for repeated
 * auth failures (429), its key must be valid (401), and within the key's rate
 * limits (429); then X-RateLimit-* go on the response and the route runs.
 * AUTH_ENABLED=false lets everyone in, with no limits.
 */
export function requireAuth({ gate, keyHeader }: AuthGuardDeps) {
  return (handler: RouteHandler): RouteHandler =>
    async (ctx) => {
      const address = ctx.req.remoteAddress;
      const auth = await gate.authenticate(extractApiKey(ctx.req.headers, keyHeader), address);
      if (!auth.ok) return sendRefusal(ctx, auth);
      const admitted = await gate.admit(auth.principal, address, auth.record);
      if (!admitted.ok) return sendRefusal(ctx, admitted);
      if (admitted.rate) setRateHeaders(ctx.res, admitted.rate);
      return handler({ ...ctx, principal: auth.principal });
    };
}

/** Wrap an admin route: the master key only, whatever AUTH_ENABLED says (403 for any other key). */
export function requireMaster({ gate, keyHeader }: AuthGuardDeps) {
  return (handler: RouteHandler): RouteHandler =>
    async (ctx) => {
      const outcome = await gate.authorizeMaster(extractApiKey(ctx.req.headers, keyHeader), ctx.req.remoteAddress);
      if (outcome.ok) return handler({ ...ctx, principal: outcome.principal });
      if (outcome.kind === "forbidden") return sendError(ctx.res, ctx.requestId, 403, "authorization", "Admin routes require the master API key");
      if (outcome.kind === "unconfigured") {
        return sendError(ctx.res, ctx.requestId, 403, "authorization", "The admin API is disabled: MASTER_API_KEY is not configured on this server", [
          { field: "MASTER_API_KEY", message: "set MASTER_API_KEY to use /api/v1/admin/*", code: "master_key_not_configured" },
        ]);
      }
      return sendRefusal(ctx, outcome);
    };
}

/** 401, 429 or 503 for a refusal of the auth path. */
function sendRefusal(ctx: RouteContext, refusal: Refusal): void {
  const { res, requestId } = ctx;
  if (refusal.kind === "unauthenticated") return sendError(res, requestId, 401, "authentication", AUTH_MESSAGES[refusal.reason]);
  if (refusal.kind === "unavailable") return sendError(res, requestId, 503, "service_unavailable", "The API key store does not answer; try again shortly");
  const { rate } = refusal;
  setRateHeaders(res, rate);
  res.header("retry-after", String(rate.retryAfterSeconds));
  const message =
    refusal.scope === "key"
      ? `Rate limit exceeded: ${refusal.rate.limit} requests per ${refusal.rate.window}; retry in ${rate.retryAfterSeconds} s`
      : `Too many failed authentication attempts from this address; retry in ${rate.retryAfterSeconds} s`;
  sendJson(res, 429, {
    error: "rate_limited",
    error_type: "rate_limited",
    retry_after_seconds: rate.retryAfterSeconds,
    message,
    details: null,
    request_id: requestId,
    timestamp: new Date().toISOString(),
  });
}

/** X-RateLimit-Reset is the window's end in epoch seconds (as GitHub and most APIs send it). */
function setRateHeaders(res: HttpResponse, rate: RateState): void {
  res
    .header("x-ratelimit-limit", String(rate.limit))
    .header("x-ratelimit-remaining", String(rate.remaining))
    .header("x-ratelimit-reset", String(Math.ceil(rate.resetAt / 1000)));
}
