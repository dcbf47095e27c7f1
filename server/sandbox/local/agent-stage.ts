/**
 * The agent bundle as sandboxes bind it: a copy in `<baseDir>/.agent`, made
 * at the provider's start. A bind mount shows its source folder in the
 * sandbox's /proc/self/mountinfo, and the folder the server runs from (a
 * checkout, an image's /app) is nothing a program should learn; the copy also
 * keeps running sandboxes on the bundle they started with while a new build
 * replaces dist/.
 */
import { chmod, cp, readdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";

export const STAGED_AGENT_DIR = ".agent";

/** Copy `sourceDir` to `<baseDir>/.agent` (readable by every uid: the sandboxes' own read it) and return that path. */
export async function stageAgent(sourceDir: string, baseDir: string): Promise<string> {
  const target = join(baseDir, STAGED_AGENT_DIR);
  const staging = `${target}.${process.pid}.tmp`;
  await rm(staging, { recursive: true, force: true });
  await cp(sourceDir, staging, { recursive: true, dereference: true });
  await chmod(staging, 0o755);
  // The bundle is flat (agent.mjs, its map, the Python driver, the launcher): executables keep their x bit, all is readable.
  for (const entry of await readdir(staging, { withFileTypes: true })) {
    const path = join(staging, entry.name);
    const { mode } = await stat(path);
    await chmod(path, entry.isDirectory() || mode & 0o111 ? 0o755 : 0o644);
  }
  await rm(target, { recursive: true, force: true });
  await rename(staging, target);
  return target;
}
