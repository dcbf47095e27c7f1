import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { defaultLiveSandboxes, defaultSandboxesPerPrincipal, loadConfig } from "../../../server/config/load.ts";
import { VARIABLES } from "../../../server/config/variables.ts";

const MIB = 1024 * 1024;
let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "config-load-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Load with only `env` (no process.env, no .env unless written), relative paths under the temp dir. */
function load(env: Record<string, string> = {}, envFile: string | false = false) {
  return loadConfig({ env, envFile, cwd: dir });
}

/** MAX_LIVE_SANDBOXES derived on this machine at the default MAX_MEMORY_MB (512). */
const DEFAULT_LIVE_SANDBOXES = Math.max(4, Math.floor((totalmem() * 0.8) / (512 * 1024 * 1024)));

describe("defaults", () => {
  it("load with an empty environment, without errors", () => {
    const { config, errors, warnings, sources } = load();
    expect(errors).toEqual([]);
    expect(config.server).toMatchObject({
      host: "0.0.0.0",
      port: 8000,
      transport: "auto",
      debug: false,
      corsEnabled: false,
      corsOrigins: [],
      docsEnabled: true,
      metricsEnabled: true,
      metricsAuth: "api_key",
    });
    expect(config.server.https).toMatchObject({
      enabled: false,
      port: 443,
      redirect: false,
      certFile: join(dir, "ssl/cert.pem"),
      keyFile: join(dir, "ssl/key.pem"),
    });
    expect(config.auth).toEqual({
      enabled: true,
      apiKeys: ["test-api-key"],
      header: "x-api-key",
      keyCacheTtlMs: 300_000,
      rateLimitEnabled: true,
      defaultRateLimits: {},
      authFailureLimit: 10,
      authFailureWindowMs: 60_000,
      jwt: { provider: "api-key" },
    });
    expect(config.limits).toEqual({
      execTimeoutMs: 30_000,
      compileTimeoutMs: 30_000,
      memoryBytes: 512 * MIB,
      cpuQuotaUs: 50_000,
      pids: 512,
      openFiles: 1024,
      outputBytes: 1_048_576,
      codeBytes: 524_288,
      toolPauseMs: 300_000,
      fileSizeBytes: 100 * MIB,
      totalFileSizeBytes: 200 * MIB,
      filesPerSession: 300,
      outputFiles: 10,
      filenameLength: 255,
      concurrentExecutions: 10,
      sessionsPerEntity: 100,
      // Derived from this machine's memory: 80% of it at 512 MB a sandbox.
      liveSandboxes: DEFAULT_LIVE_SANDBOXES,
      sandboxesPerPrincipal: Math.max(2, Math.floor(DEFAULT_LIVE_SANDBOXES / 2)),
      bodyStallMs: 15_000,
      bodyMinBytesPerSecond: 1024,
      queueSize: 100,
      queueTimeoutMs: 30_000,
    });
    // Our sandboxes run every language: the pool keeps the sum of the per-language sizes.
    expect(config.pool).toEqual({
      enabled: true,
      target: 4,
      sizes: { py: 2, js: 2, ts: 0, go: 0, java: 0, rs: 0, c: 0, cpp: 0, php: 0, r: 0, f90: 0, d: 0 },
      pythonPreload: true,
      warmupOnStartup: true,
      parallelBatch: 5,
      replenishIntervalMs: 2000,
      exhaustionTrigger: true,
    });
    expect(config.sessions).toEqual({
      ttlMs: 24 * 3_600_000,
      cleanupIntervalMs: 600_000,
      idLength: 21,
      idleGraceMs: 300_000,
      replayFrames: 2000,
      replayBytes: 8 * MIB,
      storagePath: "/var/lib/code-interpreter/files",
    });
    expect(config.sandbox).toEqual({
      backend: "local",
      baseDir: "/var/lib/code-interpreter/sandboxes",
      uid: 1001,
      gid: 1001,
      tmpBytes: 100 * MIB,
      dataBytes: 200 * MIB,
      networkIsolation: true,
      filesystemIsolation: true,
      idleTtlMs: 5 * 60_000,
      cleanupIntervalMs: 5 * 60_000,
    });
    expect(config.logging).toEqual({ level: "info", format: "json", maxSizeBytes: 100 * MIB, backupCount: 5, accessLogs: false, securityLogs: true });
    expect(warnings).toEqual([expect.stringContaining('API_KEY is the default "test-api-key"')]);
    expect(sources.API_PORT).toBe("default");
  });

  it("fill raw and sources for every catalog variable", () => {
    const { config, sources } = load();
    for (const spec of VARIABLES.filter((s) => !s.pattern)) {
      expect(sources, spec.name).toHaveProperty(spec.name);
      expect(Object.hasOwn(config.raw, spec.name), spec.name).toBe(true);
    }
    expect(config.raw.REDIS_PORT).toBe(6379);
    expect(config.raw.S3_BUCKET).toBe("code-interpreter-files");
    expect(config.raw.SANDBOX_POOL_PY).toBe(2);
    expect(config.raw.REDIS_PASSWORD).toBeUndefined();
  });

  it("derive COMPILE_TIMEOUT and SANDBOX_GID unless set", () => {
    expect(load({ MAX_EXECUTION_TIME: "12", SANDBOX_UID: "2000" }).config).toMatchObject({
      limits: { execTimeoutMs: 12_000, compileTimeoutMs: 12_000 },
      sandbox: { uid: 2000, gid: 2000 },
    });
    expect(load({ MAX_EXECUTION_TIME: "12", COMPILE_TIMEOUT: "60", SANDBOX_UID: "2000", SANDBOX_GID: "3000" }).config).toMatchObject({
      limits: { compileTimeoutMs: 60_000 },
      sandbox: { gid: 3000 },
    });
  });
});

