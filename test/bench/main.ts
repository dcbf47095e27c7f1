/**
 * `npm run bench`: latency of the WebSocket path against the real server with
 * real sandboxes, next to the bare process it wraps. Prints one JSON document.
 * Every loop is bounded in count; all traffic stays on 127.0.0.1.
 */
import { execFile } from "node:child_process";
import { startServer, TEST_API_KEY } from "../helpers/server-process.ts";
import { TestClient } from "../helpers/ws-client.ts";
import { summarize, timeRepeated } from "./stats.ts";

const RUNS = Number(process.env.BENCH_RUNS ?? 50);
const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 10);
const SANDBOX_PATH = "/usr/bin:/bin";

function bare(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { env: { PATH: SANDBOX_PATH } }, (error) => (error ? reject(error) : resolve()));
  });
}

async function benchTransport(transport: "node" | "uws") {
  const server = await startServer({ transport, env: { MAX_CPU_QUOTA: process.env.MAX_CPU_QUOTA ?? "100000" } });
  try {
    const sessionOpen = await timeRepeated(SESSIONS, async () => {
      const client = await TestClient.connect(server.wsUrl, { apiKey: TEST_API_KEY });
      await client.openSession();
      client.send({ type: "session.close" });
      await client.closed;
    });

    const client = await TestClient.connect(server.wsUrl, { apiKey: TEST_API_KEY });
    await client.openSession();
    let n = 0;
    const exec = async (lang: string, code: string) => {
      const { exit } = await client.run(`e${n++}`, lang, code);
      if (exit.type !== "exit" || exit.code !== 0) throw new Error(`bench exec failed: ${JSON.stringify(exit)}`);
    };
    for (let i = 0; i < 3; i++) {
      await exec("py", "print('hello world')");
      await exec("bash", "echo hello world");
    }
    const py = await timeRepeated(RUNS, () => exec("py", "print('hello world')"));
    const bash = await timeRepeated(RUNS, () => exec("bash", "echo hello world"));

    const firstOutput: number[] = [];
    for (let i = 0; i < 5; i++) {
      const from = client.frames.length;
      const id = `fo${i}`;
      const started = performance.now();
      client.send({ type: "exec", id, lang: "py", code: "import time\nprint('first', flush=True)\ntime.sleep(1)\nprint('second')" });
      const first = await client.waitFor((f) => f.type === "out" && f.id === id, 30_000, from);
      firstOutput.push(first.at - started);
      await client.waitFor((f) => f.type === "exit" && f.id === id, 30_000, from);
    }
    client.terminate();

    // HTTP /exec, as LibreChat calls it: in a reused session, and in a new session each time.
    const httpExec = async (sessionId?: string): Promise<string> => {
      const res = await fetch(`${server.httpUrl}/exec`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-api-key": TEST_API_KEY },
        body: JSON.stringify({ lang: "py", code: "print('hello world')", ...(sessionId ? { session_id: sessionId } : {}) }),
      });
      const body = (await res.json()) as { session_id: string; stdout: string };
      if (res.status !== 200 || body.stdout !== "hello world\n") throw new Error(`bench /exec failed: ${res.status} ${JSON.stringify(body)}`);
      return body.session_id;
    };
    const reused = await httpExec();
    for (let i = 0; i < 3; i++) await httpExec(reused);
    const httpReused = await timeRepeated(RUNS, async () => {
      await httpExec(reused);
    });
    const httpNew = await timeRepeated(SESSIONS, async () => {
      await httpExec();
    });
    return {
      transport: server.logs.join("\n").includes(`"transport":"${transport}"`) ? transport : "other",
      sessionOpenMs: summarize(sessionOpen),
      execPyHelloMs: summarize(py),
      execBashHelloMs: summarize(bash),
      firstOutputMs: summarize(firstOutput),
      httpExecPyReusedSessionMs: summarize(httpReused),
      httpExecPyNewSessionMs: summarize(httpNew),
    };
  } finally {
    await server.stop();
  }
}

async function main() {
  const barePy = summarize(await timeRepeated(RUNS, () => bare("/usr/bin/python3", ["-c", "print('hello world')"])));
  const bareBash = summarize(await timeRepeated(RUNS, () => bare("/bin/bash", ["-c", "echo hello world"])));
  const results = [];
  for (const transport of (process.env.BENCH_TRANSPORTS ?? "node,uws").split(",") as Array<"node" | "uws">) {
    results.push(await benchTransport(transport));
  }
  const ratio = (a: number, b: number) => Math.round((a / b) * 100) / 100;
  const report = {
    machine: { cpus: (await import("node:os")).cpus().length, node: process.version },
    runs: RUNS,
    bare: { pythonMs: barePy, bashMs: bareBash },
    ws: results.map((r) => ({
      ...r,
      ratioPyToBare: ratio(r.execPyHelloMs.median, barePy.median),
      ratioBashToBare: ratio(r.execBashHelloMs.median, bareBash.median),
    })),
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

main().catch((error) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
