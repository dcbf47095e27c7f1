/**
 * cgroup limits of local sandboxes (memory, pids, cpu), on cgroup v2 or on the
 * per-controller hierarchies of v1. Whatever this machine does not let us
 * create or write is skipped and reported in words; sandboxes still start.
 */
import { type Dirent, existsSync } from "node:fs";
import { mkdir, readdir, readFile, rmdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { SandboxLimits } from "../provider.ts";

export const CGROUP_PARENT = "code-interpreter";
export const CONTROLLERS = ["memory", "pids", "cpu"] as const;
export type Controller = (typeof CONTROLLERS)[number];

const LIMIT_NAMES: Record<Controller, string> = { memory: "memory limit", pids: "process limit", cpu: "CPU limit" };
const CPU_PERIOD_US = 100_000;

export interface CgroupLayout {
  version: 1 | 2 | null;
  root: string;
  /** Folder under which sandbox cgroups are made, per usable controller (v2: the same folder for all). */
  parents: Partial<Record<Controller, string>>;
  warnings: string[];
}

export interface SandboxCgroups {
  /** Every folder made for this sandbox (v1: one per controller; v2: one). */
  dirs: string[];
  /** cgroup.procs files the launcher joins. */
  procsFiles: string[];
  /** The folder holding the memory controller's files, for the agent's OOM detection. */
  memoryDir?: string;
  enforced: Record<Controller, boolean>;
  warnings: string[];
}

export function errorCode(error: unknown): string {
  const e = error as NodeJS.ErrnoException;
  return e?.code ?? (e instanceof Error ? e.message : String(error));
}

async function tryWrite(file: string, value: string): Promise<string | undefined> {
  try {
    await writeFile(file, value);
    return undefined;
  } catch (error) {
    return `cannot write ${file} (${errorCode(error)})`;
  }
}

/** Find which cgroup version this machine has and prepare the parent folders. */
export async function detectCgroups(root: string): Promise<CgroupLayout> {
  const layout: CgroupLayout = { version: null, root, parents: {}, warnings: [] };
  if (existsSync(join(root, "cgroup.controllers"))) {
    layout.version = 2;
    await prepareV2(layout);
    return layout;
  }
  if (CONTROLLERS.some((c) => existsSync(join(root, c, "cgroup.procs")))) {
    layout.version = 1;
    for (const controller of CONTROLLERS) {
      const hierarchy = join(root, controller);
      if (!existsSync(join(hierarchy, "cgroup.procs"))) {
        layout.warnings.push(`${LIMIT_NAMES[controller]} not enforced: no cgroup v1 ${controller} hierarchy at ${hierarchy}`);
        continue;
      }
      const parent = join(hierarchy, CGROUP_PARENT);
      try {
        await mkdir(parent, { recursive: true });
        layout.parents[controller] = parent;
      } catch (error) {
        layout.warnings.push(`${LIMIT_NAMES[controller]} not enforced: cannot create ${parent} (${errorCode(error)})`);
      }
    }
    return layout;
  }
  for (const controller of CONTROLLERS) layout.warnings.push(`${LIMIT_NAMES[controller]} not enforced: no cgroup filesystem at ${root}`);
  return layout;
}

async function readControllers(file: string): Promise<Set<string>> {
  try {
    return new Set((await readFile(file, "utf8")).split(/\s+/).filter(Boolean));
  } catch {
    return new Set();
  }
}

async function prepareV2(layout: CgroupLayout): Promise<void> {
  const root = layout.root;
  const available = await readControllers(join(root, "cgroup.controllers"));
  const parent = join(root, CGROUP_PARENT);
  let parentError: string | undefined;
  try {
    await mkdir(parent, { recursive: true });
  } catch (error) {
    parentError = `cannot create ${parent} (${errorCode(error)})`;
  }
  for (const controller of CONTROLLERS) {
    const what = `${LIMIT_NAMES[controller]} not enforced`;
    if (!available.has(controller)) {
      layout.warnings.push(`${what}: the ${controller} controller is not available in ${root}`);
      continue;
    }
    if (parentError) {
      layout.warnings.push(`${what}: ${parentError}`);
      continue;
    }
    // Enable the controller for our folder (in the root) and for the sandboxes (in our folder).
    let failed: string | undefined;
    for (const dir of [root, parent]) {
      const subtree = join(dir, "cgroup.subtree_control");
      if ((await readControllers(subtree)).has(controller)) continue;
      failed = await tryWrite(subtree, `+${controller}`);
      if (failed) {
        // EBUSY: processes live in that cgroup (v2 "no internal processes"); the server must run in a child cgroup.
        if (failed.includes("EBUSY")) failed += "; run the server in a child cgroup or give it a delegated subtree";
        break;
      }
    }
    if (failed) layout.warnings.push(`${what}: ${failed}`);
    else layout.parents[controller] = parent;
  }
}

/** Make the cgroups of one sandbox and write its limits. Never throws: what fails is reported in `warnings`. */
export async function createSandboxCgroups(layout: CgroupLayout, id: string, limits: SandboxLimits): Promise<SandboxCgroups> {
  const result: SandboxCgroups = { dirs: [], procsFiles: [], enforced: { memory: false, pids: false, cpu: false }, warnings: [] };
  const quota = limits.cpuQuotaUs > 0 ? Math.max(1000, Math.floor(limits.cpuQuotaUs)) : undefined;
  const made = new Map<string, boolean>();
  for (const controller of CONTROLLERS) {
    const parent = layout.parents[controller];
    if (!parent) continue;
    const dir = join(parent, id);
    if (!made.has(dir)) {
      try {
        await mkdir(dir);
        made.set(dir, true);
        result.dirs.push(dir);
        result.procsFiles.push(join(dir, "cgroup.procs"));
      } catch (error) {
        made.set(dir, false);
        result.warnings.push(`${LIMIT_NAMES[controller]} not enforced: cannot create ${dir} (${errorCode(error)})`);
      }
    }
    if (!made.get(dir)) continue;
    const memory = String(Math.floor(limits.memoryBytes));
    const pids = String(Math.max(1, Math.floor(limits.pids)));
    // [file, value, required]: an optional file that fails (swap) is a warning of its own, the limit still holds.
    const writes: [string, string, boolean][] = [];
    if (layout.version === 2) {
      if (controller === "memory") writes.push(["memory.max", memory, true], ["memory.swap.max", "0", false]);
      else if (controller === "pids") writes.push(["pids.max", pids, true]);
      else writes.push(["cpu.max", `${quota ?? "max"} ${CPU_PERIOD_US}`, true]);
    } else if (controller === "memory") {
      // memsw counts memory + swap: the same value means no swap (present when swap accounting is on).
      writes.push(["memory.limit_in_bytes", memory, true], ["memory.memsw.limit_in_bytes", memory, false]);
    } else if (controller === "pids") writes.push(["pids.max", pids, true]);
    else writes.push(["cpu.cfs_period_us", String(CPU_PERIOD_US), true], ["cpu.cfs_quota_us", String(quota ?? -1), true]);
    let failed: string | undefined;
    for (const [file, value, required] of writes) {
      if (!required && !existsSync(join(dir, file))) continue;
      const error = await tryWrite(join(dir, file), value);
      if (error && required) {
        failed = error;
        break;
      }
      if (error) result.warnings.push(`swap not limited: ${error}`);
    }
    if (failed) result.warnings.push(`${LIMIT_NAMES[controller]} not enforced: ${failed}`);
    else result.enforced[controller] = true;
    if (controller === "memory") result.memoryDir = dir;
  }
  return result;
}

async function readPids(dir: string): Promise<number[]> {
  try {
    const text = await readFile(join(dir, "cgroup.procs"), "utf8");
    return text
      .split("\n")
      .filter(Boolean)
      .map(Number)
      .filter((pid) => Number.isInteger(pid) && pid > 0);
  } catch {
    return [];
  }
}

/** SIGKILL every process in these cgroups until they are empty (or the time is up). */
export async function killCgroups(dirs: readonly string[], timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let alive = 0;
    for (const dir of dirs) {
      // cgroup v2 (Linux 5.14+) kills the whole subtree atomically.
      if (existsSync(join(dir, "cgroup.kill"))) await tryWrite(join(dir, "cgroup.kill"), "1");
      for (const pid of await readPids(dir)) {
        alive++;
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone already
        }
      }
    }
    if (alive === 0 || Date.now() > deadline) return;
    await sleep(20);
  }
}

/** Remove cgroup folders, retrying briefly while their processes drain. Returns the folders that remain. */
export async function removeCgroups(dirs: readonly string[], timeoutMs = 5_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let left = [...dirs];
  for (;;) {
    const next: string[] = [];
    for (const dir of left) {
      try {
        await rmdir(dir);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") next.push(dir);
      }
    }
    left = next;
    if (left.length === 0 || Date.now() > deadline) return left;
    await killCgroups(left, 200);
    await sleep(50);
  }
}

/** Sandbox cgroup folders present under the parents, whoever made them. */
export async function listSandboxCgroups(layout: CgroupLayout): Promise<string[]> {
  const found = new Set<string>();
  for (const parent of new Set(Object.values(layout.parents))) {
    let entries: Dirent[];
    try {
      entries = await readdir(parent, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const entry of entries) if (entry.isDirectory()) found.add(join(parent, entry.name));
  }
  return [...found];
}
