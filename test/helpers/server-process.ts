import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type KubeStandIn, startKubeStandIn } from "./kube-stand-in.ts";
import { REPO_ROOT } from "./repo-root.ts";
import { uwsNodePrefix } from "./uws-runtime.ts";

export { REPO_ROOT };
export const TEST_API_KEY = "test-key-0123456789abcdef";
export const TEST_MASTER_KEY = "master-key-0123456789abcdef";

/** One "listening" line of the server. */
export interface ListenerInfo {
  port: number;
  tls: boolean;
  /** "api", or "redirect" for the plain listener with SSL_REDIRECT. */
  role: string;
}

export interface ServerProcess {
  /** The first listener's port: the plain API port, or the TLS one when that is the only listener. */
  port: number;
  /** URLs of the first listener (https:// and wss:// when it is the TLS one). */
  httpUrl: string;
  wsUrl: string;
  /** The TLS listener, when HTTPS is on. */
  httpsPort?: number;
  httpsUrl?: string;
  wssUrl?: string;
  /** Every listener, in the order of the "listening" lines. */
  listeners: ListenerInfo[];
  pid: number;
  child: ChildProcess;
  /** The server's SANDBOX_BASE_DIR: one folder per live sandbox. */
  baseDir: string;
  /** The server's FILE_STORAGE_PATH: session records and files. */
  storageDir: string;
  /** Every log line the server printed so far. */
  logs: string[];
  /** backend "kubernetes": the API server stand-in the server's pods live in (closed by stop()). */
  kube?: KubeStandIn;
  stop(): Promise<void>;
}

export type Backend = "local" | "kubernetes";

/** Servers this test process started and has not stopped: killed when it exits, so none outlives its test file. */
const running = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

/** A server that exited (or never listened) during start-up: its exit code and every line it printed. */
export class ServerStartError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly logs: string[],
  ) {
    super(message);
  }
}

/** What a server needs to run its sandboxes as pods of a stand-in API server (test/helpers/kube-stand-in.ts). */
export function kubernetesEnv(kube: KubeStandIn): Record<string, string> {
  return {
    EXECUTION_BACKEND: "kubernetes",
    KUBECONFIG: kube.kubeconfig,
    K8S_NAMESPACE: kube.namespace,
    K8S_IMAGE_PULL_POLICY: "IfNotPresent",
    K8S_IMAGE_TAG: "test",
    K8S_POD_START_TIMEOUT: "30",
  };
}

/**
 * Start the built server (dist/server.mjs) as a real child process on a free
 * loopback port, with its own sandbox folder, and wait until it listens.
 * With `baseDir` (or `storageDir`), the server uses that SANDBOX_BASE_DIR
 * (FILE_STORAGE_PATH) instead, and stop() leaves it in place (the test made it
 * and removes it): a restart is a second server on the same storageDir.
 */
export async function startServer(options: {
  transport: "node" | "uws";
  env?: Record<string, string>;
  backend?: Backend;
  baseDir?: string;
  storageDir?: string;
}): Promise<ServerProcess> {
  const kube = options.backend === "kubernetes" ? await startKubeStandIn() : undefined;
  const baseDir = options.baseDir ?? mkdtempSync(join(tmpdir(), "ci-sandboxes-"));
  const removeBaseDir = () => {
    if (!options.baseDir) rmSync(baseDir, { recursive: true, force: true });
  };
  const storageDir = options.storageDir ?? mkdtempSync(join(tmpdir(), "ci-storage-"));
  const removeStorageDir = () => {
    if (!options.storageDir) rmSync(storageDir, { recursive: true, force: true });
  };
  const prefix = options.transport === "uws" ? await uwsNodePrefix() : [];
  const argv = [...prefix, process.execPath, join(REPO_ROOT, "dist/server.mjs"), "serve"];
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd: REPO_ROOT,
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      API_HOST: "127.0.0.1",
      API_PORT: "0",
      SERVER_TRANSPORT: options.transport,
      API_KEY: TEST_API_KEY,
      MASTER_API_KEY: TEST_MASTER_KEY,
      SANDBOX_BASE_DIR: baseDir,
      FILE_STORAGE_PATH: storageDir,
      LOG_FORMAT: "json",
      LOG_LEVEL: "info",
      ...(kube ? kubernetesEnv(kube) : {}),
      ...options.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(child);
  child.once("exit", () => running.delete(child));
  const logs: string[] = [];
  const listeners: ListenerInfo[] = [];
  const listening = new Promise<void>((resolveListening, reject) => {
    const timer = setTimeout(() => reject(new ServerStartError(`server did not start:\n${logs.join("\n")}`, null, logs)), 30_000);
    let buffered = "";
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString();
      let newline = buffered.indexOf("\n");
      while (newline >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        logs.push(line);
        if (line.includes('"msg":"listening"')) {
          // One line per listener; each says how many there are (older servers: one, without the field).
          const entry = JSON.parse(line) as { port: number; tls?: boolean; role?: string; listeners?: number };
          listeners.push({ port: entry.port, tls: entry.tls ?? false, role: entry.role ?? "api" });
          if (listeners.length >= (entry.listeners ?? 1)) {
            clearTimeout(timer);
            resolveListening();
          }
        }
        newline = buffered.indexOf("\n");
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", (chunk: Buffer) => logs.push(chunk.toString()));
    child.once("exit", (code) => {
      clearTimeout(timer);
      // Its last lines (why it stopped) may still be in the pipes: wait for them, briefly.
      const fail = () => reject(new ServerStartError(`server exited with ${code}:\n${logs.join("\n")}`, code, logs));
      const late = setTimeout(fail, 2_000);
      child.once("close", () => {
        clearTimeout(late);
        fail();
      });
    });
  });
  try {
    await listening;
  } catch (error) {
    // Still starting after the time allowed: it must not outlive the test.
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    removeBaseDir();
    removeStorageDir();
    await kube?.close();
    throw error;
  }
  const first = listeners[0]!;
  const secure = listeners.find((l) => l.tls);
  const port = first.port;
  return {
    port,
    httpUrl: `${first.tls ? "https" : "http"}://127.0.0.1:${port}`,
    wsUrl: `${first.tls ? "wss" : "ws"}://127.0.0.1:${port}/ws`,
    ...(secure ? { httpsPort: secure.port, httpsUrl: `https://127.0.0.1:${secure.port}`, wssUrl: `wss://127.0.0.1:${secure.port}/ws` } : {}),
    listeners,
    pid: child.pid!,
    child,
    baseDir,
    storageDir,
    logs,
    ...(kube ? { kube } : {}),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await exited;
        clearTimeout(timer);
      }
      removeBaseDir();
      removeStorageDir();
      await kube?.close();
    },
  };
}
