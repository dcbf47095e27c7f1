/**
 * Connections to Redis in every mode the configuration allows (standalone,
 * cluster, sentinel; TLS in each), tuned so that a Redis outage never makes a
 * caller wait forever:
 *
 * - no offline queue: while the connection is down, a command fails at once
 *   ("Stream isn't writeable"), so requests get a 503 instead of piling up;
 * - REDIS_SOCKET_TIMEOUT bounds every command (commandTimeout), and a socket
 *   that stops answering is dropped and re-made (socketTimeout): a frozen or
 *   half-open server is noticed, not waited on;
 * - commands in flight when a connection drops fail rather than being replayed
 *   later, when their caller has long given up;
 * - reconnection never stops (backoff up to 2 s), so the client recovers on its
 *   own when Redis is back, and subscriptions are renewed (ioredis autoResubscribe).
 *
 * The key prefix (REDIS_KEY_PREFIX) is ioredis's keyPrefix: it applies to key
 * arguments (EVAL's KEYS included) but not to pub/sub channels nor to SCAN and
 * KEYS patterns; channelName() and scanKeys() add it there by hand.
 */
import { readFileSync } from "node:fs";
import type { ConnectionOptions } from "node:tls";
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from "ioredis";
import type { Logger } from "pino";
import { describeRedis } from "../config/redis.ts";
import type { RedisConfig } from "../config/types.ts";

export type RedisClient = Redis | Cluster;

/** Redis is configured but did not answer (start-up), or a connection limit was reached. */
export class RedisUnavailableError extends Error {
  override name = "RedisUnavailableError";
}

export interface CreateRedisOptions {
  /** Added to the connection name seen in CLIENT LIST ("code-interpreter:<name>"). */
  name?: string;
  /** Where connection loss and recovery are logged (once per outage). */
  logger?: Logger;
}

/** How a client was made, for duplicates (subscribers) and the connection cap. */
interface ClientInfo {
  config: RedisConfig;
  logger?: Logger;
  /** Connections handed out from the same root client, the root included. */
  counter: { count: number };
}
const clients = new WeakMap<RedisClient, ClientInfo>();

const MAX_RECONNECT_DELAY_MS = 2_000;

/** Node TLS options from the REDIS_TLS_* settings; undefined when TLS is off. */
export function tlsOptions(config: RedisConfig): ConnectionOptions | undefined {
  const { tls } = config;
  if (!tls.enabled) return undefined;
  const options: ConnectionOptions = {};
  if (tls.caFile) options.ca = readFileSync(tls.caFile);
  if (tls.certFile && tls.keyFile) {
    options.cert = readFileSync(tls.certFile);
    options.key = readFileSync(tls.keyFile);
  }
  if (tls.insecure) {
    options.rejectUnauthorized = false;
  } else if (!tls.checkHostname) {
    // The chain is still verified against the CA; only the name match is skipped
    // (managed services and cluster discovery hand out IPs the certificate does not name).
    options.checkServerIdentity = () => undefined;
  }
  return options;
}

/** Options shared by every connection to a Redis node (standalone, sentinel's master, each cluster node). */
function nodeOptions(config: RedisConfig, name: string | undefined): RedisOptions {
  const tls = tlsOptions(config);
  return {
    ...(config.username ? { username: config.username } : {}),
    ...(config.password ? { password: config.password } : {}),
    ...(tls ? { tls } : {}),
    connectionName: name ? `code-interpreter:${name}` : "code-interpreter",
    connectTimeout: config.connectTimeoutMs,
    commandTimeout: config.commandTimeoutMs,
    socketTimeout: config.commandTimeoutMs,
    keepAlive: 30_000,
    maxRetriesPerRequest: 1,
    autoResendUnfulfilledCommands: false,
    // After a failover the old master turns replica: reconnect (and resend the refused write).
    reconnectOnError: (error) => (error.message.startsWith("READONLY") ? 2 : false),
  };
}

/** ioredis options of a standalone or sentinel client (exported for tests). */
export function redisOptions(config: RedisConfig, name?: string): RedisOptions {
  const options: RedisOptions = {
    ...nodeOptions(config, name),
    keyPrefix: config.keyPrefix,
    db: config.db,
    enableOfflineQueue: false,
    enableReadyCheck: true,
    retryStrategy: (times) => Math.min(times * 200, MAX_RECONNECT_DELAY_MS),
  };
  if (config.mode === "sentinel") {
    const tls = tlsOptions(config);
    return {
      ...options,
      sentinels: config.sentinel.nodes.map(({ host, port }) => ({ host, port })),
      name: config.sentinel.masterName,
      ...(config.sentinel.password ? { sentinelPassword: config.sentinel.password } : {}),
      // One TLS setting for the deployment: sentinels and data nodes alike.
      ...(tls ? { enableTLSForSentinelMode: true, sentinelTLS: tls } : {}),
      sentinelCommandTimeout: config.commandTimeoutMs,
      sentinelRetryStrategy: (times) => Math.min(times * 200, MAX_RECONNECT_DELAY_MS),
      // Follow +switch-master at once instead of waiting for the old master to fail.
      failoverDetector: true,
    };
  }
  return config.path ? { ...options, path: config.path } : { ...options, host: config.host, port: config.port };
}

