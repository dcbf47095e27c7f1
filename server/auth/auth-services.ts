import type { Logger } from "pino";
import type { AppConfig } from "../config/types.ts";
import type { RedisClient } from "../redis/connection.ts";
import { ApiKeyVerifier } from "./api-keys.ts";
import { AuthFailureLimiter } from "./auth-failure-limiter.ts";
import { AuthGate } from "./auth-gate.ts";
import type { KeyStore, RateLimits } from "./key-store.ts";
import { KeyVerifier } from "./key-verifier.ts";
import { LibreChatJwtVerifier } from "./librechat-jwt.ts";
import { LocalKeyStore } from "./local-key-store.ts";
import { type CounterBackend, MemoryCounters, RateLimiter } from "./rate-limiter.ts";
import { RedisCounters } from "./redis-counters.ts";
import { RedisKeyStore } from "./redis-key-store.ts";
import { UsageRecorder } from "./usage-recorder.ts";

/** Usage counts reach the store this often (and at shutdown). */
const USAGE_FLUSH_MS = 5_000;

/** Everything the auth path, the admin API and the `keys` CLI share. */
export interface AuthServices {
  store: KeyStore;
  verifier: KeyVerifier;
  gate: AuthGate;
  usage: UsageRecorder;
  /** RATE_LIMIT_DEFAULT_PER_*: what a new key gets for the windows its creator leaves out. */
  defaultRateLimits: RateLimits;
  rateLimitEnabled: boolean;
  close(): Promise<void>;
}

/**
 * The key store of this configuration: Redis when the caller passes a client
 * (its key prefix, if any, set on the client), else the JSON file under
 * FILE_STORAGE_PATH that the server and the CLI share.
 */
export async function openKeyStore(config: AppConfig, redis: RedisClient | undefined): Promise<KeyStore> {
  return redis ? new RedisKeyStore(redis) : await LocalKeyStore.open(config.sessions.storagePath);
}

/** Build the auth path: keys in Redis and limits counted there when `redis` is given, else on this machine. */
export async function createAuthServices(
  config: AppConfig,
  redis: RedisClient | undefined,
  deps: { logger: Logger; securityLog: (event: string, fields: Record<string, unknown>) => void },
): Promise<AuthServices> {
  const { auth } = config;
  const store = await openKeyStore(config, redis);
  const verifier = new KeyVerifier(new ApiKeyVerifier(auth.apiKeys, auth.masterKey, auth.enabled), store, auth.masterKey, {
    cacheTtlMs: auth.keyCacheTtlMs,
  });
  const counters: CounterBackend = redis ? new RedisCounters(redis) : new MemoryCounters();
  const usage = new UsageRecorder(store, deps.logger);
  usage.start(USAGE_FLUSH_MS);
  const gate = new AuthGate({
    verifier,
    ...(auth.rateLimitEnabled
      ? {
          limiter: new RateLimiter(counters),
          failures: new AuthFailureLimiter(counters, { limit: auth.authFailureLimit, windowMs: auth.authFailureWindowMs }),
        }
      : {}),
    ...(auth.jwt.verifier
      ? {
          tokens: {
            verifier: new LibreChatJwtVerifier(auth.jwt.verifier),
            tokensOnly: auth.jwt.provider === "librechat-jwt",
            rateLimits: auth.defaultRateLimits,
          },
        }
      : {}),
    usage,
    logger: deps.logger,
    securityLog: deps.securityLog,
  });
  return {
    store,
    verifier,
    gate,
    usage,
    defaultRateLimits: auth.defaultRateLimits,
    rateLimitEnabled: auth.rateLimitEnabled,
    async close() {
      await usage.stop();
      await store.close();
    },
  };
}