describe("values", () => {
  it("convert units and parse each kind", () => {
    const { config, errors } = load({
      API_PORT: "0",
      SERVER_TRANSPORT: "UWS",
      MAX_MEMORY_MB: "256",
      MAX_FILE_SIZE_MB: "5",
      SESSION_IDLE_GRACE: "0",
      SESSION_TTL_HOURS: "2",
      LOG_LEVEL: "warning",
      LOG_FORMAT: "TEXT",
      LOG_FILE: "logs/server.log",
      LOG_MAX_SIZE_MB: "2",
      ENABLE_ACCESS_LOGS: "Yes",
      API_KEY_HEADER: "X-Custom-Key",
      API_KEY: "k1-0123456789abcdef",
      API_KEYS: " k2-0123456789abcdef , ,k1-0123456789abcdef,k3-0123456789abcdef",
      MASTER_API_KEY: "master-0123456789abcdef",
      CORS_ORIGINS: "http://localhost:3080, https://chat.example.com",
      REDIS_SOCKET_TIMEOUT: "2.5",
      GKE_SANDBOX_NODE_SELECTOR: '{ "pool": "sandbox" }',
    });
    expect(errors).toEqual([]);
    expect(config.server.port).toBe(0);
    expect(config.server.transport).toBe("uws");
    expect(config.limits.memoryBytes).toBe(256 * MIB);
    expect(config.limits.fileSizeBytes).toBe(5 * MIB);
    expect(config.sessions.idleGraceMs).toBe(0);
    expect(config.sessions.ttlMs).toBe(7_200_000);
    expect(config.logging).toMatchObject({ level: "warn", format: "text", file: join(dir, "logs/server.log"), maxSizeBytes: 2 * MIB, accessLogs: true });
    expect(config.auth.header).toBe("x-custom-key");
    expect(config.auth.apiKeys).toEqual(["k1-0123456789abcdef", "k2-0123456789abcdef", "k3-0123456789abcdef"]);
    expect(config.auth.masterKey).toBe("master-0123456789abcdef");
    expect(config.server.corsOrigins).toEqual(["http://localhost:3080", "https://chat.example.com"]);
    expect(config.raw.REDIS_SOCKET_TIMEOUT).toBe(2.5);
    expect(config.raw.GKE_SANDBOX_NODE_SELECTOR).toBe('{"pool":"sandbox"}');
  });

  it("map every LOG_LEVEL spelling to a pino level", () => {
    const cases: Record<string, string> = { DEBUG: "debug", info: "info", Warning: "warn", WARN: "warn", error: "error", CRITICAL: "fatal", trace: "trace" };
    for (const [input, level] of Object.entries(cases)) expect(load({ LOG_LEVEL: input }).config.logging.level, input).toBe(level);
  });

  it("treat empty values as unset", () => {
    const { config, sources, errors } = load({ API_PORT: "", API_KEY: "  ", MAX_PIDS: "" });
    expect(errors).toEqual([]);
    expect(config.server.port).toBe(8000);
    expect(config.auth.apiKeys).toEqual(["test-api-key"]);
    expect(sources.API_PORT).toBe("default");
  });
});

