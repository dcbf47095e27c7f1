/** The bench scenarios, one function per figure of docs/PERFORMANCE.md. Loopback only, bounded in count and time. */
import WebSocket from "ws";
import { type ServerProcess, TEST_API_KEY } from "../helpers/server-process.ts";
import { BenchClient } from "./client.ts";
import { rssKb, sandboxPss } from "./procfs.ts";
import { summarize } from "./stats.ts";

const PY_TRIVIAL = "print(1)";

function check(outcome: { code: number | null; reason: string; error?: string }, what: string): void {
  if (outcome.code !== 0) throw new Error(`${what} failed: ${JSON.stringify(outcome)}`);
}

/**
 * (a) print(1) in one reused session: WebSocket exec sent -> exit frame, and HTTP /exec round trip; and `echo 1`
 * in bash, a new process (and jail) per exec where Python reuses its interpreter.
 */
export async function reusedSession(server: ServerProcess, runs: number) {
  const client = await BenchClient.connect(server.wsUrl, TEST_API_KEY);
  await client.openSession();
  for (let i = 0; i < 5; i++) check(await client.exec("py", PY_TRIVIAL), "warm-up");
  const ws: number[] = [];
  for (let i = 0; i < runs; i++) {
    const o = await client.exec("py", PY_TRIVIAL);
    check(o, "ws exec");
    ws.push(o.exitAt - o.sentAt);
  }
  const bash: number[] = [];
  for (let i = 0; i < 5; i++) check(await client.exec("bash", "echo 1"), "warm-up");
  for (let i = 0; i < runs; i++) {
    const o = await client.exec("bash", "echo 1");
    check(o, "ws exec bash");
    bash.push(o.exitAt - o.sentAt);
  }
  client.close();

  const httpExec = async (sessionId?: string): Promise<string> => {
    const res = await fetch(`${server.httpUrl}/exec`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": TEST_API_KEY },
      body: JSON.stringify({ lang: "py", code: PY_TRIVIAL, ...(sessionId ? { session_id: sessionId } : {}) }),
    });
    const body = (await res.json()) as { session_id: string; stdout: string };
    if (res.status !== 200 || body.stdout !== "1\n") throw new Error(`/exec failed: ${res.status} ${JSON.stringify(body)}`);
    return body.session_id;
  };
  const sessionId = await httpExec();
  for (let i = 0; i < 5; i++) await httpExec(sessionId);
  const http: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    await httpExec(sessionId);
    http.push(performance.now() - started);
  }
  return { wsExecPyMs: summarize(ws), httpExecPyMs: summarize(http), wsExecBashMs: summarize(bash) };
}

/** (c) exec sent -> first out frame of a program that prints, then sleeps. */
export async function firstOutput(server: ServerProcess, runs: number) {
  const client = await BenchClient.connect(server.wsUrl, TEST_API_KEY);
  await client.openSession();
  check(await client.exec("py", PY_TRIVIAL), "warm-up");
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const o = await client.exec("py", "import time\nprint('first', flush=True)\ntime.sleep(0.1)\nprint('second')");
    check(o, "first output");
    if (o.firstOutAt === undefined) throw new Error("no output frame");
    samples.push(o.firstOutAt - o.sentAt);
  }
  client.close();
  return summarize(samples);
}

/** (b) new WebSocket + session.open + first print(1) done, each in a fresh session. */
export async function newSessionFirstExec(server: ServerProcess, runs: number, beforeEach?: () => Promise<void>) {
  const total: number[] = [];
  const open: number[] = [];
  for (let i = 0; i < runs; i++) {
    await beforeEach?.();
    const started = performance.now();
    const client = await BenchClient.connect(server.wsUrl, TEST_API_KEY);
    await client.openSession();
    const opened = performance.now();
    const o = await client.exec("py", PY_TRIVIAL);
    check(o, "first exec");
    total.push(o.exitAt - started);
    open.push(opened - started);
    client.socket.send(JSON.stringify({ type: "session.close" }));
    await new Promise<void>((resolve) => {
      client.socket.once("close", () => resolve());
      setTimeout(resolve, 2_000);
    });
    client.close();
  }
  return { connectToFirstExitMs: summarize(total), connectToSessionReadyMs: summarize(open) };
}

