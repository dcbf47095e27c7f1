/**
 * How to start node so that uWebSockets.js loads on this machine.
 *
 * The uWS binaries need GLIBC_2.38; on an older glibc (Debian 12: 2.36) node must run
 * under a newer glibc loader that scripts/uws-glibc.sh fetches into .cache/glibc-uws.
 * `uwsNodePrefix()` returns the argv to put before the node binary:
 *   []                                               when require("uWebSockets.js") works directly;
 *   [<loader>, "--library-path", <dirs>]             otherwise.
 * The answer is computed once per process.
 *
 * Note: under the loader, a child's `process.execPath` is the loader, not node.
 */
import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const REPO_ROOT = resolve(import.meta.dirname, "..", "..");
const PROBE = ["-e", 'require("uWebSockets.js")'];

let cached: Promise<string[]> | undefined;

async function loads(argv: string[]): Promise<{ ok: true } | { ok: false; message: string }> {
  try {
    await run(argv[0]!, argv.slice(1), { cwd: REPO_ROOT, timeout: 30_000 });
    return { ok: true };
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? "";
    const lines = stderr.trim().split("\n").filter(Boolean);
    return { ok: false, message: lines.at(-1) ?? String(error) };
  }
}

async function compute(): Promise<string[]> {
  const direct = await loads([process.execPath, ...PROBE]);
  if (direct.ok) return [];
  const { stdout } = await run("bash", [resolve(REPO_ROOT, "scripts/uws-glibc.sh")], { cwd: REPO_ROOT, timeout: 300_000 });
  const last = stdout.trim().split("\n").filter(Boolean).at(-1) ?? "";
  const marker = " --library-path ";
  const at = last.indexOf(marker);
  if (at < 0) throw new Error(`uWebSockets.js does not load (${direct.message}) and scripts/uws-glibc.sh offered no loader`);
  const prefix = [last.slice(0, at), "--library-path", last.slice(at + marker.length)];
  const viaLoader = await loads([...prefix, process.execPath, ...PROBE]);
  if (!viaLoader.ok) throw new Error(`uWebSockets.js does not load even under ${prefix[0]}: ${viaLoader.message}`);
  return prefix;
}

/** The argv prefix to run node with so that uWebSockets.js loads ([] when it loads directly). */
export function uwsNodePrefix(): Promise<string[]> {
  cached ??= compute();
  return cached;
}

/** Command and arguments to run `node <args...>` with uWebSockets.js loadable. */
export async function uwsNodeCommand(args: readonly string[]): Promise<{ command: string; args: string[] }> {
  const argv = [...(await uwsNodePrefix()), process.execPath, ...args];
  return { command: argv[0]!, args: argv.slice(1) };
}
