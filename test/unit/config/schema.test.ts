import * as v from "valibot";
import { describe, expect, it } from "vitest";
import { envSchema, parseBoolean, parseEnvStrings, splitList, toPinoLevel } from "../../../server/config/schema.ts";
import { allVariableNames, findVariable, VARIABLES } from "../../../server/config/variables.ts";

describe("schema", () => {
  it("has a field for every canonical name and alias", () => {
    const keys = Object.keys(envSchema.entries);
    for (const name of allVariableNames()) expect(keys).toContain(name);
  });

  it("accepts every catalog default", () => {
    const defaults: Record<string, string> = {};
    for (const spec of VARIABLES) if (!spec.pattern && spec.default !== undefined) defaults[spec.name] = spec.default;
    const result = v.safeParse(envSchema, defaults);
    expect(result.issues).toBeUndefined();
  });

  it("drops unknown keys and keeps valid values beside invalid ones", () => {
    const { values, errors } = parseEnvStrings({ API_PORT: "x", API_HOST: "::1", SOMETHING_ELSE: "1" });
    expect(errors).toEqual(['API_PORT: "x" is not an integer between 1 and 65535 (or 0 for a free port)']);
    expect(values).toEqual({ API_HOST: "::1" });
  });

  it("parses booleans in every accepted spelling", () => {
    for (const yes of ["true", "TRUE", "1", "yes", "Yes", "on", "ON", " true "]) expect(parseBoolean(yes), yes).toBe(true);
    for (const no of ["false", "False", "0", "no", "NO", "off", "Off"]) expect(parseBoolean(no), no).toBe(false);
    for (const bad of ["", "y", "2", "enabled"]) expect(parseBoolean(bad), bad).toBeUndefined();
  });

  it("maps log levels", () => {
    expect(["DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL"].map(toPinoLevel)).toEqual(["debug", "info", "warn", "warn", "error", "fatal"]);
    expect(toPinoLevel("notice")).toBeUndefined();
  });

  it("splits lists", () => {
    expect(splitList(" a, b ,,c ")).toEqual(["a", "b", "c"]);
    expect(splitList(undefined)).toEqual([]);
  });

  it("finds aliases and family members in the catalog", () => {
    expect(findVariable("PORT")?.name).toBe("API_PORT");
    expect(findVariable("MINIO_BUCKET")?.name).toBe("S3_BUCKET");
    expect(findVariable("LANG_IMAGE_PY")?.name).toBe("LANG_IMAGE_<CODE>");
    expect(findVariable("LANG_NODEJS_IMAGE")?.name).toBe("LANG_<LANGUAGE>_IMAGE");
    expect(findVariable("NOT_A_VARIABLE")).toBeUndefined();
  });
});

