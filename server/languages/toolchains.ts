import { execFile } from "node:child_process";
import { LANGUAGES, type LanguageCode } from "../../protocol/index.ts";

export interface ToolchainInfo {
  code: LanguageCode;
  name: string;
  available: boolean;
  version?: string;
}

/** The PATH sandboxes see: host /usr only, never the server's own PATH (pyenv shims and the like). */
const SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin";

function firstLine(text: string): string {
  return (
    text
      .split("\n")
      .find((line) => line.trim() !== "")
      ?.trim() ?? ""
  );
}

function probe(command: readonly string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(command[0]!, command.slice(1), { env: { PATH: SANDBOX_PATH, LANG: "C.UTF-8" }, timeout: 10_000 }, (error, stdout, stderr) => {
      if (error && (error as NodeJS.ErrnoException).code === "ENOENT") return resolve(undefined);
      const line = firstLine(stdout) || firstLine(stderr);
      resolve(error && !line ? undefined : line);
    });
  });
}

/**
 * Which toolchains the local sandboxes can use: each language's version
 * command, run against the host /usr that sandboxes mount.
 */
export async function detectToolchains(): Promise<ToolchainInfo[]> {
  return Promise.all(
    [...LANGUAGES.values()].map(async (spec) => {
      const version = await probe(spec.version);
      return { code: spec.code, name: spec.name, available: version !== undefined, ...(version !== undefined ? { version } : {}) };
    }),
  );
}
