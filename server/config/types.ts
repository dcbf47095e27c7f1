/**
 * The normalized configuration the rest of the server reads. `load.ts` builds it
 * from the environment (and `.env`) through the valibot schema in `schema.ts`;
 * units are converted here once (milliseconds, bytes), so nobody else parses env.
 */
export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";

export interface AppConfig {
  server: {
    host: string;
    port: number;
    /** "auto": uWebSockets.js when it loads, else ws on node:http. */
    transport: "auto" | "uws" | "node";
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
    docsEnabled: boolean;
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
    fileSizeBytes: number;
    totalFileSizeBytes: number;
    filesPerSession: number;
    outputFiles: number;
    filenameLength: number;
    concurrentExecutions: number;
    sessionsPerEntity: number;
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
  logging: {
    level: LogLevel;
    format: "json" | "text";
    file?: string;
    maxSizeBytes: number;
    backupCount: number;
    accessLogs: boolean;
    securityLogs: boolean;
  };
  /** Everything else the seed guides define (Redis, S3, pools, state, Kubernetes...), typed by later issues. */
  raw: Readonly<Record<string, string | number | boolean | undefined>>;
}
