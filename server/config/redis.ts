/**
 * Whether Redis is in use and how to reach it, from the REDIS_* variables
 * (see docs/CONFIGURATION.md).
 *
 * The rule: Redis is on when one of REDIS_URL, REDIS_HOST, REDIS_PORT,
 * REDIS_MODE, REDIS_CLUSTER_NODES or REDIS_SENTINEL_NODES is set (in the
 * environment or .env, non-empty). The guides' product always needs Redis, so
 * their defaults (localhost:6379) describe where it is once you have one, not a
 * request to use it: with none of these set the server keeps its embedded
 * stores. Other REDIS_* settings alone (a password, TLS files...) say nothing
 * about where Redis is, so they leave it off, with a warning.
 *
 * REDIS_URL overrides the individual settings: its host, port, user, password
 * and database win; REDIS_PASSWORD and REDIS_DB only fill in what the URL does
 * not carry. `redis://secret@host` (a user part without a colon, the guides'
 * example) is read as the password. A rediss:// URL turns TLS on. REDIS_MODE
 * defaults to cluster or sentinel when only REDIS_CLUSTER_NODES or
 * REDIS_SENTINEL_NODES is set.
 */
import { statSync } from "node:fs";
import { resolve } from "node:path";
import type { RawValue } from "./schema.ts";
import type { RedisAddress, RedisConfig } from "./types.ts";

/** The variables that say where Redis is: any of them set turns Redis on. */
export const REDIS_LOCATION_VARIABLES = ["REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_MODE", "REDIS_CLUSTER_NODES", "REDIS_SENTINEL_NODES"] as const;

const REDIS_SETTINGS = [
  "REDIS_PASSWORD",
  "REDIS_DB",
  "REDIS_KEY_PREFIX",
  "REDIS_SENTINEL_MASTER",
  "REDIS_SENTINEL_PASSWORD",
  "REDIS_TLS_ENABLED",
  "REDIS_TLS_CA_CERT_FILE",
  "REDIS_TLS_CERT_FILE",
  "REDIS_TLS_KEY_FILE",
  "REDIS_TLS_INSECURE",
  "REDIS_TLS_CHECK_HOSTNAME",
] as const;

