/**
 * (g) SIGTERM to exit: with idle sessions whose Python state is saved on the
 * way out, and with one run that outlasts SHUTDOWN_GRACE_SECONDS; the server's
 * own shutdown report (time per session to save its state and park its
 * stream); and after a restart, the first exec that finds its variables again.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ServerProcess, startServer, TEST_API_KEY } from "../helpers/server-process.ts";
import { BenchClient } from "./client.ts";

const LONG_RUN_GRACE_SECONDS = 5;

/** SIGTERM, and the ms until the process has exited, with its exit code. */
async function timeSigterm(server: ServerProcess): Promise<{ ms: number; code: number | null }> {
  const exited = new Promise<number | null>((resolve) => server.child.once("exit", (code) => resolve(code)));
  const started = performance.now();
  server.child.kill("SIGTERM");
  const code = await exited;
  return { ms: Math.round(performance.now() - started), code };
}

/** The fields of the server's "sessions saved for the next start" line. */
function shutdownReport(server: ServerProcess): Record<string, unknown> | null {
  const line = server.logs.find((l) => l.includes('"msg":"sessions saved for the next start"'));
  if (!line) return null;
  const { level: _l, time: _t, pid: _p, hostname: _h, msg: _m, ...report } = JSON.parse(line) as Record<string, unknown>;
  return report;
}

async function openPythonSessions(server: ServerProcess, count: number): Promise<{ clients: BenchClient[]; sessionIds: string[] }> {
  const clients: BenchClient[] = [];
  const sessionIds: string[] = [];
  for (let i = 0; i < count; i++) {
    const client = await BenchClient.connect(server.wsUrl, TEST_API_KEY);
    sessionIds.push(await client.openSession());
    // A namespace worth saving: a list and a dict.
    const outcome = await client.exec("py", `x = ${i}\nrows = [{"n": n, "sq": n * n} for n in range(1000)]`);
    if (outcome.code !== 0) throw new Error(`setup exec failed: ${JSON.stringify(outcome)}`);
    clients.push(client);
  }
  return { clients, sessionIds };
}

export async function shutdownFigures(sessions: number, log: (message: string) => void) {
  const storageDir = mkdtempSync(join(tmpdir(), "bench-shutdown-"));
  const env = { SANDBOX_POOL_ENABLED: "false", SESSION_IDLE_GRACE: "600" };
  try {
    log(`shutdown: ${sessions} idle Python sessions`);
    const first = await startServer({ transport: "node", storageDir, env });
    const { clients, sessionIds } = await openPythonSessions(first, sessions);
    const idle = await timeSigterm(first);
    const idleReport = shutdownReport(first);
    for (const client of clients) client.close();
    await first.stop();

    log("shutdown: restart, first exec of a saved session");
    const second = await startServer({ transport: "node", storageDir, env });
    let restored: { ms: number; ok: boolean };
    try {
      const client = await BenchClient.connect(second.wsUrl, TEST_API_KEY);
      const started = performance.now();
      client.socket.send(JSON.stringify({ type: "session.open", sessionId: sessionIds[0] }));
      await new Promise<void>((resolve) => client.socket.once("message", () => resolve()));
      const outcome = await client.exec("py", "print(x, len(rows))");
      restored = { ms: Math.round(outcome.exitAt - started), ok: outcome.code === 0 };
      client.close();
    } finally {
      await second.stop();
    }

    // The default grace (30 s) is MAX_EXECUTION_TIME's default: a run then always ends by itself within it.
    log(`shutdown: one run longer than the grace (SHUTDOWN_GRACE_SECONDS=${LONG_RUN_GRACE_SECONDS})`);
    const third = await startServer({ transport: "node", storageDir, env: { ...env, SHUTDOWN_GRACE_SECONDS: String(LONG_RUN_GRACE_SECONDS) } });
    let long: { ms: number; code: number | null };
    let longReport: Record<string, unknown> | null;
    try {
      const client = await BenchClient.connect(third.wsUrl, TEST_API_KEY);
      await client.openSession();
      const run = client.exec("py", "import time\nprint('started', flush=True)\ntime.sleep(25)", 120_000);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      long = await timeSigterm(third);
      longReport = shutdownReport(third);
      const ended = await run;
      longReport = { ...longReport, execReason: ended.reason };
      client.close();
    } finally {
      await third.stop();
    }
    return {
      idleSessions: { sessions, sigtermToExitMs: idle.ms, exitCode: idle.code, report: idleReport },
      restartFirstExecWithState: restored,
      longRun: { graceSeconds: LONG_RUN_GRACE_SECONDS, sigtermToExitMs: long.ms, exitCode: long.code, report: longReport },
    };
  } finally {
    rmSync(storageDir, { recursive: true, force: true });
  }
}
