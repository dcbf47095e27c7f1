/**
 * CORS (ENABLE_CORS, CORS_ORIGINS) as a wrapper around the HTTP handler: it
 * answers preflight requests itself, before routing (the router would answer
 * 405 to OPTIONS), and adds the allow/expose headers to every other response.
 */
import { randomUUID } from "node:crypto";
import type { HttpHandler, HttpRequest, HttpResponse } from "../transport/types.ts";
import { sendError } from "./errors.ts";

export interface CorsOptions {
  /** ENABLE_CORS: when false the handler is returned unchanged. */
  enabled: boolean;
  /** CORS_ORIGINS. Empty (unset) or containing "*": every origin, the development setting of the guides. */
  origins: readonly string[];
  /** API_KEY_HEADER: browsers must be told they may send it. */
  keyHeader: string;
  /** How long a browser may cache a preflight answer. */
  maxAgeSeconds?: number;
}

const ALLOWED_METHODS = "GET, HEAD, POST, PATCH, DELETE, OPTIONS";
const BASE_ALLOWED_HEADERS = ["authorization", "content-type", "x-request-id", "x-librechat-code-request-id"];
const EXPOSED_HEADERS = [
  "X-Request-ID",
  "Retry-After",
  "X-RateLimit-Limit",
  "X-RateLimit-Remaining",
  "X-RateLimit-Reset",
  "Content-Disposition",
  "X-Health-Status",
].join(", ");
const DEFAULT_MAX_AGE_SECONDS = 600;
// Same rule as the HTTP handler's: a preflight never reaches it, but must carry an id too.
const REQUEST_ID = /^[\w.:-]{1,128}$/;

/** Wrap the transport-facing handler with CORS; `withCors(http, options)` in app.ts. */
export function withCors(handler: HttpHandler, options: CorsOptions): HttpHandler {
  if (!options.enabled) return handler;
  const allowOrigin = originPolicy(options.origins);
  const allowedHeaders = [...new Set([options.keyHeader.toLowerCase(), ...BASE_ALLOWED_HEADERS])].join(", ");
  const maxAge = String(options.maxAgeSeconds ?? DEFAULT_MAX_AGE_SECONDS);

  return (req, res) => {
    const origin = req.headers.origin;
    const allowed = origin === undefined ? undefined : allowOrigin(origin);
    // With a list, the answer depends on the Origin: caches must keep one copy per origin.
    if (allowOrigin.varies) res.header("vary", "Origin");

    if (origin !== undefined && isPreflight(req)) {
      answerPreflight(req, res, allowed, allowedHeaders, maxAge);
      return;
    }
    if (allowed) res.header("access-control-allow-origin", allowed).header("access-control-expose-headers", EXPOSED_HEADERS);
    return handler(req, res);
  };
}

function isPreflight(req: HttpRequest): boolean {
  return req.method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined;
}

function answerPreflight(req: HttpRequest, res: HttpResponse, allowed: string | undefined, allowedHeaders: string, maxAge: string): void {
  const incoming = req.headers["x-request-id"];
  const requestId = incoming && REQUEST_ID.test(incoming) ? incoming : randomUUID();
  res.header("x-request-id", requestId);
  if (!allowed) {
    sendError(res, requestId, 403, "authorization", "origin not allowed by CORS_ORIGINS");
    return;
  }
  res
    .status(204)
    .header("access-control-allow-origin", allowed)
    .header("access-control-allow-methods", ALLOWED_METHODS)
    .header("access-control-allow-headers", allowedHeaders)
    .header("access-control-max-age", maxAge)
    .end();
}

interface OriginPolicy {
  /** The Access-Control-Allow-Origin value for this Origin, or undefined when it is not allowed. */
  (origin: string): string | undefined;
  /** True when the answer depends on the Origin (a list rather than "*"). */
  readonly varies: boolean;
}

function originPolicy(origins: readonly string[]): OriginPolicy {
  if (origins.length === 0 || origins.includes("*")) return Object.assign(() => "*", { varies: false });
  const allowed = new Set(origins.map(normalizeOrigin).filter((o): o is string => o !== undefined));
  // Reflect the origin exactly as the browser sent it: it compares byte for byte.
  return Object.assign((origin: string) => (allowed.has(normalizeOrigin(origin) ?? "") ? origin : undefined), { varies: true });
}

/** scheme://host[:port], lower-cased and without the default port, so http://A:80 and http://a match. */
function normalizeOrigin(origin: string): string | undefined {
  try {
    const url = new URL(origin);
    return url.origin === "null" ? undefined : url.origin;
  } catch {
    return undefined;
  }
}