describe("aliases", () => {
  const pairs: [canonical: string, alias: string, value: string, expected: number | string | boolean][] = [
    ["API_PORT", "PORT", "9001", 9001],
    ["MAX_PIDS", "MAX_PROCESSES", "64", 64],
    ["S3_ENDPOINT", "MINIO_ENDPOINT", "minio:9000", "minio:9000"],
    ["S3_ACCESS_KEY", "MINIO_ACCESS_KEY", "AKIAEXAMPLE", "AKIAEXAMPLE"],
    ["S3_SECRET_KEY", "MINIO_SECRET_KEY", "s3cr3t", "s3cr3t"],
    ["S3_SECURE", "MINIO_SECURE", "true", true],
    ["S3_BUCKET", "MINIO_BUCKET", "my-bucket", "my-bucket"],
    ["S3_REGION", "MINIO_REGION", "eu-west-1", "eu-west-1"],
    ["S3_USE_IAM", "MINIO_USE_IAM", "yes", true],
    ["SANDBOX_POOL_ENABLED", "POD_POOL_ENABLED", "false", false],
    ["SANDBOX_POOL_ENABLED", "CONTAINER_POOL_ENABLED", "off", false],
    ["SANDBOX_POOL_WARMUP_ON_STARTUP", "POD_POOL_WARMUP_ON_STARTUP", "0", false],
    ["SANDBOX_POOL_WARMUP_ON_STARTUP", "CONTAINER_POOL_WARMUP_ON_STARTUP", "0", false],
    ["SANDBOX_POOL_PY", "POD_POOL_PY", "7", 7],
    ["SANDBOX_POOL_PY", "CONTAINER_POOL_PY_MIN", "3", 3],
    ["SANDBOX_POOL_JS", "CONTAINER_POOL_JS_MIN", "4", 4],
    ["SANDBOX_POOL_F90", "POD_POOL_F90", "1", 1],
    ["SANDBOX_POOL_PARALLEL_BATCH", "POD_POOL_PARALLEL_BATCH", "9", 9],
    ["SANDBOX_POOL_REPLENISH_INTERVAL", "POD_POOL_REPLENISH_INTERVAL", "0.5", 0.5],
    ["SANDBOX_POOL_EXHAUSTION_TRIGGER", "POD_POOL_EXHAUSTION_TRIGGER", "false", false],
  ];
  it.each(pairs)("%s is read from %s", (canonical, alias, value, expected) => {
    const { config, sources, errors } = load({ [alias]: value });
    expect(errors).toEqual([]);
    expect(config.raw[canonical]).toBe(expected);
    expect(sources[canonical]).toBe(alias);
  });

  it("feed the typed config through aliases", () => {
    const { config } = load({ PORT: "9100", MAX_PROCESSES: "48" });
    expect(config.server.port).toBe(9100);
    expect(config.limits.pids).toBe(48);
  });

  it("let the canonical name win, with a warning, when both differ", () => {
    const { config, warnings, sources } = load({ API_PORT: "8001", PORT: "9001" });
    expect(config.server.port).toBe(8001);
    expect(sources.API_PORT).toBe("env");
    expect(warnings).toContainEqual(expect.stringMatching(/^API_PORT=8001 \(env\) and PORT=9001 \(env\) are both set and differ: using API_PORT/));
  });

  it("prefer the newer alias over the older one", () => {
    const { config, warnings, sources } = load({ POD_POOL_PY: "6", CONTAINER_POOL_PY_MIN: "5" });
    expect(config.raw.SANDBOX_POOL_PY).toBe(6);
    expect(sources.SANDBOX_POOL_PY).toBe("POD_POOL_PY");
    expect(warnings).toContainEqual(expect.stringContaining("using POD_POOL_PY (POD_POOL_PY is the newer name)"));
  });

  it("say nothing when both names agree", () => {
    const { warnings } = load({ S3_SECURE: "true", MINIO_SECURE: "1" });
    expect(warnings.filter((w) => w.includes("S3_SECURE"))).toEqual([]);
  });

  it("mask secrets in the conflict warning", () => {
    const { warnings } = load({ S3_SECRET_KEY: "new-secret-value-1234", MINIO_SECRET_KEY: "old-secret-value-5678" });
    const warning = warnings.find((w) => w.includes("S3_SECRET_KEY"));
    expect(warning).toContain("S3_SECRET_KEY=****1234");
    expect(warning).not.toContain("new-secret");
    expect(warning).not.toContain("old-secret");
  });
});

