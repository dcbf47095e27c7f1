/**
 * Session records in Redis, shared by every replica.
 *
 * Keys (after REDIS_KEY_PREFIX):
 *   session:{<id>}              hash: the record. Expires `lifetimeMs` after its
 *                               lastActiveAt (SESSION_TTL_HOURS plus a grace that
 *                               lets the sweep see it first); a touch moves it on.
 *   sessions:by-entity:<hash>   sorted set of ids by last use, one per owner key +
 *                               entity + user: newestForEntity.
 *   sessions:by-last-use        sorted set of every id by last use: idleSince.
 *   session:{<id>}:parked       string: the JSON of a parked stream (ParkedStream),
 *                               read once by the replica that revives the session.
 *
 * The hash tag `{<id>}` keeps anything else stored per session in the same
 * cluster slot as its record. Every script touches a single key, so the store
 * works the same on a cluster. The indexes are rebuilt knowledge, not truth:
 * they are written after the record, expire with their newest member, and
 * readers check each member against its record, dropping those whose record is
 * gone (expired, deleted, or evicted by a Redis under memory pressure) and
 * correcting stale scores. Losing an index only means a session is not found
 * by entity (a new one is made) or not swept early (its record expires anyway,
 * and the orphan sweep then removes its files).
 */
import { createHash } from "node:crypto";
import type { Cluster, Redis } from "ioredis";
import type { ParkedStream, SessionRecord, SessionStore } from "./session-store.ts";

type RedisClient = Redis | Cluster;

export interface RedisSessionStoreOptions {
  /** SESSION_TTL_HOURS in ms: how long a record lives after its last use. */
  ttlMs: number;
  /**
   * Extra life in Redis past ttlMs, so that the expired-session sweep (which
   * deletes the files too) normally finds the record before Redis drops it.
   * Suggested: two SESSION_CLEANUP_INTERVAL_MINUTES.
   */
  graceMs?: number;
}

/** The index of every session by last use. */
export const SESSIONS_BY_LAST_USE = "sessions:by-last-use";
/** Index members read per round trip. */
const PAGE = 20;
/** Records read at once when checking a list of ids. */
const BATCH = 100;

// KEYS[1] record; ARGV[1] expire-at (ms), ARGV[2..] field, value pairs.
const PUT = `
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return 1`;

// KEYS[1] record; ARGV[1] at (ms), ARGV[2] lifetime (ms). Never moves lastActiveAt back
// (touches from two replicas may arrive out of order). Returns the fields the indexes need.
const TOUCH = `
local current = redis.call('HGET', KEYS[1], 'lastActiveAt')
if not current then return false end
local at = tonumber(ARGV[1])
if at > tonumber(current) then
  redis.call('HSET', KEYS[1], 'lastActiveAt', ARGV[1])
else
  at = tonumber(current)
end
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', at + tonumber(ARGV[2])))
local fields = redis.call('HMGET', KEYS[1], 'ownerKeyHash', 'entityId', 'userId')
return { string.format('%.0f', at), fields[1], fields[2], fields[3] }`;

// KEYS[1] record; ARGV[1] seq. Raises seqReserved, never lowers it; nothing once the record is gone.
const RESERVE_SEQ = `
local current = redis.call('HGET', KEYS[1], 'seqReserved')
if not redis.call('HGET', KEYS[1], 'id') then return 0 end
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'seqReserved', ARGV[1])
return 1`;

// KEYS[1] record. Deletes it and returns the fields its index entries are found by.
const DELETE = `
local fields = redis.call('HMGET', KEYS[1], 'ownerKeyHash', 'entityId', 'userId')
redis.call('DEL', KEYS[1])
return fields`;

// KEYS[1] index; ARGV[1] score, ARGV[2] member, ARGV[3] cutoff (members scored before it
// have no record left), ARGV[4] lifetime. The index expires with its newest member.
const INDEX_ADD = `
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if top[2] then redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', tonumber(top[2]) + tonumber(ARGV[4]))) end
return 1`;

