import type { ServiceMetrics } from "../../metrics/registry.ts";
import type { Router } from "../router.ts";

type Wrap = (handler: Parameters<Router["add"]>[2]) => Parameters<Router["add"]>[2];

export interface MetricsRouteDeps {
  metrics: ServiceMetrics;
  /** METRICS_AUTH: "api_key" (any valid key, like /health/detailed), "master" (the master key only) or "none". */
  auth: "api_key" | "master" | "none";
  authenticated: Wrap;
  master: Wrap;
}

/** GET /metrics: Prometheus text format (docs/PERFORMANCE.md, "Metrics"). */
export function addMetricsRoute(router: Router, deps: MetricsRouteDeps): void {
  const handler: Parameters<Router["add"]>[2] = async ({ res }) => {
    const { contentType, body } = await deps.metrics.render();
    if (res.aborted) return;
    res.status(200).header("content-type", contentType).header("cache-control", "no-store").end(body);
  };
  const guarded = deps.auth === "none" ? handler : deps.auth === "master" ? deps.master(handler) : deps.authenticated(handler);
  router.add("GET", "/metrics", guarded);
}
