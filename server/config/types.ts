/**
 * The normalized configuration the rest of the server reads. `load.ts` builds it
 * from the environment (and `.env`) through the valibot schema in `schema.ts`;
 * units are converted here once (milliseconds, bytes), so nobody else parses env.
 */
import type { JwtConfig } from "./jwt.ts";
export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";

export interface AppConfig {
  server: {
    host: string;
    port: number;
    /** "auto": uWebSockets.js when it loads, else ws on node:http. */
    transport: "auto" | "uws" | "node";
    /** SHUTDOWN_GRACE_SECONDS in ms: how long running execs may finish after SIGTERM. */
    shutdownGraceMs: number;
    debug: boolean;
    https: {
      enabled: boolean;
      port: number;
      certFile: string;
      keyFile: string;
      caFile?: string;
      redirect: boolean;
    };
    corsEnabled: boolean;
    corsOrigins: string[];
    /** TRUSTED_PROXIES: addresses and CIDRs whose X-Forwarded-For is believed. */
    trustedProxies: string[];
    /** MAX_CONNECTIONS_PER_ADDRESS (0: no cap). */
    maxConnectionsPerAddress: number;
    docsEnabled: boolean;
    /** METRICS_ENABLED: serve GET /metrics. */
    metricsEnabled: boolean;
    /** METRICS_AUTH: who may read /metrics. */
    metricsAuth: "api_key" | "master" | "none";
  };
  auth: {
    enabled: boolean;
    /** API_KEY plus each of API_KEYS, de-duplicated, empty strings dropped. */
    apiKeys: string[];
    /** Lower-cased header name (API_KEY_HEADER). */
    header: string;
    masterKey?: string;
    keyCacheTtlMs: number;
    rateLimitEnabled: boolean;
    /** RATE_LIMIT_DEFAULT_PER_*: limits a new managed key gets for the windows its creator leaves out (absent: none). */
    defaultRateLimits: Partial<Record<"second" | "minute" | "hour" | "day" | "month", number>>;
    /** AUTH_FAILURE_LIMIT wrong keys per AUTH_FAILURE_WINDOW from one address, then 429. */
    authFailureLimit: number;
    authFailureWindowMs: number;
    /** CODEAPI_AUTH_PROVIDER and the CODEAPI_JWT_* verifier settings. */
    jwt: JwtConfig;
  };
  limits: {
    /** MAX_EXECUTION_TIME, in ms: the wall-time ceiling of one run. */
    execTimeoutMs: number;
    /** Compile stage ceiling (COMPILE_TIMEOUT, default = execTimeoutMs). */
    compileTimeoutMs: number;
    memoryBytes: number;
    /** MAX_CPU_QUOTA, microseconds per 100 ms period. */
    cpuQuotaUs: number;
    /** MAX_PIDS (alias MAX_PROCESSES). */
    pids: number;
    openFiles: number;
    /** MAX_OUTPUT_BYTES: stdout+stderr of one exec before it ends with output_limit. */
    outputBytes: number;
    /** MAX_CODE_BYTES: largest accepted code body. */
    codeBytes: number;
    /** PROGRAMMATIC_PAUSE_SECONDS, ms: a paused programmatic run's wait for tool results. */
    toolPauseMs: number;
    fileSizeBytes: number;
    totalFileSizeBytes: number;
    filesPerSession: number;
    outputFiles: number;
    filenameLength: number;
    concurrentExecutions: number;
    sessionsPerEntity: number;
    /** MAX_LIVE_SANDBOXES (0: no cap). */
    liveSandboxes: number;
    /** MAX_SANDBOXES_PER_PRINCIPAL (0: no cap). */
    sandboxesPerPrincipal: number;
    /** REQUEST_BODY_TIMEOUT (ms) and REQUEST_BODY_MIN_RATE (bytes/s): the slow-loris guard of request bodies. */
    bodyStallMs: number;
    bodyMinBytesPerSecond: number;
    /** ADMISSION_QUEUE_SIZE / ADMISSION_QUEUE_TIMEOUT (ms): runs waiting for an execution slot. */
    queueSize: number;
    queueTimeoutMs: number;
  };
  /** The warm pool (SANDBOX_POOL_*, POD_POOL_* aliases): server/sandbox/pool.ts. */
  pool: {
    enabled: boolean;
    /** Sum of SANDBOX_POOL_<LANG>: our sandboxes run every language. */
    target: number;
    /** SANDBOX_POOL_<LANG> by language code: pods of a language with its own image or resources get a pool of their own. */
    sizes: Record<string, number>;
    /** SANDBOX_POOL_PY > 0: agents preload Python (with REPL_ENABLED). */
    pythonPreload: boolean;
    warmupOnStartup: boolean;
    parallelBatch: number;
    replenishIntervalMs: number;
    exhaustionTrigger: boolean;
  };
  /** When /ready says 200 at start (server/sandbox/startup-check.ts, server/sandbox/pool-wait.ts). */
  readiness: {
    /** SANDBOX_STARTUP_CHECK: on failure stay up unready (and retry), exit 1, or no check at all. */
    startupCheck: "unready" | "exit" | "off";
    /** READY_WAIT_FOR_POOL_SECONDS, ms; 0: do not wait for the pool. */
    poolWaitMs: number;
  };
  sessions: {
    ttlMs: number;
    cleanupIntervalMs: number;
    idLength: number;
    /** SESSION_IDLE_GRACE (seconds in env): how long a session outlives its last client. */
    idleGraceMs: number;
    /** Frames kept per session for resume (SESSION_REPLAY_FRAMES). */
    replayFrames: number;
    replayBytes: number;
    /** FILE_STORAGE_PATH: session records and files of the embedded stores. */
    storagePath: string;
  };
  sandbox: {
    backend: "local" | "kubernetes";
    /** SANDBOX_BASE_DIR: per-sandbox host folders (sockets, /etc files). */
    baseDir: string;
    uid: number;
    gid: number;
    /** SANDBOX_TMPFS_SIZE_MB, bytes. */
    tmpBytes: number;
    /** SANDBOX_DATA_SIZE_MB, bytes: size of /mnt/data. */
    dataBytes: number;
    networkIsolation: boolean;
    filesystemIsolation: boolean;
    /** SANDBOX_TTL_MINUTES: a sandbox with no client and no exec for this long is destroyed (its session stays). */
    idleTtlMs: number;
    cleanupIntervalMs: number;
  };
  /** ENABLE_SANDBOX_NETWORK and the rest of the egress section (server/sandbox/egress/). */
  egress: {
    enabled: boolean;
    /** SANDBOX_EGRESS_PORT: the relay inside each sandbox. */
    port: number;
    /** SANDBOX_EGRESS_ALLOWLIST entries, beyond the package registries. */
    allowlist: string[];
    /** SANDBOX_EGRESS_RESOLVE entries, name=address. */
    resolve: string[];
    /** SKILL_DEPS_PATH; undefined when set to off (no caches). */
    skillDepsPath?: string;
    /** SKILL_DEPS_MAX_MB in bytes: each tenant's cache is a volume of that size; 0: plain folders, no limit. */
    skillDepsMaxBytes: number;
    /** SKILL_DEPS_TTL_DAYS in ms: a tenant's cache unused that long is removed; 0: kept for ever. */
    skillDepsMaxAgeMs: number;
  };
  /** EXECUTION_BACKEND=kubernetes: the pods (server/sandbox/kubernetes/). */
  kubernetes: {
    /** K8S_NAMESPACE; undefined: the server's own namespace. */
    namespace?: string;
    /** <K8S_IMAGE_REGISTRY>/sandbox:<K8S_IMAGE_TAG>. */
    image: string;
    imagePullPolicy: "Always" | "IfNotPresent" | "Never";
    imagePullSecrets: string[];
    cpuRequest: string;
    cpuLimit: string;
    memoryRequest: string;
    memoryLimit: string;
    agentPort: number;
    /** GKE_SANDBOX_RUNTIME_CLASS when GKE_SANDBOX_ENABLED. */
    runtimeClassName?: string;
    nodeSelector: Record<string, string>;
    tolerations: Record<string, unknown>[];
    podStartTimeoutMs: number;
    orphanSweepMs: number;
    /** Per-language pod settings (LANG_IMAGE_<CODE>, K8S_CPU_LIMIT_<CODE>...): languages with any get pods of their own. */
    languages: Record<string, { image?: string; cpuRequest?: string; cpuLimit?: string; memoryRequest?: string; memoryLimit?: string }>;
  };
  logging: {
    level: LogLevel;
    format: "json" | "text";
    file?: string;
    maxSizeBytes: number;
    backupCount: number;
    accessLogs: boolean;
    securityLogs: boolean;
  };
  /** Shared state across replicas (server/config/redis.ts says when it is on). */
  redis: RedisConfig;
  /** Where session files live: S3 when configured (server/config/s3.ts says when), else FILE_STORAGE_PATH. */
  storage: {
    backend: "local" | "s3";
    s3: S3Config;
  };
  /** Saved Python state (STATE_*): kept when a session's sandbox is reclaimed, restored into its next one. */
  state: {
    enabled: boolean;
    ttlMs: number;
    maxBytes: number;
    maxRedisBytes: number;
    captureOnError: boolean;
    /** STATE_CHECKPOINT_AFTER_RUN resolved (auto: on for Kubernetes): save after every Python run. */
    checkpointAfterRun: boolean;
    archiveEnabled: boolean;
    archiveAfterMs: number;
    archiveTtlMs: number;
    archiveCheckIntervalMs: number;
  };
  /** Everything else the seed guides define (Redis, S3, pools, state, Kubernetes...), typed by later issues. */
  raw: Readonly<Record<string, string | number | boolean | undefined>>;
}

