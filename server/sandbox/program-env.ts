/**
 * The programs' base environment in every sandbox, local or pod; each language
 * adds its own (protocol/languages.ts) and each sandbox its memory limit
 * (memoryLimitEnv). Caches and configuration go to /tmp: HOME is there, and
 * the rest of the sandbox is read-only.
 */
export const PROGRAM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export const PROGRAM_ENV: Readonly<Record<string, string>> = {
  PATH: PROGRAM_PATH,
  HOME: "/tmp",
  LANG: "C.UTF-8",
  TMPDIR: "/tmp",
  USER: "sandbox",
  LOGNAME: "sandbox",
  // matplotlib: no display, so the Agg backend (PNG files) from any language (a bash script running python3 too).
  MPLBACKEND: "Agg",
  MPLCONFIGDIR: "/tmp/.config/matplotlib",
};