describe("bad values", () => {
  it("produce one precise message each", () => {
    const cases: [Record<string, string>, string][] = [
      [{ API_PORT: "80a" }, 'API_PORT: "80a" is not an integer between 1 and 65535 (or 0 for a free port)'],
      [{ API_PORT: "70000" }, 'API_PORT: "70000" is not an integer between 1 and 65535 (or 0 for a free port)'],
      [{ PORT: "http" }, 'PORT: "http" is not an integer between 1 and 65535 (or 0 for a free port)'],
      [{ MAX_MEMORY_MB: "1.5" }, 'MAX_MEMORY_MB: "1.5" is not an integer between 16 and 1048576'],
      [{ AUTH_ENABLED: "maybe" }, 'AUTH_ENABLED: "maybe" is not a boolean (true/false, yes/no, on/off, 1/0)'],
      [{ SERVER_TRANSPORT: "h2" }, 'SERVER_TRANSPORT: "h2" is not one of: auto, uws, node'],
      [{ LOG_LEVEL: "verbose" }, 'LOG_LEVEL: "verbose" is not a log level (DEBUG, INFO, WARNING, ERROR, CRITICAL)'],
      [{ LOG_FORMAT: "xml" }, 'LOG_FORMAT: "xml" is not one of: json, text'],
      [{ SANDBOX_BASE_DIR: "relative/dir" }, 'SANDBOX_BASE_DIR: "relative/dir" is not an absolute path'],
      [{ SANDBOX_UID: "0" }, 'SANDBOX_UID: "0" is not an integer between 1 and 2147483647'],
      [{ MINIO_ENDPOINT: "http://minio:9000" }, 'MINIO_ENDPOINT: "http://minio:9000" is not host[:port] without a protocol (use S3_SECURE for https)'],
      [{ REDIS_CLUSTER_NODES: "a:1,b" }, 'REDIS_CLUSTER_NODES: "a:1,b" is not a comma-separated list of host:port pairs'],
      [{ GKE_SANDBOX_CUSTOM_TOLERATIONS: "{}" }, 'GKE_SANDBOX_CUSTOM_TOLERATIONS: "{}" is not a JSON array'],
      [{ K8S_MEMORY_LIMIT: "lots" }, 'K8S_MEMORY_LIMIT: "lots" is not a Kubernetes quantity (512Mi, 1Gi...)'],
    ];
    for (const [env, message] of cases) expect(load(env).errors).toEqual([message]);
  });

  it("are all reported at once, and the setting keeps its default", () => {
    const { errors, config } = load({ API_PORT: "80a", MAX_EXECUTION_TIME: "-1", ENABLE_CORS: "sure", LOG_LEVEL: "loud" });
    expect(errors).toHaveLength(4);
    expect(errors.map((e) => e.split(":")[0])).toEqual(expect.arrayContaining(["API_PORT", "MAX_EXECUTION_TIME", "ENABLE_CORS", "LOG_LEVEL"]));
    expect(config.server.port).toBe(8000);
    expect(config.limits.execTimeoutMs).toBe(30_000);
  });

  it("mask secrets in error messages", () => {
    const [error] = load({ REDIS_URL: "http://user:hunter2-password@redis:6379" }).errors;
    expect(error).toBe('REDIS_URL: "http://user:****@redis:6379" is not a redis://, rediss:// or unix:// URL');
  });
});

