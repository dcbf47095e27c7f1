/**
 * The objects the Kubernetes provider creates for one sandbox: a hardened pod
 * running the sidecar-agent, and a Secret holding the token the agent demands
 * of whoever dials it. Pure functions of the settings, so that the walls can be
 * read (and tested against the Kubernetes API types) in one place.
 */
import type { V1OwnerReference, V1Pod, V1Secret, V1Toleration } from "@kubernetes/client-node";

/** Labels every sandbox pod carries; NetworkPolicies and RBAC in deploy/ select on the first two. */
export const LABELS = {
  name: "app.kubernetes.io/name",
  component: "app.kubernetes.io/component",
  /** The replica that owns the pod (its pod name, or its host name outside a cluster). */
  replica: "code-interpreter.dev/replica",
  /** The server process that made it: a restarted replica deletes what its earlier process left. */
  instance: "code-interpreter.dev/instance",
  /** The pool the pod was made for (its pod class: the language or "default"). */
  pool: "code-interpreter.dev/pool",
} as const;
export const APP_NAME = "code-interpreter";
export const SANDBOX_COMPONENT = "sandbox";
/** Selects every sandbox pod of every replica (orphan sweeps). */
export const ALL_SANDBOXES_SELECTOR = `${LABELS.name}=${APP_NAME},${LABELS.component}=${SANDBOX_COMPONENT}`;

/** Where the token Secret is mounted in the pod; the image sets AGENT_TOKEN_FILE to it as well. */
export const TOKEN_MOUNT_DIR = "/var/run/agent";
export const TOKEN_KEY = "token";
export const CONTAINER_NAME = "sandbox";

export interface PodResources {
  cpuRequest: string;
  cpuLimit: string;
  memoryRequest: string;
  memoryLimit: string;
  /** Sizes of the writable emptyDirs (Kubernetes quantities or bytes). */
  dataBytes: number;
  tmpBytes: number;
}

/** How sandbox pods look; one per pod class (language image and resources). */
export interface PodTemplateSettings {
  namespace: string;
  image: string;
  imagePullPolicy: "Always" | "IfNotPresent" | "Never";
  imagePullSecrets: string[];
  /** TCP port the agent listens on in the pod (K8S_EXECUTOR_PORT). */
  agentPort: number;
  /** Uid and gid of the agent and the programs (non-root). */
  uid: number;
  gid: number;
  resources: PodResources;
  /** GKE Sandbox (gVisor) or any RuntimeClass; node placement. */
  runtimeClassName?: string;
  nodeSelector: Record<string, string>;
  tolerations: V1Toleration[];
  /** The API pod that owns sandbox pods (garbage-collected with it); absent outside a cluster. */
  owner?: { name: string; uid: string };
  replicaId: string;
  instanceId: string;
}

export interface SandboxPodInput {
  name: string;
  /** Pool (pod class) label value. */
  pool: string;
  /** JSON object: the programs' base environment (AGENT_PROGRAM_ENV). */
  programEnv: string;
  /** More environment of the agent itself (AGENT_PYTHON_PRELOAD...). */
  agentEnv: Record<string, string>;
}

/** Label values must be at most 63 characters of [A-Za-z0-9._-], starting and ending alphanumeric. */
export function labelValue(text: string): string {
  const cleaned = text
    .replace(/[^A-Za-z0-9._-]/g, "-")
    .slice(0, 63)
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, "");
  return cleaned || "unknown";
}

function labels(settings: PodTemplateSettings, pool: string): Record<string, string> {
  return {
    [LABELS.name]: APP_NAME,
    [LABELS.component]: SANDBOX_COMPONENT,
    [LABELS.replica]: labelValue(settings.replicaId),
    [LABELS.instance]: labelValue(settings.instanceId),
    [LABELS.pool]: labelValue(pool),
  };
}

function ownerReferences(settings: PodTemplateSettings): V1OwnerReference[] | undefined {
  if (!settings.owner) return undefined;
  // Not a controller reference: the garbage collector deletes the sandbox when its replica's pod goes, nothing more.
  return [{ apiVersion: "v1", kind: "Pod", name: settings.owner.name, uid: settings.owner.uid, blockOwnerDeletion: false }];
}

/** The Secret holding one pod's agent token (same name as the pod). */
export function tokenSecretManifest(settings: PodTemplateSettings, input: { name: string; pool: string; token: string }): V1Secret {
  const owners = ownerReferences(settings);
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: input.name, namespace: settings.namespace, labels: labels(settings, input.pool), ...(owners ? { ownerReferences: owners } : {}) },
    type: "Opaque",
    immutable: true,
    data: { [TOKEN_KEY]: Buffer.from(input.token, "utf8").toString("base64") },
  };
}

