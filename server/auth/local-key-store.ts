import { open, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { makePrivateDir } from "../private-dir.ts";
import { applyPatch, cleanLimits, KEY_HASH, type KeyPatch, type KeyRecord, type KeyStore, type UsageDelta } from "./key-store.ts";

const FILE_NAME = "api-keys.json";
const FILE_VERSION = 1;
/** A lock older than this was left by a process that died while writing. */
const STALE_LOCK_MS = 10_000;
const LOCK_TIMEOUT_MS = 5_000;

interface KeyFile {
  version: number;
  keys: KeyRecord[];
}

/**
 * The embedded key store: one JSON file under FILE_STORAGE_PATH, shared by the
 * server and the `keys` CLI. Readers re-read it when it changed on disk (so a
 * key the CLI creates works without a restart); writers take a lock file, read
 * the newest version, change it and replace it whole (write then rename), so
 * the CLI and a server adding usage counts never lose each other's changes.
 */
export class LocalKeyStore implements KeyStore {
  readonly kind = "local";
  readonly #file: string;
  readonly #lockFile: string;
  #records = new Map<string, KeyRecord>();
  /** What the file looked like when it was last read: inode, size and mtime. */
  #stamp = "";
  /** Writes of this process, one at a time (the lock file orders them against other processes). */
  #writes: Promise<unknown> = Promise.resolve();

  private constructor(root: string) {
    this.#file = join(root, FILE_NAME);
    this.#lockFile = `${this.#file}.lock`;
  }

  static async open(root: string): Promise<LocalKeyStore> {
    await makePrivateDir(root);
    const store = new LocalKeyStore(root);
    await store.#refresh();
    return store;
  }

  get path(): string {
    return this.#file;
  }

  async get(keyHash: string): Promise<KeyRecord | undefined> {
    await this.#refresh();
    const record = this.#records.get(keyHash);
    return record ? structuredClone(record) : undefined;
  }

  async list(): Promise<KeyRecord[]> {
    await this.#refresh();
    return [...this.#records.values()].map((record) => structuredClone(record)).sort((a, b) => a.createdAt - b.createdAt);
  }

  async create(record: KeyRecord): Promise<void> {
    await this.#mutate((records) => {
      if (records.has(record.keyHash)) throw new Error("a key with this hash exists already");
      records.set(record.keyHash, structuredClone(record));
    });
  }

  async update(keyHash: string, patch: KeyPatch): Promise<KeyRecord | undefined> {
    return this.#mutate((records) => {
      const record = records.get(keyHash);
      if (!record) return undefined;
      const updated = applyPatch(record, patch);
      records.set(keyHash, updated);
      return structuredClone(updated);
    });
  }

  async delete(keyHash: string): Promise<boolean> {
    return this.#mutate((records) => records.delete(keyHash));
  }

  async addUsage(deltas: readonly UsageDelta[]): Promise<void> {
    if (deltas.length === 0) return;
    await this.#mutate((records) => {
      for (const delta of deltas) {
        const record = records.get(delta.keyHash);
        if (!record) continue;
        record.usage.requests += delta.requests;
        record.usage.lastUsedAt = Math.max(record.usage.lastUsedAt ?? 0, delta.lastUsedAt);
      }
    });
  }

  async ping(): Promise<boolean> {
    try {
      await this.#refresh();
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    await this.#writes.catch(() => {});
  }

  // ---- internals ----

  /** Re-read the file when it changed since the last read (a stat per call: cheap, and callers cache). */
  async #refresh(): Promise<void> {
    const stamp = await this.#currentStamp();
    if (stamp === this.#stamp) return;
    this.#records = await this.#read();
    this.#stamp = stamp;
  }

  async #currentStamp(): Promise<string> {
    try {
      const info = await stat(this.#file, { bigint: true });
      return `${info.ino}:${info.size}:${info.mtimeNs}`;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return "absent";
      throw error;
    }
  }

  async #read(): Promise<Map<string, KeyRecord>> {
    let text: string;
    try {
      text = await readFile(this.#file, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return new Map();
      throw error;
    }
    const data = JSON.parse(text) as Partial<KeyFile>;
    const records = new Map<string, KeyRecord>();
    for (const raw of Array.isArray(data.keys) ? data.keys : []) {
      const record = parseRecord(raw);
      if (record) records.set(record.keyHash, record);
    }
    return records;
  }

  /** Lock, read the newest file, apply `change`, write it back; the result of `change` is returned. */
  #mutate<T>(change: (records: Map<string, KeyRecord>) => T): Promise<T> {
    const run = async (): Promise<T> => {
      const release = await this.#lock();
      try {
        const records = await this.#read();
        const result = change(records);
        const body: KeyFile = { version: FILE_VERSION, keys: [...records.values()] };
        const tmp = `${this.#file}.${process.pid}.tmp`;
        await writeFile(tmp, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o600 });
        await rename(tmp, this.#file);
        this.#records = records;
        this.#stamp = await this.#currentStamp();
        return result;
      } finally {
        await release();
      }
    };
    const result = this.#writes.then(run, run);
    this.#writes = result.catch(() => {});
    return result;
  }

  async #lock(): Promise<() => Promise<void>> {
    const deadline = Date.now() + LOCK_TIMEOUT_MS;
    for (;;) {
      try {
        const handle = await open(this.#lockFile, "wx", 0o600);
        await handle.writeFile(String(process.pid));
        await handle.close();
        return () => rm(this.#lockFile, { force: true });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      }
      const age = await stat(this.#lockFile).then(
        (info) => Date.now() - info.mtimeMs,
        () => 0,
      );
      if (age > STALE_LOCK_MS) {
        await rm(this.#lockFile, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`could not lock ${this.#lockFile} within ${LOCK_TIMEOUT_MS} ms`);
      await new Promise((resolve) => setTimeout(resolve, 10 + Math.random() * 20));
    }
  }
}

/** A record read from the file, or undefined when it is not one (a hand-edited file must not crash the server). */
function parseRecord(raw: unknown): KeyRecord | undefined {
  if (typeof raw !== "object" || raw === null) return undefined;
  const value = raw as Record<string, unknown>;
  if (typeof value.keyHash !== "string" || !KEY_HASH.test(value.keyHash)) return undefined;
  const usage = (typeof value.usage === "object" && value.usage !== null ? value.usage : {}) as Record<string, unknown>;
  return {
    keyHash: value.keyHash,
    name: typeof value.name === "string" ? value.name : "",
    createdAt: typeof value.createdAt === "number" ? value.createdAt : 0,
    enabled: value.enabled !== false,
    rateLimits: cleanLimits(value.rateLimits),
    usage: {
      requests: typeof usage.requests === "number" ? usage.requests : 0,
      ...(typeof usage.lastUsedAt === "number" ? { lastUsedAt: usage.lastUsedAt } : {}),
    },
  };
}
