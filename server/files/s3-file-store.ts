import type { Readable } from "node:stream";
import type { Client } from "minio";
import type { S3Config } from "../config/types.ts";
import { randomId } from "../ids.ts";
import { FILE_ID_LENGTH, isSafeId } from "./file-ids.ts";
import { contentTypeFor } from "./file-names.ts";
import { type FileMetaChanges, type FileStore, FileStoreUnavailableError, type NewFile, type StoredFile } from "./file-store.ts";
import { createS3Client, isNotFound, isUnreachable, type S3Connection, s3ErrorCode } from "./s3-client.ts";
import { DEFAULT_PART_BYTES, isBodyError, MIN_PART_BYTES, uploadBody } from "./s3-upload.ts";

/** The store's logger: a pino logger fits. */
export interface S3StoreLogger {
  warn(fields: Record<string, unknown>, message: string): void;
}

export type S3FileStoreSettings = Omit<S3Config, "enabled">;

export interface S3FileStoreOptions {
  /** Part size of multipart uploads (at least 5 MiB; default 8 MiB): what one upload holds in memory, twice. */
  partBytes?: number;
  /** Sessions whose parsed metadata is kept (default 256). */
  cachedSessions?: number;
  logger?: S3StoreLogger;
}

const ROOT = "sessions/";
/** Metadata objects fetched at once while listing a session. */
const FETCH_CONCURRENCY = 16;
/** Longest wait of `ping` (the request timeout may be longer). */
const PING_TIMEOUT_MS = 5_000;

interface CachedMeta {
  /** ETag, size and date of the metadata object as listed: any rewrite changes it. */
  version: string;
  file: StoredFile;
}

/**
 * Files in an S3 bucket: `sessions/<session id>/<file id>` holds the bytes and
 * `sessions/<session id>/<file id>.json` the metadata (the StoredFile as JSON).
 *
 * Why a metadata object and not object user-metadata: `update` (superseded,
 * read-only...) happens on every changed file and rewrites a few hundred bytes
 * instead of copying the whole object onto itself; names are any Unicode up to
 * MAX_FILENAME_LENGTH, which JSON carries as is while S3 headers are ASCII and
 * capped at 2 KiB; and every file has its own keys, so replicas writing one
 * session never overwrite each other (a per-session manifest would need
 * conditional writes). A file exists when its `.json` exists: the bytes are
 * written first and the metadata last, and deletes go the other way round.
 *
 * Listing is one LIST of the session's prefix plus a GET of each metadata
 * object that changed since this replica last read it: the parsed metadata is
 * cached against the ETag the listing reports, so the cache is checked by S3
 * itself on every call and other replicas' writes are always seen.
 *
 * Every request fails after S3_REQUEST_TIMEOUT of silence (S3 stopped or
 * unreachable) with FileStoreUnavailableError; nothing is queued or retried,
 * and the next call simply tries S3 again.
 */
export class S3FileStore implements FileStore {
  readonly #connection: S3Connection;
  readonly #client: Client;
  readonly #bucket: string;
  readonly #orphanCleanup: boolean;
  readonly #partBytes: number;
  readonly #cachedSessions: number;
  readonly #logger: S3StoreLogger | undefined;
  /** Session id -> file id -> parsed metadata, least recently listed first. */
  readonly #cache = new Map<string, Map<string, CachedMeta>>();
  /** Multi-object delete works (some S3-compatible servers answer NotImplemented). */
  #bulkDelete = true;

  private constructor(connection: S3Connection, settings: S3FileStoreSettings, options: S3FileStoreOptions) {
    this.#connection = connection;
    this.#client = connection.client;
    this.#bucket = settings.bucket;
    this.#orphanCleanup = settings.orphanCleanup;
    this.#partBytes = Math.max(options.partBytes ?? DEFAULT_PART_BYTES, MIN_PART_BYTES);
    this.#cachedSessions = options.cachedSessions ?? 256;
    this.#logger = options.logger;
  }

