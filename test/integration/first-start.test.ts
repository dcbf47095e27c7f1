import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LANGUAGE_CODES, type LanguageCode } from "../../protocol/index.ts";
import { HELLO_WORLD, HELLO_WORLD_STDOUT } from "../fixtures/hello-world.ts";
import { REPO_ROOT } from "../helpers/repo-root.ts";
import { TestClient } from "../helpers/ws-client.ts";

/**
 * The README's first command, `bash scripts/up.sh`, as a person runs it on a
 * machine that has none of the server's folders yet: the default
 * configuration and API key, the data folders laid out like the defaults but
 * under a fresh root, so the server makes every folder itself (with the modes
 * its users need: the sandbox uid must reach SANDBOX_BASE_DIR). Only the
 * package installs are skipped (UP_SKIP_SETUP=1): the suite's setup ran them.
 */

/** The README's default key: no API_KEY is set. */
const README_API_KEY = "test-api-key";
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;

interface UpServer {
  url: string;
  wsUrl: string;
  logs: string[];
  stop(): Promise<void>;
}

async function freeLoopbackPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const address = probe.address();
  await new Promise((resolve) => probe.close(resolve));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

/** The default data paths (server/config/variables.ts), moved under `root`. */
function dataPaths(root: string) {
  const lib = join(root, "var/lib/code-interpreter");
  return { lib, storage: join(lib, "files"), sandboxes: join(lib, "sandboxes"), skillDeps: join(root, "opt/skill-deps") };
}

