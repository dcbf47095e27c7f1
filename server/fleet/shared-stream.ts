import type { Cluster, Redis } from "ioredis";

type RedisClient = Redis | Cluster;

/**
 * Append a frame to a session's replay log, trim the log to its bound while
 * remembering the highest seq that fell out, and publish the frame: one
 * atomic step, so the log and the live channel never disagree on order.
 * Entries are "<seq>|<frame text>".
 */
const APPEND_FRAME = `
redis.call('RPUSH', KEYS[1], ARGV[1] .. '|' .. ARGV[2])
local n = redis.call('LLEN', KEYS[1])
local cap = tonumber(ARGV[3])
if n > cap then
  local dropped = redis.call('LRANGE', KEYS[1], n - cap - 1, n - cap - 1)
  redis.call('LTRIM', KEYS[1], n - cap, -1)
  local seq = string.match(dropped[1], '^(%d+)|')
  redis.call('SET', KEYS[2], seq, 'PX', ARGV[4])
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PUBLISH', ARGV[5], ARGV[2])
return n
`;

interface StreamCommands {
  appendSessionFrame(log: string, dropped: string, seq: number, text: string, cap: number, ttlMs: number, channel: string): Promise<number>;
}

export interface SharedReplay {
  frames: { seq: number; text: string }[];
  /** Highest seq that fell out of the log (0: none). */
  droppedUpTo: number;
}

/**
 * A session's frame stream shared by the replicas: the holder appends every
 * logged frame (and publishes it on `session:<id>`); any replica reads the
 * log to replay what a reconnecting client missed.
 */
export class SharedStream {
  readonly #redis: RedisClient & StreamCommands;
  readonly #channelPrefix: string;
  readonly #capacity: number;
  readonly #ttlMs: number;

  constructor(redis: RedisClient, options: { channelPrefix: string; capacity: number; ttlMs: number }) {
    redis.defineCommand("appendSessionFrame", { numberOfKeys: 2, lua: APPEND_FRAME });
    this.#redis = redis as RedisClient & StreamCommands;
    this.#channelPrefix = options.channelPrefix;
    this.#capacity = options.capacity;
    this.#ttlMs = options.ttlMs;
  }

  /** The pub/sub channel of a session's live frames (without the prefix FleetBus adds). */
  static channel(sessionId: string): string {
    return `session:${sessionId}`;
  }

  append(sessionId: string, seq: number, text: string): Promise<number> {
    const [log, dropped] = keys(sessionId);
    return this.#redis.appendSessionFrame(log, dropped, seq, text, this.#capacity, this.#ttlMs, `${this.#channelPrefix}${SharedStream.channel(sessionId)}`);
  }

  async read(sessionId: string): Promise<SharedReplay> {
    const [log, dropped] = keys(sessionId);
    const [entries, droppedUpTo] = await Promise.all([this.#redis.lrange(log, 0, -1), this.#redis.get(dropped)]);
    const frames = entries.map((entry) => {
      const bar = entry.indexOf("|");
      return { seq: Number(entry.slice(0, bar)), text: entry.slice(bar + 1) };
    });
    return { frames, droppedUpTo: Number(droppedUpTo ?? 0) };
  }

  async delete(sessionId: string): Promise<void> {
    await this.#redis.del(...keys(sessionId));
  }
}

/** Both keys of a session share a hash tag: one cluster slot, so the script may touch both. */
function keys(sessionId: string): [string, string] {
  return [`replay:{${sessionId}}`, `replay-dropped:{${sessionId}}`];
}