interface ParsedUrl {
  tls: boolean;
  host?: string;
  port?: number;
  path?: string;
  username?: string;
  password?: string;
  db?: number;
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function decode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * redis://[[user]:password@]host[:port][/db][?db=N], rediss://... (TLS),
 * unix://[[user]:password@]/path/to/socket[?db=N]. Throws with a message that
 * shows no secret.
 */
export function parseRedisUrl(text: string): ParsedUrl {
  const scheme = /^([a-z]+):\/\//i.exec(text)?.[1]?.toLowerCase();
  if (scheme !== "redis" && scheme !== "rediss" && scheme !== "unix") throw new Error("is not a redis://, rediss:// or unix:// URL");
  const rest = text.slice(scheme.length + 3);
  if (scheme === "unix") return parseUnixUrl(rest);
  let url: URL;
  try {
    // URL parses unknown schemes without splitting host and port: parse as http, keep the scheme aside.
    url = new URL(`http://${rest}`);
  } catch {
    throw new Error("is not a valid URL");
  }
  const parsed: ParsedUrl = { tls: scheme === "rediss" };
  // user:password@, :password@, or a lone password@ (the guides' example).
  if (url.username !== "" || url.password !== "") {
    const rawUserInfo = rest.split("@")[0] ?? "";
    if (rawUserInfo.includes(":")) {
      if (url.username !== "") parsed.username = decode(url.username);
      if (url.password !== "") parsed.password = decode(url.password);
    } else {
      parsed.password = decode(url.username);
    }
  }
  let dbText = url.searchParams.get("db") ?? undefined;
  if (url.hostname === "") throw new Error("has no host");
  parsed.host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  if (url.port !== "") parsed.port = Number(url.port);
  const segment = url.pathname.replace(/^\//, "");
  if (segment !== "") {
    if (dbText !== undefined) throw new Error("gives the database twice (path and ?db=)");
    dbText = segment;
  }
  return withDb(parsed, dbText);
}

function withDb(parsed: ParsedUrl, dbText: string | undefined): ParsedUrl {
  if (dbText !== undefined) {
    if (!/^\d{1,5}$/.test(dbText)) throw new Error("has a database that is not a number");
    parsed.db = Number(dbText);
  }
  return parsed;
}

/** unix://[[user]:password@]/path/to/socket[?db=N]: no host, so parsed by hand (URL would take the path's first part for one). */
function parseUnixUrl(rest: string): ParsedUrl {
  const at = rest.lastIndexOf("@", rest.indexOf("/") === -1 ? undefined : rest.indexOf("/"));
  const userInfo = at >= 0 ? rest.slice(0, at) : "";
  const [location = "", query = ""] = rest.slice(at + 1).split("?", 2);
  if (!location.startsWith("/")) throw new Error("must be unix:///path/to/socket (an absolute path, no host)");
  if (location === "/") throw new Error("has no socket path");
  const parsed: ParsedUrl = { tls: false, path: decode(location) };
  if (userInfo !== "") {
    const colon = userInfo.indexOf(":");
    if (colon === -1) parsed.password = decode(userInfo);
    else {
      if (colon > 0) parsed.username = decode(userInfo.slice(0, colon));
      if (colon < userInfo.length - 1) parsed.password = decode(userInfo.slice(colon + 1));
    }
  }
  return withDb(parsed, new URLSearchParams(query).get("db") ?? undefined);
}

function address(item: string): RedisAddress {
  const colon = item.lastIndexOf(":");
  return { host: item.slice(0, colon), port: Number(item.slice(colon + 1)) };
}

function list(value: RawValue): RedisAddress[] {
  return typeof value === "string"
    ? value
        .split(",")
        .map((item) => item.trim())
        .filter((item) => item !== "")
        .map(address)
    : [];
}

/**
 * Resolve the Redis settings from the parsed values in `raw`; `explicit` holds
 * the names that were set. Relative TLS file paths are resolved against `cwd`.
 */
export function resolveRedis(raw: Record<string, RawValue>, explicit: ReadonlySet<string>, cwd: string, errors: string[], warnings: string[]): RedisConfig {
  const enabledBy = REDIS_LOCATION_VARIABLES.find((name) => explicit.has(name));
  const text = (name: string): string | undefined => (typeof raw[name] === "string" && raw[name] !== "" ? (raw[name] as string) : undefined);
  const file = (name: string): string | undefined => {
    const value = text(name);
    return value === undefined ? undefined : resolve(cwd, value);
  };

  const clusterNodes = list(raw.REDIS_CLUSTER_NODES);
  const sentinelNodes = list(raw.REDIS_SENTINEL_NODES);
  let mode = raw.REDIS_MODE as RedisConfig["mode"];
  if (!explicit.has("REDIS_MODE")) {
    if (clusterNodes.length > 0 && sentinelNodes.length > 0) {
      if (enabledBy) errors.push("REDIS_CLUSTER_NODES and REDIS_SENTINEL_NODES are both set: set REDIS_MODE to cluster or sentinel");
    } else if (clusterNodes.length > 0) mode = "cluster";
    else if (sentinelNodes.length > 0) mode = "sentinel";
  }

  let url: ParsedUrl | undefined;
  const urlText = text("REDIS_URL");
  if (urlText !== undefined) {
    try {
      url = parseRedisUrl(urlText);
    } catch (error) {
      errors.push(`REDIS_URL ${(error as Error).message}`);
    }
  }

  const password = url?.password ?? text("REDIS_PASSWORD");
  const sentinelPassword = text("REDIS_SENTINEL_PASSWORD");
  const caFile = file("REDIS_TLS_CA_CERT_FILE");
  const certFile = file("REDIS_TLS_CERT_FILE");
  const keyFile = file("REDIS_TLS_KEY_FILE");
  const config: RedisConfig = {
    enabled: enabledBy !== undefined,
    ...(enabledBy ? { enabledBy } : {}),
    mode,
    host: url?.host ?? (raw.REDIS_HOST as string),
    port: url?.port ?? (url?.host !== undefined ? 6379 : (raw.REDIS_PORT as number)),
    ...(url?.path ? { path: url.path } : {}),
    ...(url?.username ? { username: url.username } : {}),
    ...(password ? { password } : {}),
    db: mode === "cluster" ? 0 : (url?.db ?? (raw.REDIS_DB as number)),
    clusterNodes: [],
    sentinel: { nodes: sentinelNodes, masterName: raw.REDIS_SENTINEL_MASTER as string, ...(sentinelPassword ? { password: sentinelPassword } : {}) },
    tls: {
      enabled: raw.REDIS_TLS_ENABLED === true || url?.tls === true,
      ...(caFile ? { caFile } : {}),
      ...(certFile ? { certFile } : {}),
      ...(keyFile ? { keyFile } : {}),
      insecure: raw.REDIS_TLS_INSECURE === true,
      checkHostname: raw.REDIS_TLS_CHECK_HOSTNAME === true,
    },
    keyPrefix: text("REDIS_KEY_PREFIX") ?? "",
    connectTimeoutMs: Math.round((raw.REDIS_SOCKET_CONNECT_TIMEOUT as number) * 1000),
    commandTimeoutMs: Math.round((raw.REDIS_SOCKET_TIMEOUT as number) * 1000),
    maxConnections: raw.REDIS_MAX_CONNECTIONS as number,
  };
  config.clusterNodes = clusterNodes.length > 0 ? clusterNodes : [{ host: config.host, port: config.port }];

  if (!config.enabled) {
    const stray = REDIS_SETTINGS.filter((name) => explicit.has(name));
    if (stray.length > 0) {
      warnings.push(`${stray.join(", ")} ${stray.length === 1 ? "is" : "are"} set but Redis is off: set REDIS_URL or REDIS_HOST (or REDIS_MODE) to use Redis`);
    }
    return config;
  }

  if (url) {
    for (const name of ["REDIS_HOST", "REDIS_PORT"]) {
      if (explicit.has(name)) warnings.push(`${name} is ignored: REDIS_URL is set and overrides it`);
    }
    if (url.password !== undefined && explicit.has("REDIS_PASSWORD") && url.password !== raw.REDIS_PASSWORD) {
      warnings.push("REDIS_URL and REDIS_PASSWORD both give a password and differ: using the URL's");
    }
    if (url.db !== undefined && explicit.has("REDIS_DB") && url.db !== raw.REDIS_DB) {
      warnings.push(`REDIS_URL and REDIS_DB both give a database and differ: using the URL's (${url.db})`);
    }
    if (url.tls && explicit.has("REDIS_TLS_ENABLED") && raw.REDIS_TLS_ENABLED === false) {
      warnings.push("REDIS_URL is rediss:// but REDIS_TLS_ENABLED is false: using TLS (the URL wins)");
    }
    if (!url.tls && !url.path && raw.REDIS_TLS_ENABLED === true) warnings.push("REDIS_URL is redis:// but REDIS_TLS_ENABLED is true: using TLS");
    if (url.path && mode !== "standalone") errors.push(`REDIS_URL is a unix socket, which REDIS_MODE=${mode} cannot use`);
    if (url.path && config.tls.enabled) errors.push("REDIS_URL is a unix socket: REDIS_TLS_ENABLED does not apply to it");
    if (mode === "sentinel") warnings.push("REDIS_URL's host is ignored in sentinel mode: the sentinels (REDIS_SENTINEL_NODES) name the master");
  }

  if (mode === "cluster") {
    if (explicit.has("REDIS_DB") && raw.REDIS_DB !== 0) warnings.push("REDIS_DB is ignored in cluster mode (Redis Cluster only has database 0)");
  } else if (clusterNodes.length > 0) {
    warnings.push(`REDIS_CLUSTER_NODES is ignored: REDIS_MODE is ${mode}`);
  }
  if (mode === "sentinel") {
    if (sentinelNodes.length === 0) errors.push("REDIS_MODE is sentinel but REDIS_SENTINEL_NODES is not set (host:port of each sentinel)");
  } else {
    if (sentinelNodes.length > 0) warnings.push(`REDIS_SENTINEL_NODES is ignored: REDIS_MODE is ${mode}`);
    if (sentinelPassword) warnings.push(`REDIS_SENTINEL_PASSWORD is ignored: REDIS_MODE is ${mode}`);
  }

  const tls = config.tls;
  if (tls.enabled) {
    for (const [name, path] of [
      ["REDIS_TLS_CA_CERT_FILE", tls.caFile],
      ["REDIS_TLS_CERT_FILE", tls.certFile],
      ["REDIS_TLS_KEY_FILE", tls.keyFile],
    ] as const) {
      if (path !== undefined && !isFile(path)) errors.push(`${name}: the file ${path} does not exist`);
    }
    if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
      errors.push("REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together (the client certificate and its key, for mutual TLS)");
    }
    if (tls.insecure && tls.checkHostname) warnings.push("REDIS_TLS_CHECK_HOSTNAME has no effect: REDIS_TLS_INSECURE turns every certificate check off");
  } else {
    const tlsOnly = ["REDIS_TLS_CA_CERT_FILE", "REDIS_TLS_CERT_FILE", "REDIS_TLS_KEY_FILE", "REDIS_TLS_INSECURE", "REDIS_TLS_CHECK_HOSTNAME"].filter((name) =>
      explicit.has(name),
    );
    if (tlsOnly.length > 0)
      warnings.push(`${tlsOnly.join(", ")} ${tlsOnly.length === 1 ? "is" : "are"} ignored: TLS to Redis is off (REDIS_TLS_ENABLED, rediss://)`);
  }
  if (config.maxConnections < 2) warnings.push("REDIS_MAX_CONNECTIONS is below 2: no connection is left for subscriptions (events across replicas)");
  return config;
}

/** Where Redis is, without secrets: for logs and error messages. */
export function describeRedis(config: RedisConfig): string {
  const where =
    config.mode === "cluster"
      ? `cluster ${config.clusterNodes.map((node) => `${node.host}:${node.port}`).join(",")}`
      : config.mode === "sentinel"
        ? `sentinel master "${config.sentinel.masterName}" via ${config.sentinel.nodes.map((node) => `${node.host}:${node.port}`).join(",")}`
        : config.path
          ? `standalone unix:${config.path}`
          : `standalone ${config.host}:${config.port}`;
  const db = config.mode !== "cluster" && config.db !== 0 ? ` db ${config.db}` : "";
  return `${where}${db}${config.tls.enabled ? " (TLS)" : ""}`;
}
