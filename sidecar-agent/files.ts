import { randomBytes } from "node:crypto";
import { constants, type Stats } from "node:fs";
import { lstat, mkdir, open, readdir, realpath, rename, unlink } from "node:fs/promises";
import { isAbsolute, join, relative, sep } from "node:path";
import type { AgentFileChange, AgentFileInfo } from "../protocol/index.ts";

/** Bounds of a walk of the data folder. */
export const WALK_MAX_ENTRIES = 10_000;
export const WALK_MAX_DEPTH = 32;
/** Largest file `file.get` sends (it travels as base64 inside one JSON frame). */
export const MAX_GET_BYTES = 128 * 1024 * 1024;

export class FileOpError extends Error {}

interface Entry {
  size: number;
  mtimeMs: number;
  mtimeNs: bigint;
  ino: bigint;
  readOnly: boolean;
}

/** Path -> identity of every regular file under the data folder. */
export type Snapshot = Map<string, Entry>;

/**
 * Walk `root` recursively (bounded), keeping regular files only: symlinks and
 * special files are skipped, and a symlinked folder is never entered.
 */
export async function snapshot(root: string): Promise<Snapshot> {
  const files: Snapshot = new Map();
  let budget = WALK_MAX_ENTRIES;
  const walk = async (dir: string, rel: string, depth: number): Promise<void> => {
    let entries: import("node:fs").Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return; // vanished or unreadable: nothing to report
    }
    for (const entry of entries) {
      if (budget-- <= 0) return;
      const path = rel ? `${rel}/${entry.name}` : entry.name;
      const abs = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (depth < WALK_MAX_DEPTH) await walk(abs, path, depth + 1);
      } else if (entry.isFile()) {
        try {
          const st = await lstat(abs, { bigint: true });
          if (!st.isFile()) continue;
          files.set(path, {
            size: Number(st.size),
            mtimeMs: Number(st.mtimeMs),
            mtimeNs: st.mtimeNs,
            ino: st.ino,
            readOnly: (Number(st.mode) & 0o222) === 0,
          });
        } catch {
          // gone between readdir and lstat
        }
      }
    }
  };
  await walk(root, "", 1);
  return files;
}

/** Files created or modified between two snapshots, sorted by path. */
export function diffSnapshots(before: Snapshot, after: Snapshot): AgentFileChange[] {
  const changes: AgentFileChange[] = [];
  for (const [path, now] of after) {
    const was = before.get(path);
    if (was && was.size === now.size && was.mtimeNs === now.mtimeNs && was.ino === now.ino) continue;
    changes.push({ path, size: now.size, mtimeMs: now.mtimeMs, change: was ? "modified" : "created" });
  }
  return changes.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * Files of `before` that are gone from `after`, sorted. A path missing from
 * `after` is checked once more on disk: a walk cut short by its bounds misses
 * files that are still there.
 */
export async function deletedFiles(root: string, before: Snapshot, after: Snapshot): Promise<string[]> {
  const deleted: string[] = [];
  for (const path of before.keys()) {
    if (after.has(path)) continue;
    const st = await lstat(join(root, path)).catch(() => null);
    if (!st?.isFile()) deleted.push(path);
  }
  return deleted.sort();
}

export function listFromSnapshot(snap: Snapshot): AgentFileInfo[] {
  return [...snap]
    .map(([path, e]) => ({ path, size: e.size, mtimeMs: e.mtimeMs, readOnly: e.readOnly }))
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

function infoOf(path: string, st: Stats): AgentFileInfo {
  return { path, size: st.size, mtimeMs: st.mtimeMs, readOnly: (st.mode & 0o222) === 0 };
}

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException)?.code === "ENOENT";
}

/**
 * File operations confined to one data folder. Every path is relative; each
 * folder on the way is checked with lstat (a symlink or a non-folder is
 * refused), and the real path of the final folder must still be inside the
 * data folder. The last component is never followed: writes replace it by
 * rename, reads open it with O_NOFOLLOW.
 */
