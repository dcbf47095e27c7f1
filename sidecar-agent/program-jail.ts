/**
 * The launcher's options for every program: the programs' syscall filter and
 * the jail (launcher.c --jail) that puts each program out of the agent's reach.
 * The jail needs user namespaces the sandbox may not allow (a pod under its
 * runtime's default seccomp profile, say): one launch of /usr/bin/true tells,
 * once, at the agent's start, and without it programs still get the filter.
 */
import { spawnSync } from "node:child_process";

export interface JailRequest {
  /** The launcher binary; without one there are no options to give. */
  launcher: string | null;
  /** The programs' BPF filter (launcher --seccomp). */
  programFilter?: string | null;
  /** Jail each program (launcher --jail). */
  jail?: boolean;
  log: (line: string) => void;
}

export interface LauncherSetup {
  /** Options the launcher takes before its report fd. */
  options: readonly string[];
  /** Whether programs run in the jail. */
  jailed: boolean;
}

/** How long the one trial launch may take. */
const TRIAL_TIMEOUT_MS = 5_000;

export function setUpLauncher(request: JailRequest): LauncherSetup {
  if (!request.launcher) return { options: [], jailed: false };
  const filter = request.programFilter ? ["--seccomp", request.programFilter] : [];
  if (!request.jail) return { options: filter, jailed: false };
  const jailed = [...filter, "--jail"];
  const trial = spawnSync(request.launcher, [...jailed, "3", "--", "/usr/bin/true"], {
    stdio: ["ignore", "ignore", "pipe", "ignore"],
    timeout: TRIAL_TIMEOUT_MS,
    encoding: "utf8",
  });
  if (trial.status === 0) return { options: jailed, jailed: true };
  const why = trial.error?.message ?? (trial.stderr.trim() || `exit ${trial.status ?? trial.signal}`);
  request.log(`programs run without a jail (they share the agent's uid and pid namespace): ${why}`);
  return { options: filter, jailed: false };
}
