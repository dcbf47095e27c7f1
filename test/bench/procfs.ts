/** Process facts from /proc: children, PSS and RSS. Linux only. */
import { readdirSync, readFileSync } from "node:fs";

interface Proc {
  pid: number;
  ppid: number;
  comm: string;
}

function processes(): Proc[] {
  const out: Proc[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      const comm = stat.slice(stat.indexOf("(") + 1, close);
      const ppid = Number(stat.slice(close + 2).split(" ")[1]);
      out.push({ pid: Number(name), ppid, comm });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function descendants(all: Proc[], root: number): number[] {
  const children = new Map<number, number[]>();
  for (const p of all) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p.pid]);
  const found: number[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    for (const child of children.get(pid) ?? []) {
      found.push(child);
      stack.push(child);
    }
  }
  return found;
}

/** Pss of one process in kB (smaps_rollup), 0 when unreadable. */
export function pssKb(pid: number): number {
  try {
    const match = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"));
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

export function rssKb(pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

/**
 * Each sandbox of a server: an outermost bwrap process under the server's pid,
 * with every process below it. Returns the PSS (kB) of each sandbox's processes summed.
 */
export function sandboxPss(serverPid: number): { sandboxes: number; pssKb: number[]; processes: number[] } {
  const all = processes();
  const byPid = new Map(all.map((p) => [p.pid, p]));
  const roots = descendants(all, serverPid).filter((pid) => {
    const p = byPid.get(pid)!;
    return p.comm === "bwrap" && byPid.get(p.ppid)?.comm !== "bwrap";
  });
  const pss: number[] = [];
  const counts: number[] = [];
  for (const root of roots) {
    const members = [root, ...descendants(all, root)];
    counts.push(members.length);
    pss.push(members.reduce((sum, pid) => sum + pssKb(pid), 0));
  }
  return { sandboxes: roots.length, pssKb: pss, processes: counts };
}
