/**
 * Leftovers of a server that died without cleaning up: its bwrap processes die
 * with it (--die-with-parent), but cgroups and host folders stay behind.
 */
import { readdir, rm } from "node:fs/promises";
import { basename, join } from "node:path";
import { type CgroupLayout, killCgroups, listSandboxCgroups, removeCgroups } from "./cgroups.ts";
import { SANDBOX_ID_PATTERN } from "./host-files.ts";

export interface OrphanReport {
  /** Distinct sandbox ids that had a cgroup or a folder. */
  removed: number;
  /** What could not be removed, in words. */
  failures: string[];
}

/**
 * Kill and remove the sandboxes left in `baseDir` that are not in `keep` (ids of
 * live sandboxes): their folders and the cgroups of the same ids. Cgroups of
 * other servers (other base folders) on the same machine are never touched.
 */
export async function removeOrphanSandboxes(layout: CgroupLayout | undefined, baseDir: string, keep: ReadonlySet<string>): Promise<OrphanReport> {
  const failures: string[] = [];
  let entries: string[] = [];
  try {
    entries = await readdir(baseDir);
  } catch {
    // no base folder yet: nothing left behind
  }
  // Sandbox ids only: never the lock (.owner) or an operator's file.
  const orphans = new Set(entries.filter((name) => SANDBOX_ID_PATTERN.test(name) && !keep.has(name)));
  if (layout) {
    const dirs = (await listSandboxCgroups(layout)).filter((dir) => orphans.has(basename(dir)));
    await killCgroups(dirs);
    for (const dir of await removeCgroups(dirs)) failures.push(`cannot remove cgroup ${dir}`);
  }
  for (const name of orphans) {
    try {
      await rm(join(baseDir, name), { recursive: true, force: true });
    } catch (error) {
      failures.push(`cannot remove ${join(baseDir, name)} (${(error as Error).message})`);
    }
  }
  return { removed: orphans.size, failures };
}
