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
import { chmod, chown, open, readFile, rm, rmdir } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { makePrivateDir } from "../../private-dir.ts";

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

/**
 * Mounting and unmounting tenants' volumes; SkillDeps counts the sandboxes
 * using each and calls these one at a time per tenant.
 */
export class TenantVolumes {
  readonly #options: TenantVolumesOptions;

  constructor(options: TenantVolumesOptions) {
    this.#options = options;
  }

  /** The image file of `tenant`: its mtime is the cache's last use. */
  image(tenant: string): string {
    return join(this.#options.root, IMAGES, `${tenant}.ext4`);
  }

  /** Unmount what a server killed earlier left mounted under the root (no sandbox of it runs any more). */
  async removeStale(): Promise<number> {
    const stale = await mountsUnder(this.#options.root);
    for (const point of stale.reverse()) await run("umount", ["--lazy", point]).catch(() => {});
    return stale.length;
  }

  /** Make the images' folder, root's alone (once, before the first mount). */
  async prepare(): Promise<void> {
    const images = join(this.#options.root, IMAGES);
    await makePrivateDir(images);
  }

  /** Mount the tenant's volume (its image made on first use) on `folder`; prepare() ran before. */
  async mount(tenant: string, folder: string): Promise<void> {
    const image = this.image(tenant);
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

  /** Unmount the volume on `folder`; lazily: a sandbox still being torn down keeps its own view, the loop device goes with the last user. */
  async unmount(folder: string): Promise<void> {
    await run("umount", ["--lazy", folder]).catch((error) => this.#options.log("package cache did not unmount", { folder, error: stderrOf(error) }));
  }
}

function stderrOf(error: unknown): string {
  const { stderr, message } = error as { stderr?: string; message?: string };
  return (stderr || message || String(error)).trim();
}
