/**
 * Handlers for the plain listener when SSL_REDIRECT is on: every request gets a
 * 307 to the same path and query on the HTTPS port, and a WebSocket upgrade gets a
 * 307 to wss://. The probes (GET/HEAD /health and /ready) are still answered
 * directly, so a health check on the plain port keeps measuring the service.
 *
 * 307, not 301/302: the method and body are kept (a POST /exec stays a POST), and
 * clients do not cache it, so turning SSL_REDIRECT off takes effect at once.
 */
import type { HttpHandler, HttpRequest, TransportHandlers, UpgradeRequest } from "./types.ts";

export const REDIRECT_STATUS = 307;

/** Served on the plain listener as they are: unauthenticated probes that carry no secret. */
export const PLAIN_PATHS: readonly string[] = ["/health", "/ready"];

const HOST_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/;
const IPV6_LITERAL = /^\[[0-9A-Fa-f:.]+\]$/;

/** The host part of a Host header (port removed), or undefined when it is missing or not a plain host name/address. */
export function hostOf(header: string | undefined): string | undefined {
  const value = header?.trim();
  if (!value) return undefined;
  let host = value;
  if (value.startsWith("[")) {
    const end = value.indexOf("]");
    if (end < 0) return undefined;
    host = value.slice(0, end + 1);
    const rest = value.slice(end + 1);
    if (rest !== "" && !/^:\d{1,5}$/.test(rest)) return undefined;
    return IPV6_LITERAL.test(host) ? host : undefined;
  }
  const colon = value.lastIndexOf(":");
  if (colon >= 0) {
    if (!/^\d{1,5}$/.test(value.slice(colon + 1))) return undefined;
    host = value.slice(0, colon);
  }
  return HOST_NAME.test(host) ? host : undefined;
}

/**
 * Where to send a plain request: same host (from the Host header), the HTTPS port
 * (left out when it is 443), same path and query. Undefined without a usable Host.
 */
export function secureLocation(scheme: "https" | "wss", request: Pick<HttpRequest, "headers" | "path" | "query">, httpsPort: number): string | undefined {
  const host = hostOf(request.headers.host);
  if (!host) return undefined;
  // An absolute-form or "*" target has no path to keep.
  const path = request.path.startsWith("/") ? request.path : "/";
  const query = request.query.toString();
  return `${scheme}://${host}${httpsPort === 443 ? "" : `:${httpsPort}`}${path}${query ? `?${query}` : ""}`;
}

const NO_HOST_BODY = JSON.stringify({ error: "A Host header is required to redirect to HTTPS", error_type: "validation" });

/** The plain listener's handlers: redirect everything but the probes, which go to `api`. */
export function createRedirectHandlers(api: TransportHandlers, httpsPort: number): TransportHandlers {
  const http: HttpHandler = (req, res) => {
    if ((req.method === "GET" || req.method === "HEAD") && PLAIN_PATHS.includes(req.path)) return api.http(req, res);
    const location = secureLocation("https", req, httpsPort);
    if (!location) {
      res.status(400).header("Content-Type", "application/json").end(NO_HOST_BODY);
      return;
    }
    res.status(REDIRECT_STATUS).header("Location", location).header("Content-Type", "text/plain; charset=utf-8").end(`Use HTTPS: ${location}\n`);
  };
  return {
    http,
    ws: {
      ...api.ws,
      refuse: (request: UpgradeRequest) => {
        const location = secureLocation("wss", request, httpsPort);
        return location ? { status: REDIRECT_STATUS, headers: { Location: location } } : { status: 400 };
      },
      // Never reached (every upgrade is refused), but a socket must not open on the plain port.
      open: (socket) => {
        socket.close(1008, "use wss://");
        return { message: () => {}, drain: () => {}, close: () => {} };
      },
    },
  };
}
