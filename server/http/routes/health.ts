import type { ToolchainInfo } from "../../languages/toolchains.ts";
import type { SandboxProvider } from "../../sandbox/provider.ts";
import type { SessionManager } from "../../sessions/session-manager.ts";
import { sendJson } from "../errors.ts";
import type { Readiness } from "../readiness.ts";
import type { Router } from "../router.ts";

export interface HealthDeps {
  version: string;
  service: string;
  transport: () => string;
  provider: SandboxProvider;
  sessions: SessionManager;
  toolchains: () => readonly ToolchainInfo[];
  /** Wraps a handler so it requires a valid API key. */
  authenticated: (handler: Parameters<Router["add"]>[2]) => Parameters<Router["add"]>[2];
  /** Warm pool and admission counters (server/sandbox/pool.ts). */
  pool?: () => Record<string, unknown> & { enabled: boolean };
  /** The start-up check, the wait for the pool, and draining (readiness.drain() at shutdown): server/http/readiness.ts. */
  readiness: Readiness;
}

/** GET /health, /ready, /health/detailed and /languages. */
export function addHealthRoutes(router: Router, deps: HealthDeps): void {
  router.add("GET", "/health", ({ res }) => sendJson(res, 200, { status: "healthy", version: deps.version, service: deps.service }));

  router.add("GET", "/ready", async ({ res }) => {
    // Shutting down: nothing else matters, and the dependencies need not be asked.
    if (deps.readiness.draining) return sendJson(res, 503, { status: "not_ready", reason: "shutting down" });
    const startup = deps.readiness.reason();
    const [sandbox, store, files] = await Promise.all([deps.provider.health(), deps.sessions.store.ping(), deps.sessions.files.ping()]);
    const down = [
      ...(startup ? [startup] : []),
      ...(sandbox.status === "down" ? [`sandbox backend is down: ${sandbox.warnings.join("; ")}`] : []),
      ...(store ? [] : ["session store does not answer"]),
      ...(files ? [] : ["file store does not answer"]),
    ];
    if (down.length > 0) sendJson(res, 503, { status: "not_ready", reason: down.join("; ") });
    else sendJson(res, 200, { status: "ready" });
  });

  router.add(
    "GET",
    "/health/detailed",
    deps.authenticated(async ({ res }) => {
      const [sandbox, store, files] = await Promise.all([deps.provider.health(), deps.sessions.store.ping(), deps.sessions.files.ping()]);
      const checks = {
        store: { status: store ? "ok" : "down", backend: "local" },
        files: { status: files ? "ok" : "down", backend: "local" },
        sandbox: { status: sandbox.status, backend: deps.provider.kind, ...sandbox.details, warnings: sandbox.warnings },
        pool: { status: "ok", ...(deps.pool?.() ?? { enabled: false }) },
        startup: deps.readiness.report(),
      };
      const status =
        sandbox.status === "down" || !store || !files || deps.readiness.failed ? "unhealthy" : sandbox.status === "degraded" ? "degraded" : "healthy";
      if (status === "degraded") res.header("x-health-status", "degraded");
      sendJson(res, status === "unhealthy" ? 503 : 200, {
        status,
        version: deps.version,
        service: deps.service,
        transport: deps.transport(),
        sessions: deps.sessions.size,
        checks,
        languages: deps.toolchains(),
        timestamp: new Date().toISOString(),
      });
    }),
  );

  router.add("GET", "/languages", ({ res }) =>
    sendJson(
      res,
      200,
      deps.toolchains().map((t) => ({ code: t.code, name: t.name, available: t.available, version: t.version ?? null })),
    ),
  );
}
