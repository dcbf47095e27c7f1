/**
 * `npm run soak`: mixed traffic from many clients against the real built
 * server for a bounded time, run by hand (not in CI). Each client loops over:
 * open a WebSocket session, run a few execs (Python with a variable kept,
 * bash writing a file, a program that times out, one that floods its
 * output), an HTTP /exec in the same session, an upload and its download,
 * then closes the session. Samples the server's RSS, live sandboxes,
 * processes of the sandbox uid and stored bytes; at the end waits for the
 * server to be idle and reports what is left. Prints JSON.
 * Knobs: SOAK_CLIENTS (50), SOAK_SECONDS (1800), SOAK_SAMPLE_SECONDS (30), SOAK_EXEC_SECONDS (10:
 * MAX_EXECUTION_TIME of the server), SERVER_TRANSPORT (node).
 */
import { execFileSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { type ServerProcess, startServer, TEST_API_KEY } from "../helpers/server-process.ts";
import { BenchClient } from "./client.ts";
import { rssKb } from "./procfs.ts";

const CLIENTS = Number(process.env.SOAK_CLIENTS ?? 50);
const SECONDS = Number(process.env.SOAK_SECONDS ?? 1800);
const SAMPLE_SECONDS = Number(process.env.SOAK_SAMPLE_SECONDS ?? 30);
const SANDBOX_UID = 1001;
const log = (message: string) => process.stderr.write(`soak: ${message}\n`);

function sandboxProcesses(): number {
  try {
    return execFileSync("ps", ["-u", String(SANDBOX_UID), "-o", "pid="], { encoding: "utf8" })
      .trim()
      .split("\n")
      .filter(Boolean).length;
  } catch {
    return 0; // ps exits 1 when there is none
  }
}

function storedBytes(dir: string): number {
  let total = 0;
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    try {
      const st = statSync(join(dir, name));
      if (st.isFile()) total += st.size;
    } catch {
      // removed meanwhile
    }
  }
  return total;
}

function sample(server: ServerProcess) {
  return {
    atSeconds: Math.round(performance.now() / 1000),
    serverRssMiB: Math.round((rssKb(server.pid) / 1024) * 10) / 10,
    sandboxFolders: readdirSync(server.baseDir).filter((name) => !name.startsWith(".")).length, // not .owner, the lock
    sandboxUidProcesses: sandboxProcesses(),
    storedMiB: Math.round((storedBytes(server.storageDir) / 1048576) * 100) / 100,
  };
}

