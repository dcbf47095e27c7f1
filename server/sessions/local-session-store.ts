import { readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { makePrivateDir } from "../private-dir.ts";
import type { ParkedStream, SessionRecord, SessionStore } from "./session-store.ts";

/** `touch` writes a record at most this often: activity is frequent, and an hour's TTL does not need millisecond precision. */
const TOUCH_WRITE_INTERVAL_MS = 60_000;

/**
 * The embedded session store: every record in memory, each also written as a
 * JSON file under `<root>/sessions/` so that sessions (and so their files)
 * survive a restart of the server. A parked stream is `<id>.parked` beside it.
 */
export class LocalSessionStore implements SessionStore {
  readonly #dir: string;
  readonly #records = new Map<string, SessionRecord>();
  readonly #writtenAt = new Map<string, number>();
  /** The write of each record in flight: writes of one record go one after the other, each with its latest content. */
  readonly #writing = new Map<string, Promise<void>>();

  private constructor(root: string) {
    this.#dir = join(root, "sessions");
  }

  static async open(root: string): Promise<LocalSessionStore> {
    const store = new LocalSessionStore(root);
    await makePrivateDir(store.#dir);
    const names = await readdir(store.#dir);
    for (const name of names) {
      if (!name.endsWith(".json")) continue;
      try {
        const record = JSON.parse(await readFile(join(store.#dir, name), "utf8")) as SessionRecord;
        if (typeof record.id === "string" && `${record.id}.json` === name) store.#records.set(record.id, record);
      } catch {
        // a record cut short by a crash: the session is lost, its files are swept with the orphans
      }
    }
    for (const name of names) {
      if (name.endsWith(PARKED) && !store.#records.has(name.slice(0, -PARKED.length))) await rm(join(store.#dir, name), { force: true });
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
    const stored = { ...record };
    this.#records.set(record.id, stored);
    await this.#write(stored);
  }

  async touch(id: string, at: number): Promise<void> {
    const record = this.#records.get(id);
    if (!record) return;
    record.lastActiveAt = at;
    if (at - (this.#writtenAt.get(id) ?? 0) >= TOUCH_WRITE_INTERVAL_MS) await this.#write(record);
  }

  async reserveSeq(id: string, upTo: number): Promise<void> {
    const record = this.#records.get(id);
    if (!record || (record.seqReserved ?? 0) >= upTo) return;
    record.seqReserved = upTo;
    await this.#write(record);
  }

  async parkStream(id: string, stream: ParkedStream): Promise<void> {
    if (!this.#records.has(id)) return;
    await writeAtomically(this.#parkedFile(id), JSON.stringify(stream));
  }

  async takeParkedStream(id: string): Promise<ParkedStream | undefined> {
    const file = this.#parkedFile(id);
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch {
      return undefined;
    }
    await rm(file, { force: true });
    try {
      return JSON.parse(text) as ParkedStream;
    } catch {
      return undefined; // cut short: the session goes on from seqReserved, with a gap
    }
  }

  async delete(id: string): Promise<void> {
    this.#records.delete(id);
    this.#writtenAt.delete(id);
    await this.#writing.get(id)?.catch(() => {});
    await rm(this.#file(id), { force: true });
    await rm(this.#parkedFile(id), { force: true });
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

  #parkedFile(id: string): string {
    return join(this.#dir, `${id}${PARKED}`);
  }

  async #write(record: SessionRecord): Promise<void> {
    this.#writtenAt.set(record.id, Date.now());
    const write = (this.#writing.get(record.id) ?? Promise.resolve())
      .catch(() => {}) // the previous write's caller got its error
      .then(() => {
        // Replaced (put) or deleted since: the newer state writes itself, or nothing should.
        if (this.#records.get(record.id) !== record) return;
        return writeAtomically(this.#file(record.id), JSON.stringify(record));
      });
    this.#writing.set(record.id, write);
    try {
      await write;
    } finally {
      if (this.#writing.get(record.id) === write) this.#writing.delete(record.id);
    }
  }
}

const PARKED = ".parked";

let tmpCount = 0;

/** Write then rename: a crash leaves the old file or the new one, never half of one; writes of one file at once never share a temp file. */
async function writeAtomically(file: string, text: string): Promise<void> {
  const tmp = `${file}.${++tmpCount}.tmp`;
  await writeFile(tmp, text, { mode: 0o600 });
  await rename(tmp, file);
}