/** (d) `sessions` clients, each running print(1) back to back for `seconds`. */
export async function concurrentLoad(server: ServerProcess, sessions: number, seconds: number) {
  const clients: BenchClient[] = [];
  const openStarted = performance.now();
  // Open in batches of 10 so sandbox start-up does not itself time out.
  for (let i = 0; i < sessions; i += 10) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(10, sessions - i) }, async () => {
        const client = await BenchClient.connect(server.wsUrl, TEST_API_KEY);
        await client.openSession(120_000);
        check(await client.exec("py", PY_TRIVIAL, 60_000), "load warm-up");
        return client;
      }),
    );
    clients.push(...batch);
  }
  const openSeconds = (performance.now() - openStarted) / 1000;
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(
    clients.map(async (client) => {
      while (performance.now() < deadline) {
        const o = await client.exec("py", PY_TRIVIAL, 30_000);
        if (o.code === 0) latencies.push(o.exitAt - o.sentAt);
        else {
          const key = o.error ?? o.reason;
          errors[key] = (errors[key] ?? 0) + 1;
        }
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  for (const client of clients) client.close();
  const errorCount = Object.values(errors).reduce((a, b) => a + b, 0);
  return {
    sessions,
    seconds: Math.round(elapsed * 100) / 100,
    openAllSessionsSeconds: Math.round(openSeconds * 100) / 100,
    execs: latencies.length,
    execsPerSecond: Math.round((latencies.length / elapsed) * 10) / 10,
    latencyMs: summarize(latencies),
    errors: errorCount,
    errorsByKind: errors,
  };
}

/** (e) PSS of each idle sandbox after one print(1), summed over its processes. */
export async function idleSandboxPss(server: ServerProcess, count: number) {
  const clients: BenchClient[] = [];
  for (let i = 0; i < count; i++) {
    const client = await BenchClient.connect(server.wsUrl, TEST_API_KEY);
    await client.openSession();
    check(await client.exec("py", PY_TRIVIAL), "pss warm-up");
    clients.push(client);
  }
  await new Promise((r) => setTimeout(r, 1_000));
  const { sandboxes, pssKb, processes } = sandboxPss(server.pid);
  for (const client of clients) client.close();
  const mib = pssKb.map((kb) => Math.round((kb / 1024) * 100) / 100);
  return { sandboxes, processesPerSandbox: processes, pssMiB: mib.length > 0 ? summarize(mib) : null };
}

/** (e) server RSS with `count` idle WebSocket connections, authenticated on the upgrade (each answered a ping). */
export async function idleConnections(server: ServerProcess, count: number, batch: number, timeLimitMs: number) {
  const rssBefore = rssKb(server.pid);
  const sockets: WebSocket[] = [];
  const deadline = Date.now() + timeLimitMs;
  let failed = 0;
  const openOne = () =>
    new Promise<void>((resolve) => {
      const socket = new WebSocket(server.wsUrl, "code-interpreter.v1", { headers: { "x-api-key": TEST_API_KEY }, perMessageDeflate: false });
      const timer = setTimeout(() => {
        failed++;
        socket.terminate();
        resolve();
      }, 30_000);
      socket.on("error", () => {});
      socket.once("open", () => socket.send(JSON.stringify({ type: "ping" })));
      socket.once("message", () => {
        clearTimeout(timer);
        sockets.push(socket);
        resolve();
      });
      socket.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  const started = performance.now();
  while (sockets.length + failed < count && Date.now() < deadline) {
    await Promise.all(Array.from({ length: Math.min(batch, count - sockets.length - failed) }, openOne));
  }
  const openSeconds = (performance.now() - started) / 1000;
  await new Promise((r) => setTimeout(r, 2_000));
  const rssAfter = rssKb(server.pid);
  const open = sockets.filter((s) => s.readyState === WebSocket.OPEN).length;
  for (const socket of sockets) socket.terminate();
  const mb = (kb: number) => Math.round((kb / 1024) * 10) / 10;
  return {
    requested: count,
    open,
    failed,
    openSeconds: Math.round(openSeconds * 10) / 10,
    serverRssBeforeMiB: mb(rssBefore),
    serverRssWithConnectionsMiB: mb(rssAfter),
    perConnectionKiB: open > 0 ? Math.round(((rssAfter - rssBefore) / open) * 100) / 100 : null,
  };
}

/** A number from the server's /metrics (0 when absent). */
export async function metric(server: ServerProcess, series: string): Promise<number> {
  const text = await (await fetch(`${server.httpUrl}/metrics`, { headers: { "x-api-key": TEST_API_KEY } })).text();
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

/** Wait until the server's pools hold at least `atLeast` warm sandboxes (its /metrics); false after the timeout. */
export async function waitForWarmSandboxes(server: ServerProcess, atLeast: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await metric(server, 'code_interpreter_pool_warm_sandboxes{lang="all"}')) >= atLeast) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

/** Poll GET /ready until 200; the ms it took, or undefined after the timeout. */
export async function waitForReady(server: ServerProcess, timeoutMs: number): Promise<number | undefined> {
  const started = performance.now();
  while (performance.now() - started < timeoutMs) {
    if ((await fetch(`${server.httpUrl}/ready`)).status === 200) return performance.now() - started;
    await new Promise((r) => setTimeout(r, 50));
  }
  return undefined;
}

/**
 * (f) On a fresh server, right after /ready says 200: `sessions` new WebSocket sessions one after the
 * other, each timed from session.open to the first out frame of print(1) (the connect itself not counted).
 */
export async function firstSessionsAfterReady(server: ServerProcess, sessions: number, readyTimeoutMs: number) {
  const readyMs = await waitForReady(server, readyTimeoutMs);
  if (readyMs === undefined) throw new Error(`/ready did not say 200 within ${readyTimeoutMs} ms`);
  const firstOutputMs: number[] = [];
  for (let i = 0; i < sessions; i++) {
    const client = await BenchClient.connect(server.wsUrl, TEST_API_KEY);
    try {
      const opened = performance.now();
      await client.openSession();
      const o = await client.exec("py", PY_TRIVIAL);
      check(o, "first exec after ready");
      if (o.firstOutAt === undefined) throw new Error("no output frame");
      firstOutputMs.push(o.firstOutAt - opened);
    } finally {
      client.close();
    }
  }
  const hits = await metric(server, 'code_interpreter_pool_hits_total{lang="all"}');
  const misses = await metric(server, 'code_interpreter_pool_misses_total{lang="all"}');
  return { readyAfterListeningMs: readyMs, firstOutputMs, poolHits: hits, poolMisses: misses };
}