describe("catalog", () => {
  it("has unique names and aliases", () => {
    const names = VARIABLES.flatMap((spec) => [spec.name, ...spec.aliases]);
    expect(new Set(names).size).toBe(names.length);
  });

  it("covers every variable of the four guides and ours", () => {
    // biome-ignore format: a compact list reads better here
    const expected = [
      // guides
      "API_HOST", "API_PORT", "PORT", "API_DEBUG", "API_RELOAD", "ENABLE_HTTPS", "HTTPS_PORT", "SSL_CERTS_PATH", "SSL_CERT_FILE", "SSL_KEY_FILE",
      "SSL_CA_CERTS", "SSL_REDIRECT", "API_KEY", "API_KEYS", "API_KEY_HEADER", "API_KEY_CACHE_TTL", "MASTER_API_KEY", "RATE_LIMIT_ENABLED",
      "AUTH_ENABLED", "REDIS_MODE", "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "REDIS_DB", "REDIS_URL", "REDIS_MAX_CONNECTIONS",
      "REDIS_SOCKET_TIMEOUT", "REDIS_SOCKET_CONNECT_TIMEOUT", "REDIS_KEY_PREFIX", "REDIS_CLUSTER_NODES", "REDIS_SENTINEL_NODES",
      "REDIS_SENTINEL_MASTER", "REDIS_SENTINEL_PASSWORD", "REDIS_TLS_ENABLED", "REDIS_TLS_CA_CERT_FILE", "REDIS_TLS_CERT_FILE",
      "REDIS_TLS_KEY_FILE", "REDIS_TLS_INSECURE", "REDIS_TLS_CHECK_HOSTNAME", "MINIO_ENDPOINT", "MINIO_ACCESS_KEY", "MINIO_SECRET_KEY",
      "MINIO_SECURE", "MINIO_BUCKET", "MINIO_REGION", "MINIO_USE_IAM", "S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY", "S3_SECURE",
      "S3_BUCKET", "S3_REGION", "ENABLE_ORPHAN_S3_CLEANUP", "DOCKER_BASE_URL", "DOCKER_TIMEOUT", "DOCKER_NETWORK_MODE", "DOCKER_READ_ONLY",
      "NSJAIL_BINARY", "SANDBOX_BASE_DIR", "SANDBOX_TMPFS_SIZE_MB", "SANDBOX_TTL_MINUTES", "SANDBOX_CLEANUP_INTERVAL_MINUTES", "SANDBOX_UID",
      "K8S_NAMESPACE", "K8S_SIDECAR_IMAGE", "K8S_IMAGE_REGISTRY", "K8S_IMAGE_TAG", "K8S_IMAGE_PULL_SECRETS", "K8S_IMAGE_PULL_POLICY",
      "K8S_CPU_LIMIT", "K8S_MEMORY_LIMIT", "K8S_CPU_REQUEST", "K8S_MEMORY_REQUEST", "K8S_EXECUTION_MODE", "K8S_EXECUTOR_PORT",
      "GKE_SANDBOX_ENABLED", "GKE_SANDBOX_RUNTIME_CLASS", "GKE_SANDBOX_NODE_SELECTOR", "GKE_SANDBOX_CUSTOM_TOLERATIONS",
      "MAX_EXECUTION_TIME", "MAX_MEMORY_MB", "MAX_CPU_QUOTA", "MAX_PIDS", "MAX_PROCESSES", "MAX_OPEN_FILES", "MAX_FILE_SIZE_MB",
      "MAX_TOTAL_FILE_SIZE_MB", "MAX_FILES_PER_SESSION", "MAX_OUTPUT_FILES", "MAX_FILENAME_LENGTH", "MAX_CONCURRENT_EXECUTIONS",
      "MAX_SESSIONS_PER_ENTITY", "SESSION_TTL_HOURS", "SESSION_CLEANUP_INTERVAL_MINUTES", "SESSION_ID_LENGTH",
      "CONTAINER_POOL_ENABLED", "CONTAINER_POOL_MIN_SIZE", "CONTAINER_POOL_MAX_SIZE", "CONTAINER_POOL_WARMUP_ON_STARTUP",
      "CONTAINER_POOL_PY_MIN", "CONTAINER_POOL_PY_MAX", "CONTAINER_POOL_JS_MIN", "CONTAINER_POOL_JS_MAX",
      "POD_POOL_ENABLED", "POD_POOL_WARMUP_ON_STARTUP", "POD_POOL_PY", "POD_POOL_JS", "POD_POOL_TS", "POD_POOL_GO", "POD_POOL_JAVA",
      "POD_POOL_RS", "POD_POOL_C", "POD_POOL_CPP", "POD_POOL_PHP", "POD_POOL_R", "POD_POOL_F90", "POD_POOL_D", "POD_POOL_PARALLEL_BATCH",
      "POD_POOL_REPLENISH_INTERVAL", "POD_POOL_EXHAUSTION_TRIGGER", "SANDBOX_POOL_ENABLED", "SANDBOX_POOL_WARMUP_ON_STARTUP",
      "SANDBOX_POOL_PY", "SANDBOX_POOL_PARALLEL_BATCH", "SANDBOX_POOL_REPLENISH_INTERVAL", "SANDBOX_POOL_EXHAUSTION_TRIGGER",
      "REPL_ENABLED", "REPL_WARMUP_TIMEOUT_SECONDS", "REPL_HEALTH_CHECK_TIMEOUT_SECONDS", "STATE_PERSISTENCE_ENABLED", "STATE_TTL_SECONDS",
      "STATE_MAX_SIZE_MB", "STATE_MAX_REDIS_SIZE_MB", "STATE_CAPTURE_ON_ERROR", "STATE_ARCHIVE_ENABLED", "STATE_ARCHIVE_AFTER_SECONDS",
      "STATE_ARCHIVE_TTL_DAYS", "STATE_ARCHIVE_CHECK_INTERVAL_SECONDS", "ENABLE_NETWORK_ISOLATION", "ENABLE_FILESYSTEM_ISOLATION",
      "ENABLE_SANDBOX_NETWORK", "SANDBOX_EGRESS_PORT", "SANDBOX_EGRESS_ALLOWLIST", "SKILL_DEPS_PATH", "LOG_LEVEL", "LOG_FORMAT", "LOG_FILE",
      "LOG_MAX_SIZE_MB", "LOG_BACKUP_COUNT", "ENABLE_ACCESS_LOGS", "ENABLE_SECURITY_LOGS", "HEALTH_CHECK_INTERVAL", "HEALTH_CHECK_TIMEOUT",
      "ENABLE_CORS", "CORS_ORIGINS", "ENABLE_DOCS", "LANG_IMAGE_PY", "LANG_PYTHON_IMAGE",
      // ours
      "SERVER_TRANSPORT", "SESSION_IDLE_GRACE", "SESSION_REPLAY_FRAMES", "MAX_OUTPUT_BYTES", "MAX_CODE_BYTES", "COMPILE_TIMEOUT",
      "SANDBOX_DATA_SIZE_MB", "SANDBOX_GID", "EXECUTION_BACKEND", "SKILL_DEPS_MAX_MB", "SKILL_DEPS_TTL_DAYS",
    ];
    const missing = expected.filter((name) => findVariable(name) === undefined);
    expect(missing).toEqual([]);
  });

  it("marks keys and passwords as secret", () => {
    for (const name of ["API_KEY", "API_KEYS", "MASTER_API_KEY", "REDIS_PASSWORD", "REDIS_URL", "REDIS_SENTINEL_PASSWORD", "S3_ACCESS_KEY", "S3_SECRET_KEY"]) {
      expect(findVariable(name)?.secret, name).toBe(true);
    }
    expect(findVariable("API_KEY_HEADER")?.secret).toBe(false);
  });

  it("gives every ignored variable a note on what replaces it", () => {
    for (const spec of VARIABLES.filter((s) => s.status === "ignored")) expect(spec.note, spec.name).toMatch(/\w/);
  });
});
