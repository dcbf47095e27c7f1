import { randomUUID } from "node:crypto";
import type { Cluster, Redis } from "ioredis";

type RedisClient = Redis | Cluster;
type Listener = (message: unknown) => void;
export type RequestHandler = (body: Record<string, unknown>, from: string) => Promise<unknown>;

/** A request another replica did not answer in time, or answered with an error. */
export class FleetRequestError extends Error {}

/**
 * Messages between replicas over Redis pub/sub: broadcast channels, and
 * requests to one replica answered on the caller's own reply channel. One
 * subscriber connection carries every channel of this replica. Channel names
 * get the key prefix by hand: ioredis's keyPrefix does not apply to them.
 */
export class FleetBus {
  readonly replicaId = randomUUID();
  readonly #pub: RedisClient;
  readonly #sub: RedisClient;
  readonly #prefix: string;
  readonly #listeners = new Map<string, Set<Listener>>();
  readonly #pending = new Map<string, { resolve: (value: unknown) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }>();
  #handler: RequestHandler | undefined;

  private constructor(pub: RedisClient, sub: RedisClient, prefix: string) {
    this.#pub = pub;
    this.#sub = sub;
    this.#prefix = prefix;
    sub.on("message", (channel: string, text: string) => this.#dispatch(channel, text));
  }

  /** `sub` must be a connection of its own: a subscribed connection can issue no other command. */
  static async open(pub: RedisClient, sub: RedisClient, prefix = ""): Promise<FleetBus> {
    const bus = new FleetBus(pub, sub, prefix);
    await sub.subscribe(bus.#channel(`rpc:${bus.replicaId}`), bus.#channel(`reply:${bus.replicaId}`));
    return bus;
  }

  /** Publish to every replica subscribed to `channel` (this one included). */
  async publish(channel: string, message: unknown): Promise<void> {
    await this.#pub.publish(this.#channel(channel), JSON.stringify(message));
  }

  /** Listen on `channel`; returns the unsubscribe function. */
  async subscribe(channel: string, listener: Listener): Promise<() => Promise<void>> {
    const full = this.#channel(channel);
    let set = this.#listeners.get(full);
    if (!set) {
      set = new Set();
      this.#listeners.set(full, set);
      await this.#sub.subscribe(full);
    }
    set.add(listener);
    return async () => {
      const current = this.#listeners.get(full);
      if (!current?.delete(listener) || current.size > 0) return;
      this.#listeners.delete(full);
      await this.#sub.unsubscribe(full).catch(() => {});
    };
  }

  /** Answer requests other replicas send to this one. */
  onRequest(handler: RequestHandler): void {
    this.#handler = handler;
  }

  /** Ask replica `to`; rejects with FleetRequestError when it errs or does not answer within `timeoutMs`. */
  request(to: string, body: Record<string, unknown>, timeoutMs = 5_000): Promise<unknown> {
    const id = randomUUID();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new FleetRequestError(`replica ${to} did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, { resolve, reject, timer });
      this.#pub.publish(this.#channel(`rpc:${to}`), JSON.stringify({ id, from: this.replicaId, body })).catch((error: Error) => {
        clearTimeout(timer);
        this.#pending.delete(id);
        reject(new FleetRequestError(error.message));
      });
    });
  }

  async close(): Promise<void> {
    for (const pending of this.#pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(new FleetRequestError("fleet bus closed"));
    }
    this.#pending.clear();
    this.#listeners.clear();
  }

  #channel(name: string): string {
    return `${this.#prefix}${name}`;
  }

  #dispatch(channel: string, text: string): void {
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (channel === this.#channel(`rpc:${this.replicaId}`)) return void this.#answer(message as { id: string; from: string; body: Record<string, unknown> });
    if (channel === this.#channel(`reply:${this.replicaId}`)) return this.#settle(message as { id: string; ok: boolean; result?: unknown; error?: string });
    for (const listener of this.#listeners.get(channel) ?? []) {
      try {
        listener(message);
      } catch {
        // one failing listener must not stop the others
      }
    }
  }

  async #answer(request: { id: string; from: string; body: Record<string, unknown> }): Promise<void> {
    let reply: { id: string; ok: boolean; result?: unknown; error?: string };
    try {
      if (!this.#handler) throw new Error("this replica answers no requests");
      reply = { id: request.id, ok: true, result: await this.#handler(request.body, request.from) };
    } catch (error) {
      reply = { id: request.id, ok: false, error: (error as Error).message };
    }
    await this.#pub.publish(this.#channel(`reply:${request.from}`), JSON.stringify(reply)).catch(() => {});
  }

  #settle(reply: { id: string; ok: boolean; result?: unknown; error?: string }): void {
    const pending = this.#pending.get(reply.id);
    if (!pending) return;
    this.#pending.delete(reply.id);
    clearTimeout(pending.timer);
    if (reply.ok) pending.resolve(reply.result);
    else pending.reject(new FleetRequestError(reply.error ?? "request failed"));
  }
}
