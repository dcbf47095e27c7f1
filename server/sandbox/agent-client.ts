import { randomUUID } from "node:crypto";
import WebSocket from "ws";
import {
  AGENT_TOKEN_HEADER,
  type AgentExec,
  type AgentExit,
  type AgentFileInfo,
  type AgentFileResult,
  type AgentOut,
  type AgentStateResult,
  type AgentToServer,
  AgentToServerSchema,
  type AgentWarm,
  base64Bytes,
  parseJsonFrame,
  type ServerToAgent,
  type SignalName,
  type Stage,
  type ToolCall,
  type ToolResult,
} from "../../protocol/index.ts";
import type { AgentEndpoint, Sandbox } from "./provider.ts";

/** Receives the frames of one exec. */
export interface ExecListener {
  stage(stage: Stage): void;
  out(frame: AgentOut): void;
  display(frame: { mime: string; data: string; name?: string }): void;
  exit(frame: AgentExit): void;
  /** The agent refused or failed the exec before it ran (busy, unknown language...). */
  error(code: string, message: string): void;
  /** Programmatic tool calling: the program called declared tools and waits for `toolResults`. */
  toolCalls?(calls: ToolCall[]): void;
}

export class AgentRequestError extends Error {}

/**
 * An honest agent stops an exec's output at its cap exactly. The agent shares
 * its uid with the programs it runs, so a program could take it over: past
 * this margin the connection is dropped and the sandbox counts as lost.
 */
export const AGENT_OUTPUT_SLACK_BYTES = 64 * 1024;
/**
 * Figures past an exec's cap or size limit are dropped here and counted (an
 * agent older than the limits sends them all); this many more than the cap
 * drop the connection.
 */
export const AGENT_DISPLAY_SLACK = 64;
/**
 * Every request to the agent has a deadline (a program can stop its agent,
 * SIGSTOP: same uid): this much for any request, plus the time its data takes
 * at AGENT_MIN_BYTES_PER_MS. Past it the connection is dropped, which counts
 * as the sandbox lost (the session ends the exec with sandbox_lost and
 * destroys the sandbox).
 */
export const AGENT_REQUEST_BASE_MS = 5_000;
/** The slowest transfer an honest agent is allowed: 4 MB/s (base64 on the wire, written to /mnt/data or read from it). */
export const AGENT_MIN_BYTES_PER_MS = (4 * 1024 * 1024) / 1000;
/** State save and restore pickle a whole namespace: at least this long. */
export const AGENT_STATE_MIN_MS = 30_000;

export interface AgentClientOptions {
  /** AGENT_REQUEST_BASE_MS unless given (tests). */
  requestBaseMs?: number;
}

function endpointUrl(endpoint: AgentEndpoint): string {
  return endpoint.kind === "unix" ? `ws+unix://${endpoint.path}:/` : `ws://${endpoint.host}:${endpoint.port}/`;
}

/**
 * The server's side of the WebSocket to one sandbox's agent: starts execs,
 * routes their frames, moves files. The connection closing means the sandbox
 * is lost to us: every pending request fails and `closed` settles.
 */
export class AgentClient {
  readonly #socket: WebSocket;
  readonly #execs = new Map<string, ExecListener>();
  /** Output bytes each exec may still send (its cap plus the slack), counted here, not by the agent. */
  readonly #outputLeft = new Map<string, number>();
  /** Figures each exec may still send, their largest size, and how many were dropped here. */
  readonly #displayRules = new Map<string, { left: number; maxBytes: number; dropped: number }>();
  #brokenRule: string | undefined;
  readonly #requests = new Map<string, { resolve: (r: AgentFileResult) => void; reject: (e: Error) => void }>();
  readonly #stateRequests = new Map<string, (result: AgentStateResult) => void>();
  readonly #warmListeners: Array<(warm: AgentWarm) => void> = [];
  #warm: AgentWarm | undefined;
  readonly closed: Promise<string>;
  #isClosed = false;
  readonly #requestBaseMs: number;

