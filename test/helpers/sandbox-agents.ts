import { readdirSync, readFileSync } from "node:fs";

/**
 * Sandbox agents (processes running /opt/agent/agent.mjs) seen from the host.
 * Programs cannot reach their agent (their jail), so tests that need a stopped
 * or dead agent act on it from outside through these.
 */
interface ProcessEntry {
  ppid: number;
  startTime: number;
  cmdline: string;
}

function processTable(): Map<number, ProcessEntry> {
  const table = new Map<number, ProcessEntry>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // The command name may hold spaces and parentheses: the fields after the last ")" are plain (ppid 2nd, start time 20th).
      const fields = readFileSync(`/proc/${name}/stat`, "utf8").split(")").at(-1)!.trim().split(" ");
      const cmdline = readFileSync(`/proc/${name}/cmdline`, "utf8").replaceAll("\0", " ");
      table.set(Number(name), { ppid: Number(fields[1]), startTime: Number(fields[19]), cmdline });
    } catch {
      // gone meanwhile
    }
  }
  return table;
}

const isAgent = (entry: ProcessEntry) => entry.cmdline.includes("/opt/agent/agent.mjs") && !entry.cmdline.startsWith("bwrap");

/** The newest agent among the descendants of `rootPid`: the last sandbox a test's server started (with no pool refilling). */
export function newestAgentPid(rootPid: number = process.pid): number | undefined {
  const table = processTable();
  const agents: number[] = [];
  const queue = [rootPid];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    for (const [child, entry] of table) if (entry.ppid === pid) queue.push(child);
    const entry = table.get(pid);
    if (entry && isAgent(entry)) agents.push(pid);
  }
  return agents.sort((a, b) => table.get(b)!.startTime - table.get(a)!.startTime)[0];
}

/** The agent above the process whose command line holds `marker` (a program the test started with it). */
export function agentAbove(marker: string): number | undefined {
  const table = processTable();
  for (const [pid, entry] of table) {
    if (!entry.cmdline.includes(marker)) continue;
    for (let up = table.get(pid)?.ppid; up !== undefined && up > 1; up = table.get(up)?.ppid) {
      const above = table.get(up);
      if (above && isAgent(above)) return up;
    }
  }
  return undefined;
}
