import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { ApiKeyVerifier } from "../auth/api-keys.ts";
import { extractApiKey } from "../auth/credentials.ts";
import type { HttpHandler } from "../transport/types.ts";
import { sendError } from "./errors.ts";
import type { RouteHandler, Router } from "./router.ts";

const REQUEST_ID = /^[\w.:-]{1,128}$/;

export interface HttpHandlerDeps {
  router: Router;
  logger: Logger;
  accessLogs: boolean;
}

/**
 * The transport-facing HTTP entry: request id, routing, one log line per
 * request at a level that follows the status (5xx error, 4xx warn, else debug).
 */
export function createHttpHandler({ router, logger, accessLogs }: HttpHandlerDeps): HttpHandler {
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
    try {
      const match = router.match(req.method, req.path);
      if (match === undefined) sendError(res, requestId, 404, "resource_not_found", `no route for ${req.method} ${req.path}`);
      else if (match === "method") sendError(res, requestId, 405, "validation", `${req.method} is not allowed on ${req.path}`);
      else await match.handler({ req, res, params: match.params, requestId, log: logger.child({ requestId }) });
    } catch (error) {
      logger.error({ err: error, requestId }, "request failed");
      if (!res.headersSent) sendError(res, requestId, 500, "internal_server", "Internal server error");
      else if (!res.aborted) res.end();
    } finally {
      const level = status >= 500 ? "error" : status >= 400 ? "warn" : accessLogs ? "info" : "debug";
      logger[level](
        { requestId, method: req.method, path: req.path, status, ms: Math.round(performance.now() - started), remoteAddress: req.remoteAddress },
        "request",
      );
    }
  };
}

/** Wrap a route so that it requires a valid API key (AUTH_ENABLED=false lets everyone in). */
export function requireAuth(verifier: ApiKeyVerifier, keyHeader: string, onFailure: (reason: string, remoteAddress: string) => void) {
  return (handler: RouteHandler): RouteHandler =>
    (ctx) => {
      const result = verifier.verify(extractApiKey(ctx.req.headers, keyHeader));
      if (!result.ok) {
        onFailure(result.reason, ctx.req.remoteAddress);
        const message = result.reason === "missing" ? "API key is required" : "Invalid API key";
        sendError(ctx.res, ctx.requestId, 401, "authentication", message);
        return;
      }
      return handler({ ...ctx, principal: result.principal });
    };
}
