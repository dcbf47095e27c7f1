import type { AppConfig } from "../config/types.ts";
import type { FileStore } from "../files/file-store.ts";
import type { RedisClient } from "../redis/connection.ts";

/** A session's saved Python namespace: zlib-compressed cloudpickle, as the agent made it. */
export interface SavedState {
  data: Buffer;
  /** Names saved. */
  names: string[];
  /** Names that could not be pickled, with why: reported to the user on the next run. */
  skipped: { name: string; error: string }[];
  savedAt: number;
}

/** The name of the archived state among the session's (internal) files. */
const ARCHIVE_NAME = ".code-interpreter/python-state";

/**
 * Where saved Python state lives between sandboxes: in Redis while hot
 * (STATE_TTL_SECONDS, up to STATE_MAX_REDIS_SIZE_MB), else, and once archived
 * (STATE_ARCHIVE_AFTER_SECONDS), as an internal file of the session in the
 * file store (S3, or the local folder). Without Redis, always the file store.
 */
export class StateKeeper {
  readonly #config: AppConfig["state"];
  readonly #redis: RedisClient | undefined;
  readonly #files: FileStore;

  constructor(config: AppConfig["state"], files: FileStore, redis?: RedisClient) {
    this.#config = config;
    this.#files = files;
    this.#redis = redis;
  }

  get enabled(): boolean {
    return this.#config.enabled;
  }

  get maxBytes(): number {
    return this.#config.maxBytes;
  }

  async save(sessionId: string, state: SavedState): Promise<void> {
    const payload = encode(state);
    if (this.#redis && payload.length <= this.#config.maxRedisBytes) {
      await this.#redis.set(hotKey(sessionId), payload, "PX", this.#config.ttlMs);
      await this.#redis.zadd(HOT_INDEX, state.savedAt, sessionId);
      return;
    }
    await this.#archive(sessionId, payload);
  }

  async load(sessionId: string): Promise<SavedState | undefined> {
    if (this.#redis) {
      const hot = await this.#redis.getBuffer(hotKey(sessionId));
      if (hot) return decode(hot);
    }
    const archived = await this.#archived(sessionId);
    if (!archived) return undefined;
    const data = await this.#files.read(sessionId, archived.id);
    return data ? decode(data) : undefined;
  }

  async delete(sessionId: string): Promise<void> {
    if (this.#redis) {
      await this.#redis.del(hotKey(sessionId));
      await this.#redis.zrem(HOT_INDEX, sessionId);
    }
    const archived = await this.#archived(sessionId);
    if (archived) await this.#files.delete(sessionId, archived.id);
  }

  /** Move states unused for STATE_ARCHIVE_AFTER_SECONDS from Redis to the file store (one replica at a time: the caller's runOnce). */
  async archiveIdle(now = Date.now()): Promise<number> {
    if (!this.#redis || !this.#config.archiveEnabled) return 0;
    const idle = await this.#redis.zrangebyscore(HOT_INDEX, 0, now - this.#config.archiveAfterMs);
    let moved = 0;
    for (const sessionId of idle) {
      const payload = await this.#redis.getBuffer(hotKey(sessionId));
      if (payload) {
        await this.#archive(sessionId, payload);
        moved++;
      }
      await this.#redis.del(hotKey(sessionId));
      await this.#redis.zrem(HOT_INDEX, sessionId);
    }
    return moved;
  }

  async #archive(sessionId: string, payload: Buffer): Promise<void> {
    const previous = await this.#archived(sessionId);
    await this.#files.put(
      sessionId,
      { name: ARCHIVE_NAME, readOnly: true, generated: true, internal: true, contentType: "application/octet-stream" },
      payload,
      payload.length,
    );
    if (previous) await this.#files.delete(sessionId, previous.id);
  }

  async #archived(sessionId: string) {
    return (await this.#files.list(sessionId)).filter((file) => file.internal && file.name === ARCHIVE_NAME).at(-1);
  }
}

const HOT_INDEX = "python-state:by-save";

function hotKey(sessionId: string): string {
  return `python-state:{${sessionId}}`;
}

/** One buffer: a JSON header line (names, skipped, time), then the pickle. */
function encode(state: SavedState): Buffer {
  const header = Buffer.from(`${JSON.stringify({ names: state.names, skipped: state.skipped, savedAt: state.savedAt })}\n`);
  return Buffer.concat([header, state.data]);
}

function decode(payload: Buffer): SavedState {
  const newline = payload.indexOf(10);
  const header = JSON.parse(payload.subarray(0, newline).toString("utf8")) as Omit<SavedState, "data">;
  return { ...header, data: payload.subarray(newline + 1) };
}
