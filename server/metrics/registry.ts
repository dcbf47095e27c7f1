/**
 * Prometheus metrics of one replica (served at GET /metrics, see
 * server/http/routes/metrics.ts). Its own prom-client Registry, with the
 * default process metrics, fed through small hooks:
 *
 * - executions: a subscriber of the "executions" topic of the event bus
 *   (started / finished events of session.ts), nothing added to the session;
 * - HTTP: `observeHttp`, called from createHttpHandler's log point;
 * - WebSocket: `wsOpened` / `wsClosed` / `wsFrameSent`, called by ClientConnection;
 * - gauges read at scrape time: live sessions, live sandboxes, the pool.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { EventBus, OperationalEvent } from "../events/event-bus.ts";

/** Exec latencies (s): from a few ms (warm Python) to the longest allowed runs. */
const EXEC_BUCKETS = [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
const HTTP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const HTTP_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);
/** Execs started whose end we wait for; beyond this the oldest is forgotten (an end that never came). */
const MAX_TRACKED_EXECS = 10_000;

/**
 * What the sandbox pool reports (server/sandbox/pool.ts `poolStats()`), read
 * loosely so that this module does not depend on the pool's exact shape:
 * totals, and/or a per-language breakdown.
 */
export interface PoolStatsLike {
  /** Warm (idle, ready) sandboxes. */
  size?: number;
  warm?: number;
  idle?: number;
  /** Sandboxes being started for the pool. */
  starting?: number;
  creating?: number;
  created?: number;
  dropped?: number;
  failures?: number;
  target?: number;
  hits?: number;
  misses?: number;
  byLanguage?: Record<string, PoolStatsLike>;
  languages?: Record<string, PoolStatsLike>;
}

export interface MetricsSources {
  events: EventBus;
  /** This replica's id when events come from every replica (Redis event bus): only its own are counted. */
  replicaId?: string;
  /** Live sessions of this replica. */
  sessionsLive: () => number;
  /** Live sandboxes of this replica. */
  sandboxesLive: () => number;
  /** The pool's figures; undefined while there is no pool. */
  poolStats?: () => PoolStatsLike | undefined;
  /** The egress proxy's counters (ENABLE_SANDBOX_NETWORK); undefined while it is off. */
  egress?: () => { tunnels: number; open: number; refused: Record<string, number | undefined> };
  /** Prefix of every metric name. */
  prefix?: string;
}

export interface HttpObservation {
  method: string;
  /** The route pattern (`/files/:sessionId`), or "unmatched". */
  route: string;
  status: number;
  seconds: number;
}

export class ServiceMetrics {
  readonly registry = new Registry();
  readonly #execs: Counter<"lang" | "reason">;
  readonly #execsStarted: Counter<"lang">;
  readonly #execDuration: Histogram<"lang">;
  readonly #execWall: Histogram<"lang">;
  readonly #httpRequests: Counter<"method" | "route" | "status">;
  readonly #httpDuration: Histogram<"method" | "route">;
  readonly #wsOpen: Gauge;
  readonly #wsTotal: Counter;
  readonly #streamed: Counter<"stream">;
  readonly #started = new Map<string, { lang: string; at: number }>();
  readonly #unsubscribe: () => void;
  readonly #replicaId: string | undefined;

