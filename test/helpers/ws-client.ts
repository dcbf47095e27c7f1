import WebSocket from "ws";
import { WS_SUBPROTOCOL } from "../../protocol/index.ts";

export type Frame = Record<string, unknown> & { type: string; seq?: number };

export interface TestClientOptions {
  apiKey?: string;
  headers?: Record<string, string>;
  /** Certificates to trust for wss:// (e.g. a test CA); the system store is not used then. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Follow a redirect answered to the upgrade (e.g. ws:// to wss://). */
  followRedirects?: boolean;
}

/**
 * A test client for the WebSocket protocol: records every frame with its
 * arrival time and waits for the ones a test expects.
 */
export class TestClient {
  readonly frames: Array<Frame & { at: number }> = [];
  readonly socket: WebSocket;
  closeCode?: number;
  closeReason?: string;
  readonly opened: Promise<void>;
  readonly closed: Promise<void>;
  #waiters: Array<() => void> = [];

  constructor(url: string, options: TestClientOptions = {}) {
    const headers = { ...options.headers, ...(options.apiKey ? { "x-api-key": options.apiKey } : {}) };
    this.socket = new WebSocket(url, WS_SUBPROTOCOL, {
      headers,
      ...(options.ca !== undefined ? { ca: options.ca } : {}),
      ...(options.followRedirects ? { followRedirects: true } : {}),
    });
    this.opened = new Promise((resolve, reject) => {
      this.socket.once("open", () => resolve());
      this.socket.once("error", reject);
    });
    this.closed = new Promise((resolve) => {
      this.socket.once("close", (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        resolve();
        this.#notify();
      });
    });
    this.socket.on("message", (data) => {
      this.frames.push({ ...(JSON.parse(data.toString()) as Frame), at: performance.now() });
      this.#notify();
    });
    this.socket.on("error", () => {});
  }

  static async connect(url: string, options: TestClientOptions = {}): Promise<TestClient> {
    const client = new TestClient(url, options);
    await client.opened;
    return client;
  }

  send(frame: Record<string, unknown>): void {
    this.socket.send(JSON.stringify(frame));
  }

  /** Wait for the first frame (from index `from`) matching `predicate`. */
  async waitFor(predicate: (frame: Frame) => boolean, timeoutMs = 30_000, from = 0): Promise<Frame & { at: number }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.frames.slice(from).find(predicate);
      if (found) return found;
      if (this.closeCode !== undefined) throw new Error(`socket closed (${this.closeCode} ${this.closeReason}) before the frame came; got ${this.describe()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out; frames so far: ${this.describe()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Open a new session and wait for session.ready. */
  async openSession(extra: Record<string, unknown> = {}): Promise<Frame> {
    this.send({ type: "session.open", ...extra });
    return this.waitFor((f) => f.type === "session.ready" || (f.type === "error" && f.code === "sandbox_unavailable"));
  }

  /** Run an exec and wait for its exit; returns its frames and the joined stdout/stderr. */
  async run(id: string, lang: string, code: string, extra: Record<string, unknown> = {}, timeoutMs = 60_000) {
    const from = this.frames.length;
    this.send({ type: "exec", id, lang, code, ...extra });
    const exit = await this.waitFor((f) => (f.type === "exit" || f.type === "error") && f.id === id, timeoutMs, from);
    const frames = this.frames.slice(from).filter((f) => f.id === id);
    const text = (stream: string) =>
      frames
        .filter((f) => f.type === "out" && f.stream === stream)
        .map((f) => (f.encoding === "base64" ? Buffer.from(f.data as string, "base64").toString("latin1") : (f.data as string)))
        .join("");
    return { exit, frames, stdout: text("stdout"), stderr: text("stderr") };
  }

  describe(): string {
    return JSON.stringify(this.frames.slice(-8).map(({ at: _at, ...f }) => f)).slice(0, 2000);
  }

  terminate(): void {
    this.socket.terminate();
  }

  close(): void {
    this.socket.close();
  }

  #notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter();
  }
}
