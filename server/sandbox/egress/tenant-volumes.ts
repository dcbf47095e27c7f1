/**
 * Size-limited package caches (SKILL_DEPS_MAX_MB): each tenant's cache is an
 * ext4 file system in a sparse image file, `<root>/.images/<tenant>.ext4`,
 * loop-mounted at `<root>/<tenant>` while sandboxes of that tenant run. The
 * kernel enforces the size inside the sandbox (ENOSPC, for bytes and inodes),
 * which no check after the fact could: one `pip install` writes gigabytes in
 * seconds. The image takes host disk only for what is written, and `discard`
 * gives deleted files' blocks back. A cache is disposable: an image that no
 * longer mounts is made anew.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, chown, mkdir, open, readFile, rm, rmdir } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const MOUNT_OPTIONS = "loop,nosuid,nodev,noatime,discard";
const IMAGES = ".images";

export interface TenantVolumesOptions {
  root: string;
  uid: number;
  gid: number;
  maxBytes: number;
  log: (message: string, fields: Record<string, unknown>) => void;
}

/** What the host lacks for size-limited caches, or null. */
export function volumeSupportMissing(): string | null {
  if (process.getuid?.() !== 0) return "root (to mount the caches' images)";
  if (!existsSync("/dev/loop-control")) return "loop devices (/dev/loop-control)";
  for (const tool of ["/usr/sbin/mkfs.ext4", "/usr/bin/mount", "/usr/bin/umount"]) {
    if (!existsSync(tool) && !existsSync(tool.replace("/usr", ""))) return `${tool.split("/").pop()} (Debian: e2fsprogs, mount)`;
  }
  return null;
}

/** The mount points under `root` (from /proc/self/mountinfo, octal escapes decoded). */
async function mountsUnder(root: string): Promise<string[]> {
  const info = await readFile("/proc/self/mountinfo", "utf8");
  const decode = (path: string) => path.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
  return info
    .split("\n")
    .map((line) => decode(line.split(" ")[4] ?? ""))
    .filter((point) => point.startsWith(`${root}/`));
}

export class TenantVolumes {
  readonly #options: TenantVolumesOptions;
  /** Sandboxes using each mounted tenant volume. */
  readonly #users = new Map<string, number>();
  /** One mount or unmount at a time per tenant. */
  readonly #queues = new Map<string, Promise<unknown>>();

  constructor(options: TenantVolumesOptions) {
    this.#options = options;
  }

  get mounted(): number {
    return this.#users.size;
  }

  /** Unmount what a server killed earlier left mounted under the root (no sandbox of it runs any more). */
  async removeStale(): Promise<number> {
    const stale = await mountsUnder(this.#options.root);
    for (const point of stale.reverse()) await run("umount", ["--lazy", point]).catch(() => {});
    return stale.length;
  }

  /** Mount the tenant's volume (made on first use) for one more sandbox; its folder inside. */
  acquire(tenant: string, folder: string): Promise<string> {
    return this.#serial(tenant, async () => {
      const count = this.#users.get(tenant) ?? 0;
      if (count === 0) await this.#mount(tenant, folder);
      this.#users.set(tenant, count + 1);
      return folder;
    });
  }

  /** One sandbox less; the volume is unmounted when none is left. */
  release(tenant: string, folder: string): Promise<void> {
    return this.#serial(tenant, async () => {
      const count = (this.#users.get(tenant) ?? 0) - 1;
      if (count > 0) {
        this.#users.set(tenant, count);
        return;
      }
      this.#users.delete(tenant);
      await this.#unmount(folder);
    });
  }

  async #mount(tenant: string, folder: string): Promise<void> {
    const images = join(this.#options.root, IMAGES);
    await mkdir(images, { recursive: true, mode: 0o700 });
    await chmod(images, 0o700);
    const image = join(images, `${tenant}.ext4`);
    if (!existsSync(image)) await this.#makeImage(image);
    // The mount point itself is root's: should the volume ever be gone under a sandbox, it cannot write to the host disk.
    await chown(folder, 0, 0);
    await chmod(folder, 0o700);
    try {
      await run("mount", ["-o", MOUNT_OPTIONS, image, folder]);
    } catch (error) {
      this.#options.log("package cache image did not mount: made anew", { tenant, error: stderrOf(error) });
      await this.#makeImage(image);
      await run("mount", ["-o", MOUNT_OPTIONS, image, folder]);
    }
    // The volume's root: the sandbox uid's alone; lost+found (root's) would only be noise in the sandbox.
    await chown(folder, this.#options.uid, this.#options.gid);
    await chmod(folder, 0o700);
    await rmdir(join(folder, "lost+found")).catch(() => {});
  }

  async #makeImage(image: string): Promise<void> {
    await rm(image, { force: true });
    const file = await open(image, "wx", 0o600);
    try {
      await file.truncate(this.#options.maxBytes); // sparse: the host disk holds only what is written
    } finally {
      await file.close();
    }
    // No reserved blocks, a 4 MiB journal (the default would take 64 MiB of a 2 GiB cache).
    await run("mkfs.ext4", ["-q", "-F", "-m", "0", "-J", "size=4", "-E", `root_owner=${this.#options.uid}:${this.#options.gid}`, image]);
  }

  async #unmount(folder: string): Promise<void> {
    // Lazy: a sandbox still being torn down keeps its own view; the loop device goes with the last user.
    await run("umount", ["--lazy", folder]).catch((error) => this.#options.log("package cache did not unmount", { folder, error: stderrOf(error) }));
  }

  /** Unmount every volume (the server stops; its sandboxes are gone). */
  async close(): Promise<void> {
    await Promise.all([...this.#queues.values()].map((queued) => queued.catch(() => {})));
    this.#users.clear();
    await this.removeStale();
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

function stderrOf(error: unknown): string {
  const { stderr, message } = error as { stderr?: string; message?: string };
  return (stderr || message || String(error)).trim();
}
