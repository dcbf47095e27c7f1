import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Logger } from "pino";
import { WS_SUBPROTOCOL } from "../protocol/index.ts";
import { LANGUAGES } from "../protocol/languages.ts";
import { createAuthServices } from "./auth/auth-services.ts";
import { openBackends } from "./backends.ts";
import type { AppConfig } from "./config/types.ts";
import { withCors } from "./http/cors.ts";
import { createHttpHandler, requireAuth, requireMaster } from "./http/http-handler.ts";
import { Readiness } from "./http/readiness.ts";
import { Router } from "./http/router.ts";
import { addAdminRoutes } from "./http/routes/admin.ts";
import { addConsoleRoutes } from "./http/routes/console.ts";
import { addDocsRoutes } from "./http/routes/docs.ts";
import { addExecRoute, type ExecRouteDeps } from "./http/routes/exec.ts";
import { addFileRoutes } from "./http/routes/files.ts";
import { addHealthRoutes } from "./http/routes/health.ts";
import { addMetricsRoute } from "./http/routes/metrics.ts";
import { addProgrammaticRoute } from "./http/routes/programmatic.ts";
import { addUploadRoutes } from "./http/routes/upload.ts";
import { detectToolchains, imageToolchains, type ToolchainInfo } from "./languages/toolchains.ts";
import { securityLog } from "./logging/logger.ts";
import { ServiceMetrics } from "./metrics/registry.ts";
import { createEgress, listenForPods } from "./sandbox/egress/index.ts";
import { createKubernetesProvider } from "./sandbox/kubernetes/index.ts";
import { LocalSandboxProvider } from "./sandbox/local/local-provider.ts";
import { poolStats } from "./sandbox/pool.ts";
import { SandboxPools } from "./sandbox/pool-set.ts";
import { PoolWait } from "./sandbox/pool-wait.ts";
import type { SandboxProvider } from "./sandbox/provider.ts";
import { StartupCheck, StartupCheckFailed } from "./sandbox/startup-check.ts";
import { Admission } from "./sessions/admission.ts";
import { LocalContinuationStore, RedisContinuationStore } from "./sessions/continuations.ts";
import { SessionManager, SHUTDOWN_SAVE_BUDGET_MS } from "./sessions/session-manager.ts";
import { StateKeeper } from "./sessions/state-keeper.ts";
import { TrustedProxies } from "./transport/client-address.ts";
import { startListeners } from "./transport/listeners.ts";
import { createTransport } from "./transport/select.ts";
import type { Transport } from "./transport/types.ts";
import { ClientConnection } from "./ws/connection.ts";

export const SERVICE_NAME = "code-interpreter";

/** A client that sends nothing for this long, with nothing running, is closed with 4009. */
const WS_IDLE_TIMEOUT_MS = 15 * 60_000;
const WS_AUTH_TIMEOUT_MS = 5_000;
const WS_PATHS = ["/ws"];
/** A long /exec commits to 200 after this long and then writes a space this often, so idle proxies keep the connection. */
const EXEC_KEEPALIVE_AFTER_MS = 3_000;
const EXEC_KEEPALIVE_EVERY_MS = 5_000;
/** Closing the listeners, the pool, the sandboxes and the stores after the sessions are saved. */
const STOP_MARGIN_MS = 10_000;

export interface RunningApp {
  port: number;
  transport: Transport;
  sessions: SessionManager;
  provider: SandboxProvider;
  /** How long stop() may take at most: the process is ended past it. */
  shutdownBudgetMs: number;
  /** What /ready says about start-up; `readiness.drain()` makes it say "shutting down". */
  readiness: Readiness;
  stop(): Promise<void>;
}

/** The package version, read once from package.json beside dist/ or the checkout root. */
function readVersion(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const candidate of [join(here, "..", "package.json"), join(here, "..", "..", "package.json")]) {
    try {
      return (JSON.parse(readFileSync(candidate, "utf8")) as { version: string }).version;
    } catch {
      // try the next place
    }
  }
  return "0.0.0";
}

/** The folder that holds the agent bundle and its launcher (dist/agent). */
function agentDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  // Bundled: dist/server.mjs -> dist/agent. From sources (tests): server/app.ts -> dist/agent.
  return here.endsWith("dist") ? join(here, "agent") : join(here, "..", "dist", "agent");
}

/** The web console's built files (dist/web-console), from the bundle or from sources. */
function consoleDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return here.endsWith("dist") ? join(here, "web-console") : join(here, "..", "dist", "web-console");
}

