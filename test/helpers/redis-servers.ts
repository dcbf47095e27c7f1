/**
 * Real Redis for tests: `redis-server` / `redis-sentinel` child processes on
 * loopback, on free ports of their own, each in a temporary folder that stop()
 * removes (nothing is left behind).
 *
 *   const redis = await startRedis("standalone");
 *   startServer({ transport: "node", env: { ...redis.env } });
 *   await redis.stop();
 *
 * Modes: "standalone", "cluster" (three masters), "sentinel" (a master, a
 * replica, sentinels), "tls" (standalone behind TLS, with a CA and a client
 * certificate made here with openssl). `env` holds the server variables that
 * point at it (REDIS_MODE, REDIS_URL or REDIS_CLUSTER_NODES...).
 *
 * Outages: down() stops every process (data saved to the temp folder), up()
 * starts them again on the same ports with that data, restart() does both.
 * freeze()/thaw() SIGSTOP/SIGCONT them: connections stay open but nothing
 * answers, the case a command timeout exists for.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export type RedisTestMode = "standalone" | "cluster" | "sentinel" | "tls";

export interface StartRedisOptions {
  /** requirepass (and masterauth) on every data node; also REDIS_PASSWORD in env. */
  password?: string;
  /** Sentinel mode: how many sentinels (1 to 3, default 1). */
  sentinels?: number;
  /** TLS mode: require a client certificate (default true). */
  requireClientCert?: boolean;
  /** Extra `--name value` arguments for every data node. */
  args?: string[];
}

export interface TestPkiFiles {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

export interface RedisServers {
  mode: RedisTestMode;
  /** Server environment that points at these processes. */
  env: Record<string, string>;
  /** Standalone and TLS: the URL of the one node (redis:// or rediss://). */
  url?: string;
  /** Data node ports (the master first in sentinel mode). */
  ports: number[];
  /** Sentinel mode: the sentinels' ports. */
  sentinelPorts: number[];
  /** TLS mode: the certificate files. */
  tls?: TestPkiFiles;
  /** Stop every process for good and remove the temp folder. */
  stop(): Promise<void>;
  /** Stop every process (saving data) without removing anything. */
  down(): Promise<void>;
  /** Start the processes again on the same ports, with the data they saved. */
  up(): Promise<void>;
  /** down() then up(). */
  restart(): Promise<void>;
  /** SIGSTOP every process: sockets stay open, nothing answers. */
  freeze(): void;
  /** SIGCONT after freeze(). */
  thaw(): void;
  /** Sentinel mode: SENTINEL FAILOVER, resolved once the replica is the master (down()/up() are not for after it). */
  failover(): Promise<void>;
}

const HOST = "127.0.0.1";
const READY_TIMEOUT_MS = 15_000;

/** A port nobody listens on right now (the kernel's choice). */
export async function freePort(): Promise<number> {
  return await new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

// Processes still running when the test process exits (a crashed suite) die with it.
const live = new Set<ChildProcess>();
let exitHook = false;
function track(child: ChildProcess): void {
  live.add(child);
  child.once("exit", () => live.delete(child));
  if (!exitHook) {
    exitHook = true;
    process.once("exit", () => {
      for (const each of live) each.kill("SIGKILL");
    });
  }
}

/** One redis-server (or sentinel) process with a fixed port and folder, restartable. */
class RedisProcess {
  private child: ChildProcess | undefined;
  private output: string[] = [];

  constructor(
    readonly port: number,
    readonly dir: string,
    private readonly argv: () => string[],
    private readonly sentinel = false,
  ) {
    mkdirSync(dir, { recursive: true });
  }

  async start(): Promise<void> {
    if (this.child) return;
    const binary = this.sentinel ? "redis-sentinel" : "redis-server";
    const child = spawn(binary, this.argv(), { cwd: this.dir, stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    this.output = [];
    track(child);
    await new Promise<void>((resolveReady, reject) => {
      const timer = setTimeout(() => fail(new Error("not ready in time")), READY_TIMEOUT_MS);
      const fail = (error: Error) => {
        clearTimeout(timer);
        child.kill("SIGKILL");
        this.child = undefined;
        reject(new Error(`${binary} on port ${this.port}: ${error.message}\n${this.output.join("")}`));
      };
      const onData = (chunk: Buffer) => {
        this.output.push(chunk.toString());
        if (this.output.length > 200) this.output.shift();
        const text = this.output.join("");
        if (text.includes("Ready to accept connections") || (this.sentinel && text.includes("+monitor master"))) {
          clearTimeout(timer);
          child.removeListener("exit", onExit);
          resolveReady();
        }
      };
      const onExit = (code: number | null) => fail(new Error(`exited with ${code}`));
      child.stdout?.on("data", onData);
      child.stderr?.on("data", onData);
      child.once("exit", onExit);
      child.once("error", (error) => fail(error));
    });
    child.once("exit", () => {
      if (this.child === child) this.child = undefined;
    });
  }

  /** SIGTERM: data nodes save their data first (shutdown-on-sigterm save). */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolveExit) => child.once("exit", () => resolveExit()));
    // SIGCONT first: a frozen process cannot act on SIGTERM.
    child.kill("SIGCONT");
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  }

  signal(signal: NodeJS.Signals): void {
    this.child?.kill(signal);
  }
}

/** Arguments every data node gets: loopback, a folder of its own, no periodic snapshots. */
function baseArgs(port: number, dir: string, options: StartRedisOptions): string[] {
  const args = ["--port", String(port), "--bind", HOST, "--dir", dir, "--save", "", "--appendonly", "no"];
  args.push("--daemonize", "no", "--protected-mode", "no", "--loglevel", "notice", "--logfile", "");
  // Keep data across down()/up(): one snapshot at SIGTERM, in the temp folder.
  args.push("--shutdown-on-sigterm", "save", "--dbfilename", "dump.rdb");
  if (options.password) args.push("--requirepass", options.password, "--masterauth", options.password);
  return [...args, ...(options.args ?? [])];
}

function redisCli(args: string[], password?: string): string {
  const auth = password ? ["--no-auth-warning", "-a", password] : [];
  return execFileSync("redis-cli", [...auth, ...args], { encoding: "utf8", timeout: 30_000, stdio: ["ignore", "pipe", "pipe"] });
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = READY_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`redis test servers: ${what} did not happen within ${timeoutMs} ms`);
    await new Promise((resolveWait) => setTimeout(resolveWait, 100));
  }
}

