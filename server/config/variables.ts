/**
 * The catalog of every configuration variable: those of the four seed guides
 * (read as one product: the union of their variables, renamed ones as aliases)
 * plus our own. The schema, the loader, the `config` command, `.env.example`
 * and docs/CONFIGURATION.md are all derived from this one list.
 */

export type SectionId =
  | "server"
  | "https"
  | "auth"
  | "limits"
  | "files"
  | "sessions"
  | "sandbox"
  | "isolation"
  | "logging"
  | "development"
  | "redis"
  | "storage"
  | "pool"
  | "repl"
  | "state"
  | "egress"
  | "kubernetes"
  | "health"
  | "legacy";

export interface SectionSpec {
  id: SectionId;
  title: string;
  description: string;
}

export const SECTIONS: readonly SectionSpec[] = [
  { id: "server", title: "API server", description: "Where and how the API listens." },
  { id: "https", title: "HTTPS / TLS", description: "TLS for the API. Unset ENABLE_HTTPS means: on only when the certificate and key files exist." },
  { id: "auth", title: "Authentication", description: "API keys for user routes (x-api-key header or HTTP Basic) and the master key for admin routes." },
  { id: "limits", title: "Execution limits", description: "Per-run and per-sandbox resource ceilings." },
  { id: "files", title: "File limits", description: "Sizes and counts of session files." },
  { id: "sessions", title: "Sessions", description: "Session ids, lifetime and resume." },
  { id: "sandbox", title: "Sandboxes", description: "The execution backend and the local sandbox provider." },
  { id: "isolation", title: "Isolation", description: "Network and filesystem isolation of sandboxes." },
  { id: "logging", title: "Logging", description: "Log level, format, file and rotation, access and security logs." },
  { id: "development", title: "Development", description: "CORS and API documentation endpoints." },
  {
    id: "redis",
    title: "Redis",
    description:
      "Shared session state and caches across replicas (standalone, cluster or sentinel, optional TLS). Redis is used only when REDIS_URL, REDIS_HOST, REDIS_PORT, REDIS_MODE, REDIS_CLUSTER_NODES or REDIS_SENTINEL_NODES is set; otherwise the embedded stores are.",
  },
  {
    id: "storage",
    title: "Object storage (S3 / MinIO)",
    description:
      "S3-compatible storage for session files (and, later, archived state). MINIO_* names are aliases of S3_*. S3 is used only when S3_ENDPOINT or S3_BUCKET is set; otherwise files stay in FILE_STORAGE_PATH.",
  },
  {
    id: "pool",
    title: "Sandbox pool",
    description: "Pre-warmed sandboxes per language. POD_POOL_* and the older CONTAINER_POOL_* names are aliases of SANDBOX_POOL_*.",
  },
  { id: "repl", title: "Python REPL", description: "A pre-warmed Python interpreter with common libraries imported." },
  { id: "state", title: "Python state persistence", description: "Python variables kept across runs of a session, hot in Redis, archived to S3." },
  { id: "egress", title: "Sandbox network egress", description: "An allowlist proxy that lets sandboxes reach package registries." },
  {
    id: "kubernetes",
    title: "Kubernetes backend",
    description: "Sandboxes as Kubernetes pods (EXECUTION_BACKEND=kubernetes), including GKE Sandbox (gVisor).",
  },
  { id: "health", title: "Health checks", description: "Background health checks of dependencies, and what /ready waits for at start-up." },
  {
    id: "legacy",
    title: "Variables of other backends",
    description: "Accepted so that an existing .env keeps working; they have no effect here (see each note for our equivalent).",
  },
];

export type VariableKind =
  | { type: "string"; pattern?: RegExp; expected?: string }
  | { type: "path"; absolute?: boolean }
  | { type: "int"; min: number; max: number; expected?: string }
  | { type: "number"; min: number; max: number }
  | { type: "bool" }
  | { type: "enum"; values: readonly string[] }
  | { type: "list"; itemPattern?: RegExp; expected?: string }
  | { type: "loglevel" }
  | { type: "json"; shape: "object" | "array" };

/**
 * - active: read by the code today.
 * - reserved: accepted and validated, for a feature built in later work (Redis, S3, pools, Kubernetes...).
 * - ignored: belongs to a backend we do not have; accepted, reported when set, no effect.
 */
export type VariableStatus = "active" | "reserved" | "ignored";

export interface VariableSpec {
  /** Canonical name; for a family of names, a placeholder such as `LANG_IMAGE_<CODE>`. */
  name: string;
  /** Set for a family of names (the placeholder name is not an env var itself). */
  pattern?: RegExp;
  /** Other names accepted for the same setting, newest first; the canonical name wins over them. */
  aliases: readonly string[];
  section: SectionId;
  kind: VariableKind;
  /** The default as an env string; undefined: unset (or derived, see defaultText). */
  default?: string;
  /** Human text for a default that is derived or automatic ("= MAX_EXECUTION_TIME", "auto"). */
  defaultText?: string;
  /** Unit of the env value (seconds, MB...). */
  unit?: string;
  description: string;
  /** Masked in summaries, exports and error messages. */
  secret: boolean;
  status: VariableStatus;
  /** What we map it to, why it has no effect, or where the guides disagree on its default. */
  note?: string;
  /** Example value for the template, when there is no default. */
  example?: string;
}

