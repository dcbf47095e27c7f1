/**
 * Build the AppConfig from the environment and an optional `.env` file.
 *
 * Precedence, for each setting: the real environment over `.env`; within one of
 * them, the canonical name over its aliases (older names). Empty values count as
 * unset. Every catalog variable is validated by the schema; bad values become
 * errors (the setting then keeps its default so the result stays complete), and
 * risky or ignored settings become warnings.
 */

import { existsSync, readFileSync } from "node:fs";
import { totalmem } from "node:os";
import { resolve } from "node:path";
import { LANGUAGES } from "../../protocol/languages.ts";
import { parseDotEnv } from "./dotenv.ts";
import { resolveHttps } from "./https.ts";
import { resolveJwt } from "./jwt.ts";
import { maskValue } from "./mask.ts";
import { resolveRedis } from "./redis.ts";
import { resolveS3 } from "./s3.ts";
import { parseEnvStrings, parseValue, type RawValue, splitList } from "./schema.ts";
import type { AppConfig, LogLevel } from "./types.ts";
import { POOL_SIZE_VARIABLES, VARIABLES, type VariableSpec } from "./variables.ts";

export const DEFAULT_API_KEY = "test-api-key";
export const MIN_KEY_LENGTH = 16;
const MIB = 1024 * 1024;

export interface LoadConfigOptions {
  /** The environment to read (default: process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  /** The `.env` file to read, relative to cwd (default ".env"; false: none). Values in `env` win. */
  envFile?: string | false;
  /** Folder that relative paths (envFile, SSL files) are resolved against (default: process.cwd()). */
  cwd?: string;
}

/** Where a setting came from: the environment, the .env file, the built-in default, or the alias name it was read under. */
export type ValueSource = "env" | ".env" | "default" | (string & {});

export interface LoadedConfig {
  config: AppConfig;
  errors: string[];
  warnings: string[];
  /** For every catalog variable (and each set member of a family such as LANG_IMAGE_PY). */
  sources: Record<string, ValueSource>;
}

type Layer = "env" | ".env";

interface Candidate {
  name: string;
  layer: Layer;
  text: string;
  value: string | number | boolean;
  order: number;
}

function ignoredReason(spec: VariableSpec): string {
  return (spec.note ?? "it has no effect here").replace(/^Ignored: /, "");
}

function show(spec: VariableSpec, name: string, value: string): string {
  return spec.secret ? maskValue(name, value) : value;
}