/** ioredis options of a cluster client (exported for tests). */
export function clusterOptions(config: RedisConfig, name?: string): ClusterOptions {
  return {
    redisOptions: nodeOptions(config, name),
    keyPrefix: config.keyPrefix,
    enableOfflineQueue: false,
    enableReadyCheck: true,
    clusterRetryStrategy: (times) => Math.min(times * 200, MAX_RECONNECT_DELAY_MS),
    slotsRefreshTimeout: Math.max(1_000, config.connectTimeoutMs),
    // Keep host names as given (TLS certificates name them; AWS endpoints need it).
    ...(config.tls.enabled ? { dnsLookup: (address: string, callback: (error: null, address: string) => void) => callback(null, address) } : {}),
  };
}

/** Log "lost" once per outage and "back" when it ends; keep ioredis from printing unhandled errors. */
function watch(client: RedisClient, config: RedisConfig, logger: Logger | undefined, name: string | undefined): void {
  let lost = false;
  let everReady = false;
  const where = describeRedis(config);
  client.on("error", (error: Error) => {
    if (!lost && everReady) {
      lost = true;
      logger?.warn({ redis: where, connection: name, err: error.message }, "redis connection lost");
    }
  });
  client.on("close", () => {
    if (!lost && everReady) {
      lost = true;
      logger?.warn({ redis: where, connection: name }, "redis connection lost");
    }
  });
  client.on("ready", () => {
    if (lost) logger?.info({ redis: where, connection: name }, "redis connection back");
    lost = false;
    everReady = true;
  });
}

/**
 * A client for `config` (which must have `enabled`). It starts connecting at
 * once; commands fail until it is ready, so await waitForReady() (or use
 * connectRedis()) before relying on it.
 */
export function createRedis(config: RedisConfig, options: CreateRedisOptions = {}): RedisClient {
  const client =
    config.mode === "cluster"
      ? new Cluster(
          config.clusterNodes.map(({ host, port }) => ({ host, port })),
          clusterOptions(config, options.name),
        )
      : new Redis(redisOptions(config, options.name));
  clients.set(client, { config, ...(options.logger ? { logger: options.logger } : {}), counter: { count: 1 } });
  watch(client, config, options.logger, options.name);
  return client;
}