describe("warnings", () => {
  it("report ignored variables that are set, and none that are not", () => {
    expect(load().warnings.some((w) => w.includes("ignored"))).toBe(false);
    const { warnings } = load({
      NSJAIL_BINARY: "/usr/bin/nsjail",
      DOCKER_NETWORK_MODE: "bridge",
      API_RELOAD: "true",
      LANG_PYTHON_IMAGE: "python:3.12",
    });
    for (const name of ["NSJAIL_BINARY", "DOCKER_NETWORK_MODE", "API_RELOAD", "LANG_PYTHON_IMAGE"]) {
      expect(warnings).toContainEqual(expect.stringMatching(new RegExp(`^${name} is set but ignored: `)));
    }
  });

  it("read per-language pod settings, check their language and value, and say they do nothing locally", () => {
    const k8s = load({ EXECUTION_BACKEND: "kubernetes", LANG_IMAGE_GO: "reg/sandbox-go:1", K8S_MEMORY_LIMIT_JAVA: "1Gi", K8S_CPU_LIMIT_JAVA: "2" });
    expect(k8s.errors).toEqual([]);
    expect(k8s.config.kubernetes.languages).toEqual({ go: { image: "reg/sandbox-go:1" }, java: { memoryLimit: "1Gi", cpuLimit: "2" } });
    expect(k8s.config.kubernetes.image).toBe("code-interpreter/sandbox:latest");
    expect(load({ LANG_IMAGE_GO: "x" }).warnings).toContainEqual(expect.stringContaining("for go have no effect with EXECUTION_BACKEND=local"));
    expect(load({ LANG_IMAGE_COBOL: "x" }).errors).toContainEqual(expect.stringMatching(/^LANG_IMAGE_COBOL: COBOL is not a language code/));
    expect(load({ K8S_MEMORY_LIMIT_PY: "lots" }).errors).toContainEqual(expect.stringContaining("K8S_MEMORY_LIMIT_PY"));
  });

  it("map K8S_EXECUTION_MODE=nsenter to agent", () => {
    const { config, warnings, errors } = load({ K8S_EXECUTION_MODE: "nsenter" });
    expect(errors).toEqual([]);
    expect(config.raw.K8S_EXECUTION_MODE).toBe("agent");
    expect(warnings).toContainEqual(expect.stringContaining("K8S_EXECUTION_MODE=nsenter is not supported: mapped to agent"));
  });

  it("flag insecure choices", () => {
    const { warnings } = load({ AUTH_ENABLED: "false", API_KEY: "short", MASTER_API_KEY: "tiny", API_DEBUG: "true" });
    expect(warnings).toContainEqual(expect.stringContaining("AUTH_ENABLED is false"));
    expect(warnings).toContainEqual(expect.stringContaining("an API key is shorter than 16 characters"));
    expect(warnings).toContainEqual(expect.stringContaining("MASTER_API_KEY is shorter than 16 characters"));
    expect(warnings).toContainEqual(expect.stringContaining("API_DEBUG is true"));
    expect(warnings.join("\n")).not.toContain("short,");
  });

  it("stay quiet for a sound production setup", () => {
    const { warnings, errors } = load({ API_KEY: "0123456789abcdef0123", MASTER_API_KEY: "fedcba9876543210fedc" });
    expect(errors).toEqual([]);
    expect(warnings).toEqual([]);
  });
});

