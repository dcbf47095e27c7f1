/**
 * The Kubernetes sandbox provider: one hardened pod per sandbox, running the
 * same sidecar-agent as local sandboxes; the server dials the pod IP.
 *
 * create(): a Secret with a fresh token, then the pod (pod-manifest.ts); the
 * pod watch (pod-watch.ts) says when it runs and has an IP, and the provider
 * dials the agent's port until it answers (readiness from the agent, not from
 * the pod phase). A pod that fails to pull or start ends create() with the
 * reason Kubernetes gives. destroy() deletes the pod and its Secret.
 *
 * Ownership: pods carry this replica's name and this process's instance id as
 * labels, and (in a cluster) an ownerReference to the replica's own pod, so
 * the garbage collector removes them with it. A sweep (at start-up and every
 * K8S_ORPHAN_SWEEP_SECONDS) deletes what a crashed process left: pods of this
 * replica from an earlier instance, pods of replicas whose pod is gone, and
 * pods whose deletion failed earlier. Pools are per replica (pool.ts over
 * this provider): no replica leases another's pods.
 */

import { randomBytes } from "node:crypto";
import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import type { V1Pod } from "@kubernetes/client-node";
import { memoryLimitEnv } from "../../languages/memory-env.ts";
import { type EgressProxy, egressProxyEnv } from "../egress/egress-proxy.ts";
import type { AgentEndpoint, ProviderHealth, Sandbox, SandboxExit, SandboxProvider, SandboxSpec } from "../provider.ts";
import type { KubeApi } from "./kube-api.ts";
import {
  ALL_SANDBOXES_SELECTOR,
  LABELS,
  type PodResources,
  type PodTemplateSettings,
  parseQuantity,
  sandboxPodManifest,
  tokenSecretManifest,
} from "./pod-manifest.ts";
import { PodWatch } from "./pod-watch.ts";

type LogFn = (obj: Record<string, unknown>, msg?: string) => void;
export interface KubernetesLogger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
}
const silentLogger: KubernetesLogger = { debug() {}, info() {}, warn() {}, error() {} };

/** Annotations on sandbox pods naming the replica pod that owns them, so that any replica can tell whether it still exists. */
const OWNER_ANNOTATIONS = {
  name: "code-interpreter.dev/replica-pod",
  namespace: "code-interpreter.dev/replica-namespace",
  uid: "code-interpreter.dev/replica-uid",
} as const;

/** Container states that will not get better by waiting. */
const FATAL_WAITING_REASONS = new Set([
  "ErrImagePull",
  "ImagePullBackOff",
  "InvalidImageName",
  "CreateContainerConfigError",
  "CreateContainerError",
  "CrashLoopBackOff",
  "RunContainerError",
]);

/** What one language may change in its pods (LANG_IMAGE_<CODE>, K8S_CPU_LIMIT_<CODE>...). */
export type LanguagePodSettings = Partial<Pick<PodResources, "cpuRequest" | "cpuLimit" | "memoryRequest" | "memoryLimit">> & { image?: string };

export interface KubernetesProviderOptions {
  api: KubeApi;
  /** The pod template (image, resources, placement, owner, replica and instance ids). */
  template: PodTemplateSettings;
  /** Per-language overrides: languages whose pods differ get a class (and a warm pool) of their own. */
  languages?: Record<string, LanguagePodSettings>;
  /** The replica's own pod, when it runs in one: named on every sandbox pod so that any replica can tell whether it still exists. */
  replicaPod?: { name: string; uid: string; namespace: string };
  /** JSON of the programs' base environment (AGENT_PROGRAM_ENV). */
  programEnv: Record<string, string>;
  /** More environment of the agent (AGENT_PYTHON_PRELOAD=1 for the warm pool): given to the pods of Python's class only. */
  agentEnv?: Record<string, string>;
  /**
   * ENABLE_SANDBOX_NETWORK: each pod gets a credential of its own on the replica's egress proxy, in the
   * programs' proxy URL (`url`), revoked when the pod goes.
   */
  egress?: { proxy: EgressProxy; url: (credential: string) => string };
  /** How long a pod may take to run and answer (pull, schedule, start). */
  startTimeoutMs: number;
  /** Period of the orphan sweep; 0 disables the periodic one (start-up still sweeps). */
  sweepIntervalMs: number;
  logger?: KubernetesLogger;
}

/** One pod, as the provider hands it out. */
export class PodSandbox implements Sandbox {
  readonly id: string;
  readonly token: string;
  readonly exited: Promise<SandboxExit>;
  #endpoint: AgentEndpoint | undefined;
  #settle!: (exit: SandboxExit) => void;
  #gone = false;
  #destroying: Promise<void> | undefined;
  readonly #remove: () => Promise<void>;

