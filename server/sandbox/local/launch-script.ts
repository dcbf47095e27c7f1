/**
 * The root shell step between the server and bubblewrap. It runs as root on the
 * host, puts itself into the sandbox's cgroups (so bwrap and everything below
 * start inside them, with no window), sets rlimits and its OOM score, then
 * drops to the sandbox uid and execs bwrap. Every value comes in as an argument;
 * nothing is interpolated into the script. The bwrap options (which carry the
 * agent's token) arrive on fd 3 so that no command line shows them.
 */
export const LAUNCH_SCRIPT = `set -eu
uid=$1; gid=$2; nofile=$3; fsize=$4; nproc=$5; node=$6; entry=$7
shift 7
for procs in "$@"; do echo $$ > "$procs"; done
ulimit -c 0
# Raising a hard limit needs CAP_SYS_RESOURCE: never ask for more than the server has.
hard=$(ulimit -Hn); if [ "$hard" != unlimited ] && [ "$nofile" -gt "$hard" ]; then nofile=$hard; fi
ulimit -n "$nofile"
hard=$(ulimit -Hf); if [ "$hard" != unlimited ] && [ "$fsize" -gt "$hard" ]; then fsize=$hard; fi
ulimit -f "$fsize"
if [ -n "$nproc" ]; then
  hard=$(ulimit -Hu); if [ "$hard" != unlimited ] && [ "$nproc" -gt "$hard" ]; then nproc=$hard; fi
  ulimit -u "$nproc"
fi
# The agent is not the OOM victim (its launcher raises programs to +500). Lowering
# needs CAP_SYS_RESOURCE; without it the agent stays at the server's score.
{ echo -500 > /proc/self/oom_score_adj; } 2>/dev/null || true
exec setpriv --reuid="$uid" --regid="$gid" --clear-groups --inh-caps=-all --no-new-privs bwrap --args 3 -- "$node" "$entry"
`;

/** Probe: may this server lower a process's OOM score (CAP_SYS_RESOURCE)? */
export const OOM_PROBE_SCRIPT = "echo -500 > /proc/self/oom_score_adj";

/** Environment of the root shell (and so of bwrap's own processes, visible in the sandbox's /proc/1/environ). */
export const LAUNCH_ENV: Readonly<Record<string, string>> = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8" };

export interface LaunchInput {
  uid: number;
  gid: number;
  openFiles: number;
  fileSizeBytes: number;
  /** RLIMIT_NPROC, only when no pids cgroup limits the sandbox (it counts every process of the uid on the host). */
  nproc?: number;
  /** Node binary, the same path on the host and inside the sandbox (under /usr). */
  nodePath: string;
  /** The agent's entry inside the sandbox. */
  entry: string;
  /** cgroup.procs files the shell joins before it execs bwrap. */
  cgroupProcsFiles: readonly string[];
}

/** argv for `spawn("/bin/bash", ...)`. */
export function buildLaunchArgv(input: LaunchInput): string[] {
  const blocks = Math.max(1, Math.ceil(input.fileSizeBytes / 1024));
  return [
    "-c",
    LAUNCH_SCRIPT,
    "sandbox-launch",
    String(input.uid),
    String(input.gid),
    String(Math.max(16, Math.floor(input.openFiles))),
    String(blocks),
    input.nproc === undefined ? "" : String(Math.max(1, Math.floor(input.nproc))),
    input.nodePath,
    input.entry,
    ...input.cgroupProcsFiles,
  ];
}
