/**
 * Why the sandbox uid cannot reach a host folder, in an operator's words: the
 * first folder on the way whose mode keeps that uid out (bwrap only says
 * "Permission denied" about a path below it).
 */
import { statSync } from "node:fs";
import { dirname } from "node:path";

/** The first folder from `/` down to `dir` that `uid`/`gid` cannot pass through (no x bit for them), or undefined. */
export function blockedFolder(dir: string, uid: number, gid: number): { folder: string; mode: string; owner: number } | undefined {
  const chain: string[] = [];
  for (let at = dir; ; at = dirname(at)) {
    chain.unshift(at);
    if (dirname(at) === at) break;
  }
  for (const folder of chain) {
    let stat: ReturnType<typeof statSync>;
    try {
      stat = statSync(folder);
    } catch {
      return undefined; // not there (yet): not a question of modes
    }
    const bit = stat.uid === uid ? 0o100 : stat.gid === gid ? 0o010 : 0o001;
    if ((stat.mode & bit) === 0) return { folder, mode: `0${(stat.mode & 0o777).toString(8)}`, owner: stat.uid };
  }
  return undefined;
}

/** A sentence naming the folder that keeps the sandbox uid out of `dir`, or "" when none does. */
export function explainUnreachable(dir: string, uid: number, gid: number): string {
  const blocked = blockedFolder(dir, uid, gid);
  if (!blocked) return "";
  return `${blocked.folder} is mode ${blocked.mode} (owner uid ${blocked.owner}): the sandbox uid ${uid} must be able to pass through every folder above ${dir} (chmod o+x ${blocked.folder}, or move SANDBOX_BASE_DIR)`;
}