  constructor(id: string, token: string, remove: () => Promise<void>) {
    this.id = id;
    this.token = token;
    this.#remove = remove;
    this.exited = new Promise((resolve) => {
      this.#settle = resolve;
    });
  }

  get endpoint(): AgentEndpoint {
    if (!this.#endpoint) throw new Error(`pod ${this.id} has no address yet`);
    return this.#endpoint;
  }

  set address(endpoint: AgentEndpoint) {
    this.#endpoint = endpoint;
  }

  get isGone(): boolean {
    return this.#gone;
  }

  /** The pod ended or was deleted (by us or by anyone). */
  gone(reason: string): void {
    if (this.#gone) return;
    this.#gone = true;
    this.#settle({ reason });
  }

  destroy(): Promise<void> {
    this.#destroying ??= (async () => {
      this.gone("destroyed");
      await this.#remove();
    })();
    return this.#destroying;
  }
}

function newName(): string {
  // DNS-1123 label: lower-case letters and digits; 12 of them from 60 random bits.
  return `ci-sbx-${BigInt(`0x${randomBytes(8).toString("hex")}`)
    .toString(36)
    .padStart(12, "0")
    .slice(-12)}`;
}

/** What keeps a pod from being ready, in Kubernetes' own words, or undefined while it may still come up. */
function fatalState(pod: V1Pod): string | undefined {
  const phase = pod.status?.phase;
  if (phase === "Failed" || phase === "Succeeded")
    return `pod ${phase.toLowerCase()}${pod.status?.reason ? ` (${pod.status.reason}: ${pod.status.message ?? ""})` : ""}`;
  for (const status of pod.status?.containerStatuses ?? []) {
    const waiting = status.state?.waiting;
    if (waiting?.reason && FATAL_WAITING_REASONS.has(waiting.reason)) return `${waiting.reason}: ${waiting.message ?? "container cannot start"}`;
    const terminated = status.state?.terminated;
    if (terminated) return `container terminated (${terminated.reason ?? `exit ${terminated.exitCode}`})`;
  }
  return undefined;
}

/** Why the pod is still pending (unschedulable...), for the timeout message. */
function pendingReason(pod: V1Pod | undefined): string {
  if (!pod) return "the pod was not seen yet";
  const condition = pod.status?.conditions?.find((c) => c.status === "False" && c.message);
  const waiting = pod.status?.containerStatuses?.find((s) => s.state?.waiting)?.state?.waiting;
  return condition?.message ?? (waiting ? `${waiting.reason}: ${waiting.message ?? ""}` : `phase ${pod.status?.phase ?? "unknown"}`);
}

/** Resolve once something accepts TCP connections at host:port, retrying until the deadline. */
async function waitForPort(host: string, port: number, deadline: number, stillWanted: () => boolean): Promise<void> {
  let lastError = "no attempt";
  while (Date.now() < deadline && stillWanted()) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host, port });
      const timer = setTimeout(() => socket.destroy(new Error("connect timeout")), 1_000);
      socket.once("connect", () => {
        clearTimeout(timer);
        socket.destroy();
        resolve(true);
      });
      socket.once("error", (error) => {
        clearTimeout(timer);
        lastError = error.message;
        resolve(false);
      });
    });
    if (ok) return;
    await sleep(25);
  }
  throw new Error(stillWanted() ? `the agent did not answer on ${host}:${port} (${lastError})` : "the pod went away");
}

export class KubernetesSandboxProvider implements SandboxProvider {
  readonly kind = "kubernetes" as const;
  readonly #options: KubernetesProviderOptions;
  readonly #api: KubeApi;
  readonly #logger: KubernetesLogger;
  readonly #watch: PodWatch;
  readonly #pods = new Map<string, PodSandbox>();
  /** Pods (and their Secrets) whose deletion failed: the sweep tries again. */
  readonly #undeleted = new Set<string>();
  #sweepTimer: NodeJS.Timeout | undefined;
  #started: Promise<void> | undefined;
  #health: { at: number; result: Promise<ProviderHealth> } | undefined;
  /** Pod class by language (absent: "default"), and each class's template. */
  readonly #classOf = new Map<string, string>();
  readonly #templates = new Map<string, PodTemplateSettings>();

