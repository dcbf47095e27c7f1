/**
 * EXECUTION_BACKEND=kubernetes: build the provider from the configuration and
 * the replica's own identity (downward API: POD_NAME, POD_UID, POD_NAMESPACE).
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { V1Toleration } from "@kubernetes/client-node";
import type { AppConfig } from "../../config/types.ts";
import { PROGRAM_ENV } from "../program-env.ts";
import { ClientNodeKubeApi, defaultNamespace, loadKubeConfig } from "./kube-api.ts";
import { type KubernetesLogger, type KubernetesProviderOptions, KubernetesSandboxProvider } from "./kubernetes-provider.ts";
import { labelValue } from "./pod-manifest.ts";

export { KubernetesSandboxProvider } from "./kubernetes-provider.ts";

export function createKubernetesProvider(
  config: AppConfig,
  options: { logger: KubernetesLogger; agentEnv?: Record<string, string>; env?: NodeJS.ProcessEnv; egress?: KubernetesProviderOptions["egress"] },
): KubernetesSandboxProvider {
  const env = options.env ?? process.env;
  const k8s = config.kubernetes;
  const kubeConfig = loadKubeConfig();
  const namespace = k8s.namespace ?? defaultNamespace(kubeConfig, env);
  const ownerNamespace = env.POD_NAMESPACE || namespace;
  // Owner references cannot cross namespaces: outside the replica's namespace, the sweep alone finds orphans.
  const owner = env.POD_NAME && env.POD_UID && ownerNamespace === namespace ? { name: env.POD_NAME, uid: env.POD_UID } : undefined;
  const replicaId = labelValue(env.POD_NAME || hostname());
  return new KubernetesSandboxProvider({
    api: new ClientNodeKubeApi(kubeConfig, namespace),
    template: {
      namespace,
      image: k8s.image,
      imagePullPolicy: k8s.imagePullPolicy,
      imagePullSecrets: k8s.imagePullSecrets,
      agentPort: k8s.agentPort,
      uid: config.sandbox.uid,
      gid: config.sandbox.gid,
      resources: {
        cpuRequest: k8s.cpuRequest,
        cpuLimit: k8s.cpuLimit,
        memoryRequest: k8s.memoryRequest,
        memoryLimit: k8s.memoryLimit,
        dataBytes: config.sandbox.dataBytes,
        tmpBytes: config.sandbox.tmpBytes,
      },
      ...(k8s.runtimeClassName ? { runtimeClassName: k8s.runtimeClassName } : {}),
      nodeSelector: k8s.nodeSelector,
      tolerations: k8s.tolerations as V1Toleration[],
      ...(owner ? { owner } : {}),
      replicaId,
      instanceId: randomBytes(6).toString("hex"),
    },
    ...(env.POD_NAME && env.POD_UID ? { replicaPod: { name: env.POD_NAME, uid: env.POD_UID, namespace: ownerNamespace } } : {}),
    languages: k8s.languages,
    programEnv: PROGRAM_ENV,
    ...(options.agentEnv ? { agentEnv: options.agentEnv } : {}),
    ...(options.egress ? { egress: options.egress } : {}),
    startTimeoutMs: k8s.podStartTimeoutMs,
    sweepIntervalMs: k8s.orphanSweepMs,
    logger: options.logger,
  });
}
