/**
 * One server per folder (SANDBOX_BASE_DIR, SKILL_DEPS_PATH): a server sweeps
 * what it finds in its folders at start, so a second server on the same folder
 * would kill the first one's sandboxes. The owner is named in `<dir>/.owner`.
 *
 * Node has no flock, so the lock is the file itself: made whole (a temporary
 * file, then link(), which fails if the name exists), and stale once its
 * process is gone. A pid alone could have been reused since: the process's
 * start time (/proc/<pid>/stat) must match too.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { link, open, stat, unlink, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { StartRefusal } from "./start-refusal.ts";

export const LOCK_FILE = ".owner";
/** Rounds of link / judge / remove before giving up on a folder whose lock keeps changing. */
const MAX_ATTEMPTS = 100;

export interface LockOwner {
  pid: number;
  /** Field 22 of /proc/<pid>/stat: clock ticks from boot to the process's start. */
  startTime: number;
  hostname: string;
  /** When the owner started (ISO 8601), for the operator. */
  startedAt: string;
}

/** The folder is another live server's. */
export class FolderInUseError extends StartRefusal {
  constructor(
    readonly setting: string,
    readonly dir: string,
    readonly owner: LockOwner,
  ) {
    const local = owner.hostname === hostname();
    // From another host its process cannot be checked: only the operator knows whether it is gone.
    const who = local ? `pid ${owner.pid}` : `pid ${owner.pid} on host ${owner.hostname}`;
    const gone = local ? "" : `; if that server is gone, remove ${join(dir, LOCK_FILE)}`;
    super(`${setting} ${dir} is in use by another server (${who}, started ${owner.startedAt}): give each server its own ${setting}${gone}`);
    this.name = "FolderInUseError";
  }
}

export interface FolderLock {
  readonly path: string;
  readonly owner: LockOwner;
  /** Remove the lock file, if it is still ours. */
  release(): Promise<void>;
}

/** Start time of `pid` (field 22 of its stat), or undefined when no such process runs (a zombie has ended too). */
export function processStartTime(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The name (field 2) is in parentheses and may hold spaces: count from the last ")". Field 3 is the state.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  if (fields[0] === "Z" || fields[0] === "X") return undefined;
  const startTime = Number(fields[19]);
  return Number.isFinite(startTime) ? startTime : undefined;
}

/** This process, as a lock names it. */
export function currentOwner(): LockOwner {
  const startTime = processStartTime(process.pid);
  if (startTime === undefined) throw new Error("cannot read /proc/self/stat: folder locks need /proc");
  return { pid: process.pid, startTime, hostname: hostname(), startedAt: new Date(performance.timeOrigin).toISOString() };
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const o = JSON.parse(text) as Partial<LockOwner>;
    if (Number.isInteger(o.pid) && Number.isFinite(o.startTime) && typeof o.hostname === "string" && typeof o.startedAt === "string") return o as LockOwner;
  } catch {
    // not a lock this server wrote (those are always whole): stale
  }
  return undefined;
}

function sameOwner(a: LockOwner, b: LockOwner): boolean {
  return a.pid === b.pid && a.startTime === b.startTime && a.hostname === b.hostname && a.startedAt === b.startedAt;
}

/** Whether the lock's process still runs. Another host's cannot be checked, so it counts as live. */
function isLive(owner: LockOwner): boolean {
  if (owner.hostname !== hostname()) return true;
  return processStartTime(owner.pid) === owner.startTime;
}

/** The lock file's text and owner, read through one descriptor; undefined when there is none. */
async function readLock(path: string): Promise<{ text: string; owner: LockOwner | undefined } | undefined> {
  let file: Awaited<ReturnType<typeof open>>;
  try {
    file = await open(path, "r");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  try {
    const text = await file.readFile("utf8");
    return { text, owner: parseOwner(text) };
  } finally {
    await file.close();
  }
}

/** A takeover guard older than this was left by a contender that died while holding it (it is held for milliseconds). */
const GUARD_STALE_MS = 10_000;

/**
 * Remove a stale lock, one contender at a time: only the holder of
 * `<lock>.takeover` (made with O_EXCL) may unlink the lock, and only when it
 * still holds the stale text judged. Nobody else can change an existing lock
 * meanwhile (link() fails on it; its dead owner releases nothing), so the lock
 * removed is the stale one, never a winner's. Only link() then decides who
 * owns the folder.
 */
async function removeStale(path: string, staleText: string): Promise<void> {
  const guard = `${path}.takeover`;
  try {
    await writeFile(guard, `${process.pid}\n`, { flag: "wx", mode: 0o644 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    const age = await stat(guard).then(
      (s) => Date.now() - s.mtimeMs,
      () => 0,
    );
    if (age > GUARD_STALE_MS) await unlink(guard).catch(() => {});
    else await sleep(5 + Math.random() * 20);
    return; // another contender is at it: look at the lock again
  }
  try {
    const held = await readLock(path);
    if (held && held.text === staleText) await unlink(path);
  } finally {
    await unlink(guard).catch(() => {});
  }
}

/**
 * Take `<dir>/.owner` for this process; `dir` exists. Throws FolderInUseError
 * when a live process holds it (this one included: two owners in one process
 * would sweep each other's sandboxes too); a stale lock is taken over.
 * `setting` names the folder in the refusal (SANDBOX_BASE_DIR).
 */
export async function lockFolder(dir: string, setting: string): Promise<FolderLock> {
  const path = join(dir, LOCK_FILE);
  const owner = currentOwner();
  const temp = `${path}.${randomBytes(6).toString("hex")}.tmp`;
  await writeFile(temp, `${JSON.stringify(owner)}\n`, { flag: "wx", mode: 0o644 });
  try {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      try {
        await link(temp, path);
        return folderLock(path, owner);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      }
      const held = await readLock(path);
      if (!held) continue; // released or moved aside meanwhile: try again
      if (held.owner && isLive(held.owner)) throw new FolderInUseError(setting, dir, held.owner);
      await removeStale(path, held.text);
    }
    throw new Error(`cannot take ${path}: other processes keep changing it`);
  } finally {
    await unlink(temp).catch(() => {});
  }
}

function folderLock(path: string, owner: LockOwner): FolderLock {
  let released: Promise<void> | undefined;
  return {
    path,
    owner,
    release() {
      released ??= (async () => {
        const held = await readLock(path).catch(() => undefined);
        // Taken over meanwhile (an operator removed it, another server came): not ours to remove.
        if (held?.owner && sameOwner(held.owner, owner)) await unlink(path).catch(() => {});
      })();
      return released;
    },
  };
}