/** Start real Redis processes for a test. Call stop() in afterAll. */
export async function startRedis(mode: RedisTestMode, options: StartRedisOptions = {}): Promise<RedisServers> {
  const root = mkdtempSync(join(tmpdir(), `redis-${mode}-`));
  const nodes: RedisProcess[] = [];
  const sentinels: RedisProcess[] = [];
  const env: Record<string, string> = {};
  if (options.password) env.REDIS_PASSWORD = options.password;
  let url: string | undefined;
  let tls: TestPkiFiles | undefined;
  try {
    if (mode === "standalone") {
      const port = await freePort();
      const dir = join(root, "node0");
      nodes.push(new RedisProcess(port, dir, () => baseArgs(port, dir, options)));
      await nodes[0]!.start();
      url = `redis://${HOST}:${port}`;
      Object.assign(env, { REDIS_MODE: "standalone", REDIS_URL: url });
    } else if (mode === "tls") {
      tls = makeRedisPki(join(root, "pki"));
      const port = await freePort();
      const dir = join(root, "node0");
      const files = tls;
      const authClients = options.requireClientCert === false ? "no" : "yes";
      nodes.push(
        new RedisProcess(port, dir, () => [
          ...baseArgs(0, dir, options),
          // Also ::1 when the machine has it: "localhost" (the certificate's name) may resolve there first.
          ...["--bind", `${HOST} -::1`],
          ...["--tls-port", String(port), "--tls-cert-file", files.serverCert, "--tls-key-file", files.serverKey],
          ...["--tls-ca-cert-file", files.ca, "--tls-auth-clients", authClients],
        ]),
      );
      await nodes[0]!.start();
      url = `rediss://${HOST}:${port}`;
      // rediss:// alone turns TLS on (REDIS_TLS_ENABLED is not needed).
      Object.assign(env, { REDIS_MODE: "standalone", REDIS_URL: url, REDIS_TLS_CA_CERT_FILE: tls.ca });
      if (authClients === "yes") Object.assign(env, { REDIS_TLS_CERT_FILE: tls.clientCert, REDIS_TLS_KEY_FILE: tls.clientKey });
    } else if (mode === "cluster") {
      await startCluster(root, nodes, options);
      Object.assign(env, { REDIS_MODE: "cluster", REDIS_CLUSTER_NODES: nodes.map((node) => `${HOST}:${node.port}`).join(",") });
    } else {
      await startSentinel(root, nodes, sentinels, options);
      Object.assign(env, {
        REDIS_MODE: "sentinel",
        REDIS_SENTINEL_NODES: sentinels.map((node) => `${HOST}:${node.port}`).join(","),
        REDIS_SENTINEL_MASTER: SENTINEL_MASTER,
      });
    }
  } catch (error) {
    await Promise.all([...sentinels, ...nodes].map((node) => node.stop()));
    rmSync(root, { recursive: true, force: true });
    throw error;
  }

  const all = () => [...nodes, ...sentinels];
  const down = async () => {
    // Sentinels first, so that they do not fail over while the data nodes stop.
    await Promise.all(sentinels.map((node) => node.stop()));
    await Promise.all(nodes.map((node) => node.stop()));
  };
  const up = async () => {
    await Promise.all(nodes.map((node) => node.start()));
    await Promise.all(sentinels.map((node) => node.start()));
    if (mode === "cluster") await waitForCluster(nodes, options.password);
    if (mode === "sentinel") await waitForReplica(nodes, options.password);
  };
  return {
    mode,
    env,
    ...(url ? { url } : {}),
    ports: nodes.map((node) => node.port),
    sentinelPorts: sentinels.map((node) => node.port),
    ...(tls ? { tls } : {}),
    down,
    up,
    restart: async () => {
      await down();
      await up();
    },
    freeze: () => {
      for (const node of all()) node.signal("SIGSTOP");
    },
    thaw: () => {
      for (const node of all()) node.signal("SIGCONT");
    },
    failover: async () => {
      const [master, replica] = nodes;
      const sentinel = sentinels[0];
      if (mode !== "sentinel" || !master || !replica || !sentinel) throw new Error("failover() is for sentinel mode");
      // A planned failover: the replica has every write first (after a freeze or a restart its link may still be resyncing).
      const offset = (port: number) => /master_repl_offset:(\d+)/.exec(redisCli(["-p", String(port), "info", "replication"], options.password))?.[1];
      await waitFor("the replica has every write", () => {
        const replicaInfo = redisCli(["-p", String(replica.port), "info", "replication"], options.password);
        return replicaInfo.includes("master_link_status:up") && offset(replica.port) === offset(master.port);
      });
      // Refused with NOGOODSLAVE until the sentinel has seen the replica in the master's INFO (polled every 10 s): asked again until taken.
      await waitFor(
        "the sentinel starts the failover",
        () => /^(OK|INPROG)/.test(redisCli(["-p", String(sentinel.port), "sentinel", "failover", SENTINEL_MASTER])),
        30_000,
      );
      await waitFor(
        "the replica becomes master",
        () =>
          redisCli(["-p", String(replica.port), "role"], options.password).startsWith("master") &&
          redisCli(["-p", String(sentinel.port), "sentinel", "get-master-addr-by-name", SENTINEL_MASTER]).includes(String(replica.port)),
      );
    },
    stop: async () => {
      await Promise.all(all().map((node) => node.stop()));
      rmSync(root, { recursive: true, force: true });
    },
  };
}