describe(".env", () => {
  it("is read, and the real environment wins over it", () => {
    writeFileSync(join(dir, ".env"), 'export API_PORT=8100\nAPI_HOST="127.0.0.1" # local only\nLOG_LEVEL=debug\n');
    const { config, sources, errors } = load({ LOG_LEVEL: "ERROR" }, ".env");
    expect(errors).toEqual([]);
    expect(config.server.port).toBe(8100);
    expect(config.server.host).toBe("127.0.0.1");
    expect(config.logging.level).toBe("error");
    expect(sources).toMatchObject({ API_PORT: ".env", API_HOST: ".env", LOG_LEVEL: "env", API_KEY: "default" });
  });

  it("defaults to .env in cwd and may be turned off", () => {
    writeFileSync(join(dir, ".env"), "API_PORT=8200\n");
    expect(loadConfig({ env: {}, cwd: dir }).config.server.port).toBe(8200);
    expect(loadConfig({ env: {}, cwd: dir, envFile: false }).config.server.port).toBe(8000);
  });

  it("ranks the environment above .env before ranking names", () => {
    writeFileSync(join(dir, "custom.env"), "API_PORT=8000\n");
    const { config, warnings } = load({ PORT: "9000" }, "custom.env");
    expect(config.server.port).toBe(9000);
    expect(warnings).toContainEqual(expect.stringContaining("using PORT (the real environment wins over .env)"));
  });

  it("reports bad values, bad lines, unknown names and a missing explicit file", () => {
    writeFileSync(join(dir, ".env"), "MAX_PIDS=lots\nthis line is wrong\nAPI_PROT=8000\n");
    const { errors, warnings } = load({}, ".env");
    expect(errors).toEqual(['MAX_PIDS: "lots" is not an integer between 1 and 4194304']);
    expect(warnings).toContainEqual(expect.stringContaining("line 2: expected KEY=VALUE (skipped)"));
    expect(warnings).toContainEqual(".env sets API_PROT, which is not a known variable (ignored)");
    expect(load({}, "missing.env").warnings).toContainEqual(expect.stringContaining("missing.env does not exist"));
  });
});