export interface RedisAddress {
  host: string;
  port: number;
}

/** Redis settings, resolved from REDIS_* (a REDIS_URL is parsed into these fields). */
export interface RedisConfig {
  /** Off: the embedded stores. On when a REDIS_* variable says where Redis is (see redis.ts). */
  enabled: boolean;
  /** The variable that turned Redis on (REDIS_URL, REDIS_HOST...), for messages. */
  enabledBy?: string;
  mode: "standalone" | "cluster" | "sentinel";
  /** Standalone: the server; cluster: the seed when REDIS_CLUSTER_NODES is unset. */
  host: string;
  port: number;
  /** A unix socket (unix:// URL, standalone only); host and port are then unused. */
  path?: string;
  /** ACL user (from the URL's user:password@). */
  username?: string;
  password?: string;
  /** Standalone and sentinel; always 0 in cluster mode. */
  db: number;
  /** Cluster startup nodes (at least the seed). */
  clusterNodes: RedisAddress[];
  sentinel: {
    nodes: RedisAddress[];
    masterName: string;
    password?: string;
  };
  tls: {
    enabled: boolean;
    caFile?: string;
    certFile?: string;
    keyFile?: string;
    /** Skip certificate verification altogether (REDIS_TLS_INSECURE). */
    insecure: boolean;
    /** Also match the certificate against the host name (off by default: managed services and cluster discovery use IPs). */
    checkHostname: boolean;
  };
  /** Prepended to every key, and by hand to pub/sub channels and SCAN patterns (redis/connection.ts). */
  keyPrefix: string;
  /** REDIS_SOCKET_CONNECT_TIMEOUT, ms. */
  connectTimeoutMs: number;
  /** REDIS_SOCKET_TIMEOUT, ms: a command without an answer by then fails, and the connection is dropped and re-made. */
  commandTimeoutMs: number;
  /** REDIS_MAX_CONNECTIONS: connections one replica may open (commands share one per node; subscribers add theirs). */
  maxConnections: number;
}

/** Object storage of session files (S3_*, MINIO_* aliases). */
export interface S3Config {
  /** On when S3_ENDPOINT or S3_BUCKET (or a MINIO_* alias) is set; off: the embedded folder. */
  enabled: boolean;
  /** Host of S3_ENDPOINT. */
  endPoint: string;
  /** Port of S3_ENDPOINT; without one, 443 with S3_SECURE and 80 without. */
  port: number;
  /** S3_SECURE: HTTPS. */
  useSSL: boolean;
  accessKey?: string;
  secretKey?: string;
  /** S3_USE_IAM: credentials from the instance role / web identity instead of keys. */
  useIam: boolean;
  bucket: string;
  region: string;
  /** ENABLE_ORPHAN_S3_CLEANUP: the session sweep deletes objects of sessions that no longer exist. */
  orphanCleanup: boolean;
  /** S3_REQUEST_TIMEOUT, ms: a request with no byte moving for this long fails. */
  requestTimeoutMs: number;
}