// --- cluster ----------------------------------------------------------------------

async function startCluster(root: string, nodes: RedisProcess[], options: StartRedisOptions): Promise<void> {
  const busPorts: number[] = [];
  for (let index = 0; index < 3; index++) {
    const port = await freePort();
    const busPort = await freePort();
    busPorts.push(busPort);
    const dir = join(root, `node${index}`);
    nodes.push(
      new RedisProcess(port, dir, () => [
        ...baseArgs(port, dir, options),
        ...["--cluster-enabled", "yes", "--cluster-config-file", join(dir, "nodes.conf"), "--cluster-port", String(busPort)],
        ...["--cluster-node-timeout", "1000", "--cluster-require-full-coverage", "yes"],
      ]),
    );
  }
  await Promise.all(nodes.map((node) => node.start()));
  // Three masters, no replicas: a third of the 16384 slots each, then every node meets the first
  // (what redis-cli --cluster create does, without its one-second pauses).
  const third = Math.ceil(16384 / 3);
  nodes.forEach((node, index) => {
    const first = index * third;
    const last = Math.min(16383, first + third - 1);
    redisCli(["-p", String(node.port), "cluster", "addslotsrange", String(first), String(last)], options.password);
  });
  for (const node of nodes.slice(1)) {
    redisCli(["-p", String(node.port), "cluster", "meet", HOST, String(nodes[0]!.port), String(busPorts[0])], options.password);
  }
  await waitForCluster(nodes, options.password);
}

