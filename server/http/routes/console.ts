/**
 * GET / and the web console's static files (dist/web-console, built by Vite).
 * No auth: HTTP-API.md exempts the console's static files; the console itself
 * authenticates its API calls and its WebSocket (`auth` frame).
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { extname, join, normalize, sep } from "node:path";
import type { RouteHandler, Router } from "../router.ts";

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
};

export interface ConsoleDeps {
  /** dist/web-console; when it does not exist (no build yet) "/" says so instead of a 404. */
  dir: string;
}

/** Small files, read once: the console is a few hundred KiB. */
const cache = new Map<string, Buffer>();

function readAsset(dir: string, relative: string): Buffer | undefined {
  const full = normalize(join(dir, relative));
  // Never outside the console's folder, whatever the path says.
  if (full !== dir && !full.startsWith(dir + sep)) return undefined;
  const hit = cache.get(full);
  if (hit) return hit;
  if (!existsSync(full) || !statSync(full).isFile()) return undefined;
  const body = readFileSync(full);
  cache.set(full, body);
  return body;
}

export function addConsoleRoutes(router: Router, deps: ConsoleDeps): void {
  const dir = normalize(deps.dir);
  const index: RouteHandler = ({ res }) => {
    const body = readAsset(dir, "index.html");
    if (!body) {
      res.status(503).header("content-type", "text/plain; charset=utf-8").end("The web console is not built: run `npm run build`.\n");
      return;
    }
    // The page names hashed assets: always revalidate it so a new build shows at once.
    res.status(200).header("content-type", CONTENT_TYPES[".html"]!).header("cache-control", "no-cache").end(body);
  };
  router.add("GET", "/", index);
  router.add("GET", "/console", index);
  router.add("GET", "/assets/:file", ({ req, res, params }) => {
    const body = readAsset(dir, join("assets", params.file ?? ""));
    if (!body) {
      res.status(404).header("content-type", "text/plain; charset=utf-8").end("not found\n");
      return;
    }
    const type = CONTENT_TYPES[extname(params.file ?? "")] ?? "application/octet-stream";
    // Vite puts a content hash in every asset name: they never change.
    res.status(200).header("content-type", type).header("cache-control", "public, max-age=31536000, immutable");
    res.end(req.method === "HEAD" ? undefined : body);
  });
}