export class DataDir {
  readonly root: string;

  private constructor(root: string) {
    this.root = root;
  }

  static async open(dir: string): Promise<DataDir> {
    await mkdir(dir, { recursive: true });
    return new DataDir(await realpath(dir));
  }

  /** Resolve `rel` to [folder, name], checking (and with `create`, making) each folder. */
  async #resolve(rel: string, create: boolean): Promise<{ dir: string; name: string; norm: string }> {
    const parts = rel.split("/").filter((p) => p.length > 0);
    if (parts.length === 0 || parts.some((p) => p === "." || p === ".." || p.includes("\0"))) throw new FileOpError("invalid path");
    const name = parts.pop()!;
    let dir = this.root;
    for (const part of parts) {
      dir = join(dir, part);
      let st: Stats | undefined;
      try {
        st = await lstat(dir);
      } catch (error) {
        if (!isMissing(error)) throw error;
      }
      if (!st) {
        if (!create) throw new FileOpError(`no such file: ${rel}`);
        try {
          await mkdir(dir, { mode: 0o755 });
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
        }
        st = await lstat(dir);
      }
      if (st.isSymbolicLink()) throw new FileOpError(`path goes through a symlink: ${rel}`);
      if (!st.isDirectory()) throw new FileOpError(`not a folder: ${parts.join("/")}`);
    }
    const real = await realpath(dir);
    const inside = relative(this.root, real);
    if (inside === ".." || inside.startsWith(`..${sep}`) || isAbsolute(inside)) throw new FileOpError(`path leaves the data folder: ${rel}`);
    return { dir, name, norm: [...parts, name].join("/") };
  }

  async put(rel: string, data: Buffer, readOnly: boolean): Promise<AgentFileInfo> {
    const { dir, name, norm } = await this.#resolve(rel, true);
    const target = join(dir, name);
    const existing = await lstat(target).catch(() => undefined);
    if (existing?.isDirectory()) throw new FileOpError(`is a folder: ${norm}`);
    const tmp = join(dir, `.${name}.agent-${randomBytes(6).toString("hex")}`);
    const handle = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      await handle.writeFile(data);
      await handle.chmod(readOnly ? 0o444 : 0o644);
    } catch (error) {
      await handle.close();
      await unlink(tmp).catch(() => {});
      throw error;
    }
    await handle.close();
    try {
      // rename replaces a symlink at the target instead of following it
      await rename(tmp, target);
    } catch (error) {
      await unlink(tmp).catch(() => {});
      throw error;
    }
    return infoOf(norm, await lstat(target));
  }

  async get(rel: string): Promise<{ data: Buffer; file: AgentFileInfo }> {
    const { dir, name, norm } = await this.#resolve(rel, false);
    let handle: import("node:fs/promises").FileHandle;
    try {
      handle = await open(join(dir, name), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOENT") throw new FileOpError(`no such file: ${norm}`);
      if (code === "ELOOP") throw new FileOpError(`is a symlink: ${norm}`);
      throw error;
    }
    try {
      const st = await handle.stat();
      if (!st.isFile()) throw new FileOpError(`not a regular file: ${norm}`);
      if (st.size > MAX_GET_BYTES) throw new FileOpError(`file too large (${st.size} bytes, limit ${MAX_GET_BYTES})`);
      const data = await handle.readFile();
      return { data, file: infoOf(norm, st) };
    } finally {
      await handle.close();
    }
  }

  async list(): Promise<AgentFileInfo[]> {
    return listFromSnapshot(await snapshot(this.root));
  }

  async delete(rel: string): Promise<void> {
    const { dir, name, norm } = await this.#resolve(rel, false);
    const target = join(dir, name);
    let st: Stats;
    try {
      st = await lstat(target);
    } catch (error) {
      if (isMissing(error)) throw new FileOpError(`no such file: ${norm}`);
      throw error;
    }
    if (st.isDirectory()) throw new FileOpError(`is a folder: ${norm}`);
    await unlink(target); // a symlink is removed itself, never followed
  }
}