  constructor(options: KubernetesProviderOptions) {
    this.#options = options;
    this.#api = options.api;
    this.#logger = options.logger ?? silentLogger;
    this.#templates.set("default", options.template);
    const signature = (t: PodTemplateSettings) => JSON.stringify([t.image, t.resources]);
    const bySignature = new Map<string, string>([[signature(options.template), "default"]]);
    for (const [lang, override] of Object.entries(options.languages ?? {}).sort(([a], [b]) => a.localeCompare(b))) {
      const { image, ...resources } = override;
      const template = { ...options.template, image: image ?? options.template.image, resources: { ...options.template.resources, ...resources } };
      // Languages whose pods come out the same share a class: one pool, sandboxes that run them all.
      let key = bySignature.get(signature(template));
      if (!key) {
        key = lang;
        bySignature.set(signature(template), key);
        this.#templates.set(key, template);
      }
      if (key !== "default") this.#classOf.set(lang, key);
    }
    const { replica } = LABELS;
    const mine = `${ALL_SANDBOXES_SELECTOR},${replica}=${options.template.replicaId}`;
    this.#watch = new PodWatch(this.#api, mine, this.#logger);
  }

  /** Sandboxes alive right now. */
  get size(): number {
    return this.#pods.size;
  }

  #start(): Promise<void> {
    this.#started ??= (async () => {
      await this.#watch.start();
      if (this.#options.sweepIntervalMs > 0) {
        this.#sweepTimer = setInterval(() => {
          this.removeOrphans().catch((error: Error) => this.#logger.warn({ err: error.message }, "orphan pod sweep failed"));
        }, this.#options.sweepIntervalMs);
        this.#sweepTimer.unref();
      }
    })();
    return this.#started;
  }

  sandboxClass(lang?: string): string {
    return (lang && this.#classOf.get(lang)) || "default";
  }

  async create(spec: SandboxSpec): Promise<Sandbox> {
    await this.#start();
    const pool = this.sandboxClass(spec.lang);
    const template = this.#templates.get(pool)!;
    const name = newName();
    const token = randomBytes(32).toString("base64url");
    const pod = new PodSandbox(name, token, () => this.#delete(name));
    const egress = this.#options.egress;
    const proxyEnv = egress ? egressProxyEnv(egress.url(egress.proxy.grant(name))) : {};
    const manifest = sandboxPodManifest(template, {
      name,
      pool,
      programEnv: JSON.stringify({ ...this.#options.programEnv, ...memoryLimitEnv(parseQuantity(template.resources.memoryLimit)), ...proxyEnv }),
      agentEnv: pool === this.sandboxClass("py") ? (this.#options.agentEnv ?? {}) : {},
    });
    const replicaPod = this.#options.replicaPod;
    if (replicaPod) {
      manifest.metadata!.annotations = {
        [OWNER_ANNOTATIONS.name]: replicaPod.name,
        [OWNER_ANNOTATIONS.namespace]: replicaPod.namespace,
        [OWNER_ANNOTATIONS.uid]: replicaPod.uid,
      };
    }
    const started = Date.now();
    await this.#api.createSecret(tokenSecretManifest(template, { name, pool, token })).catch((error: Error) => {
      egress?.proxy.revoke(name);
      throw error;
    });
    this.#pods.set(name, pod);
    try {
      await this.#api.createPod(manifest);
    } catch (error) {
      this.#pods.delete(name);
      egress?.proxy.revoke(name);
      await this.#api.deleteSecret(name).catch(() => this.#undeleted.add(name));
      throw error;
    }
    try {
      const ip = await this.#waitRunning(pod, started + this.#options.startTimeoutMs);
      await waitForPort(ip, template.agentPort, started + this.#options.startTimeoutMs, () => !pod.isGone);
      pod.address = { kind: "tcp", host: ip, port: template.agentPort };
    } catch (error) {
      await pod.destroy();
      throw new Error(`sandbox pod ${name} failed to start: ${(error as Error).message}`);
    }
    this.#logger.info({ sandbox: name, session: spec.sessionId, ms: Date.now() - started }, "sandbox pod ready");
    return pod;
  }

  /** Resolve with the pod IP once it runs; follow it afterwards so that its end is noticed. */
  #waitRunning(pod: PodSandbox, deadline: number): Promise<string> {
    return new Promise((resolve, reject) => {
      let settled = false;
      let last: V1Pod | undefined;
      const timer = setTimeout(() => finish(new Error(`not running after ${this.#options.startTimeoutMs} ms: ${pendingReason(last)}`)), deadline - Date.now());
      const finish = (error: Error | undefined, ip?: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (error) reject(error);
        else resolve(ip!);
      };
      const unfollow = this.#watch.follow(pod.id, (state) => {
        if (!state) {
          pod.gone("pod deleted");
          unfollow();
          return finish(new Error("the pod was deleted"));
        }
        last = state;
        const fatal = fatalState(state);
        if (fatal) {
          pod.gone(fatal);
          unfollow();
          return finish(new Error(fatal));
        }
        if (state.status?.phase === "Running" && state.status.podIP) finish(undefined, state.status.podIP);
      });
      void pod.exited.then(() => {
        unfollow();
        finish(new Error("the sandbox was destroyed while starting"));
      });
    });
  }

  async #delete(name: string): Promise<void> {
    this.#pods.delete(name);
    this.#options.egress?.proxy.revoke(name);
    try {
      await this.#api.deletePod(name);
      await this.#api.deleteSecret(name);
      this.#undeleted.delete(name);
    } catch (error) {
      // The API server is away: the pod keeps running (idle, unreachable from outside) until the sweep deletes it.
      this.#undeleted.add(name);
      this.#logger.warn({ sandbox: name, err: (error as Error).message }, "sandbox pod could not be deleted; the sweep will retry");
    }
  }

  async removeOrphans(): Promise<number> {
    const { template } = this.#options;
    const { pods } = await this.#api.listPods(ALL_SANDBOXES_SELECTOR);
    const owners = new Map<string, Promise<boolean>>();
    const ownerAlive = (pod: V1Pod): Promise<boolean> => {
      const annotations = pod.metadata?.annotations ?? {};
      const replica = annotations[OWNER_ANNOTATIONS.name];
      const uid = annotations[OWNER_ANNOTATIONS.uid];
      const namespace = annotations[OWNER_ANNOTATIONS.namespace];
      // A replica outside any cluster cannot be looked up: its own restart cleans its pods.
      if (!replica || !uid || !namespace) return Promise.resolve(true);
      const key = `${namespace}/${replica}/${uid}`;
      let alive = owners.get(key);
      if (!alive) {
        alive = this.#api.readPod(replica, namespace).then((owner) => owner?.metadata?.uid === uid);
        owners.set(key, alive);
      }
      return alive;
    };
    const doomed: string[] = [];
    for (const pod of pods) {
      const name = pod.metadata?.name;
      const labels = pod.metadata?.labels ?? {};
      if (!name) continue;
      if (labels[LABELS.replica] === template.replicaId) {
        const earlierProcess = labels[LABELS.instance] !== template.instanceId;
        const forgotten = !this.#pods.has(name);
        if (earlierProcess || forgotten) doomed.push(name);
      } else if (!(await ownerAlive(pod))) {
        doomed.push(name);
      }
    }
    // Deletions that failed earlier (their pod may be gone already: deleting twice is harmless).
    for (const name of this.#undeleted) if (!doomed.includes(name)) doomed.push(name);
    await Promise.all(doomed.map((name) => this.#delete(name)));
    const removed = doomed.length;
    if (removed > 0) this.#logger.info({ count: removed }, "removed orphan sandbox pods");
    return removed;
  }

  health(): Promise<ProviderHealth> {
    // /ready is polled every few seconds by every prober: one API call per 2 s at most.
    if (this.#health && Date.now() - this.#health.at < 2_000) return this.#health.result;
    const result = this.#checkHealth();
    this.#health = { at: Date.now(), result };
    return result;
  }

  async #checkHealth(): Promise<ProviderHealth> {
    const { template } = this.#options;
    const details: Record<string, unknown> = {
      apiServer: this.#api.server,
      namespace: this.#api.namespace,
      image: template.image,
      podClasses: Object.fromEntries([...this.#templates].map(([key, t]) => [key, { image: t.image, ...t.resources }])),
      replica: template.replicaId,
      sandboxes: this.#pods.size,
      runtimeClassName: template.runtimeClassName ?? null,
      podWatch: this.#watch.connected ? "connected" : "reconnecting",
    };
    const warnings: string[] = [];
    try {
      await this.#api.listPods(`${ALL_SANDBOXES_SELECTOR},${LABELS.replica}=${template.replicaId},${LABELS.instance}=none`);
    } catch (error) {
      return { status: "down", details, warnings: [(error as Error).message] };
    }
    if (!this.#watch.connected && this.#started) warnings.push(`the pod watch is reconnecting${this.#watch.lastError ? ` (${this.#watch.lastError})` : ""}`);
    if (this.#undeleted.size > 0) warnings.push(`${this.#undeleted.size} sandbox pod(s) wait to be deleted`);
    return { status: warnings.length ? "degraded" : "ok", details, warnings };
  }

  async shutdown(): Promise<void> {
    clearInterval(this.#sweepTimer);
    await Promise.all([...this.#pods.values()].map((pod) => pod.destroy()));
    this.#watch.stop();
  }
}