/** Whether `promise` settled within `ms`. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true as const), late]);
  } finally {
    clearTimeout(timer);
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  if (await settlesWithin(exited, STOP_TIMEOUT_MS)) return;
  child.kill("SIGKILL");
  if (!(await settlesWithin(exited, STOP_TIMEOUT_MS))) throw new Error(`server ${child.pid} did not exit after SIGKILL`);
}

/** Run `bash scripts/up.sh` and wait until it listens and GET /ready answers 200. */
async function up(root: string): Promise<UpServer> {
  const port = await freeLoopbackPort();
  const paths = dataPaths(root);
  const child = spawn("bash", ["scripts/up.sh"], {
    cwd: REPO_ROOT,
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: process.env.HOME ?? "/root",
      UP_SKIP_SETUP: "1",
      API_HOST: "127.0.0.1",
      API_PORT: String(port),
      FILE_STORAGE_PATH: paths.storage,
      SANDBOX_BASE_DIR: paths.sandboxes,
      SKILL_DEPS_PATH: paths.skillDeps,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: string[] = [];
  const url = `http://127.0.0.1:${port}`;
  const server: UpServer = { url, wsUrl: `ws://127.0.0.1:${port}/ws`, logs, stop: () => stopChild(child) };
  const listening = new Promise<void>((resolve, reject) => {
    let buffered = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const line of lines) {
        logs.push(line);
        // The default LOG_FORMAT (json): one object a line.
        if (line.includes('"msg":"listening"') && (JSON.parse(line) as { port?: number }).port === port) resolve();
      }
    });
    child.stderr!.on("data", (chunk: Buffer) => logs.push(chunk.toString()));
    child.once("exit", (code, signal) => reject(new Error(`scripts/up.sh exited (${code ?? signal}):\n${logs.join("\n")}`)));
  });
  const deadline = Date.now() + START_TIMEOUT_MS;
  try {
    if (!(await settlesWithin(listening, START_TIMEOUT_MS))) throw new Error(`no "listening" line in ${START_TIMEOUT_MS} ms:\n${logs.join("\n")}`);
    await listening;
    for (;;) {
      const ready = await fetch(`${url}/ready`).catch(() => undefined);
      if (ready?.status === 200) break;
      if (Date.now() > deadline) throw new Error(`GET /ready: ${ready?.status} ${await ready?.text()}\n${logs.join("\n")}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  } catch (error) {
    await server.stop();
    throw error;
  }
  return server;
}

const modeOf = (path: string) => `0${(statSync(path).mode & 0o777).toString(8)}`;

async function exec(server: UpServer, lang: string, code: string) {
  const reply = await fetch(`${server.url}/exec`, {
    method: "POST",
    headers: { "x-api-key": README_API_KEY, "content-type": "application/json" },
    body: JSON.stringify({ lang, code }),
  });
  return { status: reply.status, body: (await reply.json()) as Record<string, unknown> };
}

/** The server's last lines, for a failure's message: why a sandbox did not start is only in its log. */
const logTail = (server: UpServer) => server.logs.slice(-20).join("\n");

/**
 * The languages the server offers. The README's setup installs every
 * language's toolchain, so each of protocol/languages.ts must be available: a
 * toolchain missing after setup is a first-start bug too.
 */
async function availableLanguages(server: UpServer): Promise<LanguageCode[]> {
  const reply = await fetch(`${server.url}/languages`, { headers: { "x-api-key": README_API_KEY } });
  expect(reply.status).toBe(200);
  const languages = (await reply.json()) as Array<{ code: LanguageCode; available: boolean }>;
  const available = languages.filter((language) => language.available).map((language) => language.code);
  expect([...available].sort(), JSON.stringify(languages)).toEqual([...LANGUAGE_CODES].sort());
  return available;
}

/** Every language over HTTP, and one exec over WebSocket. */
async function expectEveryLanguageRuns(server: UpServer): Promise<void> {
  const languages = await availableLanguages(server);
  for (const lang of languages) {
    const { status, body } = await exec(server, lang, HELLO_WORLD[lang]);
    expect({ lang, status, stdout: body.stdout, stderr: body.stderr }, `${JSON.stringify(body)}\n${logTail(server)}`).toEqual({
      lang,
      status: 200,
      stdout: HELLO_WORLD_STDOUT,
      stderr: "",
    });
  }
  const client = await TestClient.connect(server.wsUrl, { apiKey: README_API_KEY });
  try {
    expect((await client.openSession()).type).toBe("session.ready");
    const { exit, stdout, stderr } = await client.run("hello", "py", HELLO_WORLD.py);
    expect({ stdout, stderr }).toEqual({ stdout: HELLO_WORLD_STDOUT, stderr: "" });
    expect(exit).toMatchObject({ type: "exit", reason: "exited", code: 0 });
  } finally {
    client.terminate();
  }
}

describe("the README's first command (bash scripts/up.sh) on a machine without the server's folders", () => {
  let root: string;

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), "ci-first-start-"));
    // mkdtemp makes 0700, which alone would keep the sandbox uid out: stand in for "/", as a machine's is.
    chmodSync(root, 0o755);
  });

  afterAll(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it("starts, runs hello world in every language, and gives each folder it made the mode its user needs", async () => {
    const paths = dataPaths(root);
    expect(existsSync(join(root, "var"))).toBe(false);
    const server = await up(root);
    try {
      await expectEveryLanguageRuns(server);
      // Shared parents stay open (the sandbox uid goes through them); each store's own folder is private.
      expect({
        var: modeOf(join(root, "var")),
        varLib: modeOf(join(root, "var/lib")),
        lib: modeOf(paths.lib),
        storage: modeOf(paths.storage),
        files: modeOf(join(paths.storage, "files")),
        sessions: modeOf(join(paths.storage, "sessions")),
        sandboxes: modeOf(paths.sandboxes),
      }).toEqual({ var: "0755", varLib: "0755", lib: "0755", storage: "0700", files: "0700", sessions: "0700", sandboxes: "0711" });
    } finally {
      await server.stop();
    }
  }, 300_000);

  it("starts again on the folders the first start made", async () => {
    const paths = dataPaths(root);
    // Runs after the test above, on what it left: a restart, not a second first start.
    expect(existsSync(join(paths.storage, "sessions"))).toBe(true);
    const server = await up(root);
    try {
      await expectEveryLanguageRuns(server);
      expect(modeOf(paths.lib)).toBe("0755");
    } finally {
      await server.stop();
    }
  }, 300_000);
});
