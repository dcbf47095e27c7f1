/**
 * Leftovers of a server that died without cleaning up: its bwrap processes die
 * with it (--die-with-parent), but cgroups and host folders stay behind.
 */
import { readdir, rm } from "node:fs/promises";
import { basename, join } from "node:path";
import { type CgroupLayout, killCgroups, listSandboxCgroups, removeCgroups } from "./cgroups.ts";

export interface OrphanReport {
  /** Distinct sandbox ids that had a cgroup or a folder. */
  removed: number;
  /** What could not be removed, in words. */
  failures: string[];
}

/** Kill and remove every sandbox cgroup and folder that is not in `keep` (ids of live sandboxes). */
export async function removeOrphanSandboxes(layout: CgroupLayout | undefined, baseDir: string, keep: ReadonlySet<string>): Promise<OrphanReport> {
  const ids = new Set<string>();
  const failures: string[] = [];
  if (layout) {
    const dirs = (await listSandboxCgroups(layout)).filter((dir) => !keep.has(basename(dir)));
    for (const dir of dirs) ids.add(basename(dir));
    await killCgroups(dirs);
    for (const dir of await removeCgroups(dirs)) failures.push(`cannot remove cgroup ${dir}`);
  }
  let entries: string[] = [];
  try {
    entries = await readdir(baseDir);
  } catch {
    // no base folder yet: nothing left behind
  }
  for (const name of entries) {
    if (keep.has(name)) continue;
    ids.add(name);
    try {
      await rm(join(baseDir, name), { recursive: true, force: true });
    } catch (error) {
      failures.push(`cannot remove ${join(baseDir, name)} (${(error as Error).message})`);
    }
  }
  return { removed: ids.size, failures };
}
