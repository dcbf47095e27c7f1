/**
 * The sidecar-agent's entry: read the environment, start the agent, print
 * AGENT_READY once it listens. See agent-server.ts for what it does.
 *
 *   AGENT_LISTEN       unix:/run/agent/agent.sock (default) or tcp:HOST:PORT
 *   AGENT_TOKEN        the shared secret (removed from the environment at once), or:
 *   AGENT_TOKEN_FILE   a file holding it, deleted once read where it can be (a local sandbox's run folder;
 *                      Kubernetes: the pod's own Secret, mounted read-only)
 *   AGENT_DATA_DIR     programs' working directory (default /mnt/data)
 *   AGENT_WORK_DIR     per-exec build folders (default /tmp/.agent)
 *   AGENT_LAUNCHER     launcher binary (default: `launcher` next to this bundle)
 *   AGENT_CGROUP_DIR   memory cgroup folder, to detect OOM kills (optional)
 *   AGENT_PROGRAM_ENV  JSON object: the whole environment of programs
 *   AGENT_PROGRAM_SECCOMP  the programs' syscall filter (BPF), installed by the launcher (optional)
 *   AGENT_PROGRAM_JAIL 1: run each program in the launcher's jail (program-jail.ts), when the sandbox allows it
 *   AGENT_EGRESS_PORT, AGENT_EGRESS_SOCKET  relay 127.0.0.1:PORT to the server's egress proxy on SOCKET
 *                      (both or neither; egress-relay.ts)
 *   AGENT_PYTHON_PRELOAD  comma-separated Python modules (e.g. numpy,pandas,matplotlib.pyplot), or 1/true
 *                      for DEFAULT_PYTHON_PRELOAD (0/false/empty: none): start the persistent interpreter
 *                      now and import them (a `warm` frame says when done)
 */
import { readFileSync, unlinkSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { DEFAULT_PROGRAM_ENV, parseListen, startAgent } from "./agent-server.ts";
import { type EgressRelay, startEgressRelay } from "./egress-relay.ts";

function fail(message: string): never {
  process.stderr.write(`agent: ${message}\n`);
  process.exit(2);
}

/** What AGENT_PYTHON_PRELOAD=1 imports: the libraries most analysis code starts with. */
export const DEFAULT_PYTHON_PRELOAD: readonly string[] = ["numpy", "pandas", "matplotlib.pyplot"];

export function pythonPreload(text: string | undefined): string[] {
  const value = (text ?? "").trim();
  if (/^(1|true|yes|on)$/i.test(value)) return [...DEFAULT_PYTHON_PRELOAD];
  if (/^(0|false|no|off)?$/i.test(value)) return [];
  return value
    .split(",")
    .map((name) => name.trim())
    .filter(Boolean);
}

function programEnv(text: string | undefined): Record<string, string> {
  if (!text) return { ...DEFAULT_PROGRAM_ENV };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    fail("AGENT_PROGRAM_ENV is not valid JSON");
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) fail("AGENT_PROGRAM_ENV must be a JSON object");
  const env: Record<string, string> = {};
  for (const [key, val] of Object.entries(value as Record<string, unknown>)) {
    if (typeof val !== "string") fail(`AGENT_PROGRAM_ENV.${key} must be a string`);
    env[key] = val;
  }
  return env;
}

/** The token from AGENT_TOKEN or AGENT_TOKEN_FILE; both names leave the environment programs could inherit. */
function readToken(): string {
  const inline = process.env.AGENT_TOKEN;
  const file = process.env.AGENT_TOKEN_FILE;
  delete process.env.AGENT_TOKEN;
  delete process.env.AGENT_TOKEN_FILE;
  if (inline) return inline;
  if (!file) fail("AGENT_TOKEN or AGENT_TOKEN_FILE is required");
  let token: string;
  try {
    token = readFileSync(file, "utf8").trim();
  } catch (error) {
    fail(`AGENT_TOKEN_FILE: cannot read ${file}: ${(error as Error).message}`);
  }
  // Gone before any program runs (a local sandbox's run folder); a read-only Secret mount stays, which is fine.
  try {
    unlinkSync(file);
  } catch {}
  if (!token) fail(`AGENT_TOKEN_FILE: ${file} is empty`);
  return token;
}

async function main(): Promise<void> {
  const token = readToken();

  let listen: ReturnType<typeof parseListen>;
  try {
    listen = parseListen(process.env.AGENT_LISTEN || "unix:/run/agent/agent.sock");
  } catch (error) {
    fail((error as Error).message);
  }
  const agent = await startAgent({
    listen,
    token,
    dataDir: process.env.AGENT_DATA_DIR || "/mnt/data",
    workDir: process.env.AGENT_WORK_DIR || "/tmp/.agent",
    launcher: process.env.AGENT_LAUNCHER || fileURLToPath(new URL("./launcher", import.meta.url)),
    cgroupDir: process.env.AGENT_CGROUP_DIR || null,
    programFilter: process.env.AGENT_PROGRAM_SECCOMP || null,
    jail: process.env.AGENT_PROGRAM_JAIL === "1",
    programEnv: programEnv(process.env.AGENT_PROGRAM_ENV),
    pythonPreload: pythonPreload(process.env.AGENT_PYTHON_PRELOAD),
  });

  let relay: EgressRelay | undefined;
  const egressPort = process.env.AGENT_EGRESS_PORT;
  const egressSocket = process.env.AGENT_EGRESS_SOCKET;
  if (egressPort || egressSocket) {
    const port = Number(egressPort);
    if (!egressSocket || !Number.isInteger(port) || port < 1 || port > 65535) fail("AGENT_EGRESS_PORT (1-65535) and AGENT_EGRESS_SOCKET go together");
    try {
      relay = await startEgressRelay(port, egressSocket);
    } catch (error) {
      fail(`cannot listen on 127.0.0.1:${port} for the egress relay: ${(error as Error).message}`);
    }
  }

  // Stay up on a stray bug: a dead agent takes the whole sandbox with it.
  process.on("uncaughtException", (error) => process.stderr.write(`agent: uncaught: ${error.stack ?? error.message}\n`));
  process.on("unhandledRejection", (error) => process.stderr.write(`agent: unhandled rejection: ${String(error)}\n`));

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    Promise.all([agent.close(), relay?.close()]).finally(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);

  process.stdout.write("AGENT_READY\n");
}

main().catch((error: Error) => fail(`cannot start: ${error.message}`));
