/**
 * `npm run bench`: the figures of docs/PERFORMANCE.md against the real built
 * server with real sandboxes, next to the bare process it wraps. Prints one
 * JSON document. Every loop is bounded in count and time; all traffic stays on
 * 127.0.0.1. Knobs (environment): BENCH_RUNS (200), BENCH_COLD_RUNS (20),
 * BENCH_FIRST_OUTPUT_RUNS (20), BENCH_LOAD_SESSIONS (50), BENCH_LOAD_SECONDS (10),
 * BENCH_IDLE_CONNECTIONS (10000), BENCH_PSS_SANDBOXES (5), BENCH_POOL_SIZE (4),
 * BENCH_TRANSPORTS (node,uws), BENCH_KUBERNETES (1: also the Kubernetes provider against the API
 * server stand-in), BENCH_EGRESS (1: also the egress proxy), MAX_CPU_QUOTA (100000 for the bench servers),
 * BENCH_READY_ROUNDS (3 fresh servers per variant of the first sessions after /ready),
 * BENCH_SHUTDOWN_SESSIONS (20 idle Python sessions at SIGTERM), BENCH_ONLY (ready | shutdown | execs: only
 * that part, beside the bare python floor).
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";
import { startServer } from "../helpers/server-process.ts";
import { egressFigures } from "./egress.ts";
import {
  concurrentLoad,
  firstOutput,
  firstSessionsAfterReady,
  idleConnections,
  idleSandboxPss,
  metric,
  newSessionFirstExec,
  reusedSession,
  waitForWarmSandboxes,
} from "./scenarios.ts";
import { shutdownFigures } from "./shutdown.ts";
import { summarize, timeRepeated } from "./stats.ts";

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const RUNS = env("BENCH_RUNS", 200);
const COLD_RUNS = env("BENCH_COLD_RUNS", 20);
const FIRST_OUTPUT_RUNS = env("BENCH_FIRST_OUTPUT_RUNS", 20);
const LOAD_SESSIONS = env("BENCH_LOAD_SESSIONS", 50);
const LOAD_SECONDS = env("BENCH_LOAD_SECONDS", 10);
const IDLE_CONNECTIONS = env("BENCH_IDLE_CONNECTIONS", 10_000);
const PSS_SANDBOXES = env("BENCH_PSS_SANDBOXES", 5);
const POOL_SIZE = env("BENCH_POOL_SIZE", 4);
const READY_ROUNDS = env("BENCH_READY_ROUNDS", 3);
const SHUTDOWN_SESSIONS = env("BENCH_SHUTDOWN_SESSIONS", 20);
const SANDBOX_PATH = "/usr/bin:/bin";
// No live-sandbox or per-address connection cap: the load figures open BENCH_LOAD_SESSIONS busy sessions and
// BENCH_IDLE_CONNECTIONS sockets from 127.0.0.1, more than the defaults let one address hold.
const SERVER_ENV = { MAX_CPU_QUOTA: process.env.MAX_CPU_QUOTA ?? "100000", MAX_LIVE_SANDBOXES: "0", MAX_CONNECTIONS_PER_ADDRESS: "0" };
const POOL_OFF = { SANDBOX_POOL_ENABLED: "false" };
const POOL_ON = { SANDBOX_POOL_ENABLED: "true", SANDBOX_POOL_PY: String(POOL_SIZE) };

const log = (message: string) => process.stderr.write(`bench: ${message}\n`);

function bare(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { env: { PATH: SANDBOX_PATH } }, (error) => (error ? reject(error) : resolve()));
  });
}

function machine() {
  const meminfo = readFileSync("/proc/meminfo", "utf8");
  const memTotalKb = Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? 0);
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round((memTotalKb / 1024 / 1024) * 10) / 10,
    kernel: os.release(),
    node: process.version,
  };
}

function pythonVersion(): Promise<string> {
  return new Promise((resolve) => execFile("/usr/bin/python3", ["--version"], (_e, stdout) => resolve(String(stdout).trim())));
}

/** Figures (a), (c), (d) and the idle connections of (e), on one transport, pool at the server's default. */
async function perTransport(transport: "node" | "uws") {
  log(`${transport}: reused session`);
  const server = await startServer({ transport, env: { ...SERVER_ENV, ...POOL_OFF } });
  try {
    const reused = await reusedSession(server, RUNS);
    log(`${transport}: first output`);
    const first = await firstOutput(server, FIRST_OUTPUT_RUNS);
    log(`${transport}: ${LOAD_SESSIONS} concurrent sessions for ${LOAD_SECONDS} s`);
    const load = await concurrentLoad(server, LOAD_SESSIONS, LOAD_SECONDS);
    const actual = server.logs.join("\n").includes(`"transport":"${transport}"`) ? transport : "other";
    await server.stop();
    // A fresh server for the idle connections, so the load's sandboxes do not weigh on its RSS.
    log(`${transport}: ${IDLE_CONNECTIONS} idle connections`);
    const idleServer = await startServer({ transport, env: { ...SERVER_ENV, ...POOL_OFF } });
    try {
      const idle = await idleConnections(idleServer, IDLE_CONNECTIONS, 500, 90_000);
      return { transport: actual, ...reused, firstOutputMs: first, load, idleConnections: idle };
    } finally {
      await idleServer.stop();
    }
  } finally {
    await server.stop();
  }
}

