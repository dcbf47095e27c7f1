/**
 * The production checklist of the guides, evaluated against a loaded
 * configuration: one PASS or WARN per item.
 */
import { DEFAULT_API_KEY, type LoadedConfig, MIN_KEY_LENGTH } from "./load.ts";

export interface SecurityCheck {
  group: "Security" | "Monitoring" | "Infrastructure";
  title: string;
  status: "PASS" | "WARN";
  detail: string;
}

const WEAK_STORAGE_KEYS = new Set(["minioadmin", "test-access-key", "test-secret-key"]);

export function securityChecks({ config }: LoadedConfig): SecurityCheck[] {
  const checks: SecurityCheck[] = [];
  const add = (group: SecurityCheck["group"], title: string, pass: boolean, ok: string, warn: string) =>
    checks.push({ group, title, status: pass ? "PASS" : "WARN", detail: pass ? ok : warn });
  const { auth, limits, sandbox, logging, server, raw } = config;

  add(
    "Security",
    "Default API key replaced",
    !auth.apiKeys.includes(DEFAULT_API_KEY),
    "API_KEY is not the default",
    `API_KEY is still "${DEFAULT_API_KEY}": set a random secret`,
  );
  const shortKeys = auth.apiKeys.filter((key) => key.length < MIN_KEY_LENGTH).length;
  add(
    "Security",
    `API keys of at least ${MIN_KEY_LENGTH} characters`,
    shortKeys === 0,
    `${auth.apiKeys.length} key(s), all long enough`,
    `${shortKeys} key(s) shorter than ${MIN_KEY_LENGTH} characters`,
  );
  add(
    "Security",
    "Authentication required (AUTH_ENABLED)",
    auth.enabled,
    "user routes require an API key",
    "AUTH_ENABLED=false: anyone who reaches the port may run code",
  );
  const { jwt } = auth;
  const keys = jwt.verifier ? [...jwt.verifier.keys.values()] : [];
  const hs256 = keys.some((key) => key.alg === "HS256");
  add(
    "Security",
    `Caller authentication (CODEAPI_AUTH_PROVIDER=${jwt.provider})`,
    !hs256,
    jwt.provider === "api-key"
      ? "API keys"
      : `${jwt.provider === "both" ? "API keys and " : ""}LibreChat tokens: iss ${jwt.verifier?.issuer}, aud ${jwt.verifier?.audience}, kid ${keys.map((key) => `${key.kid} (${key.alg})`).join(", ")}`,
    "CODEAPI_JWT_HS256_SECRET is set: anyone holding the secret mints tokens (development only)",
  );
  const master = auth.masterKey;
  add(
    "Security",
    "Master key strong and distinct (MASTER_API_KEY)",
    master === undefined || (master.length >= MIN_KEY_LENGTH && !auth.apiKeys.includes(master)),
    master === undefined ? "not set: admin routes are closed" : "set, long enough, distinct from user keys",
    master !== undefined && auth.apiKeys.includes(master) ? "MASTER_API_KEY is also a user key" : `MASTER_API_KEY is shorter than ${MIN_KEY_LENGTH} characters`,
  );
  add(
    "Security",
    "Network isolation (ENABLE_NETWORK_ISOLATION)",
    sandbox.networkIsolation,
    "sandboxes have no network",
    "set to false (local sandboxes still get no network)",
  );
  add(
    "Security",
    "Filesystem isolation (ENABLE_FILESYSTEM_ISOLATION)",
    sandbox.filesystemIsolation,
    "sandboxes see only their own files",
    "set to false (local sandboxes still get a private filesystem view)",
  );
  add(
    "Security",
    "Sandbox egress off (ENABLE_SANDBOX_NETWORK)",
    raw.ENABLE_SANDBOX_NETWORK !== true,
    "no egress proxy",
    "sandboxes may reach package registries through the egress proxy",
  );
  add("Security", "Sandboxes run as a non-root user (SANDBOX_UID)", sandbox.uid !== 0, `uid ${sandbox.uid}, gid ${sandbox.gid}`, "uid 0");
  const high: string[] = [];
  if (limits.execTimeoutMs > 300_000) high.push(`MAX_EXECUTION_TIME=${limits.execTimeoutMs / 1000}s`);
  if (limits.memoryBytes > 4096 * 1024 * 1024) high.push(`MAX_MEMORY_MB=${limits.memoryBytes / 1024 / 1024}`);
  if (limits.pids > 4096) high.push(`MAX_PIDS=${limits.pids}`);
  if (limits.cpuQuotaUs === 0) high.push("MAX_CPU_QUOTA=0 (no CPU limit)");
  add(
    "Security",
    "Resource limits reviewed",
    high.length === 0,
    `${limits.execTimeoutMs / 1000}s, ${limits.memoryBytes / 1024 / 1024} MiB, ${limits.pids} pids, CPU quota ${limits.cpuQuotaUs} µs/100ms`,
    `unusually high: ${high.join(", ")}`,
  );
  add("Security", "Debug mode off (API_DEBUG)", !server.debug, "API_DEBUG=false", "API_DEBUG=true may expose internals");
  add(
    "Security",
    "HTTPS (ENABLE_HTTPS) or TLS at a proxy",
    server.https.enabled,
    `TLS with ${server.https.certFile}`,
    "HTTPS is off: terminate TLS at a reverse proxy in front of the server, or set ENABLE_HTTPS with a certificate",
  );
  if (server.https.enabled) {
    add("Security", "HTTP redirected to HTTPS (SSL_REDIRECT)", server.https.redirect, "SSL_REDIRECT=true", "plain HTTP is not redirected");
  }
  add(
    "Security",
    "CORS off or limited to named origins",
    !server.corsEnabled || (server.corsOrigins.length > 0 && !server.corsOrigins.includes("*")),
    server.corsEnabled ? `origins: ${server.corsOrigins.join(", ")}` : "ENABLE_CORS=false",
    "CORS allows every origin (CORS_ORIGINS empty or *)",
  );

  add("Monitoring", "Structured logging (LOG_FORMAT=json)", logging.format === "json", "json lines", "LOG_FORMAT=text: harder to aggregate");
  add("Monitoring", "Security event logging (ENABLE_SECURITY_LOGS)", logging.securityLogs, "on", "ENABLE_SECURITY_LOGS=false: failed logins are not logged");
  add(
    "Monitoring",
    "Log rotation",
    logging.file === undefined || logging.backupCount > 0,
    logging.file === undefined
      ? "logs go to stdout: rotation belongs to the collector"
      : `${logging.file} rotated at ${logging.maxSizeBytes / 1024 / 1024} MiB, ${logging.backupCount} backups`,
    "LOG_BACKUP_COUNT=0: each rotation discards the previous log",
  );

  const redisConfigured = config.redis.enabled;
  const redisAuth = config.redis.password !== undefined;
  add(
    "Infrastructure",
    "Redis secured with authentication",
    !redisConfigured || redisAuth,
    redisConfigured ? "password set" : "Redis not configured (embedded stores)",
    "Redis is configured without a password",
  );
  // Well-known keys are worth a warning even while S3 is off: they are one S3_ENDPOINT away from use.
  const storageConfigured = config.storage.s3.enabled || config.storage.s3.accessKey !== undefined;
  const accessKey = typeof raw.S3_ACCESS_KEY === "string" ? raw.S3_ACCESS_KEY : "";
  const secretKey = typeof raw.S3_SECRET_KEY === "string" ? raw.S3_SECRET_KEY : "";
  const storageOk = raw.S3_USE_IAM === true || (accessKey !== "" && secretKey !== "" && !WEAK_STORAGE_KEYS.has(accessKey) && !WEAK_STORAGE_KEYS.has(secretKey));
  add(
    "Infrastructure",
    "S3 storage secured with its own access keys",
    !storageConfigured || storageOk,
    storageConfigured ? (raw.S3_USE_IAM === true ? "IAM credentials" : "access keys set") : "S3 not configured (files in FILE_STORAGE_PATH)",
    "S3 access keys are missing or well-known defaults",
  );
  return checks;
}

export function renderSecurityReport(checks: readonly SecurityCheck[]): string {
  const out: string[] = [];
  let group = "";
  for (const check of checks) {
    if (check.group !== group) {
      if (group !== "") out.push("");
      group = check.group;
      out.push(group);
    }
    out.push(`  ${check.status}  ${check.title}: ${check.detail}`);
  }
  const passed = checks.filter((check) => check.status === "PASS").length;
  out.push("", `${passed} of ${checks.length} checks pass${passed < checks.length ? `, ${checks.length - passed} to review` : ""}`);
  return `${out.join("\n")}\n`;
}
