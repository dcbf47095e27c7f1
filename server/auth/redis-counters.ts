import type { RedisClient } from "../redis/connection.ts";
import type { Bucket, CounterBackend } from "./rate-limiter.ts";
import { LuaScript } from "./redis-script.ts";

/**
 * Rate-limit counters in Redis, shared by every replica. The buckets of one
 * scope (one key hash, or one client address) share the hash tag `{scope}`, so
 * one Lua script checks and counts all its windows atomically, also on a
 * cluster. Each counter expires a little after its window ends.
 */

/** Replicas' clocks differ a little: a counter lives this long past its window end. */
const EXPIRY_SLACK_MS = 5_000;

/** ARGV[1]: "consume" or "add"; then per key: limit, window end (epoch ms). Returns {allowed, count1, count2...}. */
const COUNT = new LuaScript(`
local counts = {}
if ARGV[1] == 'consume' then
  for i = 1, #KEYS do
    counts[i] = tonumber(redis.call('get', KEYS[i]) or '0')
    if counts[i] >= tonumber(ARGV[i * 2]) then
      for j = i + 1, #KEYS do counts[j] = tonumber(redis.call('get', KEYS[j]) or '0') end
      table.insert(counts, 1, 0)
      return counts
    end
  end
end
for i = 1, #KEYS do
  counts[i] = redis.call('incr', KEYS[i])
  redis.call('pexpireat', KEYS[i], tonumber(ARGV[i * 2 + 1]) + ${EXPIRY_SLACK_MS})
end
table.insert(counts, 1, 1)
return counts
`);

export class RedisCounters implements CounterBackend {
  readonly #redis: RedisClient;
  readonly #prefix: string;

  constructor(redis: RedisClient, options: { prefix?: string } = {}) {
    this.#redis = redis;
    this.#prefix = options.prefix ?? "";
  }

  async consume(scope: string, buckets: readonly Bucket[]): Promise<{ allowed: boolean; counts: number[] }> {
    const [allowed, ...counts] = await this.#run("consume", scope, buckets);
    return { allowed: allowed === 1, counts };
  }

  async add(scope: string, buckets: readonly Bucket[]): Promise<number[]> {
    const [, ...counts] = await this.#run("add", scope, buckets);
    return counts;
  }

  async #run(mode: "consume" | "add", scope: string, buckets: readonly Bucket[]): Promise<number[]> {
    const keys = buckets.map((bucket) => `${this.#prefix}ratelimit:{${scope}}:${bucket.id}`);
    const args = [mode, ...buckets.flatMap((bucket) => [bucket.limit, bucket.endsAt])];
    const reply = (await COUNT.run(this.#redis, keys, args)) as number[];
    return reply.map(Number);
  }
}
