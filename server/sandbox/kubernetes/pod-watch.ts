/**
 * This replica's view of its sandbox pods, kept by one list+watch on the API
 * server (never by polling): the provider learns from it when a new pod has
 * its IP, and when a pod fails or is deleted behind its back. A watch the
 * server ends (timeoutSeconds) is resumed from the last resourceVersion; one
 * that is too old (410 Gone) or broken starts over with a fresh list, after a
 * bounded backoff.
 */
import type { V1Pod } from "@kubernetes/client-node";
import type { KubeApi } from "./kube-api.ts";

type LogFn = (obj: Record<string, unknown>, msg?: string) => void;
export interface WatchLogger {
  debug: LogFn;
  warn: LogFn;
}

/** Called with the pod's latest state, or undefined once it is deleted. */
export type PodListener = (pod: V1Pod | undefined) => void;

const MAX_BACKOFF_MS = 5_000;

export class PodWatch {
  readonly #api: KubeApi;
  readonly #selector: string;
  readonly #logger: WatchLogger;
  readonly #pods = new Map<string, V1Pod>();
  readonly #listeners = new Map<string, Set<PodListener>>();
  #resourceVersion = "";
  #stopWatch: (() => void) | undefined;
  #stopped = false;
  #backoffMs = 100;
  #restartTimer: NodeJS.Timeout | undefined;
  /** Whether a watch stream is open now (health). */
  connected = false;
  lastError: string | undefined;

  constructor(api: KubeApi, selector: string, logger: WatchLogger) {
    this.#api = api;
    this.#selector = selector;
    this.#logger = logger;
  }

  /**
   * First list, then the watch from its resourceVersion (not awaited: events
   * that happen before it connects are delivered when it does). A failure is
   * not fatal: the watch keeps trying in the background.
   */
  async start(): Promise<void> {
    try {
      await this.#relist();
    } catch (error) {
      this.#failed(error);
      return;
    }
    this.#watch().catch((error: unknown) => this.#failed(error));
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#restartTimer);
    this.#stopWatch?.();
    this.#stopWatch = undefined;
    this.connected = false;
  }

  get(name: string): V1Pod | undefined {
    return this.#pods.get(name);
  }

  /** Follow one pod; the listener gets its state now (when known) and at every change. Returns the unsubscribe function. */
  follow(name: string, listener: PodListener): () => void {
    let set = this.#listeners.get(name);
    if (!set) {
      set = new Set();
      this.#listeners.set(name, set);
    }
    set.add(listener);
    const known = this.#pods.get(name);
    if (known) queueMicrotask(() => set.has(listener) && listener(known));
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.#listeners.get(name) === set) this.#listeners.delete(name);
    };
  }

  #notify(name: string, pod: V1Pod | undefined): void {
    for (const listener of [...(this.#listeners.get(name) ?? [])]) listener(pod);
  }

  #apply(pod: V1Pod, deleted: boolean): void {
    const name = pod.metadata?.name;
    if (!name) return;
    if (pod.metadata?.resourceVersion) this.#resourceVersion = pod.metadata.resourceVersion;
    if (deleted) this.#pods.delete(name);
    else this.#pods.set(name, pod);
    this.#notify(name, deleted ? undefined : pod);
  }

  async #relist(): Promise<void> {
    const list = await this.#api.listPods(this.#selector);
    const seen = new Set<string>();
    for (const pod of list.pods) {
      const name = pod.metadata?.name;
      if (!name) continue;
      seen.add(name);
      this.#pods.set(name, pod);
      this.#notify(name, pod);
    }
    // Deleted while we were not watching.
    for (const name of [...this.#pods.keys()]) {
      if (!seen.has(name)) {
        this.#pods.delete(name);
        this.#notify(name, undefined);
      }
    }
    this.#resourceVersion = list.resourceVersion;
  }

  async #watch(): Promise<void> {
    if (this.#stopped) return;
    let gone = false;
    this.#stopWatch = await this.#api.watchPods(
      this.#selector,
      this.#resourceVersion,
      (type, object) => {
        if (type === "ERROR") {
          // 410 Gone: our resourceVersion is older than the server keeps; start over from a list.
          gone = object.code === 410;
          if (!gone) this.#logger.warn({ status: object.code, message: object.message }, "pod watch error");
          return;
        }
        if (type === "BOOKMARK") {
          if (object.metadata?.resourceVersion) this.#resourceVersion = object.metadata.resourceVersion;
          return;
        }
        this.#backoffMs = 100;
        this.#apply(object, type === "DELETED");
      },
      (error) => {
        this.connected = false;
        this.#stopWatch = undefined;
        if (this.#stopped) return;
        // After 410 Gone or a broken stream, start over from a list: events may have been missed.
        if (gone || error) this.#resourceVersion = "";
        if (error) this.#failed(error);
        else this.#restart(0); // the server closed it (timeoutSeconds): resume at once
      },
    );
    if (this.#stopped) {
      this.#stopWatch();
      return;
    }
    this.connected = true;
    this.lastError = undefined;
  }

  #failed(error: unknown): void {
    this.connected = false;
    this.lastError = (error as Error)?.message ?? String(error);
    this.#logger.warn({ err: this.lastError, retryMs: this.#backoffMs }, "pod watch interrupted");
    this.#restart(this.#backoffMs);
    this.#backoffMs = Math.min(this.#backoffMs * 2, MAX_BACKOFF_MS);
  }

  #restart(delayMs: number): void {
    if (this.#stopped) return;
    clearTimeout(this.#restartTimer);
    this.#restartTimer = setTimeout(() => {
      void (async () => {
        try {
          if (!this.#resourceVersion) await this.#relist();
          await this.#watch();
        } catch (error) {
          // A resourceVersion the server refuses, or the server away: list again next time.
          this.#resourceVersion = "";
          this.#failed(error);
        }
      })();
    }, delayMs);
    this.#restartTimer.unref();
  }
}
