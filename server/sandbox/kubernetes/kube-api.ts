/**
 * The few Kubernetes API calls the provider makes, on @kubernetes/client-node:
 * pods (create, read, list, watch, delete) and Secrets (create, delete) in one
 * namespace. Every call has a deadline, so that an API server that hangs makes
 * a clear error instead of a session that waits forever.
 */
import { readFileSync } from "node:fs";
import { ApiException, CoreV1Api, KubeConfig, type V1Pod, type V1Secret, Watch } from "@kubernetes/client-node";

const IN_CLUSTER_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

export class KubeApiError extends Error {
  /** HTTP status from the API server; 0 when it could not be reached or did not answer in time. */
  readonly status: number;
  constructor(message: string, status: number) {
    super(message);
    this.status = status;
  }
}

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";

export interface PodList {
  pods: V1Pod[];
  resourceVersion: string;
}

export interface KubeApi {
  readonly namespace: string;
  /** The API server's address, for logs and health details. */
  readonly server: string;
  createPod(pod: V1Pod): Promise<V1Pod>;
  /** Delete now (grace 0); a pod already gone is not an error. */
  deletePod(name: string): Promise<void>;
  /** The pod, or undefined when it does not exist. */
  readPod(name: string, namespace?: string): Promise<V1Pod | undefined>;
  listPods(labelSelector: string): Promise<PodList>;
  createSecret(secret: V1Secret): Promise<void>;
  deleteSecret(name: string): Promise<void>;
  /** Watch pods from a resourceVersion; `done` is called once when the watch ends, with the error if any. Returns a stop function. */
  watchPods(
    labelSelector: string,
    resourceVersion: string,
    onEvent: (type: WatchEventType, object: V1Pod & { code?: number; message?: string }) => void,
    done: (error: unknown) => void,
  ): Promise<() => void>;
}

/** In-cluster credentials, or KUBECONFIG / ~/.kube/config (client-node's usual order). */
export function loadKubeConfig(): KubeConfig {
  const config = new KubeConfig();
  config.loadFromDefault();
  if (!config.getCurrentCluster()) throw new Error("no Kubernetes cluster configured: run in a pod with a service account, or set KUBECONFIG");
  return config;
}

/** K8S_NAMESPACE, else the namespace this replica runs in (POD_NAMESPACE, the service account's), else the kubeconfig context's, else "default". */
export function defaultNamespace(config: KubeConfig, env: NodeJS.ProcessEnv = process.env): string {
  if (env.POD_NAMESPACE) return env.POD_NAMESPACE;
  try {
    const inCluster = readFileSync(IN_CLUSTER_NAMESPACE_FILE, "utf8").trim();
    if (inCluster) return inCluster;
  } catch {
    // not in a cluster
  }
  return config.getContextObject(config.getCurrentContext())?.namespace || "default";
}

function describe(error: unknown, what: string): KubeApiError {
  if (error instanceof KubeApiError) return error;
  if (error instanceof ApiException) {
    let detail = "";
    try {
      const body = typeof error.body === "string" ? JSON.parse(error.body) : error.body;
      detail = body?.message ? `: ${body.message}` : "";
    } catch {
      detail = "";
    }
    return new KubeApiError(`Kubernetes API: ${what} failed (HTTP ${error.code})${detail}`, error.code);
  }
  return new KubeApiError(`Kubernetes API unreachable: ${what} failed (${(error as Error)?.message ?? String(error)})`, 0);
}

/** The client-node implementation. */
export class ClientNodeKubeApi implements KubeApi {
  readonly namespace: string;
  readonly server: string;
  readonly #core: CoreV1Api;
  readonly #watch: Watch;
  readonly #timeoutMs: number;

  constructor(config: KubeConfig, namespace: string, timeoutMs = 10_000) {
    this.namespace = namespace;
    this.server = config.getCurrentCluster()?.server ?? "";
    this.#core = config.makeApiClient(CoreV1Api);
    this.#watch = new Watch(config);
    this.#timeoutMs = timeoutMs;
  }

  async #call<T>(what: string, call: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new KubeApiError(`Kubernetes API did not answer: ${what} took more than ${this.#timeoutMs} ms`, 0)), this.#timeoutMs);
    });
    try {
      return await Promise.race([call(), deadline]);
    } catch (error) {
      throw describe(error, what);
    } finally {
      clearTimeout(timer);
    }
  }

  createPod(pod: V1Pod): Promise<V1Pod> {
    return this.#call(`create pod ${pod.metadata?.name}`, () => this.#core.createNamespacedPod({ namespace: this.namespace, body: pod }));
  }

  async deletePod(name: string): Promise<void> {
    try {
      await this.#call(`delete pod ${name}`, () => this.#core.deleteNamespacedPod({ name, namespace: this.namespace, gracePeriodSeconds: 0 }));
    } catch (error) {
      if ((error as KubeApiError).status !== 404) throw error;
    }
  }

  async readPod(name: string, namespace = this.namespace): Promise<V1Pod | undefined> {
    try {
      return await this.#call(`read pod ${name}`, () => this.#core.readNamespacedPod({ name, namespace }));
    } catch (error) {
      if ((error as KubeApiError).status === 404) return undefined;
      throw error;
    }
  }

  async listPods(labelSelector: string): Promise<PodList> {
    const list = await this.#call("list pods", () => this.#core.listNamespacedPod({ namespace: this.namespace, labelSelector }));
    return { pods: list.items, resourceVersion: list.metadata?.resourceVersion ?? "" };
  }

  async createSecret(secret: V1Secret): Promise<void> {
    await this.#call(`create secret ${secret.metadata?.name}`, () => this.#core.createNamespacedSecret({ namespace: this.namespace, body: secret }));
  }

  async deleteSecret(name: string): Promise<void> {
    try {
      await this.#call(`delete secret ${name}`, () => this.#core.deleteNamespacedSecret({ name, namespace: this.namespace }));
    } catch (error) {
      if ((error as KubeApiError).status !== 404) throw error;
    }
  }

  async watchPods(
    labelSelector: string,
    resourceVersion: string,
    onEvent: (type: WatchEventType, object: V1Pod) => void,
    done: (error: unknown) => void,
  ): Promise<() => void> {
    const controller = await this.#watch.watch(
      `/api/v1/namespaces/${encodeURIComponent(this.namespace)}/pods`,
      // The server ends a watch after timeoutSeconds; the provider then resumes it from the last resourceVersion.
      { labelSelector, resourceVersion, allowWatchBookmarks: true, timeoutSeconds: 300 },
      (type, object) => onEvent(type as WatchEventType, object),
      done,
    );
    return () => controller.abort();
  }
}