  private constructor(socket: WebSocket, options: AgentClientOptions) {
    this.#socket = socket;
    this.#requestBaseMs = options.requestBaseMs ?? AGENT_REQUEST_BASE_MS;
    this.closed = new Promise((resolve) => {
      socket.on("close", (code, reason) => {
        this.#isClosed = true;
        const why = this.#brokenRule ?? `agent connection closed (${code}${reason.length ? ` ${reason.toString()}` : ""})`;
        for (const request of this.#requests.values()) request.reject(new AgentRequestError(why));
        this.#requests.clear();
        for (const settle of this.#stateRequests.values()) settle({ type: "state.result", reqId: "", names: [], error: why });
        this.#stateRequests.clear();
        resolve(why);
      });
    });
    socket.on("message", (data, isBinary) => {
      if (isBinary) return;
      const parsed = parseJsonFrame(AgentToServerSchema, data.toString());
      if (parsed.ok) this.#dispatch(parsed.value);
    });
  }

  /** Connect to the sandbox's agent and wait for its `ready` frame. */
  static connect(sandbox: Pick<Sandbox, "endpoint" | "token">, timeoutMs = 10_000, options: AgentClientOptions = {}): Promise<AgentClient> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(endpointUrl(sandbox.endpoint), {
        headers: { [AGENT_TOKEN_HEADER]: sandbox.token },
        perMessageDeflate: false,
        maxPayload: 256 * 1024 * 1024,
      });
      const timer = setTimeout(() => {
        socket.terminate();
        reject(new Error(`agent did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      const fail = (error: Error) => {
        clearTimeout(timer);
        reject(error);
      };
      socket.once("error", fail);
      socket.once("unexpected-response", (_req, res) => fail(new Error(`agent refused the connection (HTTP ${res.statusCode})`)));
      socket.once("message", (data) => {
        clearTimeout(timer);
        socket.off("error", fail);
        socket.on("error", () => {}); // "close" follows and reports it
        const parsed = parseJsonFrame(AgentToServerSchema, data.toString());
        if (!parsed.ok || parsed.value.type !== "ready") {
          socket.terminate();
          reject(new Error("agent sent no ready frame"));
          return;
        }
        resolve(new AgentClient(socket, options));
      });
    });
  }

  /** The connection closed, or is being dropped (the agent broke a rule or let a request pass its deadline). */
  get isClosed(): boolean {
    return this.#isClosed || this.#brokenRule !== undefined;
  }

  startExec(request: Omit<AgentExec, "type">, listener: ExecListener): void {
    this.#execs.set(request.id, listener);
    this.#outputLeft.set(request.id, request.maxOutputBytes + AGENT_OUTPUT_SLACK_BYTES);
    this.#displayRules.set(request.id, {
      left: request.maxDisplays ?? Number.POSITIVE_INFINITY,
      maxBytes: request.maxDisplayBytes ?? Number.POSITIVE_INFINITY,
      dropped: 0,
    });
    this.#send({ type: "exec", ...request });
  }

  /** Stop routing frames of an exec (after its exit, or when the session gives up on it). */
  forgetExec(id: string): void {
    this.#execs.delete(id);
    this.#outputLeft.delete(id);
    this.#displayRules.delete(id);
  }

  stdin(id: string, data: string | undefined, eof: boolean | undefined): void {
    this.#send({ type: "stdin", id, data, eof });
  }

  signal(id: string, signal: SignalName): void {
    this.#send({ type: "signal", id, signal });
  }

  /** Resume exec `id`, paused on tool calls, with their results. */
  toolResults(id: string, results: ToolResult[]): void {
    this.#send({ type: "tool.results", id, results });
  }

  ack(id: string, bytes: number, frames: number): void {
    this.#send({ type: "ack", id, bytes, frames });
  }

  /** How long a request moving `bytes` may wait for its answer. */
  deadlineMs(bytes = 0): number {
    return Math.ceil(this.#requestBaseMs + bytes / AGENT_MIN_BYTES_PER_MS);
  }

  async putFile(path: string, data: Buffer, readOnly = false): Promise<void> {
    const encoded = data.toString("base64");
    await this.#request({ type: "file.put", reqId: "", path, data: encoded, readOnly }, this.deadlineMs(encoded.length));
  }

  /** `expectedBytes`: the size the agent reported for the file (its exit's files), for the deadline. */
  async getFile(path: string, expectedBytes = 0): Promise<Buffer> {
    const result = await this.#request({ type: "file.get", reqId: "", path }, this.deadlineMs(Math.ceil((expectedBytes * 4) / 3)));
    return Buffer.from(result.data ?? "", "base64");
  }

  async listFiles(): Promise<AgentFileInfo[]> {
    const result = await this.#request({ type: "file.list", reqId: "" }, this.deadlineMs());
    return result.files ?? [];
  }

  async deleteFile(path: string): Promise<void> {
    await this.#request({ type: "file.delete", reqId: "", path }, this.deadlineMs());
  }

  close(): void {
    this.#socket.close(1000);
  }

  #request(frame: Extract<ServerToAgent, { reqId: string }>, timeoutMs: number): Promise<AgentFileResult> {
    if (this.#isClosed) return Promise.reject(new AgentRequestError("agent connection is closed"));
    const reqId = randomUUID();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#requests.delete(reqId);
        const why = `${frame.type} got no answer within ${timeoutMs} ms`;
        reject(new AgentRequestError(why));
        this.#broken(`the agent stopped answering: ${why}`);
      }, timeoutMs);
      this.#requests.set(reqId, {
        resolve: (result) => {
          clearTimeout(timer);
          if (result.ok) resolve(result);
          else reject(new AgentRequestError(result.error ?? "file operation failed"));
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.#send({ ...frame, reqId } as ServerToAgent);
    });
  }

  /** The agent broke a rule an honest one keeps: drop it; `closed` reports why (the session then counts the sandbox as lost). */
  #broken(rule: string): void {
    if (this.#brokenRule) return;
    this.#brokenRule = rule;
    this.#socket.terminate();
  }

  #send(frame: ServerToAgent): void {
    if (this.#socket.readyState === WebSocket.OPEN) this.#socket.send(JSON.stringify(frame));
  }

  #dispatch(frame: AgentToServer): void {
    switch (frame.type) {
      case "exec.stage":
        this.#execs.get(frame.id)?.stage(frame.stage);
        return;
      case "out": {
        const allowed = this.#outputLeft.get(frame.id);
        if (allowed === undefined) return; // an exec the session no longer follows
        const left = allowed - (frame.encoding === "base64" ? base64Bytes(frame.data) : Buffer.byteLength(frame.data));
        this.#outputLeft.set(frame.id, left);
        if (left < 0) return this.#broken(`the agent sent more output than exec ${frame.id}'s cap`);
        this.#execs.get(frame.id)?.out(frame);
        return;
      }
      case "display": {
        const rule = this.#displayRules.get(frame.id);
        if (!rule) return; // an exec the session no longer follows
        if (rule.left > 0 && base64Bytes(frame.data) <= rule.maxBytes) {
          rule.left--;
          this.#execs.get(frame.id)?.display(frame);
          return;
        }
        rule.dropped++;
        if (rule.dropped > AGENT_DISPLAY_SLACK) return this.#broken(`the agent sent ${AGENT_DISPLAY_SLACK} figures more than exec ${frame.id} allows`);
        return;
      }
      case "tool.calls":
        this.#execs.get(frame.id)?.toolCalls?.(frame.calls);
        return;
      case "exit": {
        const listener = this.#execs.get(frame.id);
        const dropped = (frame.displaysDropped ?? 0) + (this.#displayRules.get(frame.id)?.dropped ?? 0);
        this.forgetExec(frame.id);
        listener?.exit(dropped > 0 ? { ...frame, displaysDropped: dropped } : frame);
        return;
      }
      case "error": {
        if (frame.reqId) {
          const request = this.#requests.get(frame.reqId);
          this.#requests.delete(frame.reqId);
          request?.reject(new AgentRequestError(frame.message));
        } else if (frame.id) {
          const listener = this.#execs.get(frame.id);
          this.#execs.delete(frame.id);
          listener?.error(frame.code, frame.message);
        }
        return;
      }
      case "file.result": {
        const request = this.#requests.get(frame.reqId);
        this.#requests.delete(frame.reqId);
        request?.resolve(frame);
        return;
      }
      case "state.result": {
        const request = this.#stateRequests.get(frame.reqId);
        this.#stateRequests.delete(frame.reqId);
        request?.(frame);
        return;
      }
      case "warm":
        this.#warm = frame;
        for (const listener of this.#warmListeners.splice(0)) listener(frame);
        return;
      case "ready":
        return;
    }
  }

  /** The interpreter finished importing the preloaded modules (resolves at once if it already has). */
  whenWarm(): Promise<AgentWarm> {
    if (this.#warm) return Promise.resolve(this.#warm);
    return new Promise((resolve) => this.#warmListeners.push(resolve));
  }

  /**
   * Pickle the Python namespace (nothing to save: no data). Rejects on an agent
   * error, or after `timeoutMs`: then the connection is dropped too (an agent
   * still pickling cannot take the next request), the sandbox counts as lost.
   */
  saveState(maxBytes: number, timeoutMs = Math.max(AGENT_STATE_MIN_MS, this.deadlineMs(Math.ceil((maxBytes * 4) / 3)))): Promise<AgentStateResult> {
    return this.#stateRequest({ type: "state.save", reqId: "", maxBytes }, timeoutMs);
  }

  /** Load a saved namespace into the interpreter (same deadline rule as saveState). */
  restoreState(data: string, timeoutMs = Math.max(AGENT_STATE_MIN_MS, this.deadlineMs(data.length))): Promise<AgentStateResult> {
    return this.#stateRequest({ type: "state.restore", reqId: "", data }, timeoutMs);
  }

  #stateRequest(frame: Extract<ServerToAgent, { type: "state.save" | "state.restore" }>, timeoutMs: number): Promise<AgentStateResult> {
    if (this.#isClosed) return Promise.reject(new AgentRequestError("agent connection is closed"));
    const reqId = randomUUID();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#stateRequests.delete(reqId);
        const why = `${frame.type} got no answer within ${timeoutMs} ms`;
        reject(new AgentRequestError(why));
        this.#broken(`the agent stopped answering: ${why}`);
      }, timeoutMs);
      this.#stateRequests.set(reqId, (result) => {
        clearTimeout(timer);
        if (result.error) reject(new AgentRequestError(result.error));
        else resolve(result);
      });
      this.#send({ ...frame, reqId });
    });
  }
}
