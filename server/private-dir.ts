/**
 * Folders the server makes for itself. Only the folder asked for gets its own
 * mode; the parents it has to make on the way get 0755, whatever the umask:
 * they are shared (FILE_STORAGE_PATH and SANDBOX_BASE_DIR both default to
 * folders of /var/lib/code-interpreter), and the sandbox uid must get through
 * them to SANDBOX_BASE_DIR. `mkdir -p` with a mode would give every folder it
 * makes that mode: a private store made its parents private too, and no
 * sandbox could start (issue 15).
 */
import type { Stats } from "node:fs";
import { chmod, mkdir, stat } from "node:fs/promises";
import { dirname, join, relative, resolve, sep } from "node:path";

/** The mode of the parents that makeDir makes. */
export const PARENT_DIR_MODE = 0o755;

/**
 * Make `folder` with `mode` (an existing folder is set to `mode` too, unless
 * it belongs to another user), and any missing parent with PARENT_DIR_MODE;
 * parents that were there are left as they are.
 */
export async function makeDir(folder: string, mode: number): Promise<void> {
  const path = resolve(folder);
  const parent = dirname(path);
  const first = await mkdir(parent, { recursive: true, mode: PARENT_DIR_MODE });
  if (first !== undefined) {
    // mkdir's mode goes through the umask: set each parent it made explicitly, from the top down.
    let dir = first;
    await chmod(dir, PARENT_DIR_MODE);
    for (const name of relative(first, parent).split(sep).filter(Boolean)) {
      dir = join(dir, name);
      await chmod(dir, PARENT_DIR_MODE);
    }
  }
  let existing: Stats | undefined;
  try {
    await mkdir(path, { mode });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    existing = await stat(path);
    if (!existing.isDirectory()) throw error;
    if ((existing.mode & 0o7777) === mode) return;
  }
  await chmod(path, mode).catch((error: NodeJS.ErrnoException) => {
    // A folder that was there and is not ours (a volume's mount point, say): its owner chose its mode.
    if (existing === undefined || error.code !== "EPERM") throw error;
  });
}

/** Make `path` the server's alone (0700), its missing parents 0755, as makeDir does. */
export function makePrivateDir(path: string): Promise<void> {
  return makeDir(path, 0o700);
}
