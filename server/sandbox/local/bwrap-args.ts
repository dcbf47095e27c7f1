/**
 * The bubblewrap argv of one local sandbox: a pure function of its inputs, so
 * that the walls it builds can be read (and unit-tested) in one place.
 */
import { SKILL_DEPS_MOUNT } from "../egress/skill-deps.ts";
import { PROGRAM_PATH } from "../program-env.ts";

/** Where the sandbox sees things; fixed paths the agent and programs rely on. */
export const SANDBOX_PATHS = {
  agentDir: "/opt/agent",
  agentEntry: "/opt/agent/agent.mjs",
  launcher: "/opt/agent/launcher",
  runDir: "/run/agent",
  socket: "/run/agent/agent.sock",
  /** Written by the server (host-files.ts writeTokenFile), deleted by the agent once read. */
  tokenFile: "/run/agent/token",
  /** The programs' syscall filter, for the launcher (a read-only copy bwrap makes from a pipe). */
  programsFilter: "/run/programs.seccomp",
  cgroupDir: "/run/cgroup",
  egressDir: "/run/egress",
  egressSocket: "/run/egress/proxy.sock",
  dataDir: "/mnt/data",
  workDir: "/tmp/.agent",
  home: "/tmp",
} as const;

export const SANDBOX_PATH_ENV = PROGRAM_PATH;

/**
 * Host files under /etc that toolchains read, bound read-only when present
 * (`--ro-bind-try`). Everything else of the host's /etc stays invisible:
 * passwd, group, hosts and nsswitch.conf are synthetic per sandbox.
 * - alternatives: the /usr/bin/java, cc, c++... symlinks point through it
 * - ld.so.*: the dynamic loader's cache and search path
 * - localtime: the host's time zone
 * - ssl, ca-certificates: certificates (for libraries that load them at start)
 * - R, php: Rscript's and php-cli's configuration
 * - fonts, matplotlibrc: plotting
 * - ldc2.conf: the D compiler's configuration (where Phobos and druntime are)
 * - gprofng.rc: binutils
 * - mime.types: content types (Python's mimetypes, PHP)
 * The JDK's and Python's folders carry versions in their names (java-17-openjdk,
 * python3.11): host-files.ts finds them by prefix at start-up.
 */
export const ETC_TOOLCHAIN_FILES: readonly string[] = [
  "/etc/alternatives",
  "/etc/ld.so.cache",
  "/etc/ld.so.conf",
  "/etc/ld.so.conf.d",
  "/etc/localtime",
  "/etc/ssl",
  "/etc/ca-certificates",
  "/etc/R",
  "/etc/php",
  "/etc/fonts",
  "/etc/matplotlibrc",
  "/etc/ldc2.conf",
  "/etc/gprofng.rc",
  "/etc/mime.types",
];

/** A top-level entry of the host root other than /usr: a merged-usr symlink, or a real directory on older layouts. */
export type RootEntry = { kind: "symlink"; path: string; target: string } | { kind: "dir"; path: string };

export interface BwrapArgsInput {
  uid: number;
  gid: number;
  tmpBytes: number;
  dataBytes: number;
  /** Host folder holding the agent (agent.mjs, launcher), bound read-only at /opt/agent. */
  agentDir: string;
  /** Whether the agent folder holds a launcher binary. */
  hasLauncher: boolean;
  /** Host folder bound read-write at /run/agent, where the agent creates its socket. */
  runDir: string;
  /** Host files of the synthetic /etc, by their path inside the sandbox (/etc/passwd...). */
  etcFiles: Readonly<Record<string, string>>;
  /** Host /etc paths to bind read-only when present. */
  etcBinds: readonly string[];
  /** /bin, /lib... as the host has them. */
  rootEntries: readonly RootEntry[];
  /** Host memory cgroup folder of this sandbox, bound read-only at /run/cgroup for OOM detection. */
  memoryCgroupDir?: string;
  /** JSON object: the base environment of programs the agent runs. */
  programEnv: string;
  /** bwrap >= 0.8: forbid nested user namespaces. */
  disableUserns: boolean;
  /**
   * Listen on this host address instead of the unix socket, keeping the host's
   * network namespace. Only the Kubernetes stand-in of the tests uses it (a
   * "pod" on 127.0.0.N); production sandboxes have no network.
   */
  tcpListen?: { host: string; port: number };
  /** ENABLE_SANDBOX_NETWORK: the host folder holding this sandbox's egress proxy socket, and the port the agent relays. */
  egress?: { socketDir: string; port: number };
  /** The tenant's package cache folder on the host, bound read-write at SKILL_DEPS_MOUNT. */
  skillDepsDir?: string;
  /** Install the syscall filter (seccomp.ts) that the launch passes on SECCOMP_FD. */
  seccomp?: boolean;
  /**
   * The programs' own filter comes on PROGRAMS_FILTER_FD, and the launcher runs
   * each program in a jail (launcher.c --jail) out of the agent's reach. Needs
   * `seccomp` (the agent's filter leaves unshare and mount to the launcher).
   */
  jail?: boolean;
}

