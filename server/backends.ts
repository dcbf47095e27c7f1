import type { Logger } from "pino";
import type { AppConfig } from "./config/types.ts";
import { type EventBus, InProcessEventBus } from "./events/event-bus.ts";
import { RedisEventBus } from "./events/redis-event-bus.ts";
import type { FileStore } from "./files/file-store.ts";
import { openFileStore } from "./files/open-file-store.ts";
import { FleetBus } from "./fleet/fleet-bus.ts";
import { HolderRegistry } from "./fleet/holders.ts";
import { SharedStream } from "./fleet/shared-stream.ts";
import { lockFolder } from "./folder-lock.ts";
import { makePrivateDir } from "./private-dir.ts";
import { closeRedis, connectRedis, createSubscriber, type RedisClient } from "./redis/connection.ts";
import { runOnce } from "./redis/fleet-lock.ts";
import { LocalSessionStore } from "./sessions/local-session-store.ts";
import { RedisSessionStore } from "./sessions/redis-session-store.ts";
import type { Fleet } from "./sessions/session-manager.ts";
import type { SessionStore } from "./sessions/session-store.ts";

/** A shared replay log outlives the session's last frame by this long: enough for any client to come back within the grace. */
const SHARED_STREAM_MIN_TTL_MS = 10 * 60_000;

export interface Backends {
  /** Set when Redis is configured: the replicas share sessions, keys, limits and events through it. */
  redis?: RedisClient;
  store: SessionStore;
  files: FileStore;
  events: EventBus;
  fleet?: Fleet;
  /** Run a background task that every replica schedules every `everyMs` on one replica per round. */
  runOnce(name: string, everyMs: number, task: () => Promise<unknown>): Promise<unknown>;
  close(): Promise<void>;
}

/**
 * The stores, events and fleet plumbing this configuration asks for: the
 * embedded ones (a local folder, in-process events) when no Redis or S3 is
 * configured, else Redis for sessions, events and cross-replica sessions, and
 * S3 for files.
 */
export async function openBackends(config: AppConfig, logger: Logger): Promise<Backends> {
  if (!config.redis.enabled) {
    // Session records in memory over FILE_STORAGE_PATH: a second server there would sweep this one's sessions and files.
    await makePrivateDir(config.sessions.storagePath);
    const lock = await lockFolder(config.sessions.storagePath, "FILE_STORAGE_PATH");
    try {
      const files = await openFileStore(config, logger.child({ component: "files" }));
      return {
        store: await LocalSessionStore.open(config.sessions.storagePath),
        files,
        events: new InProcessEventBus(),
        runOnce: (_name, _everyMs, task) => task(),
        close: async () => {
          await files.close?.();
          await lock.release();
        },
      };
    } catch (error) {
      await lock.release();
      throw error;
    }
  }
  const files = await openFileStore(config, logger.child({ component: "files" }));
  const redis = await connectRedis(config.redis, { name: "main", logger: logger.child({ component: "redis" }) });
  const subscriber = await createSubscriber(redis);
  const bus = await FleetBus.open(redis, subscriber, config.redis.keyPrefix ?? "");
  const fleet: Fleet = {
    bus,
    holders: new HolderRegistry(redis, bus.replicaId),
    stream: new SharedStream(redis, {
      channelPrefix: config.redis.keyPrefix ?? "",
      capacity: config.sessions.replayFrames,
      ttlMs: Math.max(SHARED_STREAM_MIN_TTL_MS, 2 * config.sessions.idleGraceMs),
    }),
  };
  const sweepEveryMs = config.sessions.cleanupIntervalMs;
  return {
    redis,
    store: new RedisSessionStore(redis, { ttlMs: config.sessions.ttlMs, graceMs: 2 * sweepEveryMs }),
    files,
    events: await RedisEventBus.open(bus),
    fleet,
    // The lock is kept for most of the round, so the other replicas' timers in the same round find it taken.
    runOnce: (name, everyMs, task) => runOnce(redis, name, Math.max(60_000, everyMs), task, { holdMs: Math.max(0, everyMs - Math.min(5_000, everyMs / 4)) }),
    close: async () => {
      await bus.close();
      await files.close?.();
      await closeRedis(subscriber);
      await closeRedis(redis);
    },
  };
}