/** This replica's pod address (POD_IP, from the downward API), where its pods reach the egress proxy. */
function podAddress(logger: Logger): string {
  if (process.env.POD_IP) return process.env.POD_IP;
  logger.warn("POD_IP is not set (downward API): the egress proxy listens on 127.0.0.1, which pods cannot reach");
  return "127.0.0.1";
}

/** Wire every part together and start listening. */
export async function startApp(config: AppConfig, logger: Logger): Promise<RunningApp> {
  const version = readVersion();
  // Embedded stores and in-process events, or Redis (sessions, keys, limits, events, other replicas) and S3 (files).
  const backends = await openBackends(config, logger);
  const { events, store, files } = backends;
  const logSecurity = (event: string, fields: Record<string, unknown>, level?: "info" | "warn") => {
    if (config.logging.securityLogs) securityLog(logger, event, fields, level);
  };

  // --- API keys, rate limits, auth-failure limiter (server/auth/): pass a Redis client to share them across replicas.
  const auth = await createAuthServices(config, backends.redis, { logger: logger.child({ component: "auth" }), securityLog: logSecurity });
  const authGuard = { gate: auth.gate, keyHeader: config.auth.header };

  // Warm pool: with SANDBOX_POOL_PY > 0 agents start Python ahead of the first run.
  const agentEnv = config.pool.enabled && config.pool.pythonPreload ? { AGENT_PYTHON_PRELOAD: "1" } : undefined;
  const sandboxLogger = logger.child({ component: "sandbox" });
  const egress = createEgress(config, logSecurity, (message, fields) => sandboxLogger.warn(fields, message));
  if (egress)
    logger.info(
      {
        port: egress.port,
        allowlist: egress.proxy.allowlist.describe(),
        skillDeps: egress.skillDeps?.root ?? null,
        skillDepsMaxBytes: egress.skillDeps?.maxBytes ?? null,
      },
      "sandbox egress proxy on",
    );
  if (egress?.skillDeps && config.pool.enabled)
    logger.warn("the warm pool is off: sandboxes are made for their tenant's package cache (SKILL_DEPS_PATH); set SKILL_DEPS_PATH=off to keep the pool");
  // Pods reach the proxy on this replica's pod address; a local sandbox has a socket of its own (the provider makes it).
  const podEgress = egress && config.sandbox.backend === "kubernetes" ? await listenForPods(egress, podAddress(logger)) : undefined;
  const provider =
    config.sandbox.backend === "kubernetes"
      ? createKubernetesProvider(config, {
          logger: sandboxLogger,
          ...(agentEnv ? { agentEnv } : {}),
          ...(egress && podEgress ? { egress: { proxy: egress.proxy, url: podEgress.url } } : {}),
        })
      : new LocalSandboxProvider({
          baseDir: config.sandbox.baseDir,
          uid: config.sandbox.uid,
          gid: config.sandbox.gid,
          agentDir: agentDir(),
          logger: sandboxLogger,
          ...(agentEnv ? { agentEnv } : {}),
          ...(egress ? { egress } : {}),
        });
  // Before the sweep: another server's folders are not ours to clean (a refusal ends the start).
  await (provider as SandboxProvider).claim?.();
  const removed = await provider.removeOrphans().catch((error: Error) => {
    // Kubernetes unreachable at start: serve anyway (/ready says why); the periodic sweep catches up.
    logger.warn({ err: error.message }, "orphan sandboxes could not be looked for");
    return 0;
  });
  if (removed > 0) logger.info({ removed }, "removed sandboxes left by an earlier run");

  // Pods carry every toolchain in their image; the local provider uses this machine's.
  const findToolchains = () => (config.sandbox.backend === "kubernetes" ? Promise.resolve(imageToolchains()) : detectToolchains());
  let toolchains: ToolchainInfo[] = await findToolchains();
  const available = () => toolchains.filter((t) => t.available).map((t) => t.code);
  logger.info({ languages: available() }, "toolchains detected");

  // --- warm pool and admission control (server/sandbox/pool.ts, server/sessions/admission.ts)
  // One pool per sandbox class (locally one): server/sandbox/pool-set.ts.
  const pool = new SandboxPools({
    provider,
    events,
    logger: logger.child({ component: "pool" }),
    // A pooled sandbox is made before its tenant is known, so it cannot carry the tenant's package cache.
    sizes: config.pool.enabled && !egress?.skillDeps ? config.pool.sizes : {},
    languages: LANGUAGES.keys(),
    parallelBatch: config.pool.parallelBatch,
    replenishIntervalMs: config.pool.replenishIntervalMs,
    exhaustionTrigger: config.pool.exhaustionTrigger,
    ...(config.pool.enabled && config.pool.pythonPreload ? { pythonWarmMs: Number(config.raw.REPL_WARMUP_TIMEOUT_SECONDS ?? 15) * 1000 } : {}),
  });
  const admission = new Admission({
    maxConcurrentExecutions: config.limits.concurrentExecutions,
    maxSessionsPerEntity: config.limits.sessionsPerEntity,
    maxLiveSandboxes: config.limits.liveSandboxes,
    maxSandboxesPerPrincipal: config.limits.sandboxesPerPrincipal,
    queueSize: config.limits.queueSize,
    queueTimeoutMs: config.limits.queueTimeoutMs,
    ...(backends.redis ? { redis: backends.redis } : {}),
  });

  const sessions = new SessionManager({
    config,
    provider,
    events,
    logger: logger.child({ component: "session" }),
    availableLanguages: available,
    store,
    files,
    ...(backends.fleet ? { fleet: backends.fleet } : {}),
    runOnce: backends.runOnce,
    pool,
    admission,
    state: new StateKeeper(config.state, files, backends.redis),
  });
  sessions.startSweeps();

  // --- start-up check and readiness (server/sandbox/startup-check.ts, server/sandbox/pool-wait.ts, server/http/readiness.ts)
  // A probe sandbox proves that sandboxes start here; /ready says 503 until it passed and the pool holds its start target.
  const startupCheck =
    config.readiness.startupCheck === "off"
      ? undefined
      : new StartupCheck({
          provider,
          limits: sessions.sandboxLimits,
          logger: logger.child({ component: "startup-check" }),
          // Pods take their start timeout (image pulls); a local sandbox starts in ~0.1 s, its own timeouts are 15 s + 10 s.
          deadlineMs: config.sandbox.backend === "kubernetes" ? config.kubernetes.podStartTimeoutMs + 30_000 : 30_000,
        });
  const poolWait = new PoolWait({ pool, waitMs: config.readiness.poolWaitMs, logger: logger.child({ component: "pool" }) });
  const readiness = new Readiness({ ...(startupCheck ? { startup: startupCheck } : {}), poolWait });
  let stopping = false;
  // The warm-up runs in the background, after the probe: the two would fight for the CPU, and a pool that cannot
  // start sandboxes only piles up failures. The server listens at once; /ready waits for the pool (READY_WAIT_FOR_POOL_SECONDS).
  const startPool = () => {
    if (stopping) return;
    const warmup = pool.start(sessions.sandboxLimits, { warmup: config.pool.warmupOnStartup });
    poolWait.begin(warmup);
    void warmup.then(() => {
      if (pool.enabled) logger.info({ pool: pool.stats() }, "sandbox pool warmed up");
    });
  };
  if (startupCheck && config.readiness.startupCheck === "exit") {
    // One attempt, before listening: the orchestrator sees the process fail with the reason instead of a server that runs nothing.
    if (!(await startupCheck.attempt())) {
      const error = startupCheck.report().error ?? "unknown error";
      logger.fatal({ err: error }, "no sandbox can start (SANDBOX_STARTUP_CHECK=exit)");
      throw new StartupCheckFailed(error);
    }
    startPool();
  } else if (startupCheck) {
    void startupCheck.run().then((passed) => {
      if (passed) startPool();
    });
  } else {
    startPool();
  }

  const router = new Router();
  const authenticated = requireAuth(authGuard);
  let transport: Transport | undefined;
  addHealthRoutes(router, {
    version,
    service: SERVICE_NAME,
    transport: () => transport?.name ?? "none",
    provider,
    sessions,
    toolchains: () => toolchains,
    authenticated,
    pool: () => ({ ...pool.stats(), admission: admission.stats() }),
    readiness,
  });
  const execDeps: ExecRouteDeps = {
    sessions,
    admission,
    availableLanguages: available,
    authenticated,
    keepAliveAfterMs: EXEC_KEEPALIVE_AFTER_MS,
    keepAliveEveryMs: EXEC_KEEPALIVE_EVERY_MS,
    onRefused: (reason, remoteAddress) => logSecurity("exec_refused", { reason, remoteAddress }),
  };
  addExecRoute(router, execDeps);
  // Programmatic tool calling: continuation tokens in Redis when replicas share one (a follow-up may reach any of them).
  const continuations = backends.redis
    ? new RedisContinuationStore(backends.redis, config.limits.toolPauseMs)
    : new LocalContinuationStore(config.limits.toolPauseMs);
  addProgrammaticRoute(router, execDeps, continuations);
  addUploadRoutes(router, {
    sessions,
    filenameLength: config.limits.filenameLength,
    authenticated,
    onRefused: (reason, remoteAddress) => logSecurity("upload_refused", { reason, remoteAddress }),
  });
  addFileRoutes(router, { sessions, authenticated });
  addAdminRoutes(router, { ...auth, master: requireMaster(authGuard), sessionsCount: () => sessions.size, securityLog: logSecurity });
  // --- Metrics (server/metrics/): executions from the event bus, HTTP and WebSocket through small hooks, gauges read at scrape time.
  const metrics = config.server.metricsEnabled
    ? new ServiceMetrics({
        events,
        ...(backends.fleet ? { replicaId: backends.fleet.bus.replicaId } : {}),
        sessionsLive: () => sessions.size,
        sandboxesLive: () => provider.size,
        // The pool's counters (zeros and enabled: false without a pool): reported only while a pool runs.
        poolStats: () => {
          const stats = poolStats();
          return stats.enabled ? stats : undefined;
        },
        ...(egress ? { egress: () => egress.proxy.counts } : {}),
      })
    : undefined;
  if (metrics) addMetricsRoute(router, { metrics, auth: config.server.metricsAuth, authenticated, master: requireMaster(authGuard) });
  addConsoleRoutes(router, { dir: consoleDir() });
  addDocsRoutes(router, { enabled: config.server.docsEnabled, version, keyHeader: config.auth.header, websocketPaths: WS_PATHS });

  const observe = metrics ? { observe: metrics.observeHttp.bind(metrics) } : {};
  const http = withCors(createHttpHandler({ router, logger: logger.child({ component: "http" }), accessLogs: config.logging.accessLogs, ...observe }), {
    enabled: config.server.corsEnabled,
    origins: config.server.corsOrigins,
    keyHeader: config.auth.header,
  });
  transport = createTransport(
    config.server.transport,
    {
      http,
      ws: {
        paths: WS_PATHS,
        subprotocol: WS_SUBPROTOCOL,
        // Room for the largest accepted code body plus JSON escaping and the other fields.
        maxPayloadBytes: config.limits.codeBytes * 2 + 64 * 1024,
        open: (socket, request) =>
          new ClientConnection(socket, request, {
            sessions,
            admission,
            gate: auth.gate,
            keyHeader: config.auth.header,
            events,
            logger: logger.child({ component: "ws" }),
            authTimeoutMs: WS_AUTH_TIMEOUT_MS,
            idleTimeoutMs: WS_IDLE_TIMEOUT_MS,
            securityLog: logSecurity,
            ...(metrics ? { metrics } : {}),
          }),
      },
    },
    logger,
    {
      bodyPace: { stallMs: config.limits.bodyStallMs, minBytesPerSecond: config.limits.bodyMinBytesPerSecond },
      ...(config.server.trustedProxies.length > 0 ? { trustedProxies: new TrustedProxies(config.server.trustedProxies) } : {}),
      maxConnectionsPerAddress: config.server.maxConnectionsPerAddress,
    },
  );
  // API_PORT, and HTTPS_PORT when HTTPS is on; one "listening" line each.
  const { port } = await startListeners(transport, config.server, logger, { version });

  // Toolchains can be installed while the server runs: look again now and then.
  const refresh = setInterval(async () => {
    toolchains = await findToolchains();
  }, 5 * 60_000);
  refresh.unref();

  return {
    port,
    transport,
    sessions,
    provider,
    readiness,
    shutdownBudgetMs: config.server.shutdownGraceMs + SHUTDOWN_SAVE_BUDGET_MS + STOP_MARGIN_MS,
    async stop() {
      stopping = true;
      startupCheck?.stop();
      poolWait.stop();
      clearInterval(refresh);
      // Not ready, no new exec from now on; running ones get the grace; every session is then saved and parked for the next start.
      readiness.drain();
      admission.drain();
      const report = await sessions.shutdown({ graceMs: config.server.shutdownGraceMs });
      logger.info(report, "sessions saved for the next start");
      metrics?.close();
      // Clients are told to reconnect (1012), to another replica or to this one restarted.
      await transport.close();
      await pool.shutdown();
      await admission.shutdown();
      await provider.shutdown();
      await podEgress?.close();
      await auth.close();
      await backends.close();
    },
  };
}