describe("HTTPS", () => {
  function certs(folder: string, names: string[]) {
    mkdirSync(folder, { recursive: true });
    for (const name of names) writeFileSync(join(folder, name), "-----BEGIN-----\n");
  }

  it("stays off when no certificate exists", () => {
    const { config, errors } = load();
    expect(errors).toEqual([]);
    expect(config.server.https.enabled).toBe(false);
    expect(config.raw.ENABLE_HTTPS).toBe(false);
  });

  it("turns on by itself when cert.pem and key.pem exist in ./ssl", () => {
    certs(join(dir, "ssl"), ["cert.pem", "key.pem"]);
    const { config } = load();
    expect(config.server.https).toMatchObject({ enabled: true, certFile: join(dir, "ssl/cert.pem"), keyFile: join(dir, "ssl/key.pem") });
  });

  it("uses SSL_CERTS_PATH and falls back to fullchain.pem/privkey.pem", () => {
    const folder = join(dir, "le");
    certs(folder, ["fullchain.pem", "privkey.pem"]);
    const { config } = load({ SSL_CERTS_PATH: folder });
    expect(config.server.https).toMatchObject({ enabled: true, certFile: join(folder, "fullchain.pem"), keyFile: join(folder, "privkey.pem") });
  });

  it("prefers cert.pem/key.pem when both pairs exist", () => {
    certs(join(dir, "ssl"), ["cert.pem", "key.pem", "fullchain.pem", "privkey.pem"]);
    expect(load().config.server.https.certFile).toBe(join(dir, "ssl/cert.pem"));
  });

  it("uses explicit SSL_CERT_FILE / SSL_KEY_FILE / SSL_CA_CERTS", () => {
    certs(join(dir, "x"), ["a.crt", "a.key", "ca.pem"]);
    const { config, errors } = load({
      SSL_CERT_FILE: "x/a.crt",
      SSL_KEY_FILE: join(dir, "x/a.key"),
      SSL_CA_CERTS: "x/ca.pem",
      SSL_REDIRECT: "true",
      HTTPS_PORT: "8443",
    });
    expect(errors).toEqual([]);
    expect(config.server.https).toEqual({
      enabled: true,
      port: 8443,
      certFile: join(dir, "x/a.crt"),
      keyFile: join(dir, "x/a.key"),
      caFile: join(dir, "x/ca.pem"),
      redirect: true,
    });
  });

  it("obeys ENABLE_HTTPS=false even with certificates", () => {
    certs(join(dir, "ssl"), ["cert.pem", "key.pem"]);
    expect(load({ ENABLE_HTTPS: "false" }).config.server.https.enabled).toBe(false);
  });

  it("fails with ENABLE_HTTPS=true and no certificate", () => {
    const { errors, config } = load({ ENABLE_HTTPS: "true" });
    expect(config.server.https.enabled).toBe(true);
    expect(errors).toEqual([
      `ENABLE_HTTPS is true but the certificate file ${join(dir, "ssl/cert.pem")} does not exist (set SSL_CERT_FILE or SSL_CERTS_PATH)`,
      `ENABLE_HTTPS is true but the key file ${join(dir, "ssl/key.pem")} does not exist (set SSL_KEY_FILE or SSL_CERTS_PATH)`,
    ]);
  });

  it("warns when only one of the two files exists, or SSL_REDIRECT has nothing to redirect to", () => {
    certs(join(dir, "ssl"), ["cert.pem"]);
    const { config, warnings } = load({ SSL_REDIRECT: "true" });
    expect(config.server.https.enabled).toBe(false);
    expect(warnings).toContainEqual(expect.stringContaining("HTTPS stays off: found"));
    expect(warnings).toContainEqual(expect.stringContaining("SSL_REDIRECT is true but HTTPS is off"));
  });
});

describe("HTTPS with a lone SSL_CERT_FILE", () => {
  it("ignores OpenSSL's SSL_CERT_FILE (the CA bundle) without SSL_KEY_FILE", () => {
    mkdirSync(join(dir, "ssl"));
    for (const name of ["cert.pem", "key.pem", "ca-bundle.crt"]) writeFileSync(join(dir, "ssl", name), "x");
    const { config, warnings, sources } = load({ SSL_CERT_FILE: join(dir, "ssl/ca-bundle.crt") });
    expect(config.server.https).toMatchObject({ enabled: true, certFile: join(dir, "ssl/cert.pem"), keyFile: join(dir, "ssl/key.pem") });
    expect(sources.SSL_CERT_FILE).toBe("default");
    expect(warnings.filter((w) => w.includes("SSL_CERT_FILE"))).toEqual([]);
  });

  it("says so when HTTPS is forced or only the key is given", () => {
    expect(load({ ENABLE_HTTPS: "true", SSL_CERT_FILE: "/etc/ssl/certs/ca-certificates.crt" }).warnings).toContainEqual(
      expect.stringContaining("SSL_CERT_FILE is set without SSL_KEY_FILE: ignored"),
    );
    expect(load({ SSL_KEY_FILE: "/x/key.pem" }).warnings).toContainEqual(expect.stringContaining("SSL_KEY_FILE is set without SSL_CERT_FILE: ignored"));
  });
});

