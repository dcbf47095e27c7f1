/**
 * The local sandbox provider: one bubblewrap sandbox per session on this
 * machine, each running the sidecar-agent as an unprivileged uid behind new
 * namespaces, rlimits and (where the machine allows) cgroup limits.
 *
 * Launch chain: server -> /bin/bash (root: joins the cgroups, sets rlimits and
 * its OOM score) -exec-> setpriv (drops to the uid) -exec-> bwrap -> node agent.
 * The process the server spawned is bwrap itself, so --die-with-parent ties the
 * sandbox to the server's life.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, realpathSync } from "node:fs";
import { link, lstat, mkdir, rm } from "node:fs/promises";
import { basename, isAbsolute, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import type { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { type FolderLock, lockFolder } from "../../folder-lock.ts";
import { memoryLimitEnv } from "../../languages/memory-env.ts";
import { type EgressListener, type EgressProxy, egressProxyEnv } from "../egress/egress-proxy.ts";
import { type SkillDeps, skillDepsEnv, skillDepsPath, type TenantCache } from "../egress/skill-deps.ts";
import { PROGRAM_ENV, PROGRAM_PATH } from "../program-env.ts";
import type { AgentEndpoint, ProviderHealth, Sandbox, SandboxExit, SandboxProvider, SandboxSpec } from "../provider.ts";
import { STAGED_AGENT_DIR, stageAgent } from "./agent-stage.ts";
import { buildBwrapArgs, ETC_TOOLCHAIN_FILES, encodeArgsFile, PROGRAMS_FILTER_FD, type RootEntry, SANDBOX_PATHS, SECCOMP_FD } from "./bwrap-args.ts";
import { type CgroupLayout, CONTROLLERS, createSandboxCgroups, detectCgroups, killCgroups, removeCgroups, type SandboxCgroups } from "./cgroups.ts";
import { hostRootEntries, hostVersionedEtc, makeSandboxDir, newSandboxId, newToken, prepareBaseDir, SANDBOX_ID_LENGTH, writeTokenFile } from "./host-files.ts";
import { buildLaunchArgv, LAUNCH_ENV, OOM_PROBE_SCRIPT } from "./launch-script.ts";
import { removeOrphanSandboxes } from "./orphans.ts";
import { explainUnreachable } from "./reachability.ts";
import { compileSeccompFilter, type SeccompCompile } from "./seccomp.ts";

type LogFn = (obj: Record<string, unknown>, msg?: string) => void;
/** The part of a pino logger this provider uses. */
export interface ProviderLogger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
}

const silentLogger: ProviderLogger = { debug() {}, info() {}, warn() {}, error() {} };

export interface LocalProviderOptions {
  /** Host folder for per-sandbox folders (made 0711, root's). */
  baseDir: string;
  /** Host uid and gid sandboxed processes run as (not 0; no passwd entry needed). */
  uid: number;
  gid: number;
  /** Folder with the built agent: agent.mjs and (optionally) launcher. */
  agentDir: string;
  /** Node binary for the agent; must live under /usr, the only host tree sandboxes see. Default: process.execPath. */
  nodePath?: string;
  logger?: ProviderLogger;
  /** Default /sys/fs/cgroup. */
  cgroupRoot?: string;
  /** Base environment of the programs the agent runs (AGENT_PROGRAM_ENV). */
  agentProgramEnv?: Record<string, string>;
  /** How long create() waits for AGENT_READY. Default 15 s. */
  readyTimeoutMs?: number;
  /**
   * ENABLE_SANDBOX_NETWORK: each sandbox gets its own socket on this proxy, relayed by its agent
   * to 127.0.0.1:port inside; with skillDeps, a tenant's sandboxes also get its package cache.
   */
  egress?: { proxy: EgressProxy; port: number; skillDeps?: SkillDeps };
  /** Extra environment of the agent process itself (AGENT_PYTHON_PRELOAD=1 for the warm pool), set after bwrap's --clearenv. */
  agentEnv?: Record<string, string>;
}

/** Longest path a unix socket address holds (sun_path is 108 bytes with its NUL). */
const MAX_SOCKET_PATH = 107;
const STDERR_TAIL_LINES = 30;
/** The egress proxy's socket in a sandbox's host folder (the longest socket path there). */
const EGRESS_SOCKET = "egress/proxy.sock";
/** How often unused package caches are looked for (SKILL_DEPS_TTL_DAYS). */
const CACHE_SWEEP_INTERVAL_MS = 60 * 60_000;