const PORT_EXPECTED = "an integer between 1 and 65535 (or 0 for a free port)";
const HOST_PORT = /^[A-Za-z0-9.-]+:\d{1,5}$/;
const K8S_QUANTITY = /^\d+(\.\d+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/;
const DNS_NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const EGRESS_ENTRY = /^(\*\.)?[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:\d{1,5})?$/;
const EGRESS_PIN = /^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?=[0-9A-Fa-f:.]+$/;
const HEADER_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** An IPv4 or IPv6 address, optionally with a prefix length (checked fully when the server starts). */
const IP_OR_CIDR = /^(?:\d{1,3}(?:\.\d{1,3}){3}(?:\/\d{1,2})?|[0-9a-fA-F]*:[0-9a-fA-F:.]*(?:\/\d{1,3})?)$/;
const ORIGIN = /^(\*|https?:\/\/[^\s/]+)$/;

type Options = Partial<Pick<VariableSpec, "aliases" | "defaultText" | "unit" | "secret" | "note" | "example" | "pattern">>;

function def(
  name: string,
  section: SectionId,
  status: VariableStatus,
  kind: VariableKind,
  defaultValue: string | undefined,
  description: string,
  options: Options = {},
): VariableSpec {
  const spec: VariableSpec = { name, aliases: options.aliases ?? [], section, kind, description, secret: options.secret ?? false, status };
  if (defaultValue !== undefined) spec.default = defaultValue;
  for (const key of ["defaultText", "unit", "note", "example", "pattern"] as const) {
    if (options[key] !== undefined) (spec as unknown as Record<string, unknown>)[key] = options[key];
  }
  return spec;
}

const bool: VariableKind = { type: "bool" };
const str: VariableKind = { type: "string" };
const int = (min: number, max: number, expected?: string): VariableKind => (expected ? { type: "int", min, max, expected } : { type: "int", min, max });
const num = (min: number, max: number): VariableKind => ({ type: "number", min, max });
const oneOf = (...values: string[]): VariableKind => ({ type: "enum", values });
const path: VariableKind = { type: "path" };
const anything: VariableKind = { type: "string" };

/** Pool languages of the guides (POD_POOL_<LANG>); bash has no pool variable in any guide. */
const POOL_LANGUAGES: readonly [code: string, label: string, defaultSize: string][] = [
  ["PY", "Python", "2"],
  ["JS", "JavaScript", "2"],
  ["TS", "TypeScript", "0"],
  ["GO", "Go", "0"],
  ["JAVA", "Java", "0"],
  ["RS", "Rust", "0"],
  ["C", "C", "0"],
  ["CPP", "C++", "0"],
  ["PHP", "PHP", "0"],
  ["R", "R", "0"],
  ["F90", "Fortran", "0"],
  ["D", "D", "0"],
];

/** The per-language pool sizes; the warm pool keeps their sum (sandboxes run every language). */
export const POOL_SIZE_VARIABLES: readonly string[] = POOL_LANGUAGES.map(([code]) => `SANDBOX_POOL_${code}`);

function poolVariables(): VariableSpec[] {
  return POOL_LANGUAGES.map(([code, label, size]) => {
    const aliases = [`POD_POOL_${code}`];
    if (code === "PY" || code === "JS") aliases.push(`CONTAINER_POOL_${code}_MIN`);
    const note =
      code === "PY"
        ? "Guides disagree: 2 (nsjail guide, SANDBOX_POOL_PY), 5 (POD_POOL_PY, CONTAINER_POOL_PY_MIN); we keep 2. CONTAINER_POOL_PY_MIN maps here (the warm count)."
        : code === "JS"
          ? "CONTAINER_POOL_JS_MIN maps here (the warm count)."
          : undefined;
    return def(`SANDBOX_POOL_${code}`, "pool", "active", int(0, 1000), size, `${label} sandboxes kept warm (0 = start one on demand)`, {
      aliases,
      // Our sandboxes run every language: the per-language sizes add up to one pool per sandbox class (server/sandbox/pool-set.ts).
      note: `${note ? `${note} ` : ""}Sandboxes are not per language: the pool keeps the sum of all SANDBOX_POOL_<LANG> ready (on Kubernetes, languages with their own image or resources get a pool of their own)${code === "PY" ? "; above 0 (with REPL_ENABLED) agents preload Python" : ""}.`,
    });
  });
}

export const VARIABLES: readonly VariableSpec[] = [
  // --- API server -----------------------------------------------------------
  def("API_HOST", "server", "active", { type: "string", pattern: /^\S+$/, expected: "a host name or IP address" }, "0.0.0.0", "Address the API binds to"),
  def("API_PORT", "server", "active", int(0, 65535, PORT_EXPECTED), "8000", "Port of the API (HTTP and WebSocket on one port)", {
    aliases: ["PORT"],
    note: "PORT is the nsjail guide's name (there the docker-compose port).",
  }),
  def(
    "SERVER_TRANSPORT",
    "server",
    "active",
    oneOf("auto", "uws", "node"),
    "auto",
    "HTTP/WebSocket engine: uWebSockets.js, ws on node:http, or auto (uws when it loads)",
  ),
  def(
    "SHUTDOWN_GRACE_SECONDS",
    "server",
    "active",
    int(0, 3600),
    "30",
    "On SIGTERM, how long running execs may go on (new ones are refused) before they end with server_restart; sessions and their Python state are then saved for the next start",
    {
      unit: "s",
      note: "The process exits at most this plus about 15 s after SIGTERM: give Kubernetes a terminationGracePeriodSeconds above that.",
    },
  ),
  def("API_DEBUG", "server", "reserved", bool, "false", "Debug mode: verbose error responses (disable in production)"),
  def("API_RELOAD", "legacy", "ignored", anything, "false", "Auto-reload for development (uvicorn)", {
    note: "Ignored: there is no reloader; rebuild and restart (npm run build).",
  }),

  // --- HTTPS -----------------------------------------------------------------
  def("ENABLE_HTTPS", "https", "active", bool, undefined, "Serve TLS. Unset: on only when the certificate and key files exist", {
    defaultText: "auto",
    note: "Guides disagree: false (Docker/Kubernetes guides), auto (nsjail guide); we use auto, as the newest guide. Set it explicitly for predictable restarts.",
  }),
  def(
    "HTTPS_PORT",
    "https",
    "active",
    int(0, 65535, PORT_EXPECTED),
    "443",
    "Port of the TLS listener (HTTPS and wss://); API_PORT stays plain beside it, unless both are the same port, which then serves TLS only",
  ),
  def("SSL_CERTS_PATH", "https", "active", path, "./ssl", "Folder holding the certificate and key (cert.pem/key.pem, or fullchain.pem/privkey.pem)"),
  def("SSL_CERT_FILE", "https", "active", path, undefined, "Certificate file (PEM)", {
    defaultText: "<SSL_CERTS_PATH>/cert.pem, or fullchain.pem when cert.pem and key.pem are not both there",
    note: "Used only together with SSL_KEY_FILE: alone it is ignored, as OpenSSL reads SSL_CERT_FILE as the system CA bundle and many base images set it.",
  }),
  def("SSL_KEY_FILE", "https", "active", path, undefined, "Private key file (PEM)", {
    defaultText: "<SSL_CERTS_PATH>/key.pem, or privkey.pem with fullchain.pem",
    note: "Used only together with SSL_CERT_FILE.",
  }),
  def("SSL_CA_CERTS", "https", "active", path, undefined, "CA bundle (optional): the certificate's intermediates found in it are sent with it", {
    note: "Completes the chain only: no client certificate is asked for.",
  }),
  def(
    "SSL_REDIRECT",
    "https",
    "active",
    bool,
    "false",
    "API_PORT answers every request with a 307 to HTTPS (ws:// upgrades: to wss://), except GET/HEAD /health and /ready",
  ),

  // --- Authentication ---------------------------------------------------------
  def("AUTH_ENABLED", "auth", "active", bool, "true", "Require an API key on user routes (false: anyone who reaches the port may run code)"),
  def("API_KEY", "auth", "active", str, "test-api-key", "Primary API key (CHANGE IN PRODUCTION)", { secret: true }),
  def("API_KEYS", "auth", "active", { type: "list" }, undefined, "Additional API keys (comma-separated)", { secret: true, example: "key-one,key-two" }),
  def(
    "API_KEY_HEADER",
    "auth",
    "active",
    { type: "string", pattern: HEADER_TOKEN, expected: "an HTTP header name" },
    "x-api-key",
    "Header that carries the API key (HTTP Basic with the key as user name is accepted too)",
  ),
  def("MASTER_API_KEY", "auth", "active", str, undefined, "Master key for admin routes (always required there, even with AUTH_ENABLED=false)", {
    secret: true,
  }),
  def(
    "API_KEY_CACHE_TTL",
    "auth",
    "active",
    int(0, 86400),
    "300",
    "How long each replica trusts a lookup of a managed key (admin API / keys CLI) before asking the key store again",
    {
      unit: "s",
      note: "A key disabled or deleted through another replica or the CLI stops working within this time; through this replica's admin API, at once.",
    },
  ),
  def(
    "RATE_LIMIT_ENABLED",
    "auth",
    "active",
    bool,
    "true",
    "Per-key rate limits of managed keys and the auth-failure limiter (both off on user routes when AUTH_ENABLED=false)",
  ),
  ...(
    [
      ["SECOND", "second"],
      ["MINUTE", "minute"],
      ["HOUR", "hour"],
      ["DAY", "day (UTC)"],
      ["MONTH", "calendar month (UTC)"],
    ] as const
  ).map(([suffix, label]) =>
    def(
      `RATE_LIMIT_DEFAULT_PER_${suffix}`,
      "auth",
      "active",
      int(0, 1_000_000_000),
      "0",
      `Requests per ${label} a new managed key gets when its creator sets no limit for that window (0: none)`,
    ),
  ),
  def(
    "AUTH_FAILURE_LIMIT",
    "auth",
    "active",
    int(1, 1_000_000),
    "10",
    "Wrong keys one client address may send per AUTH_FAILURE_WINDOW before all its requests get 429 until the window ends",
  ),
  def("AUTH_FAILURE_WINDOW", "auth", "active", int(1, 86400), "60", "Window of the auth-failure limiter", { unit: "s" }),
  // --- Tokens the LibreChat host mints (its CODEAPI_* names, unchanged) ---------------
  def(
    "CODEAPI_AUTH_PROVIDER",
    "auth",
    "active",
    oneOf("api-key", "librechat-jwt", "both"),
    undefined,
    "Who may call user routes: API keys, LibreChat-minted tokens, or both",
    {
      defaultText: "api-key (both with CODEAPI_JWT_ENABLED=true)",
      note: "librechat-jwt: an `Authorization: Bearer <JWT>` from the LibreChat host on every request; API keys other than MASTER_API_KEY are refused. both: either. The principal of a token is (tenant_id, sub).",
    },
  ),
  def(
    "CODEAPI_JWT_ENABLED",
    "auth",
    "active",
    bool,
    "false",
    "Accept LibreChat-minted tokens beside API keys (the same as CODEAPI_AUTH_PROVIDER=both when that is unset)",
  ),
  def(
    "CODEAPI_JWT_JWKS_JSON",
    "auth",
    "active",
    { type: "json", shape: "object" },
    undefined,
    'Verification keys as a JWKS (`{"keys": [...]}`, each with its `kid`)',
    {
      example: '{"keys":[{"kty":"OKP","crv":"Ed25519","x":"...","kid":"lc-codeapi-2026-05","alg":"EdDSA"}]}',
    },
  ),
  def(
    "CODEAPI_JWT_PUBLIC_KEY",
    "auth",
    "active",
    str,
    undefined,
    "One verification key: a PEM (\\n for line breaks), base64 DER or a JWK, with CODEAPI_JWT_KID",
  ),
  def("CODEAPI_JWT_KID", "auth", "active", str, undefined, "The key id of CODEAPI_JWT_PUBLIC_KEY (the signer's `kid`)", { aliases: ["CODEAPI_JWT_KEY_ID"] }),
  def(
    "CODEAPI_JWT_PUBLIC_KEYS_DIR",
    "auth",
    "active",
    path,
    undefined,
    "A folder of verification keys, one file per kid (the file name without its extension)",
  ),
  def("CODEAPI_JWT_HS256_SECRET", "auth", "active", str, undefined, "A shared HS256 secret (development only: anyone holding it can mint tokens)", {
    secret: true,
  }),
  def("CODEAPI_JWT_HS256_KID", "auth", "active", str, "hs256-dev", "The key id of CODEAPI_JWT_HS256_SECRET"),
  def(
    "CODEAPI_JWT_ALLOWED_ALGS",
    "auth",
    "active",
    { type: "list", itemPattern: /^(EdDSA|RS256|HS256)$/, expected: "EdDSA, RS256 or HS256" },
    "EdDSA,RS256",
    "Signature algorithms accepted (each key also fixes its own)",
  ),
  def("CODEAPI_JWT_ISSUER", "auth", "active", str, "librechat", "The `iss` a token must carry"),
  def("CODEAPI_JWT_AUDIENCE", "auth", "active", str, "codeapi", "The `aud` a token must carry"),
  def("CODEAPI_JWT_CLOCK_SKEW_SECONDS", "auth", "active", int(0, 30), "30", "Clock difference allowed on exp, nbf and iat", { unit: "s" }),
  def("CODEAPI_JWT_MAX_TTL_SECONDS", "auth", "active", int(1, 300), "300", "Longest lifetime (exp - iat) a token may have", { unit: "s" }),
  def("CODEAPI_JWT_SINGLE_TENANT_ID", "auth", "active", str, "legacy", "The tenant of a token without `tenant_id`"),
  def("CODEAPI_TENANT_ISOLATION_STRICT", "auth", "active", bool, "false", "Refuse tokens without `tenant_id`"),
  def(
    "MAX_CONNECTIONS_PER_ADDRESS",
    "auth",
    "active",
    int(0, 1000000),
    "256",
    "Connections one client address may hold open at once, WebSockets included (0 = no cap); TRUSTED_PROXIES are not capped",
    {
      note: "Enforced by the node transport (SERVER_TRANSPORT=node, and auto where uWebSockets.js does not load); uWebSockets.js closes idle HTTP connections after 10 s but has no per-address cap.",
    },
  ),
  def(
    "TRUSTED_PROXIES",
    "auth",
    "active",
    { type: "list", itemPattern: IP_OR_CIDR, expected: "a comma-separated list of IP addresses or CIDRs such as 10.0.0.0/8" },
    undefined,
    "Proxies in front of the server (addresses or CIDRs): from them, the client address (auth-failure limiter, rate limits, logs) is the rightmost X-Forwarded-For hop that is not one of them; from anyone else the header is ignored",
    {
      example: "127.0.0.1,10.0.0.0/8",
      note: "Without it, every client behind one proxy shares the proxy's address: one client guessing keys gets the proxy blocked for everyone.",
    },
  ),

  // --- Execution limits -------------------------------------------------------
  def("MAX_EXECUTION_TIME", "limits", "active", int(1, 86400), "30", "Wall-time ceiling of one run", {
    unit: "s",
    note: "Guides disagree: 30 (Docker and Kubernetes guides), 120 (nsjail guide, for runtime package installs); we keep 30 as our sandboxes have no network by default.",
  }),
  def("COMPILE_TIMEOUT", "limits", "active", int(1, 86400), undefined, "Wall-time ceiling of the compile stage of compiled languages", {
    unit: "s",
    defaultText: "= MAX_EXECUTION_TIME",
  }),
  def("MAX_MEMORY_MB", "limits", "active", int(16, 1048576), "512", "Memory of one sandbox (cgroup memory.max)", { unit: "MB" }),
  def("MAX_CPU_QUOTA", "limits", "active", int(0, 10000000), "50000", "CPU quota per 100 ms period (100000 = one CPU, 0 = no limit)", { unit: "µs" }),
  def("MAX_PIDS", "limits", "active", int(1, 4194304), "512", "Processes and threads of one sandbox (cgroup pids.max, stops fork bombs)", {
    aliases: ["MAX_PROCESSES"],
    note: "Guides disagree: 512 (MAX_PIDS, Kubernetes guides), 32 (MAX_PROCESSES, Docker guide); we keep 512 (JVM and Go runtimes start many threads).",
  }),
  def("MAX_OPEN_FILES", "limits", "active", int(16, 1048576), "1024", "Open files per process (RLIMIT_NOFILE)"),
  def("MAX_OUTPUT_BYTES", "limits", "active", int(1024, 1073741824), "1048576", "stdout+stderr of one run before it ends with output_limit", {
    unit: "bytes",
  }),
  def("MAX_CODE_BYTES", "limits", "active", int(1024, 16777216), "524288", "Largest accepted code body", { unit: "bytes" }),
  def("PROGRAMMATIC_PAUSE_SECONDS", "limits", "active", int(1, 86400), "300", "How long a programmatic run paused on tool calls waits for their results", {
    unit: "s",
  }),
  def("MAX_CONCURRENT_EXECUTIONS", "limits", "active", int(1, 100000), "10", "Concurrent runs across the server", {
    note: "Across the fleet when Redis is configured (leases with a TTL, so a dead replica's slots come back), per replica otherwise. Runs beyond it wait in a bounded queue (ADMISSION_QUEUE_SIZE, ADMISSION_QUEUE_TIMEOUT), then get 503 with Retry-After (WebSocket: error rate_limited, close 4008).",
  }),
  def("MAX_SESSIONS_PER_ENTITY", "limits", "active", int(1, 1000000), "100", "Sessions per entity_id", {
    note: "Live sessions of one entity_id of one API key on this replica (other keys' sessions of the same entity_id do not count); one more gets 429 with Retry-After (WebSocket: close 4008).",
  }),
  def("MAX_LIVE_SANDBOXES", "limits", "active", int(0, 100000), undefined, "Sandboxes held by sessions on this replica (0 = no cap)", {
    defaultText: "local sandboxes: 80% of this machine's memory / MAX_MEMORY_MB, at least 4; Kubernetes: 0",
    note: "At the cap the least recently used idle session's sandbox is reclaimed (its Python state saved); when none is idle, 503 with Retry-After. Pooled sandboxes are not counted.",
  }),
  def("MAX_SANDBOXES_PER_PRINCIPAL", "limits", "active", int(0, 100000), undefined, "Sandboxes held by one API key and end user on this replica (0 = no cap)", {
    defaultText: "half of MAX_LIVE_SANDBOXES, at least 2 (0 when that is 0)",
    note: "At the cap that principal's own least recently used idle sandbox is reclaimed (its Python state saved); when none is idle, 429 with Retry-After. A key whose requests name no user is one principal.",
  }),
  def("ADMISSION_QUEUE_SIZE", "limits", "active", int(0, 100000), "100", "Runs that may wait for an execution slot (0 = refuse at once)"),
  def("ADMISSION_QUEUE_TIMEOUT", "limits", "active", num(0, 3600), "30", "Longest wait for an execution slot", { unit: "s" }),

  // --- File limits ------------------------------------------------------------
  def("REQUEST_BODY_TIMEOUT", "limits", "active", int(1, 3600), "15", "Longest pause in a request body before the request is dropped (408)", {
    unit: "s",
    note: "With REQUEST_BODY_MIN_RATE, the slow-loris guard of uploads and JSON bodies.",
  }),
  def(
    "REQUEST_BODY_MIN_RATE",
    "limits",
    "active",
    int(0, 1073741824),
    "1024",
    "Slowest accepted request body, counted over the time the server waited for it (0: no minimum)",
    {
      unit: "bytes/s",
    },
  ),
  def("MAX_FILE_SIZE_MB", "files", "active", int(1, 1048576), "100", "Largest file: uploads, and files a program writes (RLIMIT_FSIZE)", {
    unit: "MB",
    note: "Guides disagree: 100 (nsjail guide), 10 (others); we use 100.",
  }),
  def("MAX_TOTAL_FILE_SIZE_MB", "files", "active", int(1, 1048576), "200", "Total size of what a session keeps: files, figures, older versions", {
    unit: "MB",
    note: "Guides: 50 (with a 10 MB file limit); raised to 200 (= SANDBOX_DATA_SIZE_MB) so that it is not below MAX_FILE_SIZE_MB. A file or figure that would not fit is not kept (stderr says so); older versions of rewritten files stay downloadable while they fit and are deleted, oldest first, to make room.",
  }),
  def("MAX_FILES_PER_SESSION", "files", "active", int(1, 100000), "300", "Files per session, older versions included", {
    note: "Guides disagree: 300 (nsjail guide, sized for skill bundles), 50 (others); we use 300. Older versions make room for new files as for MAX_TOTAL_FILE_SIZE_MB.",
  }),
  def("MAX_OUTPUT_FILES", "files", "active", int(0, 10000), "10", "Files returned by one run"),
  def("MAX_FILENAME_LENGTH", "files", "active", int(1, 4096), "255", "Longest file name"),

  // --- Sessions ---------------------------------------------------------------
  def("SESSION_ID_LENGTH", "sessions", "active", int(16, 128), "21", "Length of session ids (base62)", {
    note: "LibreChat checks session ids against 21 characters ([A-Za-z0-9_-]{21}) in its download route: keep 21 for LibreChat.",
  }),
  def("SESSION_IDLE_GRACE", "sessions", "active", int(0, 604800), "300", "How long a session outlives its last client (resume window)", { unit: "s" }),
  def("SESSION_REPLAY_FRAMES", "sessions", "active", int(16, 1000000), "2000", "Frames kept per session for resume after a dropped connection"),
  def(
    "SESSION_REPLAY_BYTES",
    "sessions",
    "active",
    int(65536, 1073741824),
    "8388608",
    "Bytes of frames kept per session for resume (whichever bound is hit first)",
    {
      unit: "bytes",
    },
  ),
  def("SESSION_TTL_HOURS", "sessions", "active", int(1, 8760), "24", "Lifetime of a session and its files", { unit: "h" }),
  def("SESSION_CLEANUP_INTERVAL_MINUTES", "sessions", "active", int(1, 10080), "10", "Interval of the expired-session sweep", {
    unit: "min",
    note: "Guides disagree: 10 (Kubernetes guides), 60 (Docker and nsjail guides); we use 10.",
  }),

  // --- Sandboxes --------------------------------------------------------------
  def("EXECUTION_BACKEND", "sandbox", "active", oneOf("local", "kubernetes"), "local", "Where sandboxes run: local bubblewrap sandboxes, or Kubernetes pods", {
    note: "kubernetes: a hardened pod per sandbox (K8S_*, GKE_SANDBOX_*; docs/KUBERNETES.md), credentials in-cluster or from KUBECONFIG.",
  }),
  def(
    "SANDBOX_BASE_DIR",
    "sandbox",
    "active",
    { type: "path", absolute: true },
    "/var/lib/code-interpreter/sandboxes",
    "Host folder of per-sandbox files (sockets, /etc files)",
  ),
  def(
    "FILE_STORAGE_PATH",
    "sessions",
    "active",
    { type: "path", absolute: true },
    "/var/lib/code-interpreter/files",
    "Host folder of the embedded stores: session records, and files unless S3_ENDPOINT or S3_BUCKET sends them to S3",
  ),
  def("SANDBOX_UID", "sandbox", "active", int(1, 2147483647), "1001", "Unprivileged uid the sandboxed programs run as"),
  def("SANDBOX_GID", "sandbox", "active", int(1, 2147483647), undefined, "Gid the sandboxed programs run as", { defaultText: "= SANDBOX_UID" }),
  def("SANDBOX_TMPFS_SIZE_MB", "sandbox", "active", int(1, 1048576), "100", "Size of the sandbox's private /tmp", { unit: "MB" }),
  def("SANDBOX_DATA_SIZE_MB", "sandbox", "active", int(1, 1048576), "200", "Size of the sandbox's private /mnt/data", { unit: "MB" }),
  def("SANDBOX_TTL_MINUTES", "sandbox", "active", int(1, 10080), "5", "Lifetime of an idle sandbox", { unit: "min" }),
  def("SANDBOX_CLEANUP_INTERVAL_MINUTES", "sandbox", "active", int(1, 10080), "5", "Interval of the idle-sandbox sweep", { unit: "min" }),

  // --- Isolation --------------------------------------------------------------
  def("ENABLE_NETWORK_ISOLATION", "isolation", "active", bool, "true", "Sandboxes get no network (reported by `config security`)", {
    note: "Local sandboxes always run in their own empty network namespace; false is reported, it does not open the network (see ENABLE_SANDBOX_NETWORK).",
  }),
  def("ENABLE_FILESYSTEM_ISOLATION", "isolation", "active", bool, "true", "Sandboxes see only read-only system folders and their own /mnt/data and /tmp", {
    note: "Local sandboxes always use a private mount namespace; false is reported, it does not weaken the sandbox.",
  }),

  // --- Logging ----------------------------------------------------------------
  def("LOG_LEVEL", "logging", "active", { type: "loglevel" }, "INFO", "DEBUG, INFO, WARNING (or WARN), ERROR, CRITICAL; any case"),
  def("LOG_FORMAT", "logging", "active", oneOf("json", "text"), "json", "json (one object a line) or text (time level msg key=value)"),
  def("LOG_FILE", "logging", "active", path, undefined, "Log to this file instead of stdout", { example: "/var/log/code-interpreter/server.log" }),
  def("LOG_MAX_SIZE_MB", "logging", "active", int(1, 102400), "100", "Size at which LOG_FILE is rotated", { unit: "MB" }),
  def("LOG_BACKUP_COUNT", "logging", "active", int(0, 1000), "5", "Rotated files kept (file.1 ... file.N)"),
  def("ENABLE_ACCESS_LOGS", "logging", "active", bool, "false", "Log every HTTP request at info (errors are always logged: 5xx at error, 4xx at warn)", {
    note: "Guides disagree: true (older guides), false (nsjail guide, with status-aware request logging); we use false, as our request logging is status-aware too.",
  }),
  def("ENABLE_SECURITY_LOGS", "logging", "active", bool, "true", "Log security events (failed authentication...) with security=true"),

  // --- Development ------------------------------------------------------------
  def("ENABLE_CORS", "development", "active", bool, "false", "Answer CORS requests (for development)"),
  def(
    "CORS_ORIGINS",
    "development",
    "active",
    { type: "list", itemPattern: ORIGIN, expected: "a comma-separated list of origins such as https://example.com (or *)" },
    undefined,
    "Allowed CORS origins (comma-separated)",
    { example: "http://localhost:3080" },
  ),
  def("ENABLE_DOCS", "development", "active", bool, "true", "Serve API documentation endpoints"),
  // No guide names a metrics setting: these two are ours (docs/PERFORMANCE.md, "Metrics").
  def("METRICS_ENABLED", "development", "active", bool, "true", "Serve Prometheus metrics at GET /metrics"),
  def(
    "METRICS_AUTH",
    "development",
    "active",
    oneOf("api_key", "master", "none"),
    "api_key",
    "Who may read /metrics: any valid API key, the master key only, or anyone (for a scraper on a private network)",
  ),

  // --- Redis ------------------------------------------------------------------
  def("REDIS_MODE", "redis", "active", oneOf("standalone", "cluster", "sentinel"), "standalone", "Deployment mode", {
    note: "Unset: cluster when only REDIS_CLUSTER_NODES is set, sentinel when only REDIS_SENTINEL_NODES is.",
  }),
  def("REDIS_HOST", "redis", "active", { type: "string", pattern: /^\S+$/, expected: "a host name or IP address" }, "localhost", "Redis host", {
    note: "Setting it (or REDIS_URL, REDIS_PORT, REDIS_MODE, REDIS_*_NODES) turns Redis on; otherwise the embedded stores are used.",
  }),
  def("REDIS_PORT", "redis", "active", int(1, 65535), "6379", "Redis port"),
  def("REDIS_PASSWORD", "redis", "active", str, undefined, "Redis password", { secret: true }),
  def("REDIS_DB", "redis", "active", int(0, 65535), "0", "Database number (standalone and sentinel only)"),
  def(
    "REDIS_URL",
    "redis",
    "active",
    { type: "string", pattern: /^(redis|rediss|unix):\/\/\S+$/, expected: "a redis://, rediss:// or unix:// URL" },
    undefined,
    "Complete Redis URL (overrides the individual settings)",
    {
      secret: true,
      example: "redis://:password@localhost:6379/0",
      note: "redis://secret@host (no colon) reads secret as the password; REDIS_PASSWORD and REDIS_DB fill in what the URL leaves out; rediss:// turns TLS on.",
    },
  ),
  def("REDIS_MAX_CONNECTIONS", "redis", "active", int(1, 10000), "20", "Connections in the pool", {
    note: "Commands share one pipelined connection per Redis node; this caps the extra ones (subscriptions).",
  }),
  def("REDIS_SOCKET_TIMEOUT", "redis", "active", num(0.1, 3600), "5", "Socket timeout", {
    unit: "s",
    note: "A command without an answer by then fails (503 for the request), and the connection is re-made.",
  }),
  def("REDIS_SOCKET_CONNECT_TIMEOUT", "redis", "active", num(0.1, 3600), "5", "Connect timeout", { unit: "s" }),
  def("REDIS_KEY_PREFIX", "redis", "active", str, undefined, "Prefix of every Redis key", {
    example: "prod:",
    note: "Also prepended to pub/sub channels. Braces in it make a hash tag that puts every key in one cluster slot.",
  }),
  def(
    "REDIS_CLUSTER_NODES",
    "redis",
    "active",
    { type: "list", itemPattern: HOST_PORT, expected: "a comma-separated list of host:port pairs" },
    undefined,
    "Cluster startup nodes (REDIS_MODE=cluster)",
    { example: "node1:6379,node2:6379,node3:6379" },
  ),
  def(
    "REDIS_SENTINEL_NODES",
    "redis",
    "active",
    { type: "list", itemPattern: HOST_PORT, expected: "a comma-separated list of host:port pairs" },
    undefined,
    "Sentinel instances (REDIS_MODE=sentinel)",
    { example: "sentinel1:26379,sentinel2:26379" },
  ),
  def("REDIS_SENTINEL_MASTER", "redis", "active", str, "mymaster", "Name of the Sentinel-monitored master"),
  def("REDIS_SENTINEL_PASSWORD", "redis", "active", str, undefined, "Password of the Sentinel instances", { secret: true }),
  def("REDIS_TLS_ENABLED", "redis", "active", bool, "false", "TLS to Redis (rediss://)"),
  def("REDIS_TLS_CA_CERT_FILE", "redis", "active", path, undefined, "CA certificate that verifies the server"),
  def("REDIS_TLS_CERT_FILE", "redis", "active", path, undefined, "Client certificate (mutual TLS)"),
  def("REDIS_TLS_KEY_FILE", "redis", "active", path, undefined, "Client private key (mutual TLS)"),
  def("REDIS_TLS_INSECURE", "redis", "active", bool, "false", "Skip certificate verification (NOT recommended)"),
  def("REDIS_TLS_CHECK_HOSTNAME", "redis", "active", bool, "false", "Verify the server host name against the certificate"),

  // --- Object storage -----------------------------------------------------------
  def(
    "S3_ENDPOINT",
    "storage",
    "active",
    { type: "string", pattern: /^[A-Za-z0-9.-]+(:\d{1,5})?$/, expected: "host[:port] without a protocol (use S3_SECURE for https)" },
    "localhost:9000",
    "S3 endpoint",
    {
      aliases: ["MINIO_ENDPOINT"],
      note: "Guides disagree: localhost:9000 (MinIO), localhost:3900 (Garage); we use 9000. Setting it (or S3_BUCKET) stores session files in S3. Without a port: 443 with S3_SECURE, else 80.",
    },
  ),
  def("S3_ACCESS_KEY", "storage", "active", str, undefined, "Access key (required unless S3_USE_IAM)", {
    secret: true,
    aliases: ["MINIO_ACCESS_KEY"],
    note: "Guides disagree: required, minioadmin, test-access-key; we ship no default credentials.",
  }),
  def("S3_SECRET_KEY", "storage", "active", str, undefined, "Secret key (required unless S3_USE_IAM)", {
    secret: true,
    aliases: ["MINIO_SECRET_KEY"],
    note: "Guides disagree: required, minioadmin, test-secret-key; we ship no default credentials.",
  }),
  def("S3_SECURE", "storage", "active", bool, "false", "HTTPS to the endpoint", { aliases: ["MINIO_SECURE"] }),
  def(
    "S3_BUCKET",
    "storage",
    "active",
    { type: "string", pattern: /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, expected: "a bucket name (3-63 of a-z 0-9 . -)" },
    "code-interpreter-files",
    "Bucket of session files",
    {
      aliases: ["MINIO_BUCKET"],
      note: "Guides disagree: code-interpreter-files, kubecoderun-files; we use code-interpreter-files. Setting it (or S3_ENDPOINT) stores session files in S3; created at start when missing.",
    },
  ),
  def("S3_REGION", "storage", "active", str, "us-east-1", "Region", {
    aliases: ["MINIO_REGION"],
    note: "Guides disagree: us-east-1, garage; we use us-east-1 (set it to match your backend).",
  }),
  def("S3_USE_IAM", "storage", "active", bool, "false", "Use IAM credentials instead of keys", {
    aliases: ["MINIO_USE_IAM"],
    note: "Credentials from AWS_WEB_IDENTITY_TOKEN_FILE (EKS), the ECS container endpoint or EC2 instance metadata.",
  }),
  def("S3_REQUEST_TIMEOUT", "storage", "active", num(0.1, 3600), "10", "A request to S3 with no byte moving for this long fails", {
    unit: "s",
    note: "Ours: when S3 is down or unreachable, file calls fail after this long instead of hanging.",
  }),
  def("ENABLE_ORPHAN_S3_CLEANUP", "storage", "active", bool, "true", "Remove objects with no matching session during cleanup sweeps", {
    note: "Every SESSION_CLEANUP_INTERVAL_MINUTES: the objects of a session whose record is gone are deleted. With S3 off, the embedded folder is always swept.",
  }),

  // --- Sandbox pool -------------------------------------------------------------
  def("SANDBOX_POOL_ENABLED", "pool", "active", bool, "true", "Keep pre-warmed sandboxes", { aliases: ["POD_POOL_ENABLED", "CONTAINER_POOL_ENABLED"] }),
  def("SANDBOX_POOL_WARMUP_ON_STARTUP", "pool", "active", bool, "true", "Warm the pool at start-up", {
    aliases: ["POD_POOL_WARMUP_ON_STARTUP", "CONTAINER_POOL_WARMUP_ON_STARTUP"],
  }),
  ...poolVariables(),
  def("SANDBOX_POOL_PARALLEL_BATCH", "pool", "active", int(1, 1000), "5", "Sandboxes started in parallel while warming", {
    aliases: ["POD_POOL_PARALLEL_BATCH"],
    note: "During the start-up warm-up only; later refills run at most min(this, CPUs/2) at a time so they do not starve running work.",
  }),
  def("SANDBOX_POOL_REPLENISH_INTERVAL", "pool", "active", num(0.1, 3600), "2", "Interval of pool replenishment checks", {
    unit: "s",
    aliases: ["POD_POOL_REPLENISH_INTERVAL"],
  }),
  def("SANDBOX_POOL_EXHAUSTION_TRIGGER", "pool", "active", bool, "true", "Replenish at once when the pool runs dry", {
    aliases: ["POD_POOL_EXHAUSTION_TRIGGER"],
  }),

  // --- REPL ---------------------------------------------------------------------
  def("REPL_ENABLED", "repl", "reserved", bool, "true", "Pre-warmed Python REPL in pooled sandboxes"),
  def(
    "REPL_WARMUP_TIMEOUT_SECONDS",
    "repl",
    "active",
    int(1, 600),
    "15",
    "Time a pooled sandbox waits for its Python preload before it joins the pool anyway",
    { unit: "s" },
  ),
  def("REPL_HEALTH_CHECK_TIMEOUT_SECONDS", "repl", "reserved", int(1, 600), "5", "Timeout of REPL health checks", { unit: "s" }),

  // --- State persistence ----------------------------------------------------------
  def("STATE_PERSISTENCE_ENABLED", "state", "active", bool, "true", "Keep Python variables across runs of a session"),
  def("STATE_TTL_SECONDS", "state", "active", int(1, 31536000), "7200", "Lifetime of hot state in Redis", { unit: "s" }),
  def("STATE_MAX_SIZE_MB", "state", "active", int(1, 102400), "50", "Largest serialized state", { unit: "MB" }),
  def("STATE_MAX_REDIS_SIZE_MB", "state", "active", int(1, 102400), "100", "Largest state kept in Redis; larger states go straight to S3", { unit: "MB" }),
  def("STATE_CAPTURE_ON_ERROR", "state", "active", bool, "false", "Checkpoints (STATE_CHECKPOINT_AFTER_RUN) also save after a run that failed"),
  def(
    "STATE_CHECKPOINT_AFTER_RUN",
    "state",
    "active",
    oneOf("auto", "true", "false"),
    "auto",
    "Save the Python state after every Python run, not only when the sandbox is released",
    {
      note: "auto: on with EXECUTION_BACKEND=kubernetes (a pod can be evicted or deleted at any time), off locally (each save costs a few ms of the sandbox's CPU after the run).",
    },
  ),
  def("STATE_ARCHIVE_ENABLED", "state", "active", bool, "true", "Archive inactive state to S3"),
  def("STATE_ARCHIVE_AFTER_SECONDS", "state", "active", int(1, 31536000), "3600", "Inactivity before archiving", { unit: "s" }),
  def("STATE_ARCHIVE_TTL_DAYS", "state", "active", int(1, 3650), "7", "Lifetime of archives", {
    unit: "days",
    note: "Guides disagree: 7 (Docker and Kubernetes guides), 1 (nsjail guide); we use 7.",
  }),
  def("STATE_ARCHIVE_CHECK_INTERVAL_SECONDS", "state", "active", int(1, 86400), "300", "Interval of archive checks", { unit: "s" }),

  // --- Egress -------------------------------------------------------------------
  def("ENABLE_SANDBOX_NETWORK", "egress", "active", bool, "false", "Let sandboxes reach package registries through the allowlist proxy", {
    note: "HTTPS through CONNECT to listed names, nothing else (docs/SECURITY.md). Pods reach their replica's proxy at POD_IP:SANDBOX_EGRESS_PORT with a credential each. Locally, turns the warm pool off while SKILL_DEPS_PATH caches are on (SKILL_DEPS_PATH=off keeps it).",
  }),
  def(
    "SANDBOX_EGRESS_PORT",
    "egress",
    "active",
    int(1, 65535),
    "18443",
    "Port of the egress proxy (127.0.0.1 in a local sandbox; the API pod's address for pods)",
    {
      note: "Local: programs get HTTPS_PROXY=http://127.0.0.1:<port>, which the sandbox's agent relays to the server's proxy. Kubernetes: the replica listens on POD_IP:<port>, the port the NetworkPolicies open.",
    },
  ),
  def(
    "SANDBOX_EGRESS_ALLOWLIST",
    "egress",
    "active",
    { type: "list", itemPattern: EGRESS_ENTRY, expected: "a comma-separated list of host names, *.domain or name:port" },
    undefined,
    "Host names allowed beyond the package registries",
    {
      defaultText: "(package registries)",
      example: "files.example.com,*.example.org,mirror.example.com:8443",
      note: "Port 443 unless given; names only, never addresses.",
    },
  ),
  def(
    "SANDBOX_EGRESS_RESOLVE",
    "egress",
    "active",
    { type: "list", itemPattern: EGRESS_PIN, expected: "a comma-separated list of name=address" },
    undefined,
    "Fixed addresses for allowed names (an internal mirror)",
    {
      defaultText: "(DNS)",
      example: "pypi.internal.example.com=10.0.0.5",
      note: "Names resolved by DNS must give public addresses only; a pinned address is trusted as given.",
    },
  ),
  def("SKILL_DEPS_PATH", "egress", "active", path, "/opt/skill-deps", "Host folder of per-tenant package caches, mounted at /opt/skill-deps in sandboxes", {
    note: "Local sandboxes, with ENABLE_SANDBOX_NETWORK: one folder per API key and user_id (pip, npm, cargo, R, gem caches and user installs). off: no caches (and the warm pool stays on).",
  }),
  def("SKILL_DEPS_MAX_MB", "egress", "active", int(0, 1048576), "2048", "Size limit of each tenant's package cache", {
    unit: "MB",
    note: "Each cache is an ext4 volume of this size (a sparse image under SKILL_DEPS_PATH/.images, loop-mounted while the tenant's sandboxes run): writes past it fail with 'No space left on device'. Needs root, loop devices and mkfs.ext4. 0: plain folders without a limit. A changed size applies to caches made afterwards.",
  }),
  def("SKILL_DEPS_TTL_DAYS", "egress", "active", int(0, 36500), "30", "Days a tenant's package cache is kept after its last use", {
    unit: "days",
    note: "Swept hourly: a cache no sandbox used for this long is deleted (the tenant's next install starts afresh). 0: kept for ever.",
  }),

  // --- Kubernetes ---------------------------------------------------------------
  def("K8S_NAMESPACE", "kubernetes", "active", str, undefined, "Namespace of execution pods", { defaultText: "(the API's namespace)" }),
  def("K8S_SIDECAR_IMAGE", "kubernetes", "ignored", str, "code-interpreter-sidecar-agent:latest", "Image of the sidecar-agent container", {
    note: "Ignored: the sidecar-agent is part of the sandbox image (deploy/docker/Dockerfile.sandbox), one container per pod.",
  }),
  def(
    "K8S_IMAGE_REGISTRY",
    "kubernetes",
    "active",
    str,
    "code-interpreter",
    "Registry prefix of the sandbox image: pods run <K8S_IMAGE_REGISTRY>/sandbox:<K8S_IMAGE_TAG>",
    {
      note: "Guides: aronmuon/kubecoderun (another project's images); we use one image with every toolchain and the agent.",
    },
  ),
  def("K8S_IMAGE_TAG", "kubernetes", "active", str, "latest", "Tag of the sandbox image"),
  def("K8S_IMAGE_PULL_POLICY", "kubernetes", "active", oneOf("Always", "IfNotPresent", "Never"), "Always", "Image pull policy of execution pods"),
  def(
    "K8S_IMAGE_PULL_SECRETS",
    "kubernetes",
    "reserved",
    { type: "list", itemPattern: DNS_NAME, expected: "a comma-separated list of Kubernetes secret names" },
    undefined,
    "Secrets for private registries (comma-separated)",
    { example: "my-registry-secret" },
  ),
  def(
    "K8S_CPU_LIMIT",
    "kubernetes",
    "reserved",
    { type: "string", pattern: K8S_QUANTITY, expected: "a Kubernetes quantity (1, 500m...)" },
    "1",
    "CPU limit of an execution pod",
  ),
  def(
    "K8S_MEMORY_LIMIT",
    "kubernetes",
    "reserved",
    { type: "string", pattern: K8S_QUANTITY, expected: "a Kubernetes quantity (512Mi, 1Gi...)" },
    "512Mi",
    "Memory limit of an execution pod",
  ),
  def(
    "K8S_CPU_REQUEST",
    "kubernetes",
    "reserved",
    { type: "string", pattern: K8S_QUANTITY, expected: "a Kubernetes quantity (100m, 1...)" },
    "100m",
    "CPU request of an execution pod",
  ),
  def(
    "K8S_MEMORY_REQUEST",
    "kubernetes",
    "reserved",
    { type: "string", pattern: K8S_QUANTITY, expected: "a Kubernetes quantity (128Mi...)" },
    "128Mi",
    "Memory request of an execution pod",
  ),
  def("K8S_EXECUTION_MODE", "kubernetes", "active", oneOf("agent", "nsenter"), "agent", "How the server runs code in a pod", {
    note: "Only agent exists here (our sidecar-agent); nsenter is accepted, reported, and mapped to agent.",
  }),
  def("K8S_EXECUTOR_PORT", "kubernetes", "active", int(1, 65535), "9090", "Port of the sidecar-agent inside the pod"),
  def(
    "K8S_POD_START_TIMEOUT",
    "kubernetes",
    "active",
    int(1, 3600),
    "120",
    "Longest wait for a new pod to run and its agent to answer (schedule, pull, start)",
    {
      unit: "s",
    },
  ),
  def(
    "K8S_ORPHAN_SWEEP_INTERVAL",
    "kubernetes",
    "active",
    int(0, 86400),
    "60",
    "Period of the sweep that deletes sandbox pods left by crashed replicas (0: only at start-up)",
    {
      unit: "s",
    },
  ),
  def("LANG_IMAGE_<CODE>", "kubernetes", "active", str, undefined, "Image of the sandbox pods of one language (LANG_IMAGE_PY, LANG_IMAGE_GO...)", {
    pattern: /^LANG_IMAGE_[A-Z0-9]+$/,
    example: "registry.example/code-interpreter/sandbox-go:1.0",
    note: "The image must hold the sidecar-agent (build it FROM the sandbox image). Locally ignored: sandboxes use the host's toolchains.",
  }),
  ...(["CPU_REQUEST", "CPU_LIMIT", "MEMORY_REQUEST", "MEMORY_LIMIT"] as const).map((what) =>
    def(
      `K8S_${what}_<CODE>`,
      "kubernetes",
      "active",
      { type: "string", pattern: K8S_QUANTITY, expected: "a Kubernetes quantity (500m, 1, 512Mi, 1Gi...)" },
      undefined,
      `K8S_${what} for the sandbox pods of one language (K8S_${what}_JAVA...)`,
      { pattern: new RegExp(`^K8S_${what}_[A-Z0-9]+$`), example: what.startsWith("CPU") ? "2" : "1Gi" },
    ),
  ),
  def("GKE_SANDBOX_ENABLED", "kubernetes", "active", bool, "false", "Run execution pods under GKE Sandbox (gVisor): sets their runtimeClassName"),
  def("GKE_SANDBOX_RUNTIME_CLASS", "kubernetes", "active", str, "gvisor", "RuntimeClass of sandboxed pods"),
  def(
    "GKE_SANDBOX_NODE_SELECTOR",
    "kubernetes",
    "active",
    { type: "json", shape: "object" },
    "{}",
    "Node selector of execution pods (JSON object; applied whenever set)",
  ),
  def(
    "GKE_SANDBOX_CUSTOM_TOLERATIONS",
    "kubernetes",
    "active",
    { type: "json", shape: "array" },
    "[]",
    "Tolerations of execution pods (JSON array; applied whenever set)",
  ),

  // --- Health checks --------------------------------------------------------------
  def("HEALTH_CHECK_INTERVAL", "health", "reserved", int(1, 86400), "30", "Interval of dependency health checks", { unit: "s" }),
  def("HEALTH_CHECK_TIMEOUT", "health", "reserved", int(1, 3600), "5", "Timeout of one health check", { unit: "s" }),
  def("SANDBOX_STARTUP_CHECK", "health", "active", oneOf("unready", "exit", "off"), "unready", "Prove at start that a sandbox starts before /ready says 200", {
    note: "Ours. A probe sandbox is created, runs `echo probe` in bash and is destroyed. unready: the server stays up, /ready says 503 with the reason (bwrap's own words: the path, Permission denied...) and the check is tried again (1 s doubling to 30 s) until it passes; exit: one attempt before listening, and the process exits 1 with `fatal: no sandbox can start: <reason>` when it fails; off: no check.",
  }),
  def("READY_WAIT_FOR_POOL_SECONDS", "health", "active", int(0, 86400), "60", "Longest wait of /ready for the warm pool to reach its start target", {
    unit: "s",
    note: "Ours. /ready says 503 (warming the sandbox pool (n/target)) until the pool has held its target once, at most this long after its warm-up starts (after the start-up check), then ready anyway with a warning; 0: do not wait. No wait without a pool.",
  }),

  // --- Other backends (ignored) ------------------------------------------------------
  def("NSJAIL_BINARY", "legacy", "ignored", anything, "nsjail", "Path to the nsjail binary", {
    note: "Ignored: local sandboxes use bubblewrap (bwrap on PATH), cgroups v2 and the sidecar-agent.",
  }),
  def("DOCKER_BASE_URL", "legacy", "ignored", anything, undefined, "Docker daemon URL", { note: "Ignored: no Docker daemon is used; see EXECUTION_BACKEND." }),
  def("DOCKER_TIMEOUT", "legacy", "ignored", anything, "60", "Docker operation timeout", { unit: "s", note: "Ignored: no Docker daemon is used." }),
  def("DOCKER_NETWORK_MODE", "legacy", "ignored", anything, "none", "Container network mode", {
    note: "Ignored: sandboxes never have a network; our equivalent is ENABLE_NETWORK_ISOLATION (and ENABLE_SANDBOX_NETWORK).",
  }),
  def("DOCKER_READ_ONLY", "legacy", "ignored", anything, "true", "Read-only container filesystem", {
    note: "Ignored: system folders are always read-only in sandboxes; our equivalent is ENABLE_FILESYSTEM_ISOLATION.",
  }),
  def("CONTAINER_POOL_MIN_SIZE", "legacy", "ignored", anything, "2", "Default minimum pool size per language", {
    note: "Ignored: the pool keeps a fixed count per language, SANDBOX_POOL_<LANG>.",
  }),
  def("CONTAINER_POOL_MAX_SIZE", "legacy", "ignored", anything, "15", "Default maximum pool size per language", {
    note: "Ignored: the pool keeps a fixed count per language, SANDBOX_POOL_<LANG>.",
  }),
  def("CONTAINER_POOL_PY_MAX", "legacy", "ignored", anything, "20", "Maximum Python containers in the pool", {
    note: "Ignored: CONTAINER_POOL_PY_MIN maps to SANDBOX_POOL_PY; there is no maximum.",
  }),
  def("CONTAINER_POOL_JS_MAX", "legacy", "ignored", anything, "8", "Maximum JavaScript containers in the pool", {
    note: "Ignored: CONTAINER_POOL_JS_MIN maps to SANDBOX_POOL_JS; there is no maximum.",
  }),
  def("LANG_<LANGUAGE>_IMAGE", "legacy", "ignored", anything, undefined, "Per-language container image (LANG_PYTHON_IMAGE, LANG_NODEJS_IMAGE...)", {
    pattern: /^LANG_[A-Z0-9]+_IMAGE$/,
    example: "python:3.12-slim",
    note: "Ignored: local sandboxes use the host's toolchains; for pods use LANG_IMAGE_<CODE> (LANG_IMAGE_PY...).",
  }),
];

/** True when the variable has (or will have) an effect in this project. */
export function appliesToUs(spec: VariableSpec): boolean {
  return spec.status !== "ignored";
}

const byName = new Map<string, VariableSpec>();
for (const spec of VARIABLES) {
  if (spec.pattern) continue;
  byName.set(spec.name, spec);
  for (const alias of spec.aliases) byName.set(alias, spec);
}

/** The catalog entry of a canonical name, an alias, or a member of a family (LANG_IMAGE_PY). */
export function findVariable(name: string): VariableSpec | undefined {
  const direct = byName.get(name);
  if (direct) return direct;
  return VARIABLES.find((spec) => spec.pattern?.test(name));
}

/** Every name the catalog accepts literally: canonical names and aliases (families excluded). */
export function allVariableNames(): string[] {
  return [...byName.keys()];
}