interface Scripts {
  ciSessionPut(key: string, expireAt: number, ...fields: (string | number)[]): Promise<number>;
  ciSessionTouch(key: string, at: number, lifetimeMs: number): Promise<[string, string | null, string | null, string | null] | null>;
  ciSessionDelete(key: string): Promise<[string | null, string | null, string | null]>;
  ciSessionReserveSeq(key: string, upTo: number): Promise<number>;
  ciIndexAdd(key: string, score: number, member: string, cutoff: number, lifetimeMs: number): Promise<number>;
}

/** The key of a session's record (before the key prefix). */
export function sessionRecordKey(id: string): string {
  return `session:{${id}}`;
}

/** The key of a session's parked stream (the record's cluster slot). */
function parkedStreamKey(id: string): string {
  return `${sessionRecordKey(id)}:parked`;
}

/** One index per owner + entity + user; hashed, since entity and user ids are the client's free text. */
export function sessionEntityIndexKey(ownerKeyHash: string, entityId: string, userId: string | undefined): string {
  const digest = createHash("sha256")
    .update(JSON.stringify([ownerKeyHash, entityId, userId ?? null]))
    .digest("hex")
    .slice(0, 32);
  return `sessions:by-entity:${digest}`;
}

function parse(fields: Record<string, string>): SessionRecord | undefined {
  const { id, ownerKeyHash, userId, entityId, createdAt, lastActiveAt, seqReserved } = fields;
  if (id === undefined || ownerKeyHash === undefined || createdAt === undefined || lastActiveAt === undefined) return undefined;
  return {
    id,
    ownerKeyHash,
    ...(userId !== undefined ? { userId } : {}),
    ...(entityId !== undefined ? { entityId } : {}),
    createdAt: Number(createdAt),
    lastActiveAt: Number(lastActiveAt),
    ...(seqReserved !== undefined ? { seqReserved: Number(seqReserved) } : {}),
  };
}

export class RedisSessionStore implements SessionStore {
  readonly #redis: RedisClient;
  readonly #scripts: Scripts;
  /** How long after its last use a record (and an index entry) lives in Redis. */
  readonly lifetimeMs: number;

  constructor(redis: RedisClient, options: RedisSessionStoreOptions) {
    this.#redis = redis;
    this.lifetimeMs = options.ttlMs + (options.graceMs ?? 0);
    // defineCommand: EVALSHA, with the script sent again after a SCRIPT FLUSH or a failover.
    redis.defineCommand("ciSessionPut", { numberOfKeys: 1, lua: PUT });
    redis.defineCommand("ciSessionTouch", { numberOfKeys: 1, lua: TOUCH });
    redis.defineCommand("ciSessionDelete", { numberOfKeys: 1, lua: DELETE });
    redis.defineCommand("ciSessionReserveSeq", { numberOfKeys: 1, lua: RESERVE_SEQ });
    redis.defineCommand("ciIndexAdd", { numberOfKeys: 1, lua: INDEX_ADD });
    this.#scripts = redis as unknown as Scripts;
  }