/** A warm exec in a reused session and a new session's first exec (pool off), on the node transport: what every exec pays. */
async function execFigures() {
  log("execs: reused session and new sessions (pool off)");
  const server = await startServer({ transport: "node", env: { ...SERVER_ENV, ...POOL_OFF } });
  try {
    return { reusedSession: await reusedSession(server, RUNS), newSession: await newSessionFirstExec(server, COLD_RUNS) };
  } finally {
    await server.stop();
  }
}

/** New sessions served from a full warm pool (waiting for a warm sandbox before each), with the pool's hit and miss counts. */
async function pooledFirstExecs(pooled: Awaited<ReturnType<typeof startServer>>, fillTimeoutMs: number) {
  await waitForWarmSandboxes(pooled, POOL_SIZE, fillTimeoutMs);
  const figures = await newSessionFirstExec(pooled, COLD_RUNS, async () => {
    await waitForWarmSandboxes(pooled, 1, 10_000);
  });
  const hits = await metric(pooled, 'code_interpreter_pool_hits_total{lang="all"}');
  const misses = await metric(pooled, 'code_interpreter_pool_misses_total{lang="all"}');
  return { ...figures, poolSize: POOL_SIZE, hits, misses };
}

/** (b) new session -> first exec, without and with a warm pool; (e) PSS of idle sandboxes. */
async function coldAndPool() {
  log("cold sessions (pool off)");
  const cold = await startServer({ transport: "node", env: { ...SERVER_ENV, ...POOL_OFF } });
  let coldFigures: Awaited<ReturnType<typeof newSessionFirstExec>>;
  let pss: Awaited<ReturnType<typeof idleSandboxPss>>;
  try {
    coldFigures = await newSessionFirstExec(cold, COLD_RUNS);
    log("PSS of idle sandboxes");
    pss = await idleSandboxPss(cold, PSS_SANDBOXES);
  } finally {
    await cold.stop();
  }

  log(`warm pool (SANDBOX_POOL_PY=${POOL_SIZE})`);
  const pooled = await startServer({ transport: "node", env: { ...SERVER_ENV, ...POOL_ON } });
  try {
    if (!(await waitForWarmSandboxes(pooled, 1, 30_000))) {
      return { cold: coldFigures, pool: null, poolNote: "the pool reported no warm sandbox within 30 s (pool absent or disabled)", pss };
    }
    const pool = await pooledFirstExecs(pooled, 30_000);
    // The pool's sandboxes preload numpy, pandas and matplotlib: the figure the target is about.
    log("PSS of idle warm (preloaded) sandboxes");
    await waitForWarmSandboxes(pooled, POOL_SIZE, 30_000);
    await new Promise((r) => setTimeout(r, 3_000));
    const pssPreloaded = await idleSandboxPss(pooled, PSS_SANDBOXES);
    return { cold: coldFigures, pool, pss, pssPreloaded };
  } finally {
    await pooled.stop();
  }
}

