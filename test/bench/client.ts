/** A lean WebSocket client for the bench: no frame history, one waiter per exec id. */
import WebSocket from "ws";

export interface ExecOutcome {
  /** performance.now() of the first out frame, and of the exit frame. */
  firstOutAt?: number;
  exitAt: number;
  code: number | null;
  reason: string;
  error?: string;
}

export class BenchClient {
  readonly socket: WebSocket;
  #waiters = new Map<string, { outcome: Partial<ExecOutcome>; resolve: (o: ExecOutcome) => void }>();
  #ready?: (sessionId: string) => void;
  #fail?: (error: Error) => void;
  #n = 0;
  sessionId?: string;

  private constructor(socket: WebSocket) {
    this.socket = socket;
    socket.on("message", (data) => {
      const now = performance.now();
      const frame = JSON.parse(data.toString()) as Record<string, unknown>;
      if (frame.type === "session.ready") {
        this.sessionId = frame.sessionId as string;
        this.#ready?.(this.sessionId);
        return;
      }
      const waiter = typeof frame.id === "string" ? this.#waiters.get(frame.id) : undefined;
      if (frame.type === "error" && !waiter) {
        this.#fail?.(new Error(`error frame: ${JSON.stringify(frame)}`));
        return;
      }
      if (!waiter) return;
      if (frame.type === "out") waiter.outcome.firstOutAt ??= now;
      else if (frame.type === "exit" || frame.type === "error") {
        this.#waiters.delete(frame.id as string);
        waiter.resolve({
          ...waiter.outcome,
          exitAt: now,
          code: frame.type === "exit" ? (frame.code as number | null) : null,
          reason: frame.type === "exit" ? (frame.reason as string) : "error",
          ...(frame.type === "error" ? { error: String(frame.code) } : {}),
        });
      }
    });
    socket.on("error", () => {});
    socket.on("close", (code) => {
      for (const [id, waiter] of this.#waiters)
        waiter.resolve({ exitAt: performance.now(), code: null, reason: "closed", error: `closed (${code}) during ${id}` });
      this.#waiters.clear();
      this.#fail?.(new Error("socket closed"));
    });
  }

  static connect(url: string, apiKey: string, timeoutMs = 30_000): Promise<BenchClient> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url, "code-interpreter.v1", { headers: { "x-api-key": apiKey }, perMessageDeflate: false });
      const timer = setTimeout(() => {
        socket.terminate();
        reject(new Error("connect timed out"));
      }, timeoutMs);
      socket.once("open", () => {
        clearTimeout(timer);
        resolve(new BenchClient(socket));
      });
      socket.once("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
  }

  openSession(timeoutMs = 60_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("session.open timed out")), timeoutMs);
      this.#ready = (id) => {
        clearTimeout(timer);
        this.#ready = undefined;
        this.#fail = undefined;
        resolve(id);
      };
      this.#fail = (error) => {
        clearTimeout(timer);
        this.#fail = undefined;
        reject(error);
      };
      this.socket.send(JSON.stringify({ type: "session.open" }));
    });
  }

  /** Send an exec; resolves at its exit (or error) frame. `sentAt` is taken just before the send. */
  exec(lang: string, code: string, timeoutMs = 60_000): Promise<ExecOutcome & { sentAt: number }> {
    const id = `b${this.#n++}`;
    if (this.socket.readyState !== WebSocket.OPEN) {
      const now = performance.now();
      return Promise.resolve({ sentAt: now, exitAt: now, code: null, reason: "closed", error: `socket already closed before ${id}` });
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(id);
        resolve({ sentAt, exitAt: performance.now(), code: null, reason: "bench_timeout", error: "timeout" });
      }, timeoutMs);
      this.#waiters.set(id, {
        outcome: {},
        resolve: (o) => {
          clearTimeout(timer);
          resolve({ ...o, sentAt });
        },
      });
      const sentAt = performance.now();
      this.socket.send(JSON.stringify({ type: "exec", id, lang, code }));
    });
  }

  close(): void {
    this.socket.terminate();
  }
}
