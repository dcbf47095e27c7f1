/**
 * The sandbox provider contract. The server never runs user code itself: it asks
 * a provider for a sandbox and talks to the sidecar-agent inside it over one
 * WebSocket (agent frames of protocol/). Local bubblewrap sandboxes and
 * Kubernetes pods both implement this.
 */

/** Resource limits applied to one sandbox as a whole (agent and programs). */
export interface SandboxLimits {
  memoryBytes: number;
  /** Processes and threads. */
  pids: number;
  /** CPU share: cfs quota per 100 ms period, in microseconds (100000 = one CPU). */
  cpuQuotaUs: number;
  openFiles: number;
  /** Largest file a program may write. */
  fileSizeBytes: number;
  /** Size of the writable /mnt/data. */
  dataBytes: number;
  /** Size of the writable /tmp. */
  tmpBytes: number;
}

export interface SandboxSpec {
  /** The session this sandbox belongs to (for labels and logs). */
  sessionId: string;
  limits: SandboxLimits;
  /** The language it is made for first: picks its class (image, resources) where classes differ. */
  lang?: string;
  /** Whose package cache to mount (egress/skill-deps.ts tenantId), where caches are on; pooled sandboxes have none. */
  tenant?: string;
}

/** Where the server reaches a sandbox's agent. */
export type AgentEndpoint = { kind: "unix"; path: string } | { kind: "tcp"; host: string; port: number };

export interface SandboxExit {
  /** Human-readable cause: "destroyed", "exited with code 1", "killed by SIGKILL"... */
  reason: string;
}

export interface Sandbox {
  readonly id: string;
  readonly endpoint: AgentEndpoint;
  /** Shared secret the agent requires on its upgrade request (header x-agent-token). */
  readonly token: string;
  /** Settles once the sandbox is gone, whoever ended it. */
  readonly exited: Promise<SandboxExit>;
  /** Kill everything in the sandbox and remove what it left on the host. Idempotent. */
  destroy(): Promise<void>;
}

export interface ProviderHealth {
  status: "ok" | "degraded" | "down";
  /** Facts an operator wants: isolation features in force, counts, versions. */
  details: Record<string, unknown>;
  /** Each limit or wall that could not be applied on this machine, in words. */
  warnings: string[];
}

export interface SandboxProvider {
  readonly kind: "local" | "kubernetes";
  /** Create a sandbox and resolve once its agent accepts connections. */
  create(spec: SandboxSpec): Promise<Sandbox>;
  /**
   * Which class of sandbox runs a language ("default" unless the language has
   * its own image or resources, as pods can): a sandbox of another class
   * cannot run it, and each class has its own warm pool.
   */
  sandboxClass(lang?: string): string;
  /**
   * Take what this server must not share with another one (local: its folders), before
   * removeOrphans; throws a StartRefusal when another live server has it. Released by shutdown().
   */
  claim?(): Promise<void>;
  /** Remove sandboxes left behind by a crashed server; returns how many. */
  removeOrphans(): Promise<number>;
  health(): Promise<ProviderHealth>;
  /** Destroy every sandbox this provider created. */
  shutdown(): Promise<void>;
}
