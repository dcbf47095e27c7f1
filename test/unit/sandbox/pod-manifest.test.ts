import { Pod } from "kubernetes-models/v1/Pod";
import { Secret } from "kubernetes-models/v1/Secret";
import { describe, expect, it } from "vitest";
import {
  labelValue,
  type PodTemplateSettings,
  parseQuantity,
  sandboxPodManifest,
  tokenSecretManifest,
} from "../../../server/sandbox/kubernetes/pod-manifest.ts";

const settings: PodTemplateSettings = {
  namespace: "sandboxes",
  image: "registry.example/code-interpreter/sandbox:1.2.3",
  imagePullPolicy: "IfNotPresent",
  imagePullSecrets: ["regcred", "other"],
  agentPort: 9090,
  uid: 1001,
  gid: 1001,
  resources: { cpuRequest: "100m", cpuLimit: "1", memoryRequest: "128Mi", memoryLimit: "512Mi", dataBytes: 100 * 2 ** 20, tmpBytes: 64 * 2 ** 20 },
  runtimeClassName: "gvisor",
  nodeSelector: { pool: "sandbox" },
  tolerations: [{ key: "pool", operator: "Equal", value: "sandbox", effect: "NoSchedule" }],
  owner: { name: "api-7d9f-abcde", uid: "0b1c2d3e-0000-4000-8000-000000000001" },
  replicaId: "api-7d9f-abcde",
  instanceId: "a1b2c3",
};
const input = { name: "ci-sbx-000000000001", pool: "warm", programEnv: '{"PATH":"/usr/bin"}', agentEnv: { AGENT_PYTHON_PRELOAD: "1" } };

describe("sandbox pod manifest", () => {
  it("is a valid v1 Pod and a valid v1 Secret by the Kubernetes API types", () => {
    expect(() => new Pod(sandboxPodManifest(settings, input) as never).validate()).not.toThrow();
    expect(() => new Secret(tokenSecretManifest(settings, { name: input.name, pool: "warm", token: "t0ken" }) as never).validate()).not.toThrow();
  });

  it("hardens the pod: non-root, no escalation, no capabilities, RuntimeDefault seccomp, read-only root, no token, no host namespaces", () => {
    const pod = sandboxPodManifest(settings, input);
    const spec = pod.spec!;
    const container = spec.containers[0]!;
    expect(spec).toMatchObject({
      restartPolicy: "Never",
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      hostNetwork: false,
      hostPID: false,
      hostIPC: false,
    });
    expect(spec.securityContext).toEqual({ runAsNonRoot: true, runAsUser: 1001, runAsGroup: 1001, fsGroup: 1001, seccompProfile: { type: "RuntimeDefault" } });
    expect(container.securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 1001,
      runAsGroup: 1001,
      allowPrivilegeEscalation: false,
      privileged: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    });
    expect(container.volumeMounts).toEqual([
      { name: "data", mountPath: "/mnt/data" },
      { name: "tmp", mountPath: "/tmp" },
      { name: "agent-token", mountPath: "/var/run/agent", readOnly: true },
    ]);
    expect(spec.volumes).toEqual([
      { name: "data", emptyDir: { sizeLimit: String(100 * 2 ** 20) } },
      { name: "tmp", emptyDir: { sizeLimit: String(64 * 2 ** 20) } },
      { name: "agent-token", secret: { secretName: input.name, defaultMode: 0o440, items: [{ key: "token", path: "token" }] } },
    ]);
    expect(container.resources).toEqual({
      requests: { cpu: "100m", memory: "128Mi", "ephemeral-storage": String(164 * 2 ** 20) },
      limits: { cpu: "1", memory: "512Mi", "ephemeral-storage": String(164 * 2 ** 20) },
    });
  });

  it("passes the agent its listen address, token file and environment, never the token itself", () => {
    const env = Object.fromEntries(sandboxPodManifest(settings, input).spec!.containers[0]!.env!.map((e) => [e.name, e.value]));
    expect(env).toMatchObject({
      AGENT_LISTEN: "tcp:0.0.0.0:9090",
      AGENT_TOKEN_FILE: "/var/run/agent/token",
      AGENT_DATA_DIR: "/mnt/data",
      AGENT_PROGRAM_ENV: '{"PATH":"/usr/bin"}',
      AGENT_PROGRAM_JAIL: "1",
      AGENT_PYTHON_PRELOAD: "1",
    });
    expect(JSON.stringify(sandboxPodManifest(settings, input))).not.toContain("t0ken");
    const secret = tokenSecretManifest(settings, { name: input.name, pool: "warm", token: "t0ken" });
    expect(Buffer.from(secret.data!.token!, "base64").toString()).toBe("t0ken");
    expect(secret).toMatchObject({ immutable: true, type: "Opaque" });
  });

  it("places the pod as configured: GKE Sandbox runtime class, node selector, tolerations, pull secrets, image", () => {
    const pod = sandboxPodManifest(settings, input);
    expect(pod.spec).toMatchObject({
      runtimeClassName: "gvisor",
      nodeSelector: { pool: "sandbox" },
      tolerations: settings.tolerations,
      imagePullSecrets: [{ name: "regcred" }, { name: "other" }],
    });
    expect(pod.spec!.containers[0]).toMatchObject({ image: settings.image, imagePullPolicy: "IfNotPresent" });
    const plain = sandboxPodManifest({ ...settings, runtimeClassName: undefined, nodeSelector: {}, tolerations: [], imagePullSecrets: [] }, input).spec!;
    for (const key of ["runtimeClassName", "nodeSelector", "tolerations", "imagePullSecrets"]) expect(plain).not.toHaveProperty(key);
  });

  it("labels and owns the pod so that orphans can be found", () => {
    const pod = sandboxPodManifest(settings, input);
    expect(pod.metadata!.labels).toEqual({
      "app.kubernetes.io/name": "code-interpreter",
      "app.kubernetes.io/component": "sandbox",
      "code-interpreter.dev/replica": "api-7d9f-abcde",
      "code-interpreter.dev/instance": "a1b2c3",
      "code-interpreter.dev/pool": "warm",
    });
    expect(pod.metadata!.ownerReferences).toEqual([
      { apiVersion: "v1", kind: "Pod", name: settings.owner!.name, uid: settings.owner!.uid, blockOwnerDeletion: false },
    ]);
    const { owner: _owner, ...outside } = settings;
    expect(sandboxPodManifest(outside, input).metadata).not.toHaveProperty("ownerReferences");
  });

  it("makes valid label values of any replica name", () => {
    expect(labelValue("api-1")).toBe("api-1");
    expect(labelValue("my host.example.com")).toBe("my-host.example.com");
    expect(labelValue(`-${"x".repeat(80)}`)).toBe("x".repeat(62));
    expect(labelValue("---")).toBe("unknown");
  });

  it("reads Kubernetes quantities", () => {
    expect(parseQuantity("512Mi")).toBe(512 * 2 ** 20);
    expect(parseQuantity("1Gi")).toBe(2 ** 30);
    expect(parseQuantity("500m")).toBe(0.5);
    expect(parseQuantity("2")).toBe(2);
    expect(parseQuantity("1.5G")).toBe(1.5e9);
    expect(() => parseQuantity("lots")).toThrow(/not a Kubernetes quantity/);
  });
});