export function loadConfig(options: LoadConfigOptions = {}): LoadedConfig {
  const cwd = options.cwd ?? process.cwd();
  const env = options.env ?? process.env;
  const errors: string[] = [];
  const warnings: string[] = [];

  // --- .env ------------------------------------------------------------------
  let fileValues: Record<string, string> = {};
  if (options.envFile !== false) {
    const file = resolve(cwd, options.envFile ?? ".env");
    if (existsSync(file)) {
      try {
        const parsed = parseDotEnv(readFileSync(file, "utf8"));
        fileValues = parsed.values;
        for (const error of parsed.errors) warnings.push(`${file}: ${error} (skipped)`);
      } catch (error) {
        warnings.push(`${file} could not be read: ${error instanceof Error ? error.message : String(error)}`);
      }
    } else if (options.envFile !== undefined) {
      warnings.push(`env file ${file} does not exist`);
    }
  }

  const lookup = (name: string): { text: string; layer: Layer } | undefined => {
    const fromEnv = env[name];
    if (fromEnv !== undefined && fromEnv.trim() !== "") return { text: fromEnv, layer: "env" };
    const fromFile = fileValues[name];
    if (fromFile !== undefined && fromFile.trim() !== "") return { text: fromFile, layer: ".env" };
    return undefined;
  };

  // --- validate every literal name that is set --------------------------------
  const literal = VARIABLES.filter((spec) => !spec.pattern);
  const strings: Record<string, string> = {};
  const layers: Record<string, Layer> = {};
  for (const spec of literal) {
    for (const name of [spec.name, ...spec.aliases]) {
      const found = lookup(name);
      if (found) {
        strings[name] = found.text;
        layers[name] = found.layer;
      }
    }
  }
  const parsed = parseEnvStrings(strings);
  errors.push(...parsed.errors);

  // --- resolve aliases and defaults --------------------------------------------
  const raw: Record<string, RawValue> = {};
  const sources: Record<string, ValueSource> = {};
  const explicit = new Set<string>();
  for (const spec of literal) {
    const names = [spec.name, ...spec.aliases];
    const candidates: Candidate[] = [];
    names.forEach((name, order) => {
      const value = parsed.values[name];
      const layer = layers[name];
      const text = strings[name];
      if (value !== undefined && layer !== undefined && text !== undefined) candidates.push({ name, layer, text, value, order });
    });
    candidates.sort((a, b) => (a.layer === b.layer ? a.order - b.order : a.layer === "env" ? -1 : 1));
    const winner = candidates[0];
    if (winner) {
      raw[spec.name] = winner.value;
      sources[spec.name] = winner.name === spec.name ? winner.layer : winner.name;
      explicit.add(spec.name);
      for (const other of candidates.slice(1)) {
        if (other.value === winner.value) continue;
        const why =
          winner.layer !== other.layer
            ? "the real environment wins over .env"
            : winner.name === spec.name
              ? `${spec.name} is the current name`
              : `${winner.name} is the newer name`;
        warnings.push(
          `${winner.name}=${show(spec, winner.name, winner.text)} (${winner.layer}) and ${other.name}=${show(spec, other.name, other.text)} (${other.layer}) are both set and differ: using ${winner.name} (${why})`,
        );
      }
    } else if (spec.default !== undefined) {
      const result = parseValue(spec, spec.name, spec.default);
      if (!result.ok) throw new Error(`catalog default of ${spec.name} is invalid: ${result.message}`);
      raw[spec.name] = result.value;
      sources[spec.name] = "default";
    } else {
      raw[spec.name] = undefined;
      sources[spec.name] = "default";
    }
    if (spec.status === "ignored" && explicit.has(spec.name)) {
      warnings.push(`${spec.name} is set but ignored: ${ignoredReason(spec)}`);
    }
  }

  // --- families (LANG_IMAGE_<CODE>...) and unknown names in .env -----------------
  const families = VARIABLES.filter((spec) => spec.pattern);
  const seen = new Set<string>([...Object.keys(env), ...Object.keys(fileValues)]);
  for (const name of [...seen].sort()) {
    const family = families.find((spec) => spec.pattern?.test(name));
    if (!family) continue;
    const found = lookup(name);
    if (!found) continue;
    if (family.status === "ignored") {
      raw[name] = found.text.trim();
      sources[name] = found.layer;
      warnings.push(`${name} is set but ignored: ${ignoredReason(family)}`);
      continue;
    }
    // An active family (LANG_IMAGE_<CODE>, K8S_MEMORY_LIMIT_<CODE>...): the suffix must be a language, the value valid.
    const code = /_([A-Z0-9]+)$/.exec(name)?.[1]?.toLowerCase() ?? "";
    if (!LANGUAGES.has(code)) {
      errors.push(`${name}: ${code.toUpperCase()} is not a language code (expected one of ${[...LANGUAGES.keys()].map((c) => c.toUpperCase()).join(", ")})`);
      continue;
    }
    const parsedValue = parseValue(family, name, found.text.trim());
    if (!parsedValue.ok) {
      errors.push(parsedValue.message);
      continue;
    }
    raw[name] = parsedValue.value;
    sources[name] = found.layer;
  }
  const known = new Set(literal.flatMap((spec) => [spec.name, ...spec.aliases]));
  for (const name of Object.keys(fileValues)) {
    if (!known.has(name) && !families.some((spec) => spec.pattern?.test(name))) warnings.push(`.env sets ${name}, which is not a known variable (ignored)`);
  }

  // --- derived defaults ------------------------------------------------------------
  if (!explicit.has("COMPILE_TIMEOUT")) raw.COMPILE_TIMEOUT = raw.MAX_EXECUTION_TIME;
  if (!explicit.has("SANDBOX_GID")) raw.SANDBOX_GID = raw.SANDBOX_UID;
  if (raw.K8S_EXECUTION_MODE === "nsenter") {
    warnings.push("K8S_EXECUTION_MODE=nsenter is not supported: mapped to agent (the sidecar-agent runs code without nsenter or extra capabilities)");
    raw.K8S_EXECUTION_MODE = "agent";
  }

  const https = resolveHttps(raw, explicit, sources, cwd, errors, warnings);
  const redis = resolveRedis(raw, explicit, cwd, errors, warnings);
  const s3 = resolveS3(raw, explicit, errors, warnings);
  const jwt = resolveJwt(raw, explicit, errors, warnings);

  // --- typed view --------------------------------------------------------------------
  const num = (name: string): number => raw[name] as number;
  const bool = (name: string): boolean => raw[name] as boolean;
  const text = (name: string): string | undefined => raw[name] as string | undefined;

  const apiKeys = [...new Set([text("API_KEY") ?? "", ...splitList(raw.API_KEYS)].map((key) => key.trim()).filter((key) => key.length > 0))];
  const masterKey = text("MASTER_API_KEY");
  const logFile = text("LOG_FILE");
  const liveSandboxes =
    raw.MAX_LIVE_SANDBOXES !== undefined
      ? num("MAX_LIVE_SANDBOXES")
      : defaultLiveSandboxes(text("EXECUTION_BACKEND") as AppConfig["sandbox"]["backend"], num("MAX_MEMORY_MB") * MIB);

  const config: AppConfig = {
    server: {
      host: text("API_HOST")!,
      port: num("API_PORT"),
      transport: text("SERVER_TRANSPORT") as AppConfig["server"]["transport"],
      shutdownGraceMs: num("SHUTDOWN_GRACE_SECONDS") * 1000,
      debug: bool("API_DEBUG"),
      https,
      corsEnabled: bool("ENABLE_CORS"),
      corsOrigins: splitList(raw.CORS_ORIGINS),
      trustedProxies: splitList(raw.TRUSTED_PROXIES),
      maxConnectionsPerAddress: num("MAX_CONNECTIONS_PER_ADDRESS"),
      docsEnabled: bool("ENABLE_DOCS"),
      metricsEnabled: bool("METRICS_ENABLED"),
      metricsAuth: text("METRICS_AUTH") as AppConfig["server"]["metricsAuth"],
    },
    auth: {
      enabled: bool("AUTH_ENABLED"),
      apiKeys,
      header: text("API_KEY_HEADER")!.toLowerCase(),
      ...(masterKey ? { masterKey } : {}),
      keyCacheTtlMs: num("API_KEY_CACHE_TTL") * 1000,
      rateLimitEnabled: bool("RATE_LIMIT_ENABLED"),
      defaultRateLimits: Object.fromEntries(
        (["second", "minute", "hour", "day", "month"] as const)
          .map((window) => [window, num(`RATE_LIMIT_DEFAULT_PER_${window.toUpperCase()}`)] as const)
          .filter(([, limit]) => limit > 0),
      ),
      authFailureLimit: num("AUTH_FAILURE_LIMIT"),
      authFailureWindowMs: num("AUTH_FAILURE_WINDOW") * 1000,
      jwt,
    },
    limits: {
      execTimeoutMs: num("MAX_EXECUTION_TIME") * 1000,
      compileTimeoutMs: num("COMPILE_TIMEOUT") * 1000,
      memoryBytes: num("MAX_MEMORY_MB") * MIB,
      cpuQuotaUs: num("MAX_CPU_QUOTA"),
      pids: num("MAX_PIDS"),
      openFiles: num("MAX_OPEN_FILES"),
      outputBytes: num("MAX_OUTPUT_BYTES"),
      codeBytes: num("MAX_CODE_BYTES"),
      toolPauseMs: num("PROGRAMMATIC_PAUSE_SECONDS") * 1000,
      fileSizeBytes: num("MAX_FILE_SIZE_MB") * MIB,
      totalFileSizeBytes: num("MAX_TOTAL_FILE_SIZE_MB") * MIB,
      filesPerSession: num("MAX_FILES_PER_SESSION"),
      outputFiles: num("MAX_OUTPUT_FILES"),
      filenameLength: num("MAX_FILENAME_LENGTH"),
      concurrentExecutions: num("MAX_CONCURRENT_EXECUTIONS"),
      sessionsPerEntity: num("MAX_SESSIONS_PER_ENTITY"),
      liveSandboxes,
      sandboxesPerPrincipal: raw.MAX_SANDBOXES_PER_PRINCIPAL !== undefined ? num("MAX_SANDBOXES_PER_PRINCIPAL") : defaultSandboxesPerPrincipal(liveSandboxes),
      bodyStallMs: num("REQUEST_BODY_TIMEOUT") * 1000,
      bodyMinBytesPerSecond: num("REQUEST_BODY_MIN_RATE"),
      queueSize: num("ADMISSION_QUEUE_SIZE"),
      queueTimeoutMs: num("ADMISSION_QUEUE_TIMEOUT") * 1000,
    },
    pool: {
      enabled: bool("SANDBOX_POOL_ENABLED"),
      target: POOL_SIZE_VARIABLES.reduce((sum, name) => sum + num(name), 0),
      sizes: Object.fromEntries(POOL_SIZE_VARIABLES.map((name) => [name.slice("SANDBOX_POOL_".length).toLowerCase(), num(name)])),
      pythonPreload: num("SANDBOX_POOL_PY") > 0 && bool("REPL_ENABLED"),
      warmupOnStartup: bool("SANDBOX_POOL_WARMUP_ON_STARTUP"),
      parallelBatch: num("SANDBOX_POOL_PARALLEL_BATCH"),
      replenishIntervalMs: num("SANDBOX_POOL_REPLENISH_INTERVAL") * 1000,
      exhaustionTrigger: bool("SANDBOX_POOL_EXHAUSTION_TRIGGER"),
    },
    readiness: {
      startupCheck: text("SANDBOX_STARTUP_CHECK") as AppConfig["readiness"]["startupCheck"],
      poolWaitMs: num("READY_WAIT_FOR_POOL_SECONDS") * 1000,
    },
    sessions: {
      ttlMs: num("SESSION_TTL_HOURS") * 3_600_000,
      cleanupIntervalMs: num("SESSION_CLEANUP_INTERVAL_MINUTES") * 60_000,
      idLength: num("SESSION_ID_LENGTH"),
      idleGraceMs: num("SESSION_IDLE_GRACE") * 1000,
      replayFrames: num("SESSION_REPLAY_FRAMES"),
      replayBytes: num("SESSION_REPLAY_BYTES"),
      storagePath: text("FILE_STORAGE_PATH")!,
    },
    sandbox: {
      backend: text("EXECUTION_BACKEND") as AppConfig["sandbox"]["backend"],
      baseDir: text("SANDBOX_BASE_DIR")!,
      uid: num("SANDBOX_UID"),
      gid: num("SANDBOX_GID"),
      tmpBytes: num("SANDBOX_TMPFS_SIZE_MB") * MIB,
      dataBytes: num("SANDBOX_DATA_SIZE_MB") * MIB,
      networkIsolation: bool("ENABLE_NETWORK_ISOLATION"),
      filesystemIsolation: bool("ENABLE_FILESYSTEM_ISOLATION"),
      idleTtlMs: num("SANDBOX_TTL_MINUTES") * 60_000,
      cleanupIntervalMs: num("SANDBOX_CLEANUP_INTERVAL_MINUTES") * 60_000,
    },
    egress: {
      enabled: bool("ENABLE_SANDBOX_NETWORK"),
      port: num("SANDBOX_EGRESS_PORT"),
      allowlist: splitList(raw.SANDBOX_EGRESS_ALLOWLIST),
      resolve: splitList(raw.SANDBOX_EGRESS_RESOLVE),
      // "off" (empty means the default, as for every variable): no caches, and the warm pool stays on.
      ...(text("SKILL_DEPS_PATH") && text("SKILL_DEPS_PATH")!.toLowerCase() !== "off" ? { skillDepsPath: resolve(cwd, text("SKILL_DEPS_PATH")!) } : {}),
      skillDepsMaxBytes: num("SKILL_DEPS_MAX_MB") * MIB,
      skillDepsMaxAgeMs: num("SKILL_DEPS_TTL_DAYS") * 86_400_000,
    },
    kubernetes: {
      ...(text("K8S_NAMESPACE") ? { namespace: text("K8S_NAMESPACE") } : {}),
      image: `${text("K8S_IMAGE_REGISTRY")}/sandbox:${text("K8S_IMAGE_TAG")}`,
      imagePullPolicy: text("K8S_IMAGE_PULL_POLICY") as AppConfig["kubernetes"]["imagePullPolicy"],
      imagePullSecrets: splitList(raw.K8S_IMAGE_PULL_SECRETS),
      cpuRequest: text("K8S_CPU_REQUEST")!,
      cpuLimit: text("K8S_CPU_LIMIT")!,
      memoryRequest: text("K8S_MEMORY_REQUEST")!,
      memoryLimit: text("K8S_MEMORY_LIMIT")!,
      agentPort: num("K8S_EXECUTOR_PORT"),
      ...(bool("GKE_SANDBOX_ENABLED") ? { runtimeClassName: text("GKE_SANDBOX_RUNTIME_CLASS") } : {}),
      nodeSelector: JSON.parse(text("GKE_SANDBOX_NODE_SELECTOR") ?? "{}"),
      tolerations: JSON.parse(text("GKE_SANDBOX_CUSTOM_TOLERATIONS") ?? "[]"),
      podStartTimeoutMs: num("K8S_POD_START_TIMEOUT") * 1000,
      orphanSweepMs: num("K8S_ORPHAN_SWEEP_INTERVAL") * 1000,
      languages: languageOverrides(raw),
    },
    logging: {
      level: text("LOG_LEVEL") as LogLevel,
      format: text("LOG_FORMAT") as AppConfig["logging"]["format"],
      ...(logFile ? { file: resolve(cwd, logFile) } : {}),
      maxSizeBytes: num("LOG_MAX_SIZE_MB") * MIB,
      backupCount: num("LOG_BACKUP_COUNT"),
      accessLogs: bool("ENABLE_ACCESS_LOGS"),
      securityLogs: bool("ENABLE_SECURITY_LOGS"),
    },
    redis,
    storage: { backend: s3.enabled ? "s3" : "local", s3 },
    state: {
      enabled: bool("STATE_PERSISTENCE_ENABLED"),
      ttlMs: num("STATE_TTL_SECONDS") * 1000,
      maxBytes: num("STATE_MAX_SIZE_MB") * MIB,
      maxRedisBytes: num("STATE_MAX_REDIS_SIZE_MB") * MIB,
      captureOnError: bool("STATE_CAPTURE_ON_ERROR"),
      checkpointAfterRun:
        text("STATE_CHECKPOINT_AFTER_RUN") === "true" || (text("STATE_CHECKPOINT_AFTER_RUN") === "auto" && text("EXECUTION_BACKEND") === "kubernetes"),
      archiveEnabled: bool("STATE_ARCHIVE_ENABLED"),
      archiveAfterMs: num("STATE_ARCHIVE_AFTER_SECONDS") * 1000,
      archiveTtlMs: num("STATE_ARCHIVE_TTL_DAYS") * 86_400_000,
      archiveCheckIntervalMs: num("STATE_ARCHIVE_CHECK_INTERVAL_SECONDS") * 1000,
    },
    raw: Object.freeze({ ...raw }),
  };

  warnings.push(...checkConfig(config));
  return { config, errors, warnings, sources };
}

