import { execFile } from "node:child_process";
import { LANGUAGES, type LanguageCode, type LanguageSpec } from "../../protocol/index.ts";

export interface ToolchainInfo {
  code: LanguageCode;
  name: string;
  available: boolean;
  /** The version number ("3.11.2"), or the whole first line when it holds none. */
  version?: string;
  /** The first line the version command printed ("Python 3.11.2"). */
  versionText?: string;
}

/** The PATH sandboxes see: host /usr only, never the server's own PATH (pyenv shims and the like). */
const SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin";
/** A JVM (javac -version) can take a few seconds on a busy machine. */
const PROBE_TIMEOUT_MS = 15_000;

function firstLine(text: string): string {
  return (
    text
      .split("\n")
      .find((line) => line.trim() !== "")
      ?.trim() ?? ""
  );
}

/**
 * The version number in a version command's first line: the first dotted
 * number, so "gcc (Debian 12.2.0-14) 12.2.0" gives 12.2.0, "go version
 * go1.19.8 linux/amd64" gives 1.19.8 and "v20.20.2" gives 20.20.2.
 */
export function parseVersion(line: string): string | undefined {
  return /(\d+\.\d+(?:\.\d+)?)/.exec(line)?.[1];
}

/**
 * The first line the command prints (stdout, else stderr), or undefined when
 * it is missing, fails or prints nothing: a broken toolchain is no toolchain.
 */
function probe(command: readonly string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(command[0]!, command.slice(1), { env: { PATH: SANDBOX_PATH, LANG: "C.UTF-8" }, timeout: PROBE_TIMEOUT_MS }, (error, stdout, stderr) => {
      const line = firstLine(stdout) || firstLine(stderr);
      resolve(error || !line ? undefined : line);
    });
  });
}

/**
 * Which toolchains the local sandboxes can use: each language's version
 * command, run against the host /usr that sandboxes mount. A toolchain that
 * is not installed is reported unavailable; it never throws.
 */
export async function detectToolchains(specs: Iterable<LanguageSpec> = LANGUAGES.values()): Promise<ToolchainInfo[]> {
  return Promise.all(
    [...specs].map(async (spec): Promise<ToolchainInfo> => {
      const line = await probe(spec.version);
      if (line === undefined) return { code: spec.code, name: spec.name, available: false };
      return { code: spec.code, name: spec.name, available: true, version: parseVersion(line) ?? line, versionText: line };
    }),
  );
}

/** EXECUTION_BACKEND=kubernetes: every language, as the sandbox image holds them (its versions are not probed from here). */
export function imageToolchains(specs: Iterable<LanguageSpec> = LANGUAGES.values()): ToolchainInfo[] {
  return [...specs].map((spec) => ({ code: spec.code, name: spec.name, available: true, versionText: "(sandbox image)" }));
}