  constructor(sources: MetricsSources) {
    const p = sources.prefix ?? "code_interpreter_";
    const registers = [this.registry];
    this.#replicaId = sources.replicaId;
    collectDefaultMetrics({ register: this.registry, prefix: p });

    this.#execsStarted = new Counter({ name: `${p}executions_started_total`, help: "Execs started, by language", labelNames: ["lang"], registers });
    this.#execs = new Counter({
      name: `${p}executions_total`,
      help: "Execs finished, by language and outcome (exit reason: exited, timeout, killed, output_limit, sandbox_lost...)",
      labelNames: ["lang", "reason"],
      registers,
    });
    this.#execDuration = new Histogram({
      name: `${p}exec_duration_seconds`,
      help: "Exec accepted by the session (exec.start) to its exit, on this server, by language",
      labelNames: ["lang"],
      buckets: EXEC_BUCKETS,
      registers,
    });
    this.#execWall = new Histogram({
      name: `${p}exec_wall_seconds`,
      help: "Wall time of the program as the sandbox agent measured it, by language",
      labelNames: ["lang"],
      buckets: EXEC_BUCKETS,
      registers,
    });
    this.#httpRequests = new Counter({
      name: `${p}http_requests_total`,
      help: "HTTP requests, by method, route pattern and status",
      labelNames: ["method", "route", "status"],
      registers,
    });
    this.#httpDuration = new Histogram({
      name: `${p}http_request_duration_seconds`,
      help: "HTTP request handling time, by method and route pattern",
      labelNames: ["method", "route"],
      buckets: HTTP_BUCKETS,
      registers,
    });
    this.#wsOpen = new Gauge({ name: `${p}websocket_connections`, help: "WebSocket connections open", registers });
    this.#wsTotal = new Counter({ name: `${p}websocket_connections_total`, help: "WebSocket connections accepted", registers });
    this.#streamed = new Counter({
      name: `${p}streamed_bytes_total`,
      help: "Program output bytes sent to WebSocket clients, by stream (once per attached client)",
      labelNames: ["stream"],
      registers,
    });
    new Gauge({
      name: `${p}sessions_live`,
      help: "Sessions with a live object on this replica",
      registers,
      collect() {
        this.set(sources.sessionsLive());
      },
    });
    new Gauge({
      name: `${p}sandboxes_live`,
      help: "Sandboxes running on this replica (pooled ones included)",
      registers,
      collect() {
        this.set(sources.sandboxesLive());
      },
    });
    const pool = () => {
      try {
        return sources.poolStats?.();
      } catch {
        return undefined;
      }
    };
    new Gauge({
      name: `${p}pool_enabled`,
      help: "1 when a sandbox pool reports figures",
      registers,
      collect() {
        this.set(pool() ? 1 : 0);
      },
    });
    const perLanguage = (name: string, help: string, pick: (s: PoolStatsLike) => number | undefined, type: "gauge" | "counter"): void => {
      const collect = function (this: Gauge<"lang"> | Counter<"lang">) {
        this.reset();
        const stats = pool();
        if (!stats) return;
        for (const [lang, value] of poolFigures(stats, pick)) {
          if (this instanceof Gauge) this.set({ lang }, value);
          else this.inc({ lang }, value);
        }
      };
      if (type === "gauge") new Gauge({ name, help, labelNames: ["lang"], registers, collect });
      else new Counter({ name, help, labelNames: ["lang"], registers, collect });
    };
    perLanguage(
      `${p}pool_warm_sandboxes`,
      "Warm sandboxes waiting in the pool, by language (lang=all: the total)",
      (s) => num(s.size ?? s.warm ?? s.idle),
      "gauge",
    );
    perLanguage(`${p}pool_starting_sandboxes`, "Sandboxes being started for the pool, by language", (s) => num(s.starting ?? s.creating), "gauge");
    perLanguage(`${p}pool_target_sandboxes`, "Warm sandboxes the pool aims for, by language", (s) => num(s.target), "gauge");
    perLanguage(`${p}pool_hits_total`, "Sandboxes taken warm from the pool, by language", (s) => num(s.hits), "counter");
    perLanguage(`${p}pool_misses_total`, "Sandboxes started on demand because the pool had none, by language", (s) => num(s.misses), "counter");
    perLanguage(`${p}pool_created_total`, "Sandboxes the pool created", (s) => num(s.created), "counter");
    perLanguage(`${p}pool_dropped_total`, "Pooled sandboxes dropped (died while waiting)", (s) => num(s.dropped), "counter");
    perLanguage(`${p}pool_failures_total`, "Pool sandbox creations that failed", (s) => num(s.failures), "counter");

    const egress = sources.egress;
    if (egress) {
      new Counter({
        name: `${p}egress_tunnels_total`,
        help: "HTTPS tunnels the egress proxy opened for sandboxes",
        registers,
        collect() {
          this.reset();
          this.inc(egress().tunnels);
        },
      });
      new Gauge({
        name: `${p}egress_tunnels_open`,
        help: "Egress tunnels open now",
        registers,
        collect() {
          this.set(egress().open);
        },
      });
      new Counter({
        name: `${p}egress_refused_total`,
        help: "Sandbox egress requests refused, by reason (not_allowed, ip_literal, private_address, not_connect...)",
        labelNames: ["reason"],
        registers,
        collect() {
          this.reset();
          for (const [reason, count] of Object.entries(egress().refused)) if (count) this.inc({ reason }, count);
        },
      });
    }

    this.#unsubscribe = sources.events.subscribe("executions", (event) => this.#onExecution(event));
  }

  observeHttp({ method: rawMethod, route, status, seconds }: HttpObservation): void {
    const method = HTTP_METHODS.has(rawMethod) ? rawMethod : "OTHER";
    this.#httpRequests.inc({ method, route, status: String(status) });
    this.#httpDuration.observe({ method, route }, seconds);
  }

  wsOpened(): void {
    this.#wsOpen.inc();
    this.#wsTotal.inc();
  }

  wsClosed(): void {
    this.#wsOpen.dec();
  }

  /** A text frame sent to a WebSocket client: `out` frames count toward the streamed bytes. */
  wsFrameSent(text: string): void {
    if (!text.startsWith('{"type":"out"')) return;
    try {
      const frame = JSON.parse(text) as { stream?: string; data?: string; encoding?: string };
      if (typeof frame.data !== "string") return;
      const bytes = frame.encoding === "base64" ? Buffer.from(frame.data, "base64").length : Buffer.byteLength(frame.data);
      this.#streamed.inc({ stream: frame.stream === "stderr" ? "stderr" : "stdout" }, bytes);
    } catch {
      // not a frame we know: not counted
    }
  }

  /** The exposition text and its content type. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  close(): void {
    this.#unsubscribe();
    this.#started.clear();
  }

  #onExecution(event: OperationalEvent): void {
    if (this.#replicaId !== undefined && event.replica !== undefined && event.replica !== this.#replicaId) return;
    const lang = typeof event.lang === "string" ? event.lang : "unknown";
    const key = `${String(event.sessionId)}/${String(event.execId)}`;
    if (event.kind === "started") {
      this.#execsStarted.inc({ lang });
      if (this.#started.size >= MAX_TRACKED_EXECS) this.#started.delete(this.#started.keys().next().value!);
      this.#started.set(key, { lang, at: performance.now() });
    } else if (event.kind === "finished") {
      this.#execs.inc({ lang, reason: typeof event.reason === "string" ? event.reason : "unknown" });
      const started = this.#started.get(key);
      if (started) {
        this.#started.delete(key);
        this.#execDuration.observe({ lang }, (performance.now() - started.at) / 1000);
      }
      if (typeof event.wallMs === "number" && Number.isFinite(event.wallMs)) this.#execWall.observe({ lang }, event.wallMs / 1000);
    }
  }
}

function num(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}

/** [lang, value] pairs of one pool figure: per language when the pool breaks it down, plus lang="all" for the total. */
export function poolFigures(stats: PoolStatsLike, pick: (s: PoolStatsLike) => number | undefined): [string, number][] {
  const out: [string, number][] = [];
  const breakdown = stats.byLanguage ?? stats.languages;
  let sum: number | undefined;
  if (breakdown && typeof breakdown === "object") {
    for (const [lang, figures] of Object.entries(breakdown)) {
      const value = figures && typeof figures === "object" ? pick(figures) : undefined;
      if (value === undefined) continue;
      out.push([lang, value]);
      sum = (sum ?? 0) + value;
    }
  }
  const total = pick(stats) ?? sum;
  if (total !== undefined) out.push(["all", total]);
  return out;
}

/**
 * The route pattern of a matched request, for a label of bounded cardinality:
 * each path segment that carries a parameter becomes `:name`.
 */
export function routeLabel(path: string, params: Record<string, string>): string {
  const names = Object.entries(params);
  if (names.length === 0) return path;
  const parts = path.split("/").filter(Boolean);
  return `/${parts
    .map((part) => {
      let decoded = part;
      try {
        decoded = decodeURIComponent(part);
      } catch {
        // keep it as is
      }
      const hit = names.find(([, value]) => value === decoded);
      return hit ? `:${hit[0]}` : part;
    })
    .join("/")}`;
}
