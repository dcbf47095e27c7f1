import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const FIXTURE = resolve(import.meta.dirname, "..", "fixtures", "s3", "server.mjs");

/** s3rver accepts any well-formed signature made with these keys. */
export const S3_TEST_ACCESS_KEY = "S3RVER";
export const S3_TEST_SECRET_KEY = "S3RVER";

export interface S3ServerOptions {
  /** Bucket the env points at (default: a fresh name per server). */
  bucket?: string;
  /** Create the bucket before the first start (default true); false lets the store create it. */
  createBucket?: boolean;
  /** More variables to put in `env` (e.g. ENABLE_ORPHAN_S3_CLEANUP). */
  env?: Record<string, string>;
}

export interface S3Server {
  /** Server variables pointing at this S3: S3_ENDPOINT, keys, bucket, region, S3_SECURE. */
  env: Record<string, string>;
  /** host:port, as S3_ENDPOINT takes it. */
  endpoint: string;
  port: number;
  bucket: string;
  /** s3rver's data folder: kept across stop()/restart(), removed by destroy() or when this process exits. */
  dataDir: string;
  /** Whether the server process is up. */
  readonly running: boolean;
  /** Kill the server process (connections reset, port closed) but keep its data, for restart(). */
  stop(): Promise<void>;
  /** Start it again on the same port with the same data (stops it first if it is up). */
  restart(): Promise<void>;
  /** Freeze the server process (SIGSTOP): connections stay open and nothing answers, as with a hung or black-holed S3. */
  pause(): void;
  /** Thaw it (SIGCONT). */
  resume(): void;
  /** Stop for good and remove the data folder. */
  destroy(): Promise<void>;
}

let counter = 0;
const dataDirs = new Set<string>();
// A suite that forgets destroy() must not leave data folders behind.
process.once("exit", () => {
  for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
});

/**
 * Run s3rver as a child process on a free loopback port with a temporary data
 * folder. stop()/restart() model an S3 outage: the port goes away, then comes
 * back with every object that was acknowledged before.
 */
export async function startS3(options: S3ServerOptions = {}): Promise<S3Server> {
  const dataDir = mkdtempSync(join(tmpdir(), "ci-s3-"));
  dataDirs.add(dataDir);
  const bucket = options.bucket ?? `ci-test-${process.pid}-${++counter}`;
  let child: ChildProcess | undefined;
  let port = 0;
  try {
    const started = await spawnServer(dataDir, 0, options.createBucket === false ? [] : [bucket]);
    child = started.child;
    port = started.port;
  } catch (error) {
    rmSync(dataDir, { recursive: true, force: true });
    dataDirs.delete(dataDir);
    throw error;
  }
  const endpoint = `127.0.0.1:${port}`;
  const stop = async () => {
    const current = child;
    child = undefined;
    if (current && current.exitCode === null && current.signalCode === null) {
      const exited = new Promise((r) => current.once("exit", r));
      current.kill("SIGKILL");
      await exited;
    }
  };
  return {
    env: {
      S3_ENDPOINT: endpoint,
      S3_SECURE: "false",
      S3_ACCESS_KEY: S3_TEST_ACCESS_KEY,
      S3_SECRET_KEY: S3_TEST_SECRET_KEY,
      S3_BUCKET: bucket,
      S3_REGION: "us-east-1",
      ...options.env,
    },
    endpoint,
    port,
    bucket,
    dataDir,
    get running() {
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    },
    stop,
    pause() {
      child?.kill("SIGSTOP");
    },
    resume() {
      child?.kill("SIGCONT");
    },
    async destroy() {
      await stop();
      rmSync(dataDir, { recursive: true, force: true });
      dataDirs.delete(dataDir);
    },
    async restart() {
      await stop();
      // The port was ours a moment ago; another process may grab it in between, so retry briefly.
      const deadline = Date.now() + 10_000;
      for (;;) {
        try {
          child = (await spawnServer(dataDir, port, [])).child;
          return;
        } catch (error) {
          if (!(error instanceof PortInUseError) || Date.now() > deadline) throw error;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    },
  };
}

class PortInUseError extends Error {}

function spawnServer(dataDir: string, port: number, buckets: string[]): Promise<{ child: ChildProcess; port: number }> {
  // stdin is a pipe so that the server exits if this process dies without stopping it.
  const child = spawn(process.execPath, [FIXTURE, dataDir, String(port), ...buckets], { stdio: ["pipe", "pipe", "pipe"] });
  return new Promise((resolveStart, reject) => {
    let output = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`s3rver did not start:\n${output}`));
    }, 15_000);
    child.stdout!.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      const line = output.split("\n").find((l) => l.startsWith('{"ready":true'));
      if (line) {
        clearTimeout(timer);
        resolveStart({ child, port: (JSON.parse(line) as { port: number }).port });
      }
    });
    child.stderr!.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(code === 3 ? new PortInUseError(output) : new Error(`s3rver exited with ${code}:\n${output}`));
    });
  });
}
