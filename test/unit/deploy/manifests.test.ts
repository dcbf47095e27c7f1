/**
 * Static checks of deploy/: nothing here runs a container or talks to a cluster.
 * - Kubernetes: each overlay is rendered with `kubectl kustomize` (Debian 12's kubectl 1.20 and its
 *   kustomize v2.0.3, or anything newer), every object is validated against the Kubernetes schemas of
 *   kubernetes-models, and the walls the design relies on are asserted: the API pods' hardening and
 *   probes, the Role's exact grants, the sandbox NetworkPolicy, label and name references between
 *   objects, the Secret's name, and the settings against the server's own configuration schema.
 * - compose.yaml: parses, three services wired together.
 * - Dockerfiles: COPY sources exist and are in the build context, pinned base images, non-root final
 *   stages, the sandbox image's agent settings.
 * KUBECTL=/path/to/kubectl picks another kubectl (default: kubectl on PATH).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Deployment, type IDeployment } from "kubernetes-models/apps/v1/Deployment";
import { HorizontalPodAutoscaler, type IHorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import { type INetworkPolicy, NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { type IPodDisruptionBudget, PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { type IRole, Role } from "kubernetes-models/rbac.authorization.k8s.io/v1/Role";
import { type IRoleBinding, RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding";
import { ConfigMap, type IConfigMap } from "kubernetes-models/v1/ConfigMap";
import type { IContainer } from "kubernetes-models/v1/Container";
import { type INamespace, Namespace } from "kubernetes-models/v1/Namespace";
import { Pod } from "kubernetes-models/v1/Pod";
import { type ISecret, Secret } from "kubernetes-models/v1/Secret";
import { type IService, Service } from "kubernetes-models/v1/Service";
import { type IServiceAccount, ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { loadConfig } from "../../../server/config/load.ts";
import { findVariable } from "../../../server/config/variables.ts";

const ROOT = resolve(import.meta.dirname, "../../..");
const DEPLOY = join(ROOT, "deploy");
const KUBECTL = process.env.KUBECTL || "kubectl";
const NAMESPACE = "code-interpreter";
const SECRET_NAME = "code-interpreter-secrets";
const API_PORT = 8000;
const AGENT_PORT = 9090;
/** The labels of the pods the server creates (server/sandbox/kubernetes/pod-manifest.ts) and of the API pods. */
const SANDBOX_LABELS = { "app.kubernetes.io/name": "code-interpreter", "app.kubernetes.io/component": "sandbox" };
const API_LABELS = { "app.kubernetes.io/name": "code-interpreter", "app.kubernetes.io/component": "api" };
/** Keys of the Secret the API reads (secretKeyRef in the Deployment). */
const SECRET_KEYS = ["API_KEY", "MASTER_API_KEY", "REDIS_URL", "S3_ACCESS_KEY", "S3_BUCKET", "S3_ENDPOINT", "S3_SECRET_KEY"];
/** Downward-API variables the Kubernetes provider reads itself (not configuration variables). */
const DOWNWARD_API: Record<string, string> = {
  POD_NAME: "metadata.name",
  POD_UID: "metadata.uid",
  POD_NAMESPACE: "metadata.namespace",
  POD_IP: "status.podIP",
};
/** SANDBOX_EGRESS_PORT's default: the API pods' egress proxy, the one place sandbox pods may connect to. */
const EGRESS_PORT = 18443;

// ---- rendering and schema validation ----

type Manifest = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> } };
type Model = { validate(): void };
const MODELS: Record<string, new (data: never) => Model> = {
  "v1/Namespace": Namespace,
  "v1/ServiceAccount": ServiceAccount,
  "v1/ConfigMap": ConfigMap,
  "v1/Secret": Secret,
  "v1/Service": Service,
  "apps/v1/Deployment": Deployment,
  "autoscaling/v2/HorizontalPodAutoscaler": HorizontalPodAutoscaler,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy,
  "rbac.authorization.k8s.io/v1/Role": Role,
  "rbac.authorization.k8s.io/v1/RoleBinding": RoleBinding,
};

/** Validate one object against its Kubernetes schema; throws on an unknown kind or a schema error. */
function validateObject(object: Manifest, where: string): void {
  const key = `${object.apiVersion}/${object.kind}`;
  const model = MODELS[key];
  if (!model) throw new Error(`${where}: no schema for ${key} (${object.metadata?.name}); add its kubernetes-models class to MODELS`);
  try {
    new model(object as never).validate();
  } catch (error) {
    throw new Error(`${where}: ${key} ${object.metadata?.name} is invalid: ${(error as Error).message}`);
  }
}

function parseYamlDocuments(text: string, where: string): Manifest[] {
  const objects: Manifest[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`${where}: ${doc.errors.map((e) => e.message).join("; ")}`);
    const value = doc.toJS() as Manifest | null;
    if (value !== null) objects.push(value);
  }
  return objects;
}