/**
 * One sandbox pod. The walls: non-root uid and gid, no privilege escalation,
 * every capability dropped, seccomp RuntimeDefault, a read-only root file
 * system with size-limited emptyDirs for /mnt/data and /tmp, no service
 * account token, no service links in the environment, ephemeral-storage
 * limits, restartPolicy Never (a dead agent is a lost sandbox, never a fresh
 * one behind the session's back). Egress is denied by the NetworkPolicy of
 * deploy/; the token Secret keeps other pods that can reach the port out.
 */
export function sandboxPodManifest(settings: PodTemplateSettings, input: SandboxPodInput): V1Pod {
  const { resources } = settings;
  const owners = ownerReferences(settings);
  const storage = String(resources.dataBytes + resources.tmpBytes);
  const env = [
    { name: "AGENT_LISTEN", value: `tcp:0.0.0.0:${settings.agentPort}` },
    { name: "AGENT_TOKEN_FILE", value: `${TOKEN_MOUNT_DIR}/${TOKEN_KEY}` },
    { name: "AGENT_DATA_DIR", value: "/mnt/data" },
    { name: "AGENT_WORK_DIR", value: "/tmp/.agent" },
    { name: "AGENT_PROGRAM_ENV", value: input.programEnv },
    // The jail where the runtime allows user namespaces (the agent tries once and falls back; the default seccomp profile refuses).
    { name: "AGENT_PROGRAM_JAIL", value: "1" },
    { name: "HOME", value: "/tmp" },
    ...Object.entries(input.agentEnv).map(([name, value]) => ({ name, value })),
  ];
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: input.name,
      namespace: settings.namespace,
      labels: labels(settings, input.pool),
      ...(owners ? { ownerReferences: owners } : {}),
    },
    spec: {
      restartPolicy: "Never",
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      hostNetwork: false,
      hostPID: false,
      hostIPC: false,
      // Nothing to drain: the server deletes a sandbox when its session is done with it.
      terminationGracePeriodSeconds: 0,
      ...(settings.runtimeClassName ? { runtimeClassName: settings.runtimeClassName } : {}),
      ...(Object.keys(settings.nodeSelector).length ? { nodeSelector: settings.nodeSelector } : {}),
      ...(settings.tolerations.length ? { tolerations: settings.tolerations } : {}),
      ...(settings.imagePullSecrets.length ? { imagePullSecrets: settings.imagePullSecrets.map((name) => ({ name })) } : {}),
      securityContext: {
        runAsNonRoot: true,
        runAsUser: settings.uid,
        runAsGroup: settings.gid,
        fsGroup: settings.gid,
        seccompProfile: { type: "RuntimeDefault" },
      },
      containers: [
        {
          name: CONTAINER_NAME,
          image: settings.image,
          imagePullPolicy: settings.imagePullPolicy,
          ports: [{ name: "agent", containerPort: settings.agentPort, protocol: "TCP" }],
          env,
          workingDir: "/mnt/data",
          resources: {
            requests: { cpu: resources.cpuRequest, memory: resources.memoryRequest, "ephemeral-storage": storage },
            limits: { cpu: resources.cpuLimit, memory: resources.memoryLimit, "ephemeral-storage": storage },
          },
          securityContext: {
            runAsNonRoot: true,
            runAsUser: settings.uid,
            runAsGroup: settings.gid,
            allowPrivilegeEscalation: false,
            privileged: false,
            readOnlyRootFilesystem: true,
            capabilities: { drop: ["ALL"] },
            seccompProfile: { type: "RuntimeDefault" },
          },
          // The server dials the agent itself before it leases the pod; this only keeps Endpoints and tools honest.
          readinessProbe: { tcpSocket: { port: "agent" }, periodSeconds: 2, failureThreshold: 1 },
          volumeMounts: [
            { name: "data", mountPath: "/mnt/data" },
            { name: "tmp", mountPath: "/tmp" },
            { name: "agent-token", mountPath: TOKEN_MOUNT_DIR, readOnly: true },
          ],
        },
      ],
      volumes: [
        { name: "data", emptyDir: { sizeLimit: String(resources.dataBytes) } },
        { name: "tmp", emptyDir: { sizeLimit: String(resources.tmpBytes) } },
        // 0440 with fsGroup: readable by the agent's group, by nobody else.
        { name: "agent-token", secret: { secretName: input.name, defaultMode: 0o440, items: [{ key: TOKEN_KEY, path: TOKEN_KEY }] } },
      ],
    },
  };
}

const QUANTITY = /^(\d+(?:\.\d+)?)(m|k|M|G|T|P|Ki|Mi|Gi|Ti|Pi)?$/;
const FACTORS: Record<string, number> = {
  "": 1,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
};

/** A Kubernetes quantity ("512Mi", "1.5", "500m") as a number (bytes, or cores). */
export function parseQuantity(text: string): number {
  const match = QUANTITY.exec(text.trim());
  if (!match) throw new Error(`not a Kubernetes quantity: "${text}"`);
  return Number(match[1]) * (FACTORS[match[2] ?? ""] ?? 1);
}