  /** Connect, and create the bucket when it is missing; rejects with a clear message when S3 cannot be used. */
  static async open(settings: S3FileStoreSettings, options: S3FileStoreOptions = {}): Promise<S3FileStore> {
    const connection = createS3Client(settings);
    const store = new S3FileStore(connection, settings, options);
    try {
      await store.#ensureBucket(settings.region);
    } catch (error) {
      connection.close();
      const where = `${settings.useSSL ? "https" : "http"}://${settings.endPoint}:${settings.port}`;
      throw new Error(`S3 bucket "${settings.bucket}" at ${where} cannot be used: ${describe(error)}`, { cause: error });
    }
    return store;
  }

  async put(sessionId: string, file: NewFile, body: AsyncIterable<Uint8Array> | Uint8Array, limitBytes: number): Promise<StoredFile> {
    if (!isSafeId(sessionId)) throw new Error(`invalid session id ${JSON.stringify(sessionId)}`);
    const id = randomId(FILE_ID_LENGTH);
    const key = dataKey(sessionId, id);
    const contentType = file.contentType ?? contentTypeFor(file.name);
    const { size, md5 } = await this.#call("put", () =>
      uploadBody(
        {
          client: this.#client,
          bucket: this.#bucket,
          key,
          contentType,
          partBytes: this.#partBytes,
          onAbortFailed: (error, uploadId) =>
            this.#logger?.warn({ err: describe(error), key, uploadId }, "S3 multipart upload not aborted: its parts stay until a lifecycle rule removes them"),
        },
        body,
        limitBytes,
      ),
    );
    const stored: StoredFile = { ...file, id, sessionId, size, etag: md5, lastModified: new Date().toISOString(), contentType };
    try {
      await this.#call("put", () => this.#writeMeta(stored));
    } catch (error) {
      // Without its metadata the object is unreachable: do not leave it behind.
      await this.#client.removeObject(this.#bucket, key).catch(() => {});
      throw error;
    }
    return { ...stored };
  }

  async get(sessionId: string, fileId: string): Promise<StoredFile | undefined> {
    if (!isSafeId(sessionId) || !isSafeId(fileId)) return undefined;
    const file = await this.#call("get", () => this.#readMeta(sessionId, fileId));
    return file ? { ...file } : undefined;
  }

  async list(sessionId: string): Promise<StoredFile[]> {
    if (!isSafeId(sessionId)) return [];
    return this.#call("list", async () => {
      const objects = await this.#listKeys(prefixOf(sessionId));
      const cached = this.#cache.get(sessionId) ?? new Map<string, CachedMeta>();
      const fresh = new Map<string, CachedMeta>();
      const toFetch: { fileId: string; version: string }[] = [];
      for (const object of objects) {
        const fileId = metaFileId(sessionId, object.name);
        if (!fileId) continue;
        const version = `${object.etag}/${object.size}/${object.lastModified.getTime()}`;
        const hit = cached.get(fileId);
        if (hit && hit.version === version) fresh.set(fileId, hit);
        else toFetch.push({ fileId, version });
      }
      await mapLimit(toFetch, FETCH_CONCURRENCY, async ({ fileId, version }) => {
        // Gone between the listing and this read (deleted by another replica): simply not listed.
        const file = await this.#readMeta(sessionId, fileId);
        if (file) fresh.set(fileId, { version, file });
      });
      this.#remember(sessionId, fresh);
      return [...fresh.values()].map(({ file }) => ({ ...file })).sort((a, b) => a.lastModified.localeCompare(b.lastModified) || a.id.localeCompare(b.id));
    });
  }

  async open(sessionId: string, fileId: string): Promise<Readable | undefined> {
    if (!(await this.get(sessionId, fileId))) return undefined;
    return this.#call("open", async () => {
      try {
        return await this.#client.getObject(this.#bucket, dataKey(sessionId, fileId));
      } catch (error) {
        // Metadata without bytes: a delete in progress elsewhere.
        if (isNotFound(error)) return undefined;
        throw error;
      }
    });
  }

  async read(sessionId: string, fileId: string): Promise<Buffer | undefined> {
    const stream = await this.open(sessionId, fileId);
    if (!stream) return undefined;
    return this.#call("read", async () => {
      const chunks: Buffer[] = [];
      for await (const chunk of stream) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks);
    });
  }

  async update(sessionId: string, fileId: string, changes: FileMetaChanges): Promise<void> {
    if (!isSafeId(sessionId) || !isSafeId(fileId)) return;
    await this.#call("update", async () => {
      const file = await this.#readMeta(sessionId, fileId);
      if (!file) return;
      await this.#writeMeta({ ...file, ...changes });
      this.#cache.get(sessionId)?.delete(fileId);
      // A delete that ran between our read and write would be undone by the write: undo ours instead.
      try {
        await this.#client.statObject(this.#bucket, dataKey(sessionId, fileId));
      } catch (error) {
        if (!isNotFound(error)) throw error;
        await this.#client.removeObject(this.#bucket, metaKey(sessionId, fileId));
      }
    });
  }

  async delete(sessionId: string, fileId: string): Promise<boolean> {
    if (!isSafeId(sessionId) || !isSafeId(fileId)) return false;
    return this.#call("delete", async () => {
      try {
        await this.#client.statObject(this.#bucket, metaKey(sessionId, fileId));
      } catch (error) {
        if (isNotFound(error)) return false;
        throw error;
      }
      this.#cache.get(sessionId)?.delete(fileId);
      // Metadata first: the file disappears at once, and a failure in between leaves bytes nobody can reach, not a listed file with no bytes.
      await this.#client.removeObject(this.#bucket, metaKey(sessionId, fileId));
      await this.#client.removeObject(this.#bucket, dataKey(sessionId, fileId));
      return true;
    });
  }

  async deleteSession(sessionId: string): Promise<void> {
    if (!isSafeId(sessionId)) return;
    this.#cache.delete(sessionId);
    await this.#call("deleteSession", async () => {
      const keys = (await this.#listKeys(prefixOf(sessionId))).map((object) => object.name);
      await this.#removeKeys(keys.filter((key) => key.endsWith(".json")));
      await this.#removeKeys(keys.filter((key) => !key.endsWith(".json")));
    });
  }

  /** Sessions with objects in the bucket; empty unless ENABLE_ORPHAN_S3_CLEANUP (then the sweep deletes those with no session record). */
  async sessionIds(): Promise<string[]> {
    if (!this.#orphanCleanup) return [];
    return this.#call("sessionIds", async () => {
      const ids: string[] = [];
      let token = "";
      do {
        const page = await this.#client.listObjectsV2Query(this.#bucket, ROOT, token, "/", 1000, "");
        for (const item of page.objects) {
          const id = item.prefix?.slice(ROOT.length, -1);
          if (id && isSafeId(id)) ids.push(id);
        }
        token = page.isTruncated ? page.nextContinuationToken : "";
      } while (token);
      return ids;
    });
  }

  async ping(): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), PING_TIMEOUT_MS);
    });
    try {
      return await Promise.race([this.#client.bucketExists(this.#bucket).catch(() => false), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    this.#connection.close();
  }

  async #ensureBucket(region: string): Promise<void> {
    if (await this.#client.bucketExists(this.#bucket)) return;
    try {
      await this.#client.makeBucket(this.#bucket, region);
    } catch (error) {
      // Another replica created it first.
      if (s3ErrorCode(error) === "BucketAlreadyOwnedByYou") return;
      if (s3ErrorCode(error) === "BucketAlreadyExists") throw new Error("the name belongs to a bucket of another account", { cause: error });
      throw error;
    }
  }

  async #readMeta(sessionId: string, fileId: string): Promise<StoredFile | undefined> {
    let text: string;
    try {
      const stream = await this.#client.getObject(this.#bucket, metaKey(sessionId, fileId));
      const chunks: Buffer[] = [];
      for await (const chunk of stream) chunks.push(chunk as Buffer);
      text = Buffer.concat(chunks).toString("utf8");
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
    try {
      const file = JSON.parse(text) as StoredFile;
      // Only metadata that names itself: a stray or hand-made object is not a file.
      return file && file.id === fileId && file.sessionId === sessionId ? file : undefined;
    } catch {
      return undefined;
    }
  }

  async #writeMeta(file: StoredFile): Promise<void> {
    const body = Buffer.from(JSON.stringify(file));
    await this.#client.putObject(this.#bucket, metaKey(file.sessionId, file.id), body, body.length, { "Content-Type": "application/json" });
  }

  async #listKeys(prefix: string): Promise<{ name: string; etag: string; size: number; lastModified: Date }[]> {
    const out: { name: string; etag: string; size: number; lastModified: Date }[] = [];
    let token = "";
    do {
      const page = await this.#client.listObjectsV2Query(this.#bucket, prefix, token, "", 1000, "");
      for (const item of page.objects) {
        if (item.name !== undefined) out.push({ name: item.name, etag: item.etag, size: item.size, lastModified: item.lastModified });
      }
      token = page.isTruncated ? page.nextContinuationToken : "";
    } while (token);
    return out;
  }

  async #removeKeys(keys: string[]): Promise<void> {
    if (keys.length === 0) return;
    if (this.#bulkDelete) {
      try {
        const failed = (await this.#client.removeObjects(this.#bucket, keys)) as unknown as { Key?: string; Code?: string; Message?: string }[];
        if (failed.length > 0)
          throw new Error(`S3 did not delete ${failed.length} object(s), e.g. ${failed[0]?.Key}: ${failed[0]?.Code} ${failed[0]?.Message ?? ""}`);
        return;
      } catch (error) {
        const code = s3ErrorCode(error);
        if (code !== "NotImplemented" && code !== "MethodNotAllowed") throw error;
        this.#bulkDelete = false;
      }
    }
    await mapLimit(keys, FETCH_CONCURRENCY, (key) => this.#client.removeObject(this.#bucket, key));
  }

  #remember(sessionId: string, files: Map<string, CachedMeta>): void {
    this.#cache.delete(sessionId);
    this.#cache.set(sessionId, files);
    for (const oldest of this.#cache.keys()) {
      if (this.#cache.size <= this.#cachedSessions) break;
      this.#cache.delete(oldest);
    }
  }

  /** Run one store call: S3 being unreachable becomes FileStoreUnavailableError; any other error passes as is. */
  async #call<T>(what: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      if (!isBodyError(error) && isUnreachable(error)) throw new FileStoreUnavailableError(`S3 ${what} failed: ${describe(error)}`, { cause: error });
      throw error;
    }
  }
}

function prefixOf(sessionId: string): string {
  return `${ROOT}${sessionId}/`;
}

function dataKey(sessionId: string, fileId: string): string {
  return `${prefixOf(sessionId)}${fileId}`;
}

function metaKey(sessionId: string, fileId: string): string {
  return `${dataKey(sessionId, fileId)}.json`;
}

/** The file id of a metadata key of this session, or undefined for bytes and anything else. */
function metaFileId(sessionId: string, key: string): string | undefined {
  const prefix = prefixOf(sessionId);
  if (!key.startsWith(prefix) || !key.endsWith(".json")) return undefined;
  const id = key.slice(prefix.length, -".json".length);
  return isSafeId(id) ? id : undefined;
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = s3ErrorCode(error);
  return code && !error.message.includes(code) ? `${code}: ${error.message}` : error.message;
}

async function mapLimit<T>(items: readonly T[], limit: number, run: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await run(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
