import type { RedisClient } from "../redis/connection.ts";
import { cleanLimits, type KeyPatch, type KeyRecord, type KeyStore, type UsageDelta } from "./key-store.ts";
import { LuaScript } from "./redis-script.ts";

/**
 * Managed keys in Redis, shared by every replica. One hash per key plus a set
 * of every key hash, all under the hash tag `{apikeys}`: one cluster slot, so
 * MULTI and Lua may touch several of them (operators manage tens of keys, not
 * millions: one slot holds them easily). The hot path does not come here on
 * every request: key-verifier.ts caches lookups for API_KEY_CACHE_TTL.
 */

/** Merge a JSON patch into the record when it still exists (atomic: two admins patching limits lose nothing). */
const UPDATE = new LuaScript(`
if redis.call('exists', KEYS[1]) == 0 then return 0 end
local patch = cjson.decode(ARGV[1])
if patch.name ~= nil then redis.call('hset', KEYS[1], 'name', patch.name) end
if patch.enabled ~= nil then redis.call('hset', KEYS[1], 'enabled', patch.enabled and '1' or '0') end
if patch.rateLimits ~= nil then
  local limits = cjson.decode(redis.call('hget', KEYS[1], 'rate_limits') or '{}')
  for window, value in pairs(patch.rateLimits) do
    if value == cjson.null then limits[window] = nil else limits[window] = value end
  end
  redis.call('hset', KEYS[1], 'rate_limits', cjson.encode(limits))
end
return 1
`);

/** Count usage on a key that still exists (a deleted key must not come back as a bare counter). */
const ADD_USAGE = new LuaScript(`
if redis.call('exists', KEYS[1]) == 0 then return 0 end
redis.call('hincrby', KEYS[1], 'requests', ARGV[1])
local last = tonumber(redis.call('hget', KEYS[1], 'last_used_at') or '0')
if tonumber(ARGV[2]) > last then redis.call('hset', KEYS[1], 'last_used_at', ARGV[2]) end
return 1
`);

export class RedisKeyStore implements KeyStore {
  readonly kind = "redis";
  readonly #redis: RedisClient;
  readonly #prefix: string;

  /** `prefix` goes before every key (REDIS_KEY_PREFIX); leave it empty when the client sets ioredis' own keyPrefix. */
  constructor(redis: RedisClient, options: { prefix?: string } = {}) {
    this.#redis = redis;
    this.#prefix = options.prefix ?? "";
  }

  async get(keyHash: string): Promise<KeyRecord | undefined> {
    return toRecord(keyHash, await this.#redis.hgetall(this.#key(keyHash)));
  }

  async list(): Promise<KeyRecord[]> {
    const hashes = await this.#redis.smembers(this.#index());
    if (hashes.length === 0) return [];
    const pipeline = this.#redis.pipeline();
    for (const hash of hashes) pipeline.hgetall(this.#key(hash));
    const replies = (await pipeline.exec()) ?? [];
    const records: KeyRecord[] = [];
    replies.forEach(([error, fields], i) => {
      if (error) throw error;
      const record = toRecord(hashes[i]!, fields as Record<string, string>);
      if (record) records.push(record);
    });
    return records.sort((a, b) => a.createdAt - b.createdAt);
  }

  async create(record: KeyRecord): Promise<void> {
    const fields: Record<string, string> = {
      name: record.name,
      created_at: String(record.createdAt),
      enabled: record.enabled ? "1" : "0",
      rate_limits: JSON.stringify(record.rateLimits),
      requests: String(record.usage.requests),
      ...(record.usage.lastUsedAt !== undefined ? { last_used_at: String(record.usage.lastUsedAt) } : {}),
    };
    const replies = await this.#redis.multi().hset(this.#key(record.keyHash), fields).sadd(this.#index(), record.keyHash).exec();
    for (const [error] of replies ?? []) if (error) throw error;
  }

  async update(keyHash: string, patch: KeyPatch): Promise<KeyRecord | undefined> {
    const found = await UPDATE.run(this.#redis, [this.#key(keyHash)], [JSON.stringify(patch)]);
    return Number(found) === 1 ? this.get(keyHash) : undefined;
  }

  async delete(keyHash: string): Promise<boolean> {
    const replies = await this.#redis.multi().del(this.#key(keyHash)).srem(this.#index(), keyHash).exec();
    for (const [error] of replies ?? []) if (error) throw error;
    return Number(replies?.[0]?.[1]) === 1;
  }

  async addUsage(deltas: readonly UsageDelta[]): Promise<void> {
    await Promise.all(deltas.map((d) => ADD_USAGE.run(this.#redis, [this.#key(d.keyHash)], [d.requests, d.lastUsedAt])));
  }

  async ping(): Promise<boolean> {
    try {
      // A cluster answers PING from any node; the key set's node is the one that matters.
      await this.#redis.exists(this.#index());
      return true;
    } catch {
      return false;
    }
  }

  /** The client belongs to the caller, who closes it. */
  async close(): Promise<void> {}

  #index(): string {
    return `${this.#prefix}{apikeys}:all`;
  }

  #key(keyHash: string): string {
    return `${this.#prefix}{apikeys}:key:${keyHash}`;
  }
}

function toRecord(keyHash: string, fields: Record<string, string>): KeyRecord | undefined {
  if (!fields || fields.created_at === undefined) return undefined;
  let limits: unknown = {};
  try {
    limits = JSON.parse(fields.rate_limits ?? "{}");
  } catch {
    // a hand-edited value: no limits rather than a failed request
  }
  const lastUsedAt = Number(fields.last_used_at);
  return {
    keyHash,
    name: fields.name ?? "",
    createdAt: Number(fields.created_at) || 0,
    enabled: fields.enabled !== "0",
    rateLimits: cleanLimits(limits),
    usage: { requests: Number(fields.requests) || 0, ...(lastUsedAt > 0 ? { lastUsedAt } : {}) },
  };
}