/** LANG_IMAGE_<CODE> and K8S_{CPU,MEMORY}_{REQUEST,LIMIT}_<CODE>, by language code. */
function languageOverrides(raw: Record<string, RawValue>): AppConfig["kubernetes"]["languages"] {
  const fields = {
    LANG_IMAGE: "image",
    K8S_CPU_REQUEST: "cpuRequest",
    K8S_CPU_LIMIT: "cpuLimit",
    K8S_MEMORY_REQUEST: "memoryRequest",
    K8S_MEMORY_LIMIT: "memoryLimit",
  } as const;
  const languages: AppConfig["kubernetes"]["languages"] = {};
  for (const code of LANGUAGES.keys()) {
    for (const [prefix, field] of Object.entries(fields)) {
      const value = raw[`${prefix}_${code.toUpperCase()}`];
      if (typeof value === "string" && value) languages[code] = { ...languages[code], [field]: value };
    }
  }
  return languages;
}

/** Warnings about insecure or inconsistent choices in a loaded configuration. */
export function checkConfig(config: AppConfig): string[] {
  const warnings: string[] = [];
  const { auth } = config;
  if (!auth.enabled) {
    warnings.push("AUTH_ENABLED is false: user routes accept anyone who can reach the port; keep the server behind a proxy, VPN or mTLS");
  } else {
    if (auth.apiKeys.includes(DEFAULT_API_KEY)) {
      warnings.push(
        `API_KEY is the default "${DEFAULT_API_KEY}": set API_KEY to a random secret of at least ${MIN_KEY_LENGTH} characters before exposing the server`,
      );
    }
    if (auth.apiKeys.length === 0) warnings.push("no API key is configured: only MASTER_API_KEY can authenticate");
  }
  const short = auth.apiKeys.filter((key) => key !== DEFAULT_API_KEY && key.length < MIN_KEY_LENGTH).length;
  if (short > 0) warnings.push(`${short === 1 ? "an API key is" : `${short} API keys are`} shorter than ${MIN_KEY_LENGTH} characters (API_KEY / API_KEYS)`);
  if (auth.masterKey !== undefined) {
    if (auth.masterKey.length < MIN_KEY_LENGTH) warnings.push(`MASTER_API_KEY is shorter than ${MIN_KEY_LENGTH} characters`);
    if (auth.apiKeys.includes(auth.masterKey)) warnings.push("MASTER_API_KEY is also a user API key: give the master key its own value");
  }
  if (config.server.debug) warnings.push("API_DEBUG is true: disable debug mode in production, it may expose internals");
  if (!config.sandbox.networkIsolation) {
    warnings.push("ENABLE_NETWORK_ISOLATION is false: noted, but local sandboxes still get no network (their own empty network namespace)");
  }
  if (!config.sandbox.filesystemIsolation) {
    warnings.push("ENABLE_FILESYSTEM_ISOLATION is false: noted, but local sandboxes still get a private, read-only filesystem view");
  }
  if (config.egress.enabled && config.sandbox.backend === "kubernetes" && config.egress.skillDepsPath) {
    warnings.push("SKILL_DEPS_PATH package caches are for local sandboxes: pods get the egress proxy without them");
  }
  const perLanguage = Object.keys(config.kubernetes.languages);
  if (config.sandbox.backend === "local" && perLanguage.length > 0) {
    warnings.push(`per-language pod settings (LANG_IMAGE_<CODE>, K8S_*_<CODE>) for ${perLanguage.join(", ")} have no effect with EXECUTION_BACKEND=local`);
  }
  if (config.sandbox.backend === "kubernetes" && config.kubernetes.imagePullPolicy === "Always" && config.kubernetes.image.endsWith(":latest")) {
    warnings.push("sandbox pods pull a :latest image with K8S_IMAGE_PULL_POLICY=Always: every new pod pays an image check; pin K8S_IMAGE_TAG for production");
  }
  if (config.server.corsEnabled && (config.server.corsOrigins.length === 0 || config.server.corsOrigins.includes("*"))) {
    warnings.push("CORS allows every origin (CORS_ORIGINS empty or *)");
  }
  if (config.redis.enabled && config.redis.tls.enabled && config.redis.tls.insecure)
    warnings.push("REDIS_TLS_INSECURE is true: Redis certificates are not verified");
  if (config.limits.fileSizeBytes > config.sandbox.dataBytes) {
    warnings.push("MAX_FILE_SIZE_MB is larger than SANDBOX_DATA_SIZE_MB: files that large cannot be written to /mnt/data");
  }
  if (config.limits.fileSizeBytes > config.limits.totalFileSizeBytes) warnings.push("MAX_FILE_SIZE_MB is larger than MAX_TOTAL_FILE_SIZE_MB");
  if (config.limits.cpuQuotaUs === 0) warnings.push("MAX_CPU_QUOTA is 0: sandboxes may use every CPU of the host");
  return warnings;
}

/** MAX_SANDBOXES_PER_PRINCIPAL when unset: one principal may hold half of this replica's sandboxes, so another always finds room. */
export function defaultSandboxesPerPrincipal(liveSandboxes: number): number {
  return liveSandboxes > 0 ? Math.max(2, Math.floor(liveSandboxes / 2)) : 0;
}

/** Share of the machine's memory that sandboxes may claim by default (the rest: the server, the page cache, the pool). */
const SANDBOX_MEMORY_SHARE = 0.8;
const MIN_LIVE_SANDBOXES = 4;

/**
 * MAX_LIVE_SANDBOXES when unset: local sandboxes share this machine, so as
 * many as fit in its memory at MAX_MEMORY_MB each (one tenant's burst of
 * session-less /exec calls cannot take it all); pods live on other nodes, so
 * the cluster bounds them instead.
 */
export function defaultLiveSandboxes(backend: AppConfig["sandbox"]["backend"], memoryBytesPerSandbox: number, machineBytes = totalmem()): number {
  if (backend === "kubernetes") return 0;
  return Math.max(MIN_LIVE_SANDBOXES, Math.floor((machineBytes * SANDBOX_MEMORY_SHARE) / memoryBytesPerSandbox));
}