  async get(id: string): Promise<SessionRecord | undefined> {
    return parse(await this.#redis.hgetall(sessionRecordKey(id)));
  }

  async put(record: SessionRecord): Promise<void> {
    const fields: (string | number)[] = ["id", record.id, "ownerKeyHash", record.ownerKeyHash, "createdAt", record.createdAt];
    fields.push("lastActiveAt", record.lastActiveAt);
    if (record.userId !== undefined) fields.push("userId", record.userId);
    if (record.entityId !== undefined) fields.push("entityId", record.entityId);
    if (record.seqReserved !== undefined) fields.push("seqReserved", record.seqReserved);
    await this.#scripts.ciSessionPut(sessionRecordKey(record.id), record.lastActiveAt + this.lifetimeMs, ...fields);
    await this.#index(record.id, record.lastActiveAt, record.ownerKeyHash, record.entityId, record.userId);
  }

  async touch(id: string, at: number): Promise<void> {
    const result = await this.#scripts.ciSessionTouch(sessionRecordKey(id), at, this.lifetimeMs);
    if (!result) return;
    const [lastActiveAt, ownerKeyHash, entityId, userId] = result;
    if (ownerKeyHash === null) return;
    await this.#index(id, Number(lastActiveAt), ownerKeyHash, entityId ?? undefined, userId ?? undefined);
  }

  async reserveSeq(id: string, upTo: number): Promise<void> {
    await this.#scripts.ciSessionReserveSeq(sessionRecordKey(id), upTo);
  }

  async parkStream(id: string, stream: ParkedStream): Promise<void> {
    await this.#redis.set(parkedStreamKey(id), JSON.stringify(stream), "PX", this.lifetimeMs);
  }

  async takeParkedStream(id: string): Promise<ParkedStream | undefined> {
    const text = await this.#redis.getdel(parkedStreamKey(id));
    return text === null ? undefined : (JSON.parse(text) as ParkedStream);
  }

  async delete(id: string): Promise<void> {
    const [ownerKeyHash, entityId, userId] = await this.#scripts.ciSessionDelete(sessionRecordKey(id));
    const removals: Promise<unknown>[] = [this.#redis.zrem(SESSIONS_BY_LAST_USE, id), this.#redis.del(parkedStreamKey(id))];
    if (ownerKeyHash !== null && entityId !== null) removals.push(this.#redis.zrem(sessionEntityIndexKey(ownerKeyHash, entityId, userId ?? undefined), id));
    await Promise.all(removals);
  }

  async newestForEntity(entityId: string, userId: string | undefined, ownerKeyHash: string): Promise<SessionRecord | undefined> {
    const key = sessionEntityIndexKey(ownerKeyHash, entityId, userId);
    let start = 0;
    for (;;) {
      const ids = await this.#redis.zrevrange(key, start, start + PAGE - 1);
      const records = await this.#records(key, ids);
      // Scores may lag their records (a touch whose index write failed): the records decide.
      const matching = records.filter((record) => record.entityId === entityId && record.userId === userId && record.ownerKeyHash === ownerKeyHash);
      if (matching.length > 0) return matching.reduce((newest, record) => (record.lastActiveAt > newest.lastActiveAt ? record : newest));
      if (ids.length < PAGE) return undefined;
      // Stale members of this page are gone from the index now: the next page starts after the live ones.
      start += records.length;
    }
  }

  async idleSince(before: number): Promise<SessionRecord[]> {
    const ids = await this.#redis.zrangebyscore(SESSIONS_BY_LAST_USE, "-inf", `(${before}`);
    const idle: SessionRecord[] = [];
    for (const record of await this.#records(SESSIONS_BY_LAST_USE, ids)) {
      if (record.lastActiveAt < before) idle.push(record);
      // The index was behind its record: bring it up to date.
      else await this.#redis.zadd(SESSIONS_BY_LAST_USE, record.lastActiveAt, record.id);
    }
    return idle;
  }

  async ping(): Promise<boolean> {
    try {
      return (await this.#redis.ping()) === "PONG";
    } catch {
      return false;
    }
  }

  /** The records of `ids` that still exist; members of `index` without a record are removed from it. */
  async #records(index: string, ids: string[]): Promise<SessionRecord[]> {
    const found: SessionRecord[] = [];
    for (let offset = 0; offset < ids.length; offset += BATCH) {
      const batch = ids.slice(offset, offset + BATCH);
      const records = await Promise.all(batch.map((id) => this.get(id)));
      const stale = batch.filter((_, position) => records[position] === undefined);
      if (stale.length > 0) await this.#redis.zrem(index, ...stale);
      for (const record of records) if (record) found.push(record);
    }
    return found;
  }

  async #index(id: string, lastActiveAt: number, ownerKeyHash: string, entityId: string | undefined, userId: string | undefined): Promise<void> {
    const cutoff = Date.now() - this.lifetimeMs;
    const writes = [this.#scripts.ciIndexAdd(SESSIONS_BY_LAST_USE, lastActiveAt, id, cutoff, this.lifetimeMs)];
    if (entityId !== undefined)
      writes.push(this.#scripts.ciIndexAdd(sessionEntityIndexKey(ownerKeyHash, entityId, userId), lastActiveAt, id, cutoff, this.lifetimeMs));
    await Promise.all(writes);
  }
}