/**
 * EXECUTION_BACKEND=kubernetes against the API server stand-in (test/helpers/kube-stand-in.ts): session
 * start from a warm pod and from a new one, exec latency in a reused session (with the per-run state
 * checkpoint that Kubernetes turns on, and without). The stand-in starts pods as local sandboxes at
 * once: no scheduling, no image pull, no CNI; a real cluster adds those to the cold figure only.
 */
async function kubernetes() {
  log("kubernetes: cold sessions (pool off)");
  const cold = await startServer({ transport: "node", backend: "kubernetes", env: { ...SERVER_ENV, ...POOL_OFF } });
  let coldFigures: Awaited<ReturnType<typeof newSessionFirstExec>>;
  let reused: Awaited<ReturnType<typeof reusedSession>>;
  try {
    coldFigures = await newSessionFirstExec(cold, COLD_RUNS);
    log("kubernetes: reused session (state checkpoint after each run)");
    reused = await reusedSession(cold, RUNS);
  } finally {
    await cold.stop();
  }
  log("kubernetes: reused session (no checkpoint)");
  const plain = await startServer({ transport: "node", backend: "kubernetes", env: { ...SERVER_ENV, ...POOL_OFF, STATE_CHECKPOINT_AFTER_RUN: "false" } });
  let reusedNoCheckpoint: Awaited<ReturnType<typeof reusedSession>>;
  try {
    reusedNoCheckpoint = await reusedSession(plain, RUNS);
  } finally {
    await plain.stop();
  }
  log(`kubernetes: warm pod pool (POD_POOL_PY=${POOL_SIZE})`);
  const pooled = await startServer({ transport: "node", backend: "kubernetes", env: { ...SERVER_ENV, ...POOL_ON } });
  try {
    const warmPod = await pooledFirstExecs(pooled, 60_000);
    return {
      provider: "kubernetes (API server stand-in on loopback; pods are local sandboxes on 127.x.y.z)",
      coldPod: coldFigures,
      warmPod,
      reusedSession: { withCheckpoint: reused, withoutCheckpoint: reusedNoCheckpoint },
    };
  } finally {
    await pooled.stop();
  }
}

/**
 * (f) The first two new sessions right after /ready says 200, on READY_ROUNDS fresh servers at the
 * server's defaults (warm pool on): as shipped (the start-up check, /ready waiting for the pool), and
 * ready at once as before (SANDBOX_STARTUP_CHECK=off, READY_WAIT_FOR_POOL_SECONDS=0: the pool still warming).
 */
async function afterReadyFigures() {
  const variants: Record<string, Record<string, string>> = {
    waitForPool: {},
    readyAtOnce: { SANDBOX_STARTUP_CHECK: "off", READY_WAIT_FOR_POOL_SECONDS: "0" },
  };
  const figures: Record<string, unknown> = {};
  for (const [name, extra] of Object.entries(variants)) {
    const rounds: Awaited<ReturnType<typeof firstSessionsAfterReady>>[] = [];
    for (let i = 0; i < READY_ROUNDS; i++) {
      log(`first sessions after /ready (${name}): fresh server ${i + 1}/${READY_ROUNDS}`);
      const server = await startServer({ transport: "node", env: { ...SERVER_ENV, ...extra } });
      try {
        rounds.push(await firstSessionsAfterReady(server, 2, 120_000));
      } finally {
        await server.stop();
      }
    }
    figures[name] = {
      servers: rounds.length,
      firstSessionOpenToFirstOutMs: summarize(rounds.map((r) => r.firstOutputMs[0]!)),
      secondSessionOpenToFirstOutMs: summarize(rounds.map((r) => r.firstOutputMs[1]!)),
      readyAfterListeningMs: summarize(rounds.map((r) => r.readyAfterListeningMs)),
      poolHits: rounds.reduce((sum, r) => sum + r.poolHits, 0),
      poolMisses: rounds.reduce((sum, r) => sum + r.poolMisses, 0),
    };
  }
  return figures;
}

