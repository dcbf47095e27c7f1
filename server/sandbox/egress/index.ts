/** The egress parts a configuration asks for: the proxy and, with SKILL_DEPS_PATH, the per-tenant caches. */
import type { AppConfig } from "../../config/types.ts";
import { parsePinnedAddresses } from "./address-policy.ts";
import { EgressAllowlist, normalizeHostName } from "./allowlist.ts";
import { EgressProxy } from "./egress-proxy.ts";
import { SkillDeps } from "./skill-deps.ts";

export interface Egress {
  proxy: EgressProxy;
  port: number;
  skillDeps?: SkillDeps;
}

type SecurityLog = (event: string, fields: Record<string, unknown>, level?: "info" | "warn") => void;

/** Undefined when sandboxes get no egress: ENABLE_SANDBOX_NETWORK off, or pods (not built for them yet). */
export function createEgress(config: AppConfig, securityLog: SecurityLog): Egress | undefined {
  const { egress, sandbox } = config;
  if (!egress.enabled || sandbox.backend !== "local") return undefined;
  const proxy = new EgressProxy({
    allowlist: new EgressAllowlist(egress.allowlist),
    pinned: parsePinnedAddresses(egress.resolve, normalizeHostName),
    onEvent: (event, fields) => securityLog(event, { ...fields }, event === "egress_refused" ? "warn" : "info"),
  });
  return {
    proxy,
    port: egress.port,
    ...(egress.skillDepsPath ? { skillDeps: new SkillDeps(egress.skillDepsPath, sandbox.uid, sandbox.gid) } : {}),
  };
}