/** Resolve when `client` is ready; reject after `timeoutMs` with the last connection error in the message. */
export async function waitForReady(client: RedisClient, timeoutMs: number): Promise<void> {
  if (client.status === "ready") return;
  let lastError: Error | undefined;
  await new Promise<void>((resolveReady, reject) => {
    const onError = (error: Error) => {
      lastError = error;
    };
    const onReady = () => {
      cleanup();
      resolveReady();
    };
    const onEnd = () => {
      cleanup();
      reject(new RedisUnavailableError(`the connection was closed${lastError ? `: ${lastError.message}` : ""}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new RedisUnavailableError(`not ready within ${timeoutMs} ms${lastError ? `: ${lastError.message}` : ""}`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      client.off("error", onError);
      client.off("ready", onReady);
      client.off("end", onEnd);
    };
    client.on("error", onError);
    client.once("ready", onReady);
    client.once("end", onEnd);
  });
}

/**
 * Start-up: a ready client, or a RedisUnavailableError that says where Redis
 * was looked for and why it failed (the client is closed then). Redis being
 * configured means the operator wants it: starting without it would run a
 * replica that shares nothing with the others.
 */
export async function connectRedis(config: RedisConfig, options: CreateRedisOptions & { timeoutMs?: number } = {}): Promise<RedisClient> {
  const client = createRedis(config, options);
  const timeoutMs = options.timeoutMs ?? 2 * config.connectTimeoutMs;
  try {
    await waitForReady(client, timeoutMs);
    return client;
  } catch (error) {
    client.disconnect();
    const why = error instanceof Error ? error.message : String(error);
    throw new RedisUnavailableError(
      `Redis (${describeRedis(config)}, turned on by ${config.enabledBy ?? "the configuration"}) is not reachable: ${why}. ` +
        "Start Redis or fix the REDIS_* settings; unset them to use the embedded stores.",
    );
  }
}

/**
 * A second connection like `client`, ready, for SUBSCRIBE (a subscribed
 * connection can run no other command). Counts against REDIS_MAX_CONNECTIONS.
 * Channels get no key prefix from ioredis: name them with channelName().
 */
export async function createSubscriber(client: RedisClient, options: { name?: string; timeoutMs?: number } = {}): Promise<RedisClient> {
  const info = clients.get(client);
  if (!info) throw new Error("createSubscriber: the client was not made by createRedis");
  if (info.counter.count >= info.config.maxConnections) {
    throw new RedisUnavailableError(`REDIS_MAX_CONNECTIONS (${info.config.maxConnections}) reached: no connection left for a subscriber`);
  }
  const name = options.name ?? "subscriber";
  const subscriber =
    info.config.mode === "cluster"
      ? new Cluster(
          info.config.clusterNodes.map(({ host, port }) => ({ host, port })),
          clusterOptions(info.config, name),
        )
      : new Redis(redisOptions(info.config, name));
  info.counter.count++;
  subscriber.once("end", () => info.counter.count--);
  clients.set(subscriber, info);
  watch(subscriber, info.config, info.logger, name);
  try {
    await waitForReady(subscriber, options.timeoutMs ?? 2 * info.config.connectTimeoutMs);
  } catch (error) {
    subscriber.disconnect();
    throw error;
  }
  return subscriber;
}

/** What ioredis and Redis say when Redis cannot serve a command now, as opposed to a wrong command. */
const UNAVAILABLE =
  /Stream isn't writeable|isn't ready and enableOfflineQueue|Command timed out|Connection is closed|Socket timeout|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EPIPE|CLUSTERDOWN|TRYAGAIN|MASTERDOWN|LOADING|READONLY|None of startup nodes is available|All sentinels are unreachable|Failed to refresh slots cache/;

/**
 * Whether `error` means Redis is unreachable or not answering in time: the
 * request should get a 503 (and the next one tries again), not a 500.
 */
export function isRedisUnavailable(error: unknown): boolean {
  if (error instanceof RedisUnavailableError) return true;
  if (!(error instanceof Error)) return false;
  if (error.name === "MaxRetriesPerRequestError" || error.name === "ClusterAllFailedError") return true;
  return UNAVAILABLE.test(error.message);
}

export interface RedisHealth {
  ok: boolean;
  /** ioredis status ("ready", "connecting", "reconnecting", "end"...). */
  status: string;
  latencyMs?: number;
  error?: string;
}

/**
 * PING within `timeoutMs`, never throws (for /ready and /health/detailed).
 * In cluster mode every master must answer: a missing one holds a share of the keys.
 */
export async function pingRedis(client: RedisClient, timeoutMs: number): Promise<RedisHealth> {
  const started = performance.now();
  const targets: Redis[] | RedisClient[] = client instanceof Cluster ? client.nodes("master") : [client];
  let timer: NodeJS.Timeout | undefined;
  try {
    if (client.status !== "ready") throw new Error(`connection ${client.status}`);
    if (targets.length === 0) throw new Error("no cluster master known");
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    await Promise.race([Promise.all(targets.map((target) => target.ping())), timeout]);
    return { ok: true, status: client.status, latencyMs: Math.round((performance.now() - started) * 10) / 10 };
  } catch (error) {
    return { ok: false, status: client.status, error: error instanceof Error ? error.message : String(error) };
  } finally {
    clearTimeout(timer);
  }
}

/** The key prefix of a client ("" when none). */
export function keyPrefixOf(client: RedisClient): string {
  return client.options.keyPrefix ?? "";
}

/** A pub/sub channel name with the key prefix, which ioredis does not add to channels. */
export function channelName(client: RedisClient, name: string): string {
  return `${keyPrefixOf(client)}${name}`;
}

function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (char) => `\\${char}`);
}

/**
 * Every key matching `pattern` (a SCAN glob, without the prefix), on every
 * master in cluster mode. The prefix is added to the pattern and taken off the
 * keys returned, so they can be passed back to ordinary commands.
 */
export async function* scanKeys(client: RedisClient, pattern: string, count = 500): AsyncGenerator<string> {
  const prefix = keyPrefixOf(client);
  const nodes: Redis[] = client instanceof Cluster ? client.nodes("master") : [client];
  for (const node of nodes) {
    let cursor = "0";
    do {
      const [next, keys] = await node.scan(cursor, "MATCH", `${escapeGlob(prefix)}${pattern}`, "COUNT", count);
      cursor = next;
      for (const key of keys) yield key.startsWith(prefix) ? key.slice(prefix.length) : key;
    } while (cursor !== "0");
  }
}

/** QUIT politely when connected, drop the connection otherwise; never hangs. */
export async function closeRedis(client: RedisClient, timeoutMs = 1_000): Promise<void> {
  if (client.status === "end") return;
  if (client.status !== "ready") {
    client.disconnect();
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([client.quit().catch(() => {}), new Promise<void>((resolveWait) => (timer = setTimeout(resolveWait, timeoutMs)))]);
  clearTimeout(timer);
  client.disconnect();
}