interface InitState {
  /** The agent bundle's copy that sandboxes bind (agent-stage.ts). */
  agentDir: string;
  layout: CgroupLayout;
  rootEntries: RootEntry[];
  etcBinds: string[];
  bwrapVersion: string | null;
  disableUserns: boolean;
  setprivFound: boolean;
  /** Whether the launch shell may lower the agent's oom_score_adj to -500 (needs CAP_SYS_RESOURCE). */
  agentOomScoreLowered: boolean;
  /** The compiled syscall filter, or why there is none. */
  seccomp: SeccompCompile;
}

interface ProbeResult {
  ok: boolean;
  error?: string;
}

function run(file: string, args: string[], timeoutMs: number): Promise<{ ok: boolean; stdout: string; stderr: string; error?: string }> {
  return new Promise((done) => {
    execFile(file, args, { env: { ...LAUNCH_ENV }, timeout: timeoutMs, killSignal: "SIGKILL" }, (error, stdout, stderr) => {
      done({ ok: !error, stdout: String(stdout), stderr: String(stderr), error: error ? (String(stderr).trim() || error.message).slice(0, 500) : undefined });
    });
  });
}

function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  if (signal) return `killed by ${signal}`;
  return `exited with code ${code}`;
}

/** One local sandbox, as the provider hands it out. */
export class LocalSandbox implements Sandbox {
  readonly id: string;
  readonly token: string;
  readonly exited: Promise<SandboxExit>;
  /** Host folder of this sandbox. */
  readonly dir: string;
  /** Host pid of the bwrap process the server spawned (the shell exec'd into it). */
  readonly pid: number;
  /** cgroup folders of this sandbox on the host. */
  readonly cgroups: SandboxCgroups;
  #endpoint: AgentEndpoint;
  #child: ChildProcess;
  #hasExited = false;
  #destroyRequested = false;
  #destroying: Promise<void> | undefined;
  #onGone: (sandbox: LocalSandbox) => void;
  #logger: ProviderLogger;
  readonly #egressListener: EgressListener | undefined;
  readonly #tenantCache: TenantCache | undefined;
  readonly #stderrTail: string[] = [];

