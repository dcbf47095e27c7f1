/**
 * When an exec ends, nothing it started may go on: a program that left its
 * process group (`setsid ... &`) would otherwise keep burning CPU with no exec
 * running, one per session, past MAX_EXECUTION_TIME. The sandbox has a pid
 * namespace of its own, so every process of the sandbox's uid in /proc is the
 * agent, the persistent interpreter, or something a program started.
 */
import { readdirSync, readFileSync } from "node:fs";

/**
 * Whether this agent runs as the sandbox's own: in a pid namespace of its own
 * (pid 1 in a pod, 2 under bwrap's init) and not as root. Anywhere else (an
 * agent started on a host, as the unit tests do) every process of its uid is
 * not the sandbox's, and nothing may be killed.
 */
export function inOwnPidNamespace(uid: number, pid = process.pid): boolean {
  return uid !== 0 && pid <= 2;
}

interface ProcessStatus {
  uid: number;
  ppid: number;
  /** Its pid in the innermost pid namespace it is in (NSpid's last field): 1 for a jail's init, 2 for the program it runs. */
  innerPid: number;
}

/** The real uid, parent and innermost pid of `pid`, from /proc/<pid>/status; undefined once it is gone. */
function statusOf(pid: number): ProcessStatus | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
    const ppid = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1]);
    const innerPid = Number(/^NSpid:.*?(\d+)\s*$/m.exec(status)?.[1] ?? pid);
    return Number.isFinite(uid) && Number.isFinite(ppid) ? { uid, ppid, innerPid } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * SIGKILL every process of this uid but the ones in `keep` and the
 * interpreter under each launcher in `keepChildrenOf`: the launcher's child,
 * and when that child is a jail's init (launcher.c --jail), the program it
 * runs (pid 2 of the jail; what the program started there has higher pids).
 * Returns how many were killed. Synchronous: /proc of a sandbox holds a
 * handful of entries, read in microseconds, while each asynchronous read
 * would cost a trip through the thread pool on every exec.
 */
export function killStrayProcesses(keep: ReadonlySet<number>, keepChildrenOf: ReadonlySet<number> = new Set()): number {
  const uid = process.getuid?.();
  if (uid === undefined || !inOwnPidNamespace(uid)) return 0;
  const ours = new Map<number, ProcessStatus>();
  for (const name of readdirSync("/proc")) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 1 || keep.has(pid)) continue;
    const status = statusOf(pid);
    // Another uid's (the namespace's init, a pod's other containers): never ours to end.
    if (status && status.uid === uid) ours.set(pid, status);
  }
  const jailInits = new Set<number>();
  for (const [pid, status] of ours) {
    if (!keepChildrenOf.has(status.ppid)) continue;
    ours.delete(pid);
    if (status.innerPid === 1) jailInits.add(pid);
  }
  let killed = 0;
  for (const [pid, status] of ours) {
    if (jailInits.has(status.ppid) && status.innerPid === 2) continue;
    try {
      process.kill(pid, "SIGKILL");
      killed++;
    } catch {
      // gone meanwhile
    }
  }
  return killed;
}
