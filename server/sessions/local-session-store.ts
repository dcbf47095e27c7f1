import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { SessionRecord, SessionStore } from "./session-store.ts";

/** `touch` writes a record at most this often: activity is frequent, and an hour's TTL does not need millisecond precision. */
const TOUCH_WRITE_INTERVAL_MS = 60_000;

/**
 * The embedded session store: every record in memory, each also written as a
 * JSON file under `<root>/sessions/` so that sessions (and so their files)
 * survive a restart of the server.
 */
export class LocalSessionStore implements SessionStore {
  readonly #dir: string;
  readonly #records = new Map<string, SessionRecord>();
  readonly #writtenAt = new Map<string, number>();

  private constructor(root: string) {
    this.#dir = join(root, "sessions");
  }

  static async open(root: string): Promise<LocalSessionStore> {
    const store = new LocalSessionStore(root);
    await mkdir(store.#dir, { recursive: true, mode: 0o700 });
    for (const name of await readdir(store.#dir)) {
      if (!name.endsWith(".json")) continue;
      try {
        const record = JSON.parse(await readFile(join(store.#dir, name), "utf8")) as SessionRecord;
        if (typeof record.id === "string" && `${record.id}.json` === name) store.#records.set(record.id, record);
      } catch {
        // a record cut short by a crash: the session is lost, its files are swept with the orphans
      }
    }
    return store;
  }

  get size(): number {
    return this.#records.size;
  }

  async get(id: string): Promise<SessionRecord | undefined> {
    const record = this.#records.get(id);
    return record ? { ...record } : undefined;
  }

  async put(record: SessionRecord): Promise<void> {
    this.#records.set(record.id, { ...record });
    await this.#write(record);
  }

  async touch(id: string, at: number): Promise<void> {
    const record = this.#records.get(id);
    if (!record) return;
    record.lastActiveAt = at;
    if (at - (this.#writtenAt.get(id) ?? 0) >= TOUCH_WRITE_INTERVAL_MS) await this.#write(record);
  }

  async delete(id: string): Promise<void> {
    this.#records.delete(id);
    this.#writtenAt.delete(id);
    await rm(this.#file(id), { force: true });
  }

  async newestForEntity(entityId: string, userId: string | undefined, ownerKeyHash: string): Promise<SessionRecord | undefined> {
    let newest: SessionRecord | undefined;
    for (const record of this.#records.values()) {
      if (record.entityId !== entityId || record.userId !== userId || record.ownerKeyHash !== ownerKeyHash) continue;
      if (!newest || record.lastActiveAt > newest.lastActiveAt) newest = record;
    }
    return newest ? { ...newest } : undefined;
  }

  async idleSince(before: number): Promise<SessionRecord[]> {
    return [...this.#records.values()].filter((record) => record.lastActiveAt < before).map((record) => ({ ...record }));
  }

  async ping(): Promise<boolean> {
    return true;
  }

  #file(id: string): string {
    return join(this.#dir, `${id}.json`);
  }

  async #write(record: SessionRecord): Promise<void> {
    this.#writtenAt.set(record.id, Date.now());
    // Write then rename: a crash leaves the old record or the new one, never half of one.
    const tmp = `${this.#file(record.id)}.tmp`;
    await writeFile(tmp, JSON.stringify(record), { mode: 0o600 });
    await rename(tmp, this.#file(record.id));
  }
}