/** The fd on which bwrap reads the compiled syscall filter (fd 3 carries its options). */
export const SECCOMP_FD = 4;
/** The fd on which bwrap reads the programs' filter, copied to SANDBOX_PATHS.programsFilter. */
export const PROGRAMS_FILTER_FD = 5;

/** bwrap options (everything before `--` and the command), passed with `--args FD`: no command line shows them. */
export function buildBwrapArgs(input: BwrapArgsInput): string[] {
  const args: string[] = [
    // New user, pid, net, ipc, uts and cgroup namespaces; the user namespace is required, not "try".
    "--unshare-all",
    "--unshare-user",
    ...(input.tcpListen ? ["--share-net"] : []),
    // A jail is a user namespace the launcher makes; programs cannot make one (their filter denies it).
    ...(input.disableUserns && !input.jail ? ["--disable-userns"] : []),
    "--die-with-parent",
    "--new-session",
    "--cap-drop",
    "ALL",
    "--hostname",
    "sandbox",
    "--uid",
    String(input.uid),
    "--gid",
    String(input.gid),
    "--ro-bind",
    "/usr",
    "/usr",
  ];
  for (const entry of input.rootEntries) {
    if (entry.kind === "symlink") args.push("--symlink", entry.target, entry.path);
    else args.push("--ro-bind", entry.path, entry.path);
  }
  args.push(
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    // POSIX shared memory and semaphores (Python multiprocessing): writable, bounded like /tmp.
    "--size",
    String(Math.floor(input.tmpBytes)),
    "--tmpfs",
    "/dev/shm",
    "--size",
    String(Math.floor(input.tmpBytes)),
    "--tmpfs",
    "/tmp",
    "--size",
    String(Math.floor(input.dataBytes)),
    "--tmpfs",
    SANDBOX_PATHS.dataDir,
  );
  for (const [inside, host] of Object.entries(input.etcFiles)) args.push("--ro-bind", host, inside);
  for (const path of input.etcBinds) args.push("--ro-bind-try", path, path);
  args.push("--ro-bind", input.agentDir, SANDBOX_PATHS.agentDir, "--bind", input.runDir, SANDBOX_PATHS.runDir);
  if (input.memoryCgroupDir) args.push("--ro-bind", input.memoryCgroupDir, SANDBOX_PATHS.cgroupDir);
  // Read-only: the sandbox may connect to its proxy socket, not replace it.
  if (input.egress) args.push("--ro-bind", input.egress.socketDir, SANDBOX_PATHS.egressDir);
  if (input.skillDepsDir) args.push("--bind", input.skillDepsDir, SKILL_DEPS_MOUNT);
  if (input.seccomp) args.push("--seccomp", String(SECCOMP_FD));
  if (input.jail) args.push("--ro-bind-data", String(PROGRAMS_FILTER_FD), SANDBOX_PATHS.programsFilter);
  // The root bwrap builds (a tmpfs holding the mount points) and its /dev (an unbounded tmpfs) become read-only:
  // only /tmp, /mnt/data, /dev/shm and /run/agent take writes.
  args.push("--remount-ro", "/dev", "--remount-ro", "/");

  const env: [string, string][] = [
    ["PATH", SANDBOX_PATH_ENV],
    ["HOME", SANDBOX_PATHS.home],
    ["LANG", "C.UTF-8"],
    ["AGENT_LISTEN", input.tcpListen ? `tcp:${input.tcpListen.host}:${input.tcpListen.port}` : `unix:${SANDBOX_PATHS.socket}`],
    ["AGENT_TOKEN_FILE", SANDBOX_PATHS.tokenFile],
    ["AGENT_DATA_DIR", SANDBOX_PATHS.dataDir],
    ["AGENT_WORK_DIR", SANDBOX_PATHS.workDir],
    ["AGENT_PROGRAM_ENV", input.programEnv],
  ];
  if (input.hasLauncher) env.push(["AGENT_LAUNCHER", SANDBOX_PATHS.launcher]);
  if (input.jail) env.push(["AGENT_PROGRAM_SECCOMP", SANDBOX_PATHS.programsFilter], ["AGENT_PROGRAM_JAIL", "1"]);
  if (input.memoryCgroupDir) env.push(["AGENT_CGROUP_DIR", SANDBOX_PATHS.cgroupDir]);
  if (input.egress) env.push(["AGENT_EGRESS_PORT", String(input.egress.port)], ["AGENT_EGRESS_SOCKET", SANDBOX_PATHS.egressSocket]);
  args.push("--clearenv");
  for (const [name, value] of env) args.push("--setenv", name, value);
  args.push("--chdir", SANDBOX_PATHS.dataDir);
  return args;
}

/** Serialize options for `bwrap --args FD`: NUL-terminated strings. */
export function encodeArgsFile(args: readonly string[]): Buffer {
  for (const arg of args) if (arg.includes("\0")) throw new Error("bwrap argument contains NUL");
  return Buffer.from(args.map((a) => `${a}\0`).join(""), "utf8");
}