  constructor(init: {
    id: string;
    token: string;
    dir: string;
    tcpListen?: { host: string; port: number };
    child: ChildProcess;
    cgroups: SandboxCgroups;
    logger: ProviderLogger;
    egressListener?: EgressListener;
    /** The tenant's package cache, released once the sandbox is gone (its volume is unmounted with the last one). */
    tenantCache?: TenantCache;
    onGone: (sandbox: LocalSandbox) => void;
  }) {
    this.#egressListener = init.egressListener;
    this.#tenantCache = init.tenantCache;
    this.id = init.id;
    this.token = init.token;
    this.dir = init.dir;
    this.#child = init.child;
    this.pid = init.child.pid ?? -1;
    this.cgroups = init.cgroups;
    this.#logger = init.logger;
    this.#onGone = init.onGone;
    this.#endpoint = init.tcpListen ? { kind: "tcp", ...init.tcpListen } : { kind: "unix", path: join(init.dir, "run", "agent.sock") };
    this.exited = new Promise((resolveExit) => {
      const onExit = (code: number | null, signal: NodeJS.Signals | null, error?: Error) => {
        if (this.#hasExited) return;
        this.#hasExited = true;
        const reason = this.#destroyRequested ? "destroyed" : error ? `failed to start (${error.message})` : describeExit(code, signal);
        this.#logger.debug({ sandbox: this.id, code, signal }, `sandbox process ${reason}`);
        resolveExit({ reason });
        // Whoever ended it, clean up what it left on the host.
        if (!this.#destroyRequested) void this.destroy();
      };
      init.child.once("exit", onExit);
      // spawn failures (no /bin/bash) come as "error" without "exit"
      init.child.once("error", (error) => onExit(null, null, error));
    });
    const stderr = createInterface({ input: init.child.stderr! });
    stderr.on("line", (line) => {
      this.#stderrTail.push(line);
      if (this.#stderrTail.length > STDERR_TAIL_LINES) this.#stderrTail.shift();
      this.#logger.debug({ sandbox: this.id, stream: "stderr" }, line);
    });
  }

  get endpoint(): AgentEndpoint {
    return this.#endpoint;
  }

  get hasExited(): boolean {
    return this.#hasExited;
  }

  stderrTail(): string {
    return this.#stderrTail.join("\n");
  }

  /** Resolve on the agent's AGENT_READY line; reject on exit, spawn error or timeout. */
  waitReady(timeoutMs: number): Promise<void> {
    return new Promise((resolveReady, reject) => {
      const stdout = createInterface({ input: this.#child.stdout! });
      let settled = false;
      const finish = (error?: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (error) reject(error);
        else resolveReady();
      };
      const timer = setTimeout(() => finish(new Error(`agent not ready within ${timeoutMs} ms`)), timeoutMs);
      stdout.on("line", (line) => {
        if (!settled && line.trim() === "AGENT_READY") finish();
        else this.#logger.debug({ sandbox: this.id, stream: "stdout" }, line);
      });
      this.#child.once("error", (error) => finish(new Error(`cannot start the sandbox: ${error.message}`)));
      void this.exited.then(({ reason }) => finish(new Error(`sandbox ${reason} before its agent was ready`)));
    });
  }

  /**
   * Give the server its own name for the agent's socket: a hard link in the
   * sandbox's host folder, outside the folder the sandbox can write. Programs
   * run as the agent's uid and could later swap run/agent.sock for a symlink to
   * a host socket; the link pins the inode the agent bound (no user code has
   * run yet when this is called).
   */
  async pinEndpoint(): Promise<void> {
    if (this.#endpoint.kind === "tcp") return;
    const bound = join(this.dir, "run", "agent.sock");
    const pinned = join(this.dir, "agent.sock");
    if (!(await lstat(bound)).isSocket()) throw new Error(`${bound} is not a socket`);
    await link(bound, pinned);
    if (!(await lstat(pinned)).isSocket()) throw new Error(`${pinned} is not a socket`);
    this.#endpoint = { kind: "unix", path: pinned };
  }

  destroy(): Promise<void> {
    if (!this.#destroying) {
      if (!this.#hasExited) this.#destroyRequested = true;
      this.#destroying = this.#teardown();
    }
    return this.#destroying;
  }

  async #teardown(): Promise<void> {
    try {
      if (!this.#hasExited) this.#child.kill("SIGKILL");
      await this.#egressListener?.close();
      await killCgroups(this.cgroups.dirs, 5_000);
      await Promise.race([this.exited, sleep(5_000, undefined, { ref: false })]);
      const left = await removeCgroups(this.cgroups.dirs, 5_000);
      if (left.length > 0) this.#logger.warn({ sandbox: this.id, cgroups: left }, "sandbox cgroups could not be removed");
      await rm(this.dir, { recursive: true, force: true, maxRetries: 3 });
    } catch (error) {
      this.#logger.warn({ sandbox: this.id, err: error }, "sandbox cleanup failed");
    } finally {
      await this.#tenantCache?.release().catch(() => {}); // logs its own failure
      this.#onGone(this);
    }
  }
}

/**
 * The node binary running this server. Started through a dynamic loader (as
 * the uWebSockets.js glibc shim does), `process.execPath` is the loader, and
 * argv0 names the node binary.
 */
function hostNodeBinary(): string {
  if (basename(process.execPath).startsWith("ld-linux") && isAbsolute(process.argv0)) return process.argv0;
  return process.execPath;
}

export class LocalSandboxProvider implements SandboxProvider {
  readonly kind = "local" as const;
  readonly #options: Required<Omit<LocalProviderOptions, "agentProgramEnv" | "logger" | "agentEnv" | "egress">>;
  readonly #egress: LocalProviderOptions["egress"];
  readonly #agentEnv: Readonly<Record<string, string>>;
  readonly #programEnv: Readonly<Record<string, string>>;
  readonly #logger: ProviderLogger;
  readonly #sandboxes = new Map<string, LocalSandbox>();
  /** Ids whose folder or cgroups exist but whose sandbox is not in #sandboxes yet (spared by removeOrphans). */
  readonly #pending = new Set<string>();
  /** create() calls under way: shutdown() waits for them. */
  readonly #creating = new Set<Promise<LocalSandbox>>();
  readonly #warnings = new Set<string>();
  #init: Promise<InitState> | undefined;
  #probe: Promise<ProbeResult> | undefined;
  #claim: Promise<void> | undefined;
  /** This server's hold on the base folder, from claim() to shutdown(). */
  #lock: FolderLock | undefined;

  constructor(options: LocalProviderOptions) {
    const nodePath = options.nodePath ?? hostNodeBinary();
    for (const [name, id] of [
      ["uid", options.uid],
      ["gid", options.gid],
    ] as const) {
      if (!Number.isInteger(id) || id <= 0 || id > 0xfffffffe) throw new Error(`local sandbox ${name} must be a positive integer other than 0 (got ${id})`);
    }
    if (!isAbsolute(options.baseDir)) throw new Error(`local sandbox baseDir must be absolute (got ${options.baseDir})`);
    if (!isAbsolute(options.agentDir)) throw new Error(`local sandbox agentDir must be absolute (got ${options.agentDir})`);
    let realNode: string;
    try {
      realNode = realpathSync(nodePath);
    } catch {
      throw new Error(`node binary not found: ${nodePath}`);
    }
    if (!resolve(nodePath).startsWith("/usr/") || !realNode.startsWith("/usr/")) {
      throw new Error(`the node binary for sandboxes must live under /usr (sandboxes see only /usr of the host); got ${nodePath} -> ${realNode}`);
    }
    const baseDir = resolve(options.baseDir);
    const socketPath = join(baseDir, "x".repeat(SANDBOX_ID_LENGTH), EGRESS_SOCKET);
    if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) {
      throw new Error(
        `local sandbox baseDir is too long: the agent and egress socket paths (${Buffer.byteLength(socketPath)} bytes) must fit in ${MAX_SOCKET_PATH} bytes`,
      );
    }
    this.#options = {
      baseDir,
      uid: options.uid,
      gid: options.gid,
      agentDir: resolve(options.agentDir),
      nodePath: resolve(nodePath),
      cgroupRoot: options.cgroupRoot ?? "/sys/fs/cgroup",
      readyTimeoutMs: options.readyTimeoutMs ?? 15_000,
    };
    this.#programEnv = options.agentProgramEnv ?? PROGRAM_ENV;
    this.#agentEnv = options.agentEnv ?? {};
    this.#egress = options.egress;
    this.#logger = options.logger ?? silentLogger;
  }

  /** Sandboxes alive right now. */
  get size(): number {
    return this.#sandboxes.size;
  }

  /** Every local sandbox sees the host's toolchains: one class. */
  sandboxClass(): string {
    return "default";
  }

  #initialize(): Promise<InitState> {
    this.#init ??= (async () => {
      await prepareBaseDir(this.#options.baseDir);
      // Without a build there is nothing to copy: create() and health() say so.
      const source = this.#options.agentDir;
      const agentDir = existsSync(join(source, "agent.mjs")) ? await stageAgent(source, this.#options.baseDir) : source;
      const layout = await detectCgroups(this.#options.cgroupRoot);
      for (const warning of layout.warnings) this.#warnings.add(warning);
      const version = await run("bwrap", ["--version"], 5_000);
      const bwrapVersion = version.ok ? version.stdout.trim() : null;
      const [major = 0, minor = 0] = (bwrapVersion?.match(/(\d+)\.(\d+)/)?.slice(1) ?? []).map(Number);
      const setpriv = await run("setpriv", ["--version"], 5_000);
      // Not a wall or a limit, so a detail rather than a warning: programs (+500) stay the preferred OOM victims either way.
      const oom = await run("/bin/bash", ["-c", OOM_PROBE_SCRIPT], 5_000);
      const seccomp = await compileSeccompFilter();
      if (!seccomp.ok) this.#warnings.add(`${seccomp.error}: sandboxes run without a syscall filter`);
      const staleCaches = (await this.#egress?.skillDeps?.start(CACHE_SWEEP_INTERVAL_MS)) ?? 0;
      if (staleCaches > 0) this.#logger.info({ count: staleCaches }, "unmounted package caches left by an earlier run");
      return {
        agentDir,
        layout,
        rootEntries: hostRootEntries(),
        etcBinds: [...ETC_TOOLCHAIN_FILES, ...hostVersionedEtc()],
        bwrapVersion,
        // --disable-userns arrived in bubblewrap 0.8.0.
        disableUserns: major > 0 || minor >= 8,
        setprivFound: setpriv.ok,
        agentOomScoreLowered: oom.ok,
        seccomp,
      };
    })();
    // A failure (no base folder yet...) is not cached: the next call tries again.
    this.#init.catch(() => {
      this.#init = undefined;
    });
    return this.#init;
  }

  /**
   * `host` is for the Kubernetes stand-in of the tests only: a given token, the
   * agent on a host TCP address (the sandbox keeps the host's network), and the
   * agent environment its pod spec names.
   */
  create(spec: SandboxSpec, host?: { token: string; tcpListen: { host: string; port: number }; env?: Record<string, string> }): Promise<LocalSandbox> {
    const creating = this.#create(spec, host);
    this.#creating.add(creating);
    void creating.catch(() => {}).finally(() => this.#creating.delete(creating));
    return creating;
  }

  async #create(spec: SandboxSpec, host?: { token: string; tcpListen: { host: string; port: number }; env?: Record<string, string> }): Promise<LocalSandbox> {
    const init = await this.#initialize();
    const { uid, gid, baseDir, nodePath } = this.#options;
    const { agentDir } = init;
    if (!existsSync(join(agentDir, "agent.mjs"))) throw new Error(`sandbox agent not found: ${join(agentDir, "agent.mjs")} (run the build)`);
    const id = newSandboxId();
    const token = host?.token ?? newToken();
    this.#pending.add(id);
    let hostDir: Awaited<ReturnType<typeof makeSandboxDir>>;
    let cgroups: SandboxCgroups;
    try {
      hostDir = await makeSandboxDir(baseDir, id, uid, gid);
      await writeTokenFile(hostDir.runDir, token, uid, gid);
      cgroups = await createSandboxCgroups(init.layout, id, spec.limits);
    } catch (error) {
      await rm(join(baseDir, id), { recursive: true, force: true });
      this.#pending.delete(id);
      throw error;
    }
    for (const warning of cgroups.warnings) this.#warnings.add(warning);

    // The Kubernetes stand-in's "pods" share the host network: no relay port of their own, so no egress.
    const egress = host ? undefined : this.#egress;
    let egressListener: EgressListener | undefined;
    let tenantCache: TenantCache | undefined;
    const programEnv: Record<string, string> = { ...this.#programEnv, ...memoryLimitEnv(spec.limits.memoryBytes) };
    if (egress) {
      try {
        const socketDir = join(hostDir.dir, "egress");
        await mkdir(socketDir, { mode: 0o755 });
        egressListener = await egress.proxy.listen(join(hostDir.dir, EGRESS_SOCKET), id);
        if (egress.skillDeps && spec.tenant) tenantCache = await egress.skillDeps.acquire(spec.tenant);
      } catch (error) {
        await egressListener?.close();
        await removeCgroups(cgroups.dirs, 5_000);
        await rm(hostDir.dir, { recursive: true, force: true });
        this.#pending.delete(id);
        throw error;
      }
      Object.assign(programEnv, egressProxyEnv(`http://127.0.0.1:${egress.port}`));
      if (tenantCache) Object.assign(programEnv, skillDepsEnv(), { PATH: skillDepsPath(programEnv.PATH ?? PROGRAM_PATH) });
    }

    const bwrapArgs = buildBwrapArgs({
      uid,
      gid,
      tmpBytes: spec.limits.tmpBytes,
      dataBytes: spec.limits.dataBytes,
      agentDir,
      hasLauncher: existsSync(join(agentDir, "launcher")),
      runDir: hostDir.runDir,
      etcFiles: hostDir.etcFiles,
      etcBinds: init.etcBinds,
      rootEntries: init.rootEntries,
      memoryCgroupDir: cgroups.memoryDir,
      programEnv: JSON.stringify(programEnv),
      ...(egress ? { egress: { socketDir: join(hostDir.dir, "egress"), port: egress.port } } : {}),
      ...(tenantCache ? { skillDepsDir: tenantCache.dir } : {}),
      disableUserns: init.disableUserns,
      ...(host ? { tcpListen: host.tcpListen } : {}),
      seccomp: init.seccomp.ok,
      jail: init.seccomp.ok,
    });
    for (const [name, value] of Object.entries({ ...this.#agentEnv, ...host?.env })) bwrapArgs.push("--setenv", name, value);
    const argv = buildLaunchArgv({
      uid,
      gid,
      openFiles: spec.limits.openFiles,
      fileSizeBytes: spec.limits.fileSizeBytes,
      nproc: cgroups.enforced.pids ? undefined : spec.limits.pids,
      nodePath,
      entry: SANDBOX_PATHS.agentEntry,
      cgroupProcsFiles: cgroups.procsFiles,
    });
    // fd 3: bwrap's options; fd 4: the agent's syscall filter; fd 5: the programs' (pipes, read by bwrap before it runs the agent).
    const filters = init.seccomp.ok ? [init.seccomp.agentFilter, init.seccomp.programsFilter] : [];
    const child = spawn("/bin/bash", argv, {
      env: { ...LAUNCH_ENV },
      cwd: "/",
      stdio: ["ignore", "pipe", "pipe", "pipe", ...filters.map(() => "pipe" as const)],
    });
    filters.forEach((filter, i) => {
      const filterPipe = child.stdio[[SECCOMP_FD, PROGRAMS_FILTER_FD][i]!] as Writable;
      filterPipe.on("error", () => {}); // the shell failed first: "exit" reports it
      filterPipe.end(filter);
    });
    const argsPipe = child.stdio[3] as Writable;
    argsPipe.on("error", () => {}); // the shell failed before bwrap read its options: "exit" reports it
    argsPipe.end(encodeArgsFile(bwrapArgs));

    const sandbox = new LocalSandbox({
      id,
      token,
      dir: hostDir.dir,
      ...(host ? { tcpListen: host.tcpListen } : {}),
      child,
      cgroups,
      logger: this.#logger,
      ...(egressListener ? { egressListener } : {}),
      ...(tenantCache ? { tenantCache } : {}),
      onGone: (gone) => {
        if (this.#sandboxes.get(gone.id) === gone) this.#sandboxes.delete(gone.id);
      },
    });
    this.#sandboxes.set(id, sandbox);
    this.#pending.delete(id);
    this.#logger.debug({ sandbox: id, session: spec.sessionId, pid: sandbox.pid, enforced: cgroups.enforced }, "sandbox starting");
    try {
      await sandbox.waitReady(this.#options.readyTimeoutMs);
      await sandbox.pinEndpoint();
    } catch (error) {
      await sandbox.destroy();
      const tail = sandbox.stderrTail();
      // bwrap names a path below the folder that is at fault: name that folder and its mode.
      const why = tail.includes("Permission denied") ? explainUnreachable(this.#options.baseDir, this.#options.uid, this.#options.gid) : "";
      throw new Error(`sandbox ${id} failed to start: ${(error as Error).message}${tail ? `\n${tail}` : ""}${why ? `\n${why}` : ""}`);
    }
    this.#logger.info({ sandbox: id, session: spec.sessionId }, "sandbox ready");
    return sandbox;
  }

  /**
   * Take the base folder (and the package caches' root) for this server, before anything in them
   * is swept: a second server there would kill this one's sandboxes. Throws FolderInUseError.
   */
  claim(): Promise<void> {
    this.#claim ??= (async () => {
      const skillDeps = this.#egress?.skillDeps;
      // The caches' root first: refused there, this server has claimed nothing of its own yet.
      await skillDeps?.claim();
      try {
        await prepareBaseDir(this.#options.baseDir);
        this.#lock = await lockFolder(this.#options.baseDir, "SANDBOX_BASE_DIR");
      } catch (error) {
        await skillDeps?.close();
        throw error;
      }
    })();
    this.#claim.catch(() => {
      this.#claim = undefined;
    });
    return this.#claim;
  }

  async removeOrphans(): Promise<number> {
    await this.claim();
    const init = await this.#initialize();
    const report = await removeOrphanSandboxes(init.layout, this.#options.baseDir, new Set([...this.#sandboxes.keys(), ...this.#pending]));
    for (const failure of report.failures) this.#logger.warn({ failure }, "orphan sandbox cleanup incomplete");
    if (report.removed > 0) this.#logger.info({ count: report.removed }, "removed orphan sandboxes");
    return report.removed;
  }

  /** Can bwrap make a sandbox as the uid here? Run once; the answer is cached. */
  #probeSandbox(init: InitState): Promise<ProbeResult> {
    this.#probe ??= (async () => {
      if (!init.bwrapVersion) return { ok: false, error: "bubblewrap (bwrap) is not installed or does not run" };
      if (!init.setprivFound) return { ok: false, error: "setpriv (util-linux) is not installed" };
      const { uid, gid } = this.#options;
      const args = [
        `--reuid=${uid}`,
        `--regid=${gid}`,
        "--clear-groups",
        "--inh-caps=-all",
        "--no-new-privs",
        "bwrap",
        "--unshare-all",
        "--unshare-user",
        ...(init.disableUserns ? ["--disable-userns"] : []),
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--uid",
        String(uid),
        "--gid",
        String(gid),
        "--ro-bind",
        "/usr",
        "/usr",
        ...init.rootEntries.flatMap((e) => (e.kind === "symlink" ? ["--symlink", e.target, e.path] : ["--ro-bind", e.path, e.path])),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--",
        "/usr/bin/true",
      ];
      const result = await run("setpriv", args, 10_000);
      return result.ok ? { ok: true } : { ok: false, error: `bubblewrap cannot create a sandbox as uid ${uid}: ${result.error}` };
    })();
    return this.#probe;
  }

  async health(): Promise<ProviderHealth> {
    const init = await this.#initialize();
    const probe = await this.#probeSandbox(init);
    const warnings = [...this.#warnings];
    let status: ProviderHealth["status"] = "ok";
    if (!probe.ok) {
      status = "down";
      warnings.unshift(probe.error ?? "sandboxes cannot be created");
    }
    const agentEntry = join(this.#options.agentDir, "agent.mjs");
    if (!existsSync(agentEntry)) {
      status = "down";
      warnings.unshift(`sandbox agent not found: ${agentEntry}`);
    }
    if (status === "ok" && warnings.length > 0) status = "degraded";
    const enforced = CONTROLLERS.filter((c) => init.layout.parents[c] !== undefined);
    return {
      status,
      details: {
        bwrap: init.bwrapVersion,
        userNamespaces: probe.ok,
        nestedUserNamespaces: init.seccomp.ok ? "the launcher's jail only (programs' filter denies them)" : init.disableUserns ? "disabled" : "allowed",
        programJail: init.seccomp.ok
          ? "own user, pid and mount namespaces per program (the agent out of reach)"
          : "off (needs the syscall filter): programs share the agent's uid and pid namespace",
        cgroupVersion: init.layout.version,
        cgroupControllers: enforced,
        agentOomScoreAdj: init.agentOomScoreLowered ? -500 : "unchanged (no CAP_SYS_RESOURCE)",
        seccomp: init.seccomp.ok ? `${init.seccomp.denied} syscalls denied` : "off",
        egress: this.#egress
          ? {
              proxy: `127.0.0.1:${this.#egress.port} in each sandbox`,
              allowlist: this.#egress.proxy.allowlist.describe(),
              packageCaches: this.#egress.skillDeps
                ? {
                    root: this.#egress.skillDeps.root,
                    maxBytes: this.#egress.skillDeps.maxBytes,
                    maxAgeDays: this.#egress.skillDeps.maxAgeMs / 86_400_000,
                    inUse: this.#egress.skillDeps.inUse,
                  }
                : "off",
              tunnels: this.#egress.proxy.counts.tunnels,
              refused: this.#egress.proxy.counts.refused,
            }
          : "off (no network)",
        uid: this.#options.uid,
        gid: this.#options.gid,
        sandboxes: this.#sandboxes.size,
        baseDir: this.#options.baseDir,
        agentDir: this.#options.agentDir,
        agentCopy: init.agentDir,
        launcher: existsSync(join(init.agentDir, "launcher")),
        node: this.#options.nodePath,
      },
      warnings,
    };
  }

  async shutdown(): Promise<void> {
    // A sandbox still starting (the start-up check's, a pool's) would come after the others are destroyed and stay behind.
    while (this.#creating.size > 0) await Promise.allSettled([...this.#creating]);
    await Promise.all([...this.#sandboxes.values()].map((sandbox) => sandbox.destroy()));
    // The agent's copy goes with the last sandbox that used it (the next start makes a new one); only the folder's owner
    // removes it: a server refused the folder must not pull it from under the sandboxes of the one that holds it.
    if (this.#lock) await rm(join(this.#options.baseDir, STAGED_AGENT_DIR), { recursive: true, force: true });
    await this.#egress?.skillDeps?.close();
    await this.#lock?.release();
    this.#lock = undefined;
    this.#claim = undefined;
  }
}
