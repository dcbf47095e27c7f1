import type { Cluster, Redis } from "ioredis";

type RedisClient = Redis | Cluster;

/** Renew a key only while it still names us (a replica that paused past the TTL must not take back what another claimed). */
const RENEW_IF_MINE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return false
`;
const DELETE_IF_MINE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`;

interface HolderCommands {
  renewHolder(key: string, replicaId: string, ttlMs: number): Promise<string | null>;
  releaseHolder(key: string, replicaId: string): Promise<number>;
}

/**
 * Which replica holds each session's sandbox and live stream: a key per
 * session naming the replica, with a short TTL that the holder renews. When a
 * replica dies its keys expire and another replica may take its sessions over.
 */
export class HolderRegistry {
  readonly #redis: RedisClient & HolderCommands;
  readonly replicaId: string;
  readonly ttlMs: number;

  constructor(redis: RedisClient, replicaId: string, ttlMs = 15_000) {
    redis.defineCommand("renewHolder", { numberOfKeys: 1, lua: RENEW_IF_MINE });
    redis.defineCommand("releaseHolder", { numberOfKeys: 1, lua: DELETE_IF_MINE });
    this.#redis = redis as RedisClient & HolderCommands;
    this.replicaId = replicaId;
    this.ttlMs = ttlMs;
  }

  /** Claim `sessionId` for this replica; returns the holder after the attempt (us, or whoever held it). */
  async claim(sessionId: string): Promise<string> {
    const key = holderKey(sessionId);
    // Twice at most: the key may expire between the SET NX and the GET.
    for (let attempt = 0; attempt < 2; attempt++) {
      if ((await this.#redis.set(key, this.replicaId, "PX", this.ttlMs, "NX")) === "OK") return this.replicaId;
      const holder = await this.#redis.get(key);
      if (holder === this.replicaId) {
        await this.#redis.renewHolder(key, this.replicaId, this.ttlMs);
        return holder;
      }
      if (holder) return holder;
    }
    throw new Error(`session ${sessionId} could not be claimed`);
  }

  holderOf(sessionId: string): Promise<string | null> {
    return this.#redis.get(holderKey(sessionId));
  }

  /** Renew the keys of the sessions we hold; returns the ids we lost (another replica claimed them while we were away). */
  async renew(sessionIds: readonly string[]): Promise<string[]> {
    const lost: string[] = [];
    await Promise.all(
      sessionIds.map(async (id) => {
        if ((await this.#redis.renewHolder(holderKey(id), this.replicaId, this.ttlMs)) === null) lost.push(id);
      }),
    );
    return lost;
  }

  async release(sessionId: string): Promise<void> {
    await this.#redis.releaseHolder(holderKey(sessionId), this.replicaId);
  }
}

function holderKey(sessionId: string): string {
  return `holder:{${sessionId}}`;
}