describe("egress", () => {
  it("is off by default, with the registries' port, no extra names and 2 GiB caches under /opt/skill-deps", () => {
    expect(load().config.egress).toEqual({
      enabled: false,
      port: 18443,
      allowlist: [],
      resolve: [],
      skillDepsPath: "/opt/skill-deps",
      skillDepsMaxBytes: 2048 * 1024 * 1024,
      skillDepsMaxAgeMs: 30 * 86_400_000,
    });
  });

  it("reads the allowlist, pinned addresses and cache folder; SKILL_DEPS_PATH=off turns caches off", () => {
    const { config, errors, warnings } = load({
      ENABLE_SANDBOX_NETWORK: "true",
      SANDBOX_EGRESS_PORT: "3128",
      SANDBOX_EGRESS_ALLOWLIST: "files.example.com, *.example.org,mirror.example.net:8443",
      SANDBOX_EGRESS_RESOLVE: "mirror.example.net=10.0.0.5",
      SKILL_DEPS_PATH: "off",
      SKILL_DEPS_MAX_MB: "0",
      SKILL_DEPS_TTL_DAYS: "0",
    });
    expect(errors).toEqual([]);
    expect(config.egress).toEqual({
      enabled: true,
      port: 3128,
      allowlist: ["files.example.com", "*.example.org", "mirror.example.net:8443"],
      resolve: ["mirror.example.net=10.0.0.5"],
      skillDepsMaxBytes: 0,
      skillDepsMaxAgeMs: 0,
    });
    expect(warnings.join("\n")).not.toMatch(/ENABLE_SANDBOX_NETWORK/);
  });

  it("refuses addresses and URLs in the allowlist, and says pods get no package caches", () => {
    expect(load({ SANDBOX_EGRESS_ALLOWLIST: "10.0.0.1:443x" }).errors.join("\n")).toMatch(/SANDBOX_EGRESS_ALLOWLIST/);
    expect(load({ SANDBOX_EGRESS_ALLOWLIST: "https://pypi.org" }).errors.join("\n")).toMatch(/SANDBOX_EGRESS_ALLOWLIST/);
    expect(load({ SANDBOX_EGRESS_RESOLVE: "mirror.example.net" }).errors.join("\n")).toMatch(/SANDBOX_EGRESS_RESOLVE/);
    expect(load({ SKILL_DEPS_MAX_MB: "-1" }).errors.join("\n")).toMatch(/SKILL_DEPS_MAX_MB/);
    const pods = load({ ENABLE_SANDBOX_NETWORK: "true", EXECUTION_BACKEND: "kubernetes" });
    expect(pods.warnings.join("\n")).toMatch(/SKILL_DEPS_PATH package caches are for local sandboxes/);
  });
});

describe("MAX_LIVE_SANDBOXES when unset", () => {
  it("is what fits in 80% of the machine's memory at MAX_MEMORY_MB each (at least 4) locally, and no cap for pods", () => {
    const gib = 1024 ** 3;
    expect(defaultLiveSandboxes("local", 512 * 1024 ** 2, 24 * gib)).toBe(38);
    expect(defaultLiveSandboxes("local", 4 * gib, 8 * gib)).toBe(4);
    expect(defaultLiveSandboxes("kubernetes", 512 * 1024 ** 2, 24 * gib)).toBe(0);
    expect(loadConfig({ env: { MAX_LIVE_SANDBOXES: "0" }, envFile: false }).config.limits.liveSandboxes).toBe(0);
    expect(loadConfig({ env: { MAX_MEMORY_MB: "1048576" }, envFile: false }).config.limits.liveSandboxes).toBe(4);
  });
});

describe("MAX_SANDBOXES_PER_PRINCIPAL when unset", () => {
  it("is half of MAX_LIVE_SANDBOXES (at least 2), and no cap when there is none; a set value wins", () => {
    expect(defaultSandboxesPerPrincipal(38)).toBe(19);
    expect(defaultSandboxesPerPrincipal(4)).toBe(2);
    expect(defaultSandboxesPerPrincipal(0)).toBe(0);
    expect(loadConfig({ env: { MAX_LIVE_SANDBOXES: "10" }, envFile: false }).config.limits.sandboxesPerPrincipal).toBe(5);
    expect(loadConfig({ env: { MAX_LIVE_SANDBOXES: "0" }, envFile: false }).config.limits.sandboxesPerPrincipal).toBe(0);
    expect(loadConfig({ env: { MAX_SANDBOXES_PER_PRINCIPAL: "7" }, envFile: false }).config.limits.sandboxesPerPrincipal).toBe(7);
  });
});
