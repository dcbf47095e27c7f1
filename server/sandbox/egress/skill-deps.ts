/**
 * Package caches that carry over between a tenant's sandboxes (SKILL_DEPS_PATH,
 * with ENABLE_SANDBOX_NETWORK): one folder per tenant, that is per API key and
 * end user (`user_id`), bound read-write at /opt/skill-deps into that tenant's
 * sandboxes only. No sandbox of another tenant has it in its mount namespace,
 * so one tenant can neither read nor poison another's packages. With
 * SKILL_DEPS_MAX_MB, each cache is a volume of that size (tenant-volumes.ts).
 */
import { createHash } from "node:crypto";
import { chmod, chown, lstat, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { TenantVolumes, type TenantVolumesOptions } from "./tenant-volumes.ts";

/** Where the tenant's folder appears inside a sandbox. */
export const SKILL_DEPS_MOUNT = "/opt/skill-deps";

/** A tenant's folder name: not reversible to the key hash or the user id, and the same on every replica. */
export function tenantId(ownerKeyHash: string, userId: string | undefined): string {
  return createHash("sha256")
    .update(JSON.stringify(["skill-deps", ownerKeyHash, userId ?? null]))
    .digest("hex")
    .slice(0, 32);
}

/** Programs' environment pointing the package managers' caches and user installs into the mount. */
export function skillDepsEnv(): Record<string, string> {
  const at = (path: string) => `${SKILL_DEPS_MOUNT}/${path}`;
  return {
    PIP_CACHE_DIR: at("cache/pip"),
    PYTHONUSERBASE: at("python"),
    // Installs go to PYTHONUSERBASE; the system's Python stays read-only (Debian marks it externally managed).
    PIP_USER: "1",
    PIP_BREAK_SYSTEM_PACKAGES: "1",
    npm_config_cache: at("cache/npm"),
    npm_config_prefix: at("node"),
    NODE_PATH: at("node/lib/node_modules"),
    CARGO_HOME: at("cargo"),
    R_LIBS_USER: at("R"),
    GEM_HOME: at("gems"),
    COMPOSER_HOME: at("composer"),
  };
}

/** PATH with the mount's bin folders first, so installed commands run. */
export function skillDepsPath(basePath: string): string {
  return [`${SKILL_DEPS_MOUNT}/python/bin`, `${SKILL_DEPS_MOUNT}/node/bin`, `${SKILL_DEPS_MOUNT}/cargo/bin`, basePath].join(":");
}

/** A tenant's cache for one sandbox: the host folder to bind, and its release when the sandbox is gone. */
export interface TenantCache {
  dir: string;
  release(): Promise<void>;
}

export class SkillDeps {
  readonly root: string;
  /** SKILL_DEPS_MAX_MB in bytes; 0: plain folders, no size limit. */
  readonly maxBytes: number;
  readonly #uid: number;
  readonly #gid: number;
  readonly #volumes: TenantVolumes | undefined;

  constructor(options: { root: string; uid: number; gid: number; maxBytes: number; log: TenantVolumesOptions["log"] }) {
    this.root = options.root;
    this.maxBytes = options.maxBytes;
    this.#uid = options.uid;
    this.#gid = options.gid;
    if (options.maxBytes > 0) this.#volumes = new TenantVolumes(options);
  }

  /** Volumes mounted now (one per tenant with a running sandbox); 0 without a size limit. */
  get mounted(): number {
    return this.#volumes?.mounted ?? 0;
  }

  /** Unmount what a killed server left mounted (call once, before the first sandbox). */
  async removeStale(): Promise<number> {
    return (await this.#volumes?.removeStale()) ?? 0;
  }

  /** The cache of `tenant` for one sandbox: its folder made on first use, its volume mounted while sandboxes use it. */
  async acquire(tenant: string): Promise<TenantCache> {
    const dir = await this.#tenantDir(tenant);
    const volumes = this.#volumes;
    if (!volumes) {
      await chown(dir, this.#uid, this.#gid);
      await chmod(dir, 0o700);
      return { dir, release: async () => {} };
    }
    await volumes.acquire(tenant, dir);
    let released = false;
    return {
      dir,
      release: async () => {
        if (released) return;
        released = true;
        await volumes.release(tenant, dir);
      },
    };
  }

  /** Unmount every volume (the server stops, its sandboxes are gone). */
  async close(): Promise<void> {
    await this.#volumes?.close();
  }

  /** The host folder of `tenant` (a volume's mount point with a size limit), under a root-owned 0711 root. */
  async #tenantDir(tenant: string): Promise<string> {
    if (!/^[0-9a-f]{32}$/.test(tenant)) throw new Error("bad tenant id");
    await mkdir(this.root, { recursive: true, mode: 0o711 });
    await chown(this.root, 0, 0);
    await chmod(this.root, 0o711);
    const dir = join(this.root, tenant);
    await mkdir(dir, { mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== "EEXIST") throw error;
    });
    // A sandbox owns its folder's contents, never what the folder is: a symlink here would be bound wherever it points.
    const stat = await lstat(dir);
    if (!stat.isDirectory()) throw new Error(`${dir} is not a folder`);
    return dir;
  }
}
