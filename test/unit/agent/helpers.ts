import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { afterAll, afterEach, beforeAll } from "vitest";
import WebSocket from "ws";
import { AGENT_TOKEN_HEADER, type AgentExec, type AgentToServer, AgentToServerSchema, parseJsonFrame, type ServerToAgent } from "../../../protocol/index.ts";
import { type Agent, type AgentOptions, startAgent } from "../../../sidecar-agent/agent-server.ts";

export const REPO_ROOT = resolve(import.meta.dirname, "..", "..", "..");
export const TOKEN = "agent-test-token-0123456789";

export type Received = AgentToServer & { at: number };

/** Compile the launcher once per test file into a temporary folder. */
export function buildLauncher(): string {
  const dir = mkdtempSync(join(tmpdir(), "agent-launcher-"));
  const out = join(dir, "launcher");
  execFileSync("cc", ["-O2", "-Wall", "-Wextra", "-o", out, join(REPO_ROOT, "sidecar-agent/launcher/launcher.c")], { stdio: "pipe" });
  return out;
}

export interface TestAgent {
  agent: Agent;
  root: string;
  dataDir: string;
  workDir: string;
  socketPath: string;
  /** Agent error log lines. */
  logs: string[];
  stop(): Promise<void>;
}

export async function startTestAgent(options: Partial<AgentOptions> = {}): Promise<TestAgent> {
  const root = mkdtempSync(join(tmpdir(), "agent-test-"));
  const dataDir = join(root, "data");
  const workDir = join(root, "work");
  const socketPath = join(root, "agent.sock");
  const logs: string[] = [];
  const agent = await startAgent({
    listen: { kind: "unix", path: socketPath },
    token: TOKEN,
    dataDir,
    workDir,
    launcher: null,
    log: (line) => logs.push(line),
    ...options,
  });
  return {
    agent,
    root,
    dataDir,
    workDir,
    socketPath,
    logs,
    async stop() {
      await agent.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/**
 * A test server-side connection to the agent: records every frame (checked
 * against the protocol schema) and acknowledges output unless told not to.
 */
export class AgentConn {
  readonly frames: Received[] = [];
  readonly invalid: string[] = [];
  readonly socket: WebSocket;
  autoAck: boolean;
  closeCode?: number;
  readonly closed: Promise<number>;
  #waiters = new Set<() => void>();

  private constructor(socket: WebSocket, autoAck: boolean) {
    this.socket = socket;
    this.autoAck = autoAck;
    this.closed = new Promise((resolve) =>
      socket.on("close", (code) => {
        this.closeCode = code;
        resolve(code);
        this.#notify();
      }),
    );
    socket.on("error", () => {});
    socket.on("message", (data) => {
      const parsed = parseJsonFrame(AgentToServerSchema, data.toString());
      if (!parsed.ok) {
        this.invalid.push(`${parsed.message}: ${data.toString().slice(0, 200)}`);
        return;
      }
      const frame = parsed.value;
      this.frames.push({ ...frame, at: performance.now() });
      if (frame.type === "out" && this.autoAck) this.send({ type: "ack", id: frame.id, bytes: frame.bytes, frames: 1 });
      this.#notify();
    });
  }

  static open(socketPath: string, options: { token?: string; autoAck?: boolean } = {}): Promise<AgentConn> {
    const socket = new WebSocket(`ws+unix://${socketPath}:/`, { headers: { [AGENT_TOKEN_HEADER]: options.token ?? TOKEN }, perMessageDeflate: false });
    const conn = new AgentConn(socket, options.autoAck ?? true);
    return new Promise((resolve, reject) => {
      socket.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      socket.once("error", reject);
      conn.waitFor((f) => f.type === "ready", 5000).then(() => resolve(conn), reject);
    });
  }

  send(frame: ServerToAgent | Record<string, unknown>): void {
    this.socket.send(JSON.stringify(frame));
  }

  sendRaw(text: string): void {
    this.socket.send(text);
  }

  close(): Promise<number> {
    this.socket.close();
    return this.closed;
  }

  #notify(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }

  /** Resolve with the first recorded frame (from `from`) that matches. */
  waitFor<T extends Received = Received>(match: (frame: Received) => boolean, timeoutMs = 10_000, from = 0): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.frames.slice(from).find(match);
        if (found) {
          this.#waiters.delete(check);
          clearTimeout(timer);
          resolve(found as T);
        }
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`timed out waiting for a frame; got: ${JSON.stringify(this.frames.slice(-5)).slice(0, 1500)}`));
      }, timeoutMs);
      this.#waiters.add(check);
      check();
    });
  }

  /** Frames of one exec (stage, out, exit, error). */
  of(id: string): Received[] {
    return this.frames.filter((f) => "id" in f && f.id === id);
  }

  outOf(id: string): Array<Extract<Received, { type: "out" }>> {
    return this.frames.filter((f): f is Extract<Received, { type: "out" }> => f.type === "out" && f.id === id);
  }

  /** Decoded output of a stream of an exec. */
  text(id: string, stream: "stdout" | "stderr" = "stdout"): string {
    return Buffer.concat(
      this.outOf(id)
        .filter((f) => f.stream === stream)
        .map((f) => Buffer.from(f.data, f.encoding === "base64" ? "base64" : "utf8")),
    ).toString("utf8");
  }

  exitOf(id: string, timeoutMs = 15_000): Promise<Extract<Received, { type: "exit" }>> {
    return this.waitFor((f) => f.type === "exit" && f.id === id, timeoutMs);
  }

  startExec(exec: Partial<Omit<AgentExec, "type">> & { id: string; lang: string; code: string }): void {
    this.send({ type: "exec", stdin: false, timeoutMs: 10_000, maxOutputBytes: 1024 * 1024, ...exec });
  }

  /** Run an exec to its exit. */
  async run(exec: Partial<Omit<AgentExec, "type">> & { id: string; lang: string; code: string }, timeoutMs = 15_000) {
    this.startExec(exec);
    return this.exitOf(exec.id, timeoutMs);
  }

  /** Send a request with a reqId and wait for its answer (file.result or error). */
  async request(frame: Record<string, unknown> & { reqId: string }): Promise<Received> {
    const from = this.frames.length;
    this.send(frame);
    return this.waitFor((f) => "reqId" in f && f.reqId === frame.reqId, 10_000, from);
  }
}

export const hasGcc = existsSync("/usr/bin/gcc");

/**
 * The hooks an agent suite needs: the launcher built once for the file, and per
 * test an agent with one connection, torn down after the test together with
 * whatever the test adds to `cleanups` (`unshift` to run before the agent stops).
 */
export function useAgentHarness() {
  let launcher = "";
  const cleanups: Array<() => Promise<unknown>> = [];
  beforeAll(() => {
    launcher = buildLauncher();
  });
  afterAll(() => {
    rmSync(dirname(launcher), { recursive: true, force: true });
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup();
  });
  return {
    cleanups,
    /** The launcher built for this file. */
    get launcher(): string {
      return launcher;
    },
    async start(options: Partial<AgentOptions> = {}, connOptions: { autoAck?: boolean } = {}): Promise<{ agent: TestAgent; conn: AgentConn }> {
      const agent = await startTestAgent({ launcher, ...options });
      cleanups.push(() => agent.stop());
      const conn = await AgentConn.open(agent.socketPath, connOptions);
      cleanups.unshift(() => conn.close());
      return { agent, conn };
    },
  };
}