async function http(server: ServerProcess, path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${server.httpUrl}${path}`, { ...init, headers: { "x-api-key": TEST_API_KEY, ...init.headers } });
}

/** One client's loop until the deadline; returns its counts. */
async function client(server: ServerProcess, index: number, deadline: number) {
  const counts = { sessions: 0, execs: 0, httpExecs: 0, uploads: 0, failures: 0, failureSamples: [] as string[], failureKinds: {} as Record<string, number> };
  const fail = (what: string, kind = what) => {
    counts.failures += 1;
    counts.failureKinds[kind] = (counts.failureKinds[kind] ?? 0) + 1;
    if (counts.failureSamples.length < 3) counts.failureSamples.push(what);
  };
  while (Date.now() < deadline) {
    let ws: BenchClient | undefined;
    try {
      ws = await BenchClient.connect(server.wsUrl, TEST_API_KEY);
      const sessionId = await ws.openSession(120_000);
      counts.sessions += 1;
      const run = async (lang: string, code: string, ok: (o: { code: number | null; reason: string }) => boolean) => {
        const outcome = await ws!.exec(lang, code, 120_000);
        counts.execs += 1;
        // A closed socket (admission refused a run after ADMISSION_QUEUE_TIMEOUT: close 4008) ends this round; the next opens a new session.
        if (outcome.reason === "closed") throw new Error(`${lang} exec: socket ${outcome.error}`.replace(/ during b\d+$/, ""));
        if (!ok(outcome)) fail(`${lang} exec: ${JSON.stringify(outcome).slice(0, 200)}`, `${lang} exec ended ${outcome.reason}`);
      };
      await run("py", `x${index} = ${index}\nprint(x${index})`, (o) => o.code === 0);
      await run("py", `print(x${index} + 1)`, (o) => o.code === 0);
      // The same session over HTTP, with the variable the WebSocket runs defined.
      const res = await http(server, "/exec", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ lang: "py", code: `print(x${index} * 2)`, session_id: sessionId }),
      });
      counts.httpExecs += 1;
      const text = await res.text();
      if (res.status !== 200 || !text.includes(`"stdout":"${index * 2}\\n"`)) fail(`/exec ${res.status} ${text.slice(0, 160)}`, `/exec ${res.status}`);
      await run("bash", `echo ${index} > /mnt/data/c${index}.txt; seq 1 1000 | tail -1`, (o) => o.code === 0);
      // Runs cut short (they end the interpreter): a timeout and an output flood.
      await run("py", "import time\ntime.sleep(60)", (o) => o.reason === "timeout");
      await run("py", "print('y' * 100000)\nwhile True: print('z' * 1000)", (o) => o.reason === "output_limit");
      const form = new FormData();
      form.append("file", new Blob([`row,${index}\n`.repeat(200)]), `u${index}.csv`);
      const upload = await http(server, "/upload", { method: "POST", body: form });
      counts.uploads += 1;
      const uploaded = (await upload.json()) as { session_id: string; files: Array<{ fileId: string }> };
      const download = await http(server, `/download/${uploaded.session_id}/${uploaded.files[0]?.fileId}`);
      if (download.status !== 200 || (await download.arrayBuffer()).byteLength !== `row,${index}\n`.length * 200)
        fail(`download ${download.status}`, `download ${download.status}`);
      // Clean up what this round made: the upload's session, then the WebSocket session (session.close deletes its files).
      await http(server, `/files/${uploaded.session_id}/${uploaded.files[0]?.fileId}`, { method: "DELETE" });
      ws.socket.send(JSON.stringify({ type: "session.close" }));
      await new Promise<void>((resolve) => {
        ws?.socket.once("close", () => resolve());
        setTimeout(resolve, 5_000);
      });
    } catch (error) {
      fail((error as Error).message, `client error: ${(error as Error).message.slice(0, 60)}`);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    } finally {
      ws?.close();
    }
  }
  return counts;
}

async function main() {
  const transport = (process.env.SERVER_TRANSPORT ?? "node") as "node" | "uws";
  const server = await startServer({
    transport,
    // A time limit that a first run in a cold sandbox meets even while ~50 sandboxes start on 2 cores.
    env: {
      MAX_EXECUTION_TIME: process.env.SOAK_EXEC_SECONDS ?? "10",
      MAX_OUTPUT_BYTES: "200000",
      SESSION_IDLE_GRACE: "5",
      SANDBOX_TTL_MINUTES: "1",
      MAX_CPU_QUOTA: "100000",
    },
  });
  try {
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    const baseline = sample(server);
    log(`baseline ${JSON.stringify(baseline)}; ${CLIENTS} clients for ${SECONDS} s`);
    const samples = [baseline];
    const deadline = Date.now() + SECONDS * 1000;
    const sampler = setInterval(() => {
      const s = sample(server);
      samples.push(s);
      log(JSON.stringify(s));
    }, SAMPLE_SECONDS * 1000);
    const results = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => client(server, i, deadline)));
    clearInterval(sampler);
    // Idle: sessions closed, sandboxes go with their session; the pool keeps its warm ones.
    await new Promise((resolve) => setTimeout(resolve, 15_000));
    const end = sample(server);
    const metrics = await (await http(server, "/health/detailed")).json();
    const total = (key: "sessions" | "execs" | "httpExecs" | "uploads" | "failures") => results.reduce((sum, r) => sum + r[key], 0);
    const report = {
      settings: { clients: CLIENTS, seconds: SECONDS, transport },
      totals: { sessions: total("sessions"), execs: total("execs"), httpExecs: total("httpExecs"), uploads: total("uploads"), failures: total("failures") },
      failureKinds: results.reduce<Record<string, number>>((all, r) => {
        for (const [kind, n] of Object.entries(r.failureKinds)) all[kind] = (all[kind] ?? 0) + n;
        return all;
      }, {}),
      failureSamples: results.flatMap((r) => r.failureSamples).slice(0, 10),
      baseline,
      end,
      peak: {
        serverRssMiB: Math.max(...samples.map((s) => s.serverRssMiB)),
        sandboxFolders: Math.max(...samples.map((s) => s.sandboxFolders)),
        sandboxUidProcesses: Math.max(...samples.map((s) => s.sandboxUidProcesses)),
      },
      pool: (metrics as { checks?: { pool?: unknown } }).checks?.pool,
      samples,
    };
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } finally {
    await server.stop();
  }
}

main().catch((error) => {
  process.stderr.write(`soak failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
