import type { Logger } from "pino";
import type { Principal } from "../auth/api-keys.ts";
import type { HttpRequest, HttpResponse } from "../transport/types.ts";

export interface RouteContext {
  req: HttpRequest;
  res: HttpResponse;
  params: Record<string, string>;
  requestId: string;
  /** The server's logger with this request's id on every line. */
  log: Logger;
  /** Set by `requireAuth` for the routes it guards. */
  principal?: Principal;
}

export type RouteHandler = (ctx: RouteContext) => void | Promise<void>;

interface Route {
  method: string;
  segments: string[];
  handler: RouteHandler;
}

/** A small method + path router: `/files/:sessionId` style parameters, exact segment counts. */
export class Router {
  readonly #routes: Route[] = [];

  add(method: string, pattern: string, handler: RouteHandler): this {
    this.#routes.push({ method, segments: pattern.split("/").filter(Boolean), handler });
    return this;
  }

  /** Every registered route, in registration order (the API docs compare them with what they document). */
  routes(): { method: string; pattern: string }[] {
    return this.#routes.map((route) => ({ method: route.method, pattern: `/${route.segments.join("/")}` }));
  }

  /** The handler for a request, or "method" when the path exists with another method, or undefined. */
  match(method: string, path: string): { handler: RouteHandler; params: Record<string, string> } | "method" | undefined {
    const parts = path.split("/").filter(Boolean);
    let pathMatched = false;
    for (const route of this.#routes) {
      const params = matchSegments(route.segments, parts);
      if (!params) continue;
      if (route.method === method || (method === "HEAD" && route.method === "GET")) return { handler: route.handler, params };
      pathMatched = true;
    }
    return pathMatched ? "method" : undefined;
  }
}

function matchSegments(pattern: string[], parts: string[]): Record<string, string> | undefined {
  if (pattern.length !== parts.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const segment = pattern[i]!;
    let part: string;
    try {
      part = decodeURIComponent(parts[i]!);
    } catch {
      return undefined;
    }
    if (segment.startsWith(":")) params[segment.slice(1)] = part;
    else if (segment !== part) return undefined;
  }
  return params;
}
