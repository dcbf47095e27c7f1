/**
 * Package caches that carry over between a tenant's sandboxes (SKILL_DEPS_PATH,
 * with ENABLE_SANDBOX_NETWORK): one folder per tenant, that is per API key and
 * end user (`user_id`), bound read-write at /opt/skill-deps into that tenant's
 * sandboxes only. No sandbox of another tenant has it in its mount namespace,
 * so one tenant can neither read nor poison another's packages. With
 * SKILL_DEPS_MAX_MB, each cache is a volume of that size (tenant-volumes.ts).
 */
import { createHash } from "node:crypto";
import { chmod, chown, lstat, mkdir, readdir, rm, utimes } from "node:fs/promises";
import { join } from "node:path";
import { type FolderLock, lockFolder } from "../../folder-lock.ts";
import { makeDir } from "../../private-dir.ts";
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

export interface SkillDepsOptions {
  root: string;
  uid: number;
  gid: number;
  /** SKILL_DEPS_MAX_MB in bytes; 0: plain folders, no size limit. */
  maxBytes: number;
  /** SKILL_DEPS_TTL_DAYS in ms: a cache unused that long is removed; 0: kept for ever. */
  maxAgeMs: number;
  log: TenantVolumesOptions["log"];
}

const TENANT = /^[0-9a-f]{32}$/;

export class SkillDeps {
  readonly root: string;
  readonly maxBytes: number;
  readonly maxAgeMs: number;
  readonly #options: SkillDepsOptions;
  readonly #volumes: TenantVolumes | undefined;
  /** Sandboxes using each tenant's cache now. */
  readonly #users = new Map<string, number>();
  /** One acquire, release or removal at a time per tenant. */
  readonly #queues = new Map<string, Promise<unknown>>();
  #sweeper: NodeJS.Timeout | undefined;
  /** The root (and the images' folder), made and locked down once. */
  #rootReady: Promise<void> | undefined;
  /** This server's hold on the root, from claim() to close(). */
  #lock: FolderLock | undefined;

  constructor(options: SkillDepsOptions) {
    this.#options = options;
    this.root = options.root;
    this.maxBytes = options.maxBytes;
    this.maxAgeMs = options.maxAgeMs;
    if (options.maxBytes > 0) this.#volumes = new TenantVolumes(options);
  }

  /** Tenants whose cache a sandbox uses now (with a size limit: the volumes mounted). */
  get inUse(): number {
    return this.#users.size;
  }

  /**
   * Make the root and take it for this server (.owner, folder-lock.ts), before start(): a second
   * server on it would unmount and sweep this one's caches. Throws FolderInUseError; close() releases it.
   */
  async claim(): Promise<void> {
    await this.#prepareRoot();
    this.#lock ??= await lockFolder(this.root, "SKILL_DEPS_PATH");
  }

  /** Unmount what a killed server left mounted, and remove unused caches every `everyMs` (call once, before the first sandbox). */
  async start(everyMs: number): Promise<number> {
    const stale = (await this.#volumes?.removeStale()) ?? 0;
    if (this.maxAgeMs > 0 && !this.#sweeper) {
      this.#sweeper = setInterval(() => {
        this.sweep().catch((error: Error) => this.#options.log("package cache sweep failed", { error: error.message }));
      }, everyMs);
      this.#sweeper.unref();
    }
    return stale;
  }

  /** The cache of `tenant` for one sandbox: its folder made on first use, its volume mounted while sandboxes use it. */
  acquire(tenant: string): Promise<TenantCache> {
    if (!TENANT.test(tenant)) return Promise.reject(new Error("bad tenant id"));
    return this.#serial(tenant, async () => {
      const dir = await this.#tenantDir(tenant);
      const count = this.#users.get(tenant) ?? 0;
      if (count === 0 && this.#volumes) await this.#volumes.mount(tenant, dir);
      else if (!this.#volumes) {
        await chown(dir, this.#options.uid, this.#options.gid);
        await chmod(dir, 0o700);
      }
      this.#users.set(tenant, count + 1);
      let released = false;
      const release = async () => {
        if (released) return;
        released = true;
        await this.#release(tenant, dir);
      };
      return { dir, release };
    });
  }

  #release(tenant: string, dir: string): Promise<void> {
    return this.#serial(tenant, async () => {
      const count = (this.#users.get(tenant) ?? 0) - 1;
      if (count > 0) {
        this.#users.set(tenant, count);
        return;
      }
      this.#users.delete(tenant);
      await this.#volumes?.unmount(dir);
      // The last use, for the sweep: the image's mtime (the folder is only a mount point), or the folder's.
      const now = new Date();
      await utimes(this.#volumes?.image(tenant) ?? dir, now, now).catch(() => {});
    });
  }

  /** Remove the caches no sandbox used for maxAgeMs (none with maxAgeMs 0); how many. */
  async sweep(now = Date.now()): Promise<number> {
    if (this.maxAgeMs <= 0) return 0;
    const tenants = (await readdir(this.root).catch(() => [] as string[])).filter((name) => TENANT.test(name));
    let removed = 0;
    for (const tenant of tenants) {
      const gone = await this.#serial(tenant, async () => {
        if (this.#users.has(tenant)) return false;
        const lastUse = this.#volumes?.image(tenant) ?? join(this.root, tenant);
        const used = await lstat(lastUse).then(
          (stat) => stat.mtimeMs,
          () => 0,
        );
        if (now - used < this.maxAgeMs) return false;
        if (this.#volumes) await rm(this.#volumes.image(tenant), { force: true });
        // Never mounted now (no user): the folder alone, or everything the tenant installed.
        await rm(join(this.root, tenant), { recursive: true, force: true });
        return true;
      });
      if (gone) removed++;
    }
    if (removed > 0) this.#options.log("removed package caches unused for SKILL_DEPS_TTL_DAYS", { removed });
    return removed;
  }

  /** Stop sweeping and unmount every volume (the server stops, its sandboxes are gone). */
  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    await Promise.all([...this.#queues.values()].map((queued) => queued.catch(() => {})));
    this.#users.clear();
    await this.#volumes?.removeStale();
    await this.#lock?.release();
    this.#lock = undefined;
  }

  /** The root (root-owned, 0711) and the images' folder, made and locked down once. */
  async #prepareRoot(): Promise<void> {
    this.#rootReady ??= (async () => {
      await makeDir(this.root, 0o711); // missing parents 0755
      await chown(this.root, 0, 0);
      await chmod(this.root, 0o711);
      await this.#volumes?.prepare();
    })();
    await this.#rootReady.catch((error: Error) => {
      this.#rootReady = undefined; // tried again by the next sandbox
      throw error;
    });
  }

  /** The host folder of `tenant` (a volume's mount point with a size limit), under a root-owned 0711 root. */
  async #tenantDir(tenant: string): Promise<string> {
    await this.#prepareRoot();
    const dir = join(this.root, tenant);
    await mkdir(dir, { mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== "EEXIST") throw error;
    });
    // A sandbox owns its folder's contents, never what the folder is: a symlink here would be bound wherever it points.
    const stat = await lstat(dir);
    if (!stat.isDirectory()) throw new Error(`${dir} is not a folder`);
    return dir;
  }

  #serial<T>(tenant: string, work: () => Promise<T>): Promise<T> {
    const next = (this.#queues.get(tenant) ?? Promise.resolve()).catch(() => {}).then(work);
    this.#queues.set(tenant, next);
    void next
      .catch(() => {})
      .finally(() => {
        if (this.#queues.get(tenant) === next) this.#queues.delete(tenant);
      });
    return next;
  }
}
