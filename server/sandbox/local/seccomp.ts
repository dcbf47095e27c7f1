/**
 * The syscall filters of local sandboxes: a deny list compiled once, at the
 * provider's start, into two BPF programs (libseccomp, through Debian's
 * python3-seccomp). bwrap installs the agent's (`--seccomp FD`) just before it
 * runs the agent, so every process of the sandbox carries it and none can drop
 * it; it lets the launcher build the program's jail (`unshare`, `mount`). The
 * launcher installs the programs' own, the whole list, on top of it just
 * before it runs a program.
 *
 * Why a deny list: the languages, their compilers and runtimes (JVM, Go, R,
 * node...) use a wide and changing set of calls; what no program here needs
 * and what attacks the kernel or the host is short and stable. Denied calls
 * fail with EPERM (the program sees an ordinary error); the io_uring calls and
 * clone3 fail with ENOSYS, which makes libuv and glibc fall back to the calls
 * they used before (clone3's flags are in memory a filter cannot read, and
 * clone with a namespace flag is denied below). Calls of another architecture
 * (x32, or 32-bit int 0x80 on x86_64) kill the process: libseccomp's default
 * for an architecture the filter was not built for.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Calls no sandboxed program needs: debugging and memory of other processes, mounts and namespaces, kernel keyrings, eBPF, perf, kernel modules, clocks, swap, reboot, and kernel-attack favourites. */
export const DENIED_SYSCALLS: readonly string[] = [
  "ptrace",
  "process_vm_readv",
  "process_vm_writev",
  "kcmp",
  "mount",
  "umount",
  "umount2",
  "pivot_root",
  "chroot",
  "fsopen",
  "fsconfig",
  "fsmount",
  "fspick",
  "move_mount",
  "open_tree",
  "mount_setattr",
  "unshare",
  "setns",
  "bpf",
  "perf_event_open",
  "keyctl",
  "add_key",
  "request_key",
  "init_module",
  "finit_module",
  "delete_module",
  "create_module",
  "query_module",
  "get_kernel_syms",
  "kexec_load",
  "kexec_file_load",
  "clock_settime",
  "clock_adjtime",
  "settimeofday",
  "adjtimex",
  "swapon",
  "swapoff",
  "reboot",
  "acct",
  "sethostname",
  "setdomainname",
  "syslog",
  "quotactl",
  "quotactl_fd",
  "open_by_handle_at",
  "name_to_handle_at",
  "lookup_dcookie",
  "fanotify_init",
  "userfaultfd",
  "uselib",
  "ustat",
  "sysfs",
  "_sysctl",
  "vhangup",
  "nfsservctl",
  "iopl",
  "ioperm",
];

/** What the launcher needs to jail a program (launcher.c --jail): denied to programs only. */
export const JAIL_SYSCALLS: readonly string[] = ["unshare", "mount"];

/** Calls that fail with ENOSYS ("not there"), so that their callers fall back. */
export const UNAVAILABLE_SYSCALLS: readonly string[] = ["io_uring_setup", "io_uring_enter", "io_uring_register", "clone3"];

/** clone flags that make a new namespace: clone with any of them is denied (bwrap made the sandbox's namespaces already). */
export const CLONE_NAMESPACE_FLAGS: readonly number[] = [
  0x00020000, // CLONE_NEWNS
  0x02000000, // CLONE_NEWCGROUP
  0x04000000, // CLONE_NEWUTS
  0x08000000, // CLONE_NEWIPC
  0x10000000, // CLONE_NEWUSER
  0x20000000, // CLONE_NEWPID
  0x40000000, // CLONE_NEWNET
  0x00000080, // CLONE_NEWTIME
];

/**
 * Build both filters with libseccomp and export them as BPF: the agent's to
 * argv[1] (without the jail's calls), the programs' to argv[2]; prints the
 * names it could not resolve on this architecture.
 */
const COMPILE_SCRIPT = `
import errno, json, sys
import seccomp
agent_out, programs_out, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
unknown = []
def build(skip):
    f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    def rule(action, name, *args):
        try:
            f.add_rule(action, name, *args)
        except (RuntimeError, ValueError, OSError):
            unknown.append(name)
    for name in spec["deny"]:
        if name not in skip:
            rule(seccomp.ERRNO(errno.EPERM), name)
    for name in spec["enosys"]:
        rule(seccomp.ERRNO(errno.ENOSYS), name)
    for flag in spec["cloneFlags"]:
        rule(seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    return f
for out, skip in ((agent_out, spec["jail"]), (programs_out, [])):
    with open(out, "wb") as handle:
        build(skip).export_bpf(handle)
print(json.dumps({"unknown": sorted(set(unknown))}))
`;

export type SeccompCompile =
  | {
      ok: true;
      /** The agent's filter (bwrap --seccomp). */
      agentFilter: Buffer;
      /** The programs' filter (launcher --seccomp). */
      programsFilter: Buffer;
      denied: number;
      unknown: string[];
    }
  | { ok: false; error: string };

/** Compile the filters (once per provider): BPF programs, passed to each bwrap on pipes. */
export async function compileSeccompFilter(): Promise<SeccompCompile> {
  const dir = await mkdtemp(join(tmpdir(), "seccomp-"));
  try {
    const agentPath = join(dir, "agent.bpf");
    const programsPath = join(dir, "programs.bpf");
    const result = await runCompiler(agentPath, programsPath);
    if (!result.ok) return result;
    return { ok: true, agentFilter: await readFile(agentPath), programsFilter: await readFile(programsPath), denied: result.denied, unknown: result.unknown };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function runCompiler(agentPath: string, programsPath: string): Promise<{ ok: true; denied: number; unknown: string[] } | { ok: false; error: string }> {
  const spec = JSON.stringify({ deny: DENIED_SYSCALLS, enosys: UNAVAILABLE_SYSCALLS, cloneFlags: CLONE_NAMESPACE_FLAGS, jail: JAIL_SYSCALLS });
  return new Promise((resolve) => {
    execFile(
      "python3",
      ["-c", COMPILE_SCRIPT, agentPath, programsPath, spec],
      { timeout: 20_000, env: { PATH: "/usr/bin:/bin", LANG: "C.UTF-8" } },
      (error, stdout, stderr) => {
        if (error) {
          const text = String(stderr);
          const reason = /No module named 'seccomp'/.test(text)
            ? "python3-seccomp is not installed (apt-get install python3-seccomp, or run scripts/setup.sh)"
            : (text.trim().split("\n").at(-1) ?? error.message);
          resolve({ ok: false, error: `the syscall filter could not be built: ${reason}` });
          return;
        }
        try {
          const { unknown } = JSON.parse(String(stdout)) as { unknown: string[] };
          resolve({ ok: true, denied: DENIED_SYSCALLS.length + UNAVAILABLE_SYSCALLS.length - unknown.length, unknown });
        } catch {
          resolve({ ok: false, error: `the syscall filter could not be built: unexpected output ${String(stdout).slice(0, 200)}` });
        }
      },
    );
  });
}
