/** The egress parts a configuration asks for: the proxy and, with SKILL_DEPS_PATH, the per-tenant caches. */
import type { AppConfig } from "../../config/types.ts";
import { parsePinnedAddresses } from "./address-policy.ts";
import { EgressAllowlist, normalizeHostName } from "./allowlist.ts";
import { EgressProxy } from "./egress-proxy.ts";
import { SkillDeps } from "./skill-deps.ts";
import { volumeSupportMissing } from "./tenant-volumes.ts";

export interface Egress {
  proxy: EgressProxy;
  port: number;
  skillDeps?: SkillDeps;
}

type SecurityLog = (event: string, fields: Record<string, unknown>, level?: "info" | "warn") => void;
type Warn = (message: string, fields: Record<string, unknown>) => void;

/**
 * Undefined when sandboxes get no egress (ENABLE_SANDBOX_NETWORK off). Package caches are for local sandboxes only;
 * with a size limit they need what volumeSupportMissing checks, and the server does not start without it.
 */
export function createEgress(config: AppConfig, securityLog: SecurityLog, warn: Warn): Egress | undefined {
  const { egress, sandbox } = config;
  if (!egress.enabled) return undefined;
  const caches = egress.skillDepsPath && sandbox.backend === "local";
  const missing = caches && egress.skillDepsMaxBytes > 0 ? volumeSupportMissing() : null;
  if (missing)
    throw new Error(
      `SKILL_DEPS_MAX_MB (size-limited package caches) needs ${missing}; set SKILL_DEPS_MAX_MB=0 for caches without a size limit, or SKILL_DEPS_PATH=off`,
    );
  const proxy = new EgressProxy({
    allowlist: new EgressAllowlist(egress.allowlist),
    pinned: parsePinnedAddresses(egress.resolve, normalizeHostName),
    onEvent: (event, fields) => securityLog(event, { ...fields }, event === "egress_refused" ? "warn" : "info"),
  });
  return {
    proxy,
    port: egress.port,
    ...(caches
      ? {
          skillDeps: new SkillDeps({
            root: egress.skillDepsPath!,
            uid: sandbox.uid,
            gid: sandbox.gid,
            maxBytes: egress.skillDepsMaxBytes,
            maxAgeMs: egress.skillDepsMaxAgeMs,
            log: warn,
          }),
        }
      : {}),
  };
}

/**
 * Pods reach their replica's proxy over the cluster network: one TCP listener on
 * the replica's pod address (POD_IP, from the downward API) and SANDBOX_EGRESS_PORT,
 * each pod with its own credential in its proxy URL.
 */
export async function listenForPods(egress: Egress, podIp: string): Promise<{ url: (credential: string) => string; close: () => Promise<void> }> {
  const listener = await egress.proxy.listenTcp(podIp, egress.port);
  const host = podIp.includes(":") ? `[${podIp}]` : podIp;
  return { url: (credential) => `http://sandbox:${credential}@${host}:${listener.port}`, close: listener.close };
}