async function main() {
  const started = performance.now();
  // BENCH_ONLY=<part>: that part alone, beside the bare-process floor.
  const parts: Record<string, () => Promise<unknown>> = {
    ready: afterReadyFigures,
    shutdown: () => shutdownFigures(SHUTDOWN_SESSIONS, log),
    execs: execFigures,
  };
  const only = process.env.BENCH_ONLY;
  if (only) {
    const part = parts[only];
    if (!part) throw new Error(`BENCH_ONLY=${only}: not one of ${Object.keys(parts).join(", ")}`);
    log("bare python");
    const barePy = summarize(await timeRepeated(RUNS, () => bare("/usr/bin/python3", ["-c", "print(1)"])));
    const report = {
      machine: { ...machine(), python: await pythonVersion() },
      settings: { runs: RUNS, readyRounds: READY_ROUNDS, shutdownSessions: SHUTDOWN_SESSIONS, maxCpuQuota: SERVER_ENV.MAX_CPU_QUOTA },
      bare: { pythonPrint1Ms: barePy },
      [only]: await part(),
    };
    process.stdout.write(`${JSON.stringify({ ...report, totalSeconds: Math.round((performance.now() - started) / 100) / 10 }, null, 2)}\n`);
    return;
  }
  log("bare python");
  const barePy = summarize(await timeRepeated(RUNS, () => bare("/usr/bin/python3", ["-c", "print(1)"])));
  const transports = [];
  for (const transport of (process.env.BENCH_TRANSPORTS ?? "node,uws").split(",") as Array<"node" | "uws">) {
    transports.push(await perTransport(transport));
  }
  const sessions = await coldAndPool();
  const afterReady = await afterReadyFigures();
  const shutdown = await shutdownFigures(SHUTDOWN_SESSIONS, log);
  const kube = env("BENCH_KUBERNETES", 1) ? await kubernetes() : null;
  log("egress proxy (ENABLE_SANDBOX_NETWORK)");
  const egress = env("BENCH_EGRESS", 1) ? await egressFigures({ runs: RUNS, coldRuns: COLD_RUNS, serverEnv: SERVER_ENV }) : null;
  const ratio = (a: number, b: number) => Math.round((a / b) * 1000) / 1000;
  const report = {
    machine: { ...machine(), python: await pythonVersion() },
    settings: {
      runs: RUNS,
      coldRuns: COLD_RUNS,
      firstOutputRuns: FIRST_OUTPUT_RUNS,
      loadSessions: LOAD_SESSIONS,
      loadSeconds: LOAD_SECONDS,
      idleConnections: IDLE_CONNECTIONS,
      pssSandboxes: PSS_SANDBOXES,
      poolSize: POOL_SIZE,
      readyRounds: READY_ROUNDS,
      shutdownSessions: SHUTDOWN_SESSIONS,
      maxCpuQuota: SERVER_ENV.MAX_CPU_QUOTA,
    },
    bare: { pythonPrint1Ms: barePy },
    transports: transports.map((t) => ({
      ...t,
      ratios: {
        wsExecToBarePython: ratio(t.wsExecPyMs.median, barePy.median),
        httpExecToBarePython: ratio(t.httpExecPyMs.median, barePy.median),
      },
    })),
    newSession: sessions,
    firstSessionsAfterReady: afterReady,
    shutdown,
    kubernetes: kube,
    egress,
    totalSeconds: Math.round((performance.now() - started) / 100) / 10,
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

main().catch((error) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