const rendered = new Map<string, Manifest[]>();
/** `kubectl kustomize deploy/kubernetes/<dir>`, parsed and schema-validated (memoized). */
function render(dir: string): Manifest[] {
  const cached = rendered.get(dir);
  if (cached) return cached;
  const result = spawnSync(KUBECTL, ["kustomize", join(DEPLOY, "kubernetes", dir)], { encoding: "utf8", timeout: 30_000 });
  if (result.error && (result.error as NodeJS.ErrnoException).code === "ENOENT") {
    throw new Error(
      `${KUBECTL} not found: these checks render the manifests with kubectl kustomize. scripts/test.sh (npm test) installs it ` +
        "(Debian package kubernetes-client); or: apt-get install kubernetes-client",
    );
  }
  if (result.error) throw result.error;
  if (result.status !== 0) throw new Error(`kubectl kustomize ${dir} failed (${result.status}): ${result.stderr}`);
  const objects = parseYamlDocuments(result.stdout, dir);
  for (const object of objects) validateObject(object, dir);
  rendered.set(dir, objects);
  return objects;
}

function all<T>(objects: Manifest[], kind: string): T[] {
  return objects.filter((o) => o.kind === kind) as unknown as T[];
}
function one<T>(objects: Manifest[], kind: string, name?: string): T {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ""}, found ${found.length}`);
  return found[0] as unknown as T;
}

/** Every `matchLabels` pair is among `labels` (a selector with matchExpressions is refused: we use none). */
function selects(
  selector: { matchLabels?: Record<string, string>; matchExpressions?: unknown[] } | undefined,
  labels: Record<string, string> | undefined,
): boolean {
  if (!selector || selector.matchExpressions?.length) return false;
  const wanted = Object.entries(selector.matchLabels ?? {});
  return wanted.length > 0 && wanted.every(([key, value]) => labels?.[key] === value);
}

/** Kubernetes quantity ("250m", "1", "2Gi") as a number of cores or bytes. */
function quantity(value: string | number | undefined): number {
  const match = /^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(value ?? ""));
  if (!match) throw new Error(`not a quantity: ${value}`);
  const factor: Record<string, number> = { "": 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };
  return Number(match[1]) * (factor[match[2] ?? ""] ?? Number.NaN);
}

/** The API container: the Deployment's only container. */
function apiContainer(deployment: IDeployment): IContainer {
  const containers = deployment.spec?.template.spec?.containers ?? [];
  expect(containers).toHaveLength(1);
  return containers[0]!;
}

/** The environment the API container gets: ConfigMap data through envFrom, then literal env values. */
function effectiveEnv(objects: Manifest[], deployment: IDeployment): Record<string, string> {
  const env: Record<string, string> = {};
  const container = apiContainer(deployment);
  for (const source of container.envFrom ?? []) {
    if (source.configMapRef) Object.assign(env, one<IConfigMap>(objects, "ConfigMap", source.configMapRef.name).data ?? {});
  }
  for (const entry of container.env ?? []) if (entry.value !== undefined) env[entry.name] = entry.value;
  return env;
}

/** Names of every Secret the Deployment's pods reference (env, envFrom, volumes). */
function secretReferences(deployment: IDeployment): string[] {
  const names: string[] = [];
  const pod = deployment.spec?.template.spec;
  for (const container of [...(pod?.containers ?? []), ...(pod?.initContainers ?? [])]) {
    for (const entry of container.env ?? []) if (entry.valueFrom?.secretKeyRef) names.push(entry.valueFrom.secretKeyRef.name ?? "");
    for (const source of container.envFrom ?? []) if (source.secretRef) names.push(source.secretRef.name ?? "");
  }
  for (const volume of pod?.volumes ?? []) {
    if (volume.secret) names.push(volume.secret.secretName ?? "");
    for (const source of volume.projected?.sources ?? []) if (source.secret) names.push(source.secret.name ?? "");
  }
  for (const secret of pod?.imagePullSecrets ?? []) names.push(secret.name ?? "");
  return names;
}

function secretExample(): ISecret {
  const [secret, ...rest] = parseYamlDocuments(readFileSync(join(DEPLOY, "kubernetes/base/secret.example.yaml"), "utf8"), "secret.example.yaml");
  expect(rest).toHaveLength(0);
  validateObject(secret!, "secret.example.yaml");
  return secret as unknown as ISecret;
}

// ---- Kubernetes ----

const OVERLAYS = ["overlays/production", "overlays/gke-sandbox"];

describe("deploy/kubernetes: every kustomization renders and validates", () => {
  it.each(["base", ...OVERLAYS])("%s renders with kubectl kustomize into schema-valid objects of the expected kinds", (dir) => {
    const objects = render(dir);
    const kinds = objects.map((o) => o.kind).sort();
    const expected = [
      "ConfigMap",
      "Deployment",
      "HorizontalPodAutoscaler",
      "NetworkPolicy",
      "NetworkPolicy",
      "PodDisruptionBudget",
      "Role",
      "RoleBinding",
      "Service",
      "ServiceAccount",
      ...(dir === "base" ? [] : ["Namespace"]),
    ].sort();
    expect(kinds).toEqual(expected);
    // No Secret is ever shipped: it is created by the operator (secret.example.yaml shows its keys).
    expect(kinds).not.toContain("Secret");
  });

  it("the base is namespace-less (an overlay sets the namespace)", () => {
    for (const object of render("base"))
      expect({ kind: object.kind, namespace: object.metadata.namespace }).toEqual({ kind: object.kind, namespace: undefined });
  });

  it.each(OVERLAYS)("%s puts everything in one namespace, under Pod Security restricted", (dir) => {
    const objects = render(dir);
    const namespace = one<INamespace>(objects, "Namespace");
    expect(namespace.metadata?.name).toBe(NAMESPACE);
    expect(namespace.metadata?.labels?.["pod-security.kubernetes.io/enforce"]).toBe("restricted");
    for (const object of objects.filter((o) => o.kind !== "Namespace")) {
      expect({ kind: object.kind, name: object.metadata.name, namespace: object.metadata.namespace }).toEqual({
        kind: object.kind,
        name: object.metadata.name,
        namespace: NAMESPACE,
      });
    }
    const binding = one<IRoleBinding>(objects, "RoleBinding");
    for (const subject of binding.subjects ?? []) expect(subject.namespace).toBe(NAMESPACE);
  });

  it("secret.example.yaml is a valid Secret named as the Deployment expects, and no kustomization lists it", () => {
    const secret = secretExample();
    expect(secret.metadata?.name).toBe(SECRET_NAME);
    expect(Object.keys(secret.stringData ?? {}).sort()).toEqual(SECRET_KEYS);
    for (const dir of ["base", ...OVERLAYS])
      expect(readFileSync(join(DEPLOY, "kubernetes", dir, "kustomization.yaml"), "utf8")).not.toMatch(/^\s*-\s*secret\.example\.yaml/m);
  });
});

describe.each(["base", ...OVERLAYS])("deploy/kubernetes %s", (dir) => {
  it("API pods: non-root, no privilege escalation, all capabilities dropped, read-only root with /tmp an emptyDir, seccomp RuntimeDefault", () => {
    const deployment = one<IDeployment>(render(dir), "Deployment");
    const pod = deployment.spec!.template.spec!;
    expect(pod.securityContext?.runAsNonRoot).toBe(true);
    expect(pod.securityContext?.runAsUser).toBe(10001);
    expect(pod.securityContext?.seccompProfile?.type).toBe("RuntimeDefault");
    expect(pod.hostNetwork ?? false).toBe(false);
    expect(pod.hostPID ?? false).toBe(false);
    expect(pod.hostIPC ?? false).toBe(false);
    expect(pod.enableServiceLinks).toBe(false);
    expect(pod.initContainers ?? []).toEqual([]);
    const container = apiContainer(deployment);
    const security = container.securityContext!;
    expect(security.runAsNonRoot).toBe(true);
    expect(security.runAsUser ?? pod.securityContext?.runAsUser).toBe(10001);
    expect(security.allowPrivilegeEscalation).toBe(false);
    expect(security.privileged ?? false).toBe(false);
    expect(security.readOnlyRootFilesystem).toBe(true);
    expect(security.capabilities?.drop).toEqual(["ALL"]);
    expect(security.capabilities?.add ?? []).toEqual([]);
    expect(security.seccompProfile?.type ?? pod.securityContext?.seccompProfile?.type).toBe("RuntimeDefault");
    const tmp = container.volumeMounts?.find((m) => m.mountPath === "/tmp");
    expect(tmp).toBeDefined();
    expect(pod.volumes?.find((v) => v.name === tmp!.name)?.emptyDir).toBeDefined();
    for (const volume of pod.volumes ?? []) expect(volume.hostPath).toBeUndefined();
  });

  it("API pods: liveness on GET /health and readiness on GET /ready, port 8000; resources; graceful termination", () => {
    const deployment = one<IDeployment>(render(dir), "Deployment");
    const container = apiContainer(deployment);
    const port = (value: string | number | undefined) => (typeof value === "number" ? value : container.ports?.find((p) => p.name === value)?.containerPort);
    expect(container.ports?.map((p) => p.containerPort)).toEqual([API_PORT]);
    expect(container.livenessProbe?.httpGet?.path).toBe("/health");
    expect(port(container.livenessProbe?.httpGet?.port)).toBe(API_PORT);
    expect(container.readinessProbe?.httpGet?.path).toBe("/ready");
    expect(port(container.readinessProbe?.httpGet?.port)).toBe(API_PORT);
    if (container.startupProbe) expect(container.startupProbe.httpGet?.path).toBe("/health");
    for (const kind of ["requests", "limits"] as const) {
      for (const resource of ["cpu", "memory"]) {
        const value = container.resources?.[kind]?.[resource] as string | number | undefined;
        expect(quantity(value), `${kind}.${resource}`).toBeGreaterThan(0);
      }
    }
    expect(quantity(container.resources?.limits?.memory as string)).toBeGreaterThanOrEqual(quantity(container.resources?.requests?.memory as string));
    const grace = deployment.spec!.template.spec!.terminationGracePeriodSeconds!;
    // The server exits within SHUTDOWN_GRACE_SECONDS + 30 s of SIGTERM (server/app.ts shutdownBudgetMs), after the preStop pause.
    const preStop = Number(container.lifecycle?.preStop?.exec?.command?.[1] ?? 0);
    const shutdownGrace = Number(container.env?.find((e) => e.name === "SHUTDOWN_GRACE_SECONDS")?.value ?? 30);
    expect(grace).toBeGreaterThanOrEqual(preStop + shutdownGrace + 30);
    expect(grace).toBeLessThanOrEqual(180);
    expect(deployment.spec?.strategy?.rollingUpdate?.maxUnavailable).toBe(0);
  });

  it("API pods: identity through the downward API, settings for the Kubernetes backend, and a service account with a token", () => {
    const objects = render(dir);
    const deployment = one<IDeployment>(objects, "Deployment");
    const container = apiContainer(deployment);
    for (const [name, fieldPath] of Object.entries(DOWNWARD_API)) {
      expect(container.env?.find((e) => e.name === name)?.valueFrom?.fieldRef?.fieldPath, name).toBe(fieldPath);
    }
    const env = effectiveEnv(objects, deployment);
    expect(env.EXECUTION_BACKEND).toBe("kubernetes");
    expect(env.K8S_IMAGE_REGISTRY).toBeTruthy();
    expect(env.K8S_IMAGE_TAG).toBeTruthy();
    expect(env.K8S_EXECUTOR_PORT ?? String(AGENT_PORT)).toBe(String(AGENT_PORT));
    expect(env.API_PORT ?? String(API_PORT)).toBe(String(API_PORT));
    // The read-only root leaves /tmp as the only writable place for the embedded stores' folder.
    expect(env.FILE_STORAGE_PATH?.startsWith("/tmp/")).toBe(true);
    const pod = deployment.spec!.template.spec!;
    const account = one<IServiceAccount>(objects, "ServiceAccount", pod.serviceAccountName);
    expect(account.automountServiceAccountToken).toBe(true);
    expect(pod.automountServiceAccountToken).toBe(true);
  });

  it(`every Secret reference names ${SECRET_NAME}, for every key the server needs`, () => {
    const deployment = one<IDeployment>(render(dir), "Deployment");
    const references = secretReferences(deployment);
    expect(references.length).toBeGreaterThan(0);
    expect(new Set(references)).toEqual(new Set([SECRET_NAME]));
    const keys = (apiContainer(deployment).env ?? []).flatMap((e) => (e.valueFrom?.secretKeyRef ? [e.valueFrom.secretKeyRef.key] : []));
    expect(keys.sort()).toEqual(SECRET_KEYS);
    // Each secret goes in under its own name (the server reads REDIS_URL, not some other variable).
    for (const entry of apiContainer(deployment).env ?? []) if (entry.valueFrom?.secretKeyRef) expect(entry.name).toBe(entry.valueFrom.secretKeyRef.key);
  });

  it("every setting is a variable the server knows, and the server's configuration schema accepts them with the example Secret", () => {
    const objects = render(dir);
    const deployment = one<IDeployment>(objects, "Deployment");
    const env = effectiveEnv(objects, deployment);
    const names = [...Object.keys(env), ...(apiContainer(deployment).env ?? []).map((e) => e.name)].filter((name) => !(name in DOWNWARD_API));
    for (const name of names) expect(findVariable(name), `${name} is not in server/config/variables.ts`).toBeDefined();
    const { errors } = loadConfig({ env: { ...env, ...(secretExample().stringData ?? {}) }, envFile: false, cwd: ROOT });
    expect(errors).toEqual([]);
  });

  it("the Role grants exactly pods {create,get,list,watch,delete} and secrets {create,get,delete}; the RoleBinding gives it to the API's service account", () => {
    const objects = render(dir);
    const role = one<IRole>(objects, "Role");
    const rules = (role.rules ?? []).map((rule) => ({
      apiGroups: rule.apiGroups,
      resources: rule.resources,
      verbs: [...(rule.verbs ?? [])].sort(),
      resourceNames: rule.resourceNames,
      nonResourceURLs: rule.nonResourceURLs,
    }));
    expect(rules).toEqual([
      { apiGroups: [""], resources: ["pods"], verbs: ["create", "delete", "get", "list", "watch"], resourceNames: undefined, nonResourceURLs: undefined },
      { apiGroups: [""], resources: ["secrets"], verbs: ["create", "delete", "get"], resourceNames: undefined, nonResourceURLs: undefined },
    ]);
    const text = JSON.stringify(role.rules);
    expect(text).not.toContain("*");
    expect(text).not.toMatch(/pods\/(exec|log|attach|portforward)/);
    expect(all<Manifest>(objects, "ClusterRole")).toEqual([]);
    expect(all<Manifest>(objects, "ClusterRoleBinding")).toEqual([]);

    const binding = one<IRoleBinding>(objects, "RoleBinding");
    expect(binding.roleRef).toEqual({ apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: role.metadata?.name });
    const deployment = one<IDeployment>(objects, "Deployment");
    expect(binding.subjects?.map((s) => ({ kind: s.kind, name: s.name }))).toEqual([
      { kind: "ServiceAccount", name: deployment.spec?.template.spec?.serviceAccountName },
    ]);
  });

  it("the sandbox NetworkPolicy: egress only to the API pods' proxy port, ingress only from the API pods on TCP 9090", () => {
    const objects = render(dir);
    const policy = all<INetworkPolicy>(objects, "NetworkPolicy").find((p) => selects(p.spec?.podSelector, SANDBOX_LABELS));
    expect(policy, "a NetworkPolicy selecting the sandbox pods").toBeDefined();
    const spec = policy!.spec!;
    // Exactly the two labels the provider sets on every sandbox pod: more would let some sandbox pods escape it.
    expect(spec.podSelector.matchLabels).toEqual(SANDBOX_LABELS);
    expect([...(spec.policyTypes ?? [])].sort()).toEqual(["Egress", "Ingress"]);
    expect(spec.egress).toEqual([{ to: [{ podSelector: { matchLabels: API_LABELS } }], ports: [{ protocol: "TCP", port: EGRESS_PORT }] }]);
    expect(spec.ingress).toHaveLength(1);
    const rule = spec.ingress![0]!;
    expect(rule.ports).toEqual([{ protocol: "TCP", port: AGENT_PORT }]);
    expect(rule.from).toHaveLength(1);
    const peer = rule.from![0]!;
    expect(peer.ipBlock).toBeUndefined();
    expect(peer.namespaceSelector).toBeUndefined();
    expect(peer.podSelector?.matchLabels).toEqual(API_LABELS);
    // The API pods are the ones it lets in, and they are not themselves fenced as sandboxes.
    const labels = one<IDeployment>(objects, "Deployment").spec?.template.metadata?.labels;
    expect(selects(peer.podSelector, labels)).toBe(true);
    expect(selects(spec.podSelector, labels)).toBe(false);
  });

  it("the API NetworkPolicy selects the API pods, admits port 8000 and allows egress", () => {
    const objects = render(dir);
    const labels = one<IDeployment>(objects, "Deployment").spec?.template.metadata?.labels;
    const policy = all<INetworkPolicy>(objects, "NetworkPolicy").find((p) => selects(p.spec?.podSelector, labels));
    expect(policy, "a NetworkPolicy selecting the API pods").toBeDefined();
    const spec = policy!.spec!;
    expect(spec.ingress?.some((rule) => rule.ports?.some((p) => p.port === API_PORT && (p.protocol ?? "TCP") === "TCP"))).toBe(true);
    // The egress proxy port admits the sandbox pods only.
    const proxyRules = spec.ingress?.filter((rule) => rule.ports?.some((p) => p.port === EGRESS_PORT)) ?? [];
    expect(proxyRules).toEqual([{ from: [{ podSelector: { matchLabels: SANDBOX_LABELS } }], ports: [{ protocol: "TCP", port: EGRESS_PORT }] }]);
    if (spec.policyTypes?.includes("Egress")) expect(spec.egress?.length ?? 0).toBeGreaterThan(0);
  });

  it("the Deployment, Service, PodDisruptionBudget and HorizontalPodAutoscaler point at the API pods", () => {
    const objects = render(dir);
    const deployment = one<IDeployment>(objects, "Deployment");
    const labels = deployment.spec?.template.metadata?.labels;
    expect(labels).toMatchObject(API_LABELS);
    expect(selects(deployment.spec?.selector, labels)).toBe(true);

    const service = one<IService>(objects, "Service");
    expect(service.spec?.type ?? "ClusterIP").toBe("ClusterIP");
    expect(selects({ matchLabels: service.spec?.selector }, labels)).toBe(true);
    expect(service.spec?.selector).toEqual(deployment.spec?.selector.matchLabels);
    expect(service.spec?.ports).toHaveLength(1);
    const port = service.spec!.ports![0]!;
    expect({ name: port.name, port: port.port, protocol: port.protocol ?? "TCP" }).toEqual({ name: "http", port: 80, protocol: "TCP" });
    const target =
      typeof port.targetPort === "number" ? port.targetPort : apiContainer(deployment).ports?.find((p) => p.name === port.targetPort)?.containerPort;
    expect(target).toBe(API_PORT);

    const budget = one<IPodDisruptionBudget>(objects, "PodDisruptionBudget");
    expect(budget.apiVersion).toBe("policy/v1");
    expect(budget.spec?.minAvailable).toBe(1);
    expect(selects(budget.spec?.selector, labels)).toBe(true);

    const autoscaler = one<IHorizontalPodAutoscaler>(objects, "HorizontalPodAutoscaler");
    expect(autoscaler.spec?.scaleTargetRef).toEqual({ apiVersion: "apps/v1", kind: "Deployment", name: deployment.metadata?.name });
    expect(autoscaler.spec?.metrics?.map((m) => `${m.type}/${m.resource?.name}`)).toEqual(["Resource/cpu"]);
    expect(autoscaler.spec?.minReplicas).toBe(deployment.spec?.replicas);
    expect(autoscaler.spec!.maxReplicas).toBeGreaterThan(autoscaler.spec!.minReplicas!);
    expect(deployment.spec!.replicas!).toBeGreaterThanOrEqual(2);
  });
});

describe("deploy/kubernetes overlays", () => {
  it("production: 3 replicas with more resources than the base, both images pinned to one release", () => {
    const base = one<IDeployment>(render("base"), "Deployment");
    for (const dir of OVERLAYS) {
      const objects = render(dir);
      const deployment = one<IDeployment>(objects, "Deployment");
      expect(deployment.spec?.replicas).toBe(3);
      for (const resource of ["cpu", "memory"]) {
        expect(quantity(apiContainer(deployment).resources?.requests?.[resource] as string)).toBeGreaterThan(
          quantity(apiContainer(base).resources?.requests?.[resource] as string),
        );
      }
      const [image, tag] = (apiContainer(deployment).image ?? "").split(":");
      expect(image).toBe("code-interpreter/server");
      expect(tag).toMatch(/^\d+\.\d+\.\d+/);
      const env = effectiveEnv(objects, deployment);
      expect(env.K8S_IMAGE_TAG).toBe(tag);
      expect(env.K8S_IMAGE_PULL_POLICY).toBe("IfNotPresent");
    }
  });

  it("gke-sandbox: gVisor RuntimeClass, node selector and tolerations that a pod spec accepts", () => {
    const objects = render("overlays/gke-sandbox");
    const env = effectiveEnv(objects, one<IDeployment>(objects, "Deployment"));
    expect(env.GKE_SANDBOX_ENABLED).toBe("true");
    expect(env.GKE_SANDBOX_RUNTIME_CLASS).toBe("gvisor");
    const nodeSelector = JSON.parse(env.GKE_SANDBOX_NODE_SELECTOR ?? "null");
    const tolerations = JSON.parse(env.GKE_SANDBOX_CUSTOM_TOLERATIONS ?? "null");
    expect(nodeSelector).toEqual({ "sandbox.gke.io/runtime": "gvisor" });
    expect(Array.isArray(tolerations) && tolerations.length > 0).toBe(true);
    // The same values in a pod spec, as the provider puts them there.
    new Pod({
      metadata: { name: "probe" },
      spec: {
        runtimeClassName: env.GKE_SANDBOX_RUNTIME_CLASS,
        nodeSelector,
        tolerations,
        containers: [{ name: "sandbox", image: "code-interpreter/sandbox:0.1.0" }],
      },
    }).validate();
    // The production overlay leaves GKE Sandbox off.
    const production = render("overlays/production");
    expect(effectiveEnv(production, one<IDeployment>(production, "Deployment")).GKE_SANDBOX_ENABLED).toBe("false");
  });
});

// ---- compose ----

describe("deploy/compose.yaml", () => {
  type ComposeService = {
    image?: string;
    build?: { context: string; dockerfile: string; target?: string };
    environment?: Record<string, string>;
    volumes?: string[];
    depends_on?: Record<string, { condition: string }>;
    healthcheck?: { test: string[] };
    security_opt?: string[];
    cap_add?: string[];
  };
  const compose = parse(readFileSync(join(DEPLOY, "compose.yaml"), "utf8")) as { services: Record<string, ComposeService>; volumes?: Record<string, unknown> };

  it("has the server, redis and minio services, each with a health check", () => {
    expect(Object.keys(compose.services).sort()).toEqual(["minio", "redis", "server"]);
    for (const [name, service] of Object.entries(compose.services)) expect(service.healthcheck?.test?.length, name).toBeGreaterThan(0);
    expect(compose.services.server!.depends_on).toEqual({ redis: { condition: "service_healthy" }, minio: { condition: "service_healthy" } });
  });

  it("builds the server-local target of Dockerfile.server and wires it to Redis and MinIO on port 8000", () => {
    const server = compose.services.server!;
    const dockerfile = resolve(DEPLOY, server.build!.context, server.build!.dockerfile);
    expect(existsSync(dockerfile)).toBe(true);
    expect(stages(parseDockerfile(readFileSync(dockerfile, "utf8"))).map((s) => s.name)).toContain(server.build!.target);
    expect(server.build!.target).toBe("server-local");
    const env = server.environment!;
    expect(env.REDIS_URL).toBe("redis://redis:6379");
    expect(env.S3_ENDPOINT).toBe("minio:9000");
    expect(env.EXECUTION_BACKEND).toBe("local");
    for (const name of Object.keys(env)) expect(findVariable(name), `${name} is not in server/config/variables.ts`).toBeDefined();
    // What bubblewrap needs inside a container (documented in the file and in the server-local stage).
    expect(server.cap_add).toContain("SYS_ADMIN");
    expect(server.security_opt).toEqual(expect.arrayContaining(["seccomp=unconfined", "apparmor=unconfined"]));
  });

  it("uses named volumes it declares, and pinned images", () => {
    const declared = Object.keys(compose.volumes ?? {});
    for (const service of Object.values(compose.services)) {
      for (const volume of service.volumes ?? []) {
        const source = volume.split(":")[0]!;
        if (!source.startsWith(".") && !source.startsWith("/")) expect(declared).toContain(source);
      }
      // ${VAR:-default} resolves to its default here.
      const image = (service.image ?? "").replace(/\$\{[A-Z_]+:-([^}]+)\}/g, "$1");
      if (service.build) continue;
      expect(image).toMatch(/^[^:]+:[^:]+$/);
      expect(image.endsWith(":latest")).toBe(false);
    }
    expect(compose.services.redis!.image).toMatch(/^redis:7/);
  });
});

// ---- Dockerfiles ----

type Instruction = { keyword: string; args: string; line: number };
type Stage = { name: string | undefined; image: string; instructions: Instruction[] };

/** Instructions of a Dockerfile: comments dropped, continuation lines joined. */
function parseDockerfile(text: string): Instruction[] {
  const instructions: Instruction[] = [];
  let buffer = "";
  let start = 0;
  text.split("\n").forEach((raw, index) => {
    const line = raw.trimEnd();
    if (/^\s*#/.test(line) || (buffer === "" && line.trim() === "")) return;
    if (buffer === "") start = index + 1;
    if (line.endsWith("\\")) {
      buffer += `${line.slice(0, -1)} `;
      return;
    }
    buffer += line;
    const match = /^\s*(\w+)\s+([\s\S]*)$/.exec(buffer);
    if (!match) throw new Error(`line ${start}: cannot parse "${buffer}"`);
    instructions.push({ keyword: match[1]!.toUpperCase(), args: match[2]!.trim(), line: start });
    buffer = "";
  });
  return instructions;
}

function stages(instructions: Instruction[]): Stage[] {
  const result: Stage[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === "FROM") {
      const match = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(instruction.args);
      if (!match) throw new Error(`line ${instruction.line}: cannot parse FROM ${instruction.args}`);
      result.push({ image: match[1]!, name: match[2], instructions: [] });
    } else {
      if (result.length === 0) {
        if (instruction.keyword === "ARG") continue;
        throw new Error(`line ${instruction.line}: ${instruction.keyword} before FROM`);
      }
      result[result.length - 1]!.instructions.push(instruction);
    }
  }
  return result;
}

/** COPY/ADD: flags, sources, destination (shell or JSON form). */
function copyArgs(args: string): { flags: Record<string, string>; sources: string[]; destination: string } {
  const flags: Record<string, string> = {};
  let rest = args;
  for (let match = /^--([\w-]+)(?:=(\S+))?\s+/.exec(rest); match; match = /^--([\w-]+)(?:=(\S+))?\s+/.exec(rest)) {
    flags[match[1]!] = match[2] ?? "true";
    rest = rest.slice(match[0].length);
  }
  const parts = rest.startsWith("[") ? (JSON.parse(rest) as string[]) : rest.split(/\s+/);
  return { flags, sources: parts.slice(0, -1), destination: parts[parts.length - 1]! };
}

/** The allowlist of a `*` + `!path` .dockerignore. */
function dockerignoreAllows(text: string, path: string): boolean {
  const lines = text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  expect(lines[0]).toBe("*");
  return lines.slice(1).some((entry) => entry.startsWith("!") && (path === entry.slice(1) || path.startsWith(`${entry.slice(1)}/`)));
}

function json(args: string): unknown {
  return JSON.parse(args);
}

function envOf(stage: Stage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const instruction of stage.instructions.filter((i) => i.keyword === "ENV")) {
    for (const match of instruction.args.matchAll(/(\w+)=("[^"]*"|\S+)/g)) env[match[1]!] = match[2]!.replace(/^"|"$/g, "");
  }
  return env;
}

describe.each(["Dockerfile.server", "Dockerfile.sandbox"])("deploy/docker/%s", (file) => {
  const text = readFileSync(join(DEPLOY, "docker", file), "utf8");
  const parsed = stages(parseDockerfile(text));

  it("copies only paths that exist in the repository and are in its build context (the .dockerignore allowlist)", () => {
    const ignore = readFileSync(join(DEPLOY, "docker", `${file}.dockerignore`), "utf8");
    const names: string[] = [];
    let copies = 0;
    for (const stage of parsed) {
      for (const instruction of stage.instructions) {
        expect(instruction.keyword, `line ${instruction.line}: use COPY`).not.toBe("ADD");
        if (instruction.keyword !== "COPY") continue;
        const { flags, sources } = copyArgs(instruction.args);
        if (flags.from) {
          expect(names, `line ${instruction.line}: --from=${flags.from} names an earlier stage`).toContain(flags.from);
          continue;
        }
        for (const source of sources) {
          copies++;
          expect(source, `line ${instruction.line}`).not.toMatch(/[*?]|^\.\.?(\/|$)|^\//);
          expect(existsSync(join(ROOT, source)), `line ${instruction.line}: ${source} does not exist`).toBe(true);
          expect(dockerignoreAllows(ignore, source), `line ${instruction.line}: ${source} is excluded by ${file}.dockerignore`).toBe(true);
        }
      }
      if (stage.name) names.push(stage.name);
    }
    expect(copies).toBeGreaterThan(0);
  });

  it("writes CMD, ENTRYPOINT and HEALTHCHECK in valid JSON form (Docker silently falls back to a shell otherwise)", () => {
    for (const stage of parsed) {
      for (const instruction of stage.instructions) {
        const exec = instruction.keyword === "HEALTHCHECK" ? instruction.args.replace(/^(--[\w-]+=\S+\s+)*CMD\s+/, "") : instruction.args;
        if (!["CMD", "ENTRYPOINT", "HEALTHCHECK"].includes(instruction.keyword)) continue;
        expect(exec.startsWith("["), `line ${instruction.line}`).toBe(true);
        const value = json(exec);
        expect(Array.isArray(value) && value.every((part) => typeof part === "string"), `line ${instruction.line}`).toBe(true);
      }
    }
  });

  it("builds on pinned major versions of official Node.js images (no latest)", () => {
    const names = new Set<string>();
    for (const stage of parsed) {
      if (!names.has(stage.image)) {
        const [image, tag] = stage.image.split(":");
        expect(["node"]).toContain(image);
        expect(tag, stage.image).toMatch(/^\d+-bookworm(-slim)?$/);
      }
      if (stage.name) names.add(stage.name);
    }
  });

  it("ends in a stage that runs as a non-root user", () => {
    const last = parsed[parsed.length - 1]!;
    const users = last.instructions.filter((i) => i.keyword === "USER").map((i) => i.args);
    expect(users.length).toBeGreaterThan(0);
    const [user = "", group = ""] = users[users.length - 1]!.split(":");
    expect(["root", "0", ""]).not.toContain(user);
    expect(Number(user)).toBeGreaterThanOrEqual(1000);
    if (group) expect(Number(group)).toBeGreaterThanOrEqual(1000);
    // Every other stage that is a runnable target (it has a CMD or ENTRYPOINT) is either non-root or the documented server-local.
    for (const stage of parsed.slice(0, -1)) {
      if (!stage.instructions.some((i) => i.keyword === "CMD" || i.keyword === "ENTRYPOINT")) continue;
      expect(stage.name).toBe("server-local");
    }
  });
});

describe("deploy/docker images", () => {
  const server = stages(parseDockerfile(readFileSync(join(DEPLOY, "docker/Dockerfile.server"), "utf8")));
  const sandbox = stages(parseDockerfile(readFileSync(join(DEPLOY, "docker/Dockerfile.sandbox"), "utf8")));
  const get = (list: Stage[], name: string) => list.find((s) => s.name === name)!;
  const args = (stage: Stage, keyword: string) => stage.instructions.filter((i) => i.keyword === keyword).map((i) => i.args);

  it("server: the default target runs dist/server.mjs as uid 10001 on port 8000 with a /health check", () => {
    const stage = server[server.length - 1]!;
    expect(stage.name).toBe("server");
    expect(args(stage, "USER")).toEqual(["10001:10001"]);
    expect(args(stage, "EXPOSE")).toEqual([String(API_PORT)]);
    expect(json(args(stage, "CMD")[0]!)).toEqual(["node", "dist/server.mjs"]);
    expect(args(stage, "HEALTHCHECK")[0]).toContain("/health");
    // Only the build's dist/, the production node_modules and package.json.
    const copies = args(stage, "COPY").map(copyArgs);
    expect(copies.map((c) => `${c.flags.from ?? "context"}:${c.sources.join(",")}`).sort()).toEqual([
      "build:/src/dist",
      "context:package.json",
      "prod-deps:/src/node_modules",
    ]);
    expect(get(server, "prod-deps").instructions.some((i) => i.keyword === "RUN" && i.args.includes("npm ci --omit=dev"))).toBe(true);
  });

  it("server-local: documented root target with bubblewrap and the toolchains from scripts/setup.sh", () => {
    const stage = get(server, "server-local");
    expect(args(stage, "USER")).toEqual(["root"]);
    expect(args(stage, "RUN").join("\n")).toMatch(/install-toolchains\.sh --host-packages/);
    const text = readFileSync(join(DEPLOY, "docker/Dockerfile.server"), "utf8");
    for (const needed of ["RUNS AS ROOT", "SYS_ADMIN", "seccomp=unconfined", "apparmor=unconfined", "SANDBOX_UID"]) expect(text).toContain(needed);
  });

  it("sandbox: the agent bundle in /opt/agent, run as 1001 on TCP 9090 with its token from a file", () => {
    const stage = sandbox[sandbox.length - 1]!;
    expect(args(stage, "USER")).toEqual(["1001:1001"]);
    expect(args(stage, "WORKDIR")).toEqual(["/mnt/data"]);
    expect(args(stage, "EXPOSE")).toEqual([String(AGENT_PORT)]);
    expect(json(args(stage, "ENTRYPOINT")[0]!)).toEqual(["node", "/opt/agent/agent.mjs"]);
    expect(envOf(stage)).toMatchObject({
      AGENT_LISTEN: `tcp:0.0.0.0:${AGENT_PORT}`,
      AGENT_TOKEN_FILE: "/var/run/agent/token",
      AGENT_DATA_DIR: "/mnt/data",
      AGENT_WORK_DIR: "/tmp/.agent",
      HOME: "/tmp",
    });
    const agent = args(stage, "COPY")
      .map(copyArgs)
      .find((c) => c.destination === "/opt/agent/");
    expect(agent?.flags.from).toBe("build");
    expect(agent?.sources.map((s) => s.replace("/src/dist/agent/", "")).sort()).toEqual(["agent.mjs", "launcher", "python-repl-driver.py"]);
    expect(args(stage, "RUN").join("\n")).toMatch(/install-toolchains\.sh \/opt/);
  });

  it("install-toolchains.sh installs exactly scripts/setup.sh's packages (every language; --host-packages adds setup.sh's own)", () => {
    const script = join(DEPLOY, "docker/install-toolchains.sh");
    const setup = join(ROOT, "scripts/setup.sh");
    const run = (...extra: string[]) =>
      execFileSync("bash", [script, "--print", ...extra, setup], { encoding: "utf8", env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } })
        .trim()
        .split("\n");
    const languages = execFileSync("bash", [setup, "--language-packages"], { encoding: "utf8" })
      .trim()
      .split("\n")
      .flatMap((line) => line.slice(line.indexOf(":") + 1).split(/\s+/))
      .filter(Boolean);
    expect(languages).toContain("python3-cloudpickle");
    expect(new Set(run())).toEqual(new Set([...languages, "ca-certificates"]));
    const host = new Set(run("--host-packages"));
    for (const name of [...languages, "bubblewrap", "util-linux"]) expect(host.has(name), name).toBe(true);
    // The single-line assignments it reads from setup.sh.
    const text = readFileSync(setup, "utf8");
    expect(text).toMatch(/^PACKAGES=\(.*\)$/m);
    expect(text).toMatch(/^TS_NODE_TYPES=\S+$/m);
    expect(text).toMatch(/^TS_NODE_TYPES_DIR=\S+$/m);
  });
});
