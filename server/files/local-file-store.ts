import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { randomId } from "../ids.ts";
import { makePrivateDir } from "../private-dir.ts";
import { FILE_ID_LENGTH, SAFE_ID } from "./file-ids.ts";
import { contentTypeFor } from "./file-names.ts";
import { type FileMetaChanges, type FileStore, FileTooLargeError, type NewFile, type StoredFile } from "./file-store.ts";

export { FILE_ID_LENGTH };

/**
 * The embedded file store: `<root>/files/<session id>/<file id>` holds the
 * bytes and `<file id>.json` the metadata. A session's metadata is read once
 * and then served from memory.
 */
export class LocalFileStore implements FileStore {
  readonly #dir: string;
  readonly #index = new Map<string, Map<string, StoredFile>>();

  private constructor(root: string) {
    this.#dir = join(root, "files");
  }

  static async open(root: string): Promise<LocalFileStore> {
    const store = new LocalFileStore(root);
    await makePrivateDir(store.#dir);
    return store;
  }

  async put(sessionId: string, file: NewFile, body: AsyncIterable<Uint8Array> | Uint8Array, limitBytes: number): Promise<StoredFile> {
    const dir = this.#sessionDir(sessionId);
    await makePrivateDir(dir);
    const id = randomId(FILE_ID_LENGTH);
    const dataPath = join(dir, id);
    const tmp = `${dataPath}.part`;
    const hash = createHash("md5");
    let size = 0;
    const handle = await open(tmp, "w", 0o600);
    try {
      const chunks = body instanceof Uint8Array ? [body] : body;
      for await (const chunk of chunks) {
        size += chunk.length;
        if (size > limitBytes) throw new FileTooLargeError(limitBytes);
        hash.update(chunk);
        await handle.write(chunk);
      }
      await handle.close();
    } catch (error) {
      await handle.close().catch(() => {});
      await rm(tmp, { force: true });
      throw error;
    }
    const stored: StoredFile = {
      ...file,
      id,
      sessionId,
      size,
      etag: hash.digest("hex"),
      lastModified: new Date().toISOString(),
      contentType: file.contentType ?? contentTypeFor(file.name),
    };
    await rename(tmp, dataPath);
    await this.#writeMeta(stored);
    (await this.#files(sessionId)).set(id, stored);
    return { ...stored };
  }

  async get(sessionId: string, fileId: string): Promise<StoredFile | undefined> {
    if (!SAFE_ID.test(sessionId) || !SAFE_ID.test(fileId)) return undefined;
    const file = (await this.#files(sessionId)).get(fileId);
    return file ? { ...file } : undefined;
  }

  async list(sessionId: string): Promise<StoredFile[]> {
    if (!SAFE_ID.test(sessionId)) return [];
    return [...(await this.#files(sessionId)).values()].map((file) => ({ ...file }));
  }

  async open(sessionId: string, fileId: string): Promise<Readable | undefined> {
    if (!(await this.get(sessionId, fileId))) return undefined;
    return createReadStream(join(this.#sessionDir(sessionId), fileId));
  }

  async read(sessionId: string, fileId: string): Promise<Buffer | undefined> {
    if (!(await this.get(sessionId, fileId))) return undefined;
    return readFile(join(this.#sessionDir(sessionId), fileId));
  }

  async update(sessionId: string, fileId: string, changes: FileMetaChanges): Promise<void> {
    const file = (await this.#files(sessionId)).get(fileId);
    if (!file) return;
    Object.assign(file, changes);
    await this.#writeMeta(file);
  }

  async delete(sessionId: string, fileId: string): Promise<boolean> {
    const files = await this.#files(sessionId);
    if (!SAFE_ID.test(fileId) || !files.has(fileId)) return false;
    files.delete(fileId);
    const base = join(this.#sessionDir(sessionId), fileId);
    await rm(`${base}.json`, { force: true });
    await rm(base, { force: true });
    return true;
  }

  async deleteSession(sessionId: string): Promise<void> {
    if (!SAFE_ID.test(sessionId)) return;
    this.#index.delete(sessionId);
    await rm(this.#sessionDir(sessionId), { recursive: true, force: true });
  }

  async sessionIds(): Promise<string[]> {
    return (await readdir(this.#dir)).filter((name) => SAFE_ID.test(name));
  }

  async ping(): Promise<boolean> {
    try {
      await readdir(this.#dir);
      return true;
    } catch {
      return false;
    }
  }

  #sessionDir(sessionId: string): string {
    if (!SAFE_ID.test(sessionId)) throw new Error(`invalid session id ${JSON.stringify(sessionId)}`);
    return join(this.#dir, sessionId);
  }

  async #files(sessionId: string): Promise<Map<string, StoredFile>> {
    let files = this.#index.get(sessionId);
    if (files) return files;
    files = new Map();
    let names: string[] = [];
    try {
      names = await readdir(this.#sessionDir(sessionId));
    } catch {
      // no folder: no files yet
    }
    const metas: StoredFile[] = [];
    for (const name of names) {
      if (!name.endsWith(".json")) continue;
      try {
        metas.push(JSON.parse(await readFile(join(this.#sessionDir(sessionId), name), "utf8")) as StoredFile);
      } catch {
        // metadata cut short by a crash: the file is unreachable and goes with its session
      }
    }
    metas.sort((a, b) => a.lastModified.localeCompare(b.lastModified));
    for (const meta of metas) files.set(meta.id, meta);
    // Another call may have filled the index while this one read the disk.
    const existing = this.#index.get(sessionId);
    if (existing) return existing;
    this.#index.set(sessionId, files);
    return files;
  }

  async #writeMeta(file: StoredFile): Promise<void> {
    const path = join(this.#sessionDir(file.sessionId), `${file.id}.json`);
    await writeFile(`${path}.tmp`, JSON.stringify(file), { mode: 0o600 });
    await rename(`${path}.tmp`, path);
  }
}