async function waitForCluster(nodes: RedisProcess[], password?: string): Promise<void> {
  await waitFor("cluster_state:ok on every node", () =>
    nodes.every((node) => redisCli(["-p", String(node.port), "cluster", "info"], password).includes("cluster_state:ok")),
  );
}

// --- sentinel ---------------------------------------------------------------------

const SENTINEL_MASTER = "mymaster";

async function startSentinel(root: string, nodes: RedisProcess[], sentinels: RedisProcess[], options: StartRedisOptions): Promise<void> {
  const masterPort = await freePort();
  const replicaPort = await freePort();
  const masterDir = join(root, "master");
  const replicaDir = join(root, "replica");
  // No diskless-sync delay (5 s by default): the replica syncs at once.
  nodes.push(new RedisProcess(masterPort, masterDir, () => [...baseArgs(masterPort, masterDir, options), "--repl-diskless-sync-delay", "0"]));
  nodes.push(new RedisProcess(replicaPort, replicaDir, () => [...baseArgs(replicaPort, replicaDir, options), "--replicaof", HOST, String(masterPort)]));
  await Promise.all(nodes.map((node) => node.start()));
  await waitForReplica(nodes, options.password);
  const count = Math.min(3, Math.max(1, options.sentinels ?? 1));
  for (let index = 0; index < count; index++) {
    const port = await freePort();
    const dir = join(root, `sentinel${index}`);
    const file = join(dir, "sentinel.conf");
    const lines = [
      `port ${port}`,
      `bind ${HOST}`,
      `dir ${dir}`,
      "protected-mode no",
      'logfile ""',
      `sentinel monitor ${SENTINEL_MASTER} ${HOST} ${masterPort} ${Math.floor(count / 2) + 1}`,
      `sentinel down-after-milliseconds ${SENTINEL_MASTER} 2000`,
      `sentinel failover-timeout ${SENTINEL_MASTER} 10000`,
    ];
    if (options.password) lines.push(`sentinel auth-pass ${SENTINEL_MASTER} ${options.password}`);
    const sentinel = new RedisProcess(port, dir, () => [file], true);
    // Sentinel rewrites its config file: written once, before the first start.
    writeFileSync(file, `${lines.join("\n")}\n`);
    sentinels.push(sentinel);
  }
  await Promise.all(sentinels.map((node) => node.start()));
  await waitFor("sentinels know the master", () =>
    sentinels.every((node) => redisCli(["-p", String(node.port), "sentinel", "get-master-addr-by-name", SENTINEL_MASTER]).includes(String(masterPort))),
  );
}

async function waitForReplica(nodes: RedisProcess[], password?: string): Promise<void> {
  const replica = nodes[1];
  if (!replica) return;
  await waitFor("the replica is in sync", () => redisCli(["-p", String(replica.port), "info", "replication"], password).includes("master_link_status:up"));
}

// --- TLS --------------------------------------------------------------------------

const KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"], timeout: 30_000 });
}

/**
 * A CA, a server certificate for `localhost` only (no IP entry: connecting to
 * 127.0.0.1 passes only without the host name check) and a client certificate.
 */
export function makeRedisPki(dir: string): TestPkiFiles {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "server.ext"), "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=critical,CA:FALSE\n");
  writeFileSync(join(dir, "client.ext"), "extendedKeyUsage=clientAuth\nbasicConstraints=critical,CA:FALSE\n");
  openssl(["req", "-x509", ...KEY, "-subj", "/CN=Redis Test CA", "-days", "2", "-keyout", "ca.key", "-out", "ca.pem"], dir);
  for (const name of ["server", "client"]) {
    openssl(["req", ...KEY, "-subj", `/CN=${name === "server" ? "localhost" : "redis-test-client"}`, "-keyout", `${name}.key`, "-out", `${name}.csr`], dir);
    openssl(
      [
        "x509",
        "-req",
        "-in",
        `${name}.csr`,
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        `${name}.ext`,
        "-out",
        `${name}.pem`,
      ],
      dir,
    );
  }
  return {
    ca: join(dir, "ca.pem"),
    serverCert: join(dir, "server.pem"),
    serverKey: join(dir, "server.key"),
    clientCert: join(dir, "client.pem"),
    clientKey: join(dir, "client.key"),
  };
}
