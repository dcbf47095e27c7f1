import type { AgentExit, FileRef } from "../../protocol/index.ts";
import type { FileStore, StoredFile } from "../files/file-store.ts";
import type { AgentClient } from "../sandbox/agent-client.ts";

export interface FileLimits {
  /** MAX_FILE_SIZE_MB in bytes: one file. */
  fileBytes: number;
  /** MAX_TOTAL_FILE_SIZE_MB in bytes: everything the session keeps (current files, figures, older versions) together. */
  totalBytes: number;
  /** MAX_FILES_PER_SESSION: files the session keeps, older versions included. */
  filesPerSession: number;
  /** MAX_OUTPUT_FILES: files one run may hand back. */
  outputFiles: number;
}

interface HeldFile {
  fileId: string;
  sessionId: string;
  readOnly: boolean;
}

export interface CollectResult {
  refs: FileRef[];
  /** Lines for the caller's stderr: files that were not kept, and why. */
  notes: string[];
}

/** The public reference of a stored file (snake_case, as HTTP and `exit.files` carry it). */
export function fileRef(file: StoredFile): FileRef {
  return {
    id: file.id,
    name: file.name,
    path: `/mnt/data/${file.name}`,
    session_id: file.sessionId,
    storage_session_id: file.sessionId,
    size: file.size,
    ...(file.kind ? { kind: file.kind } : {}),
    ...(file.resourceId ? { resource_id: file.resourceId } : {}),
    ...(file.version !== undefined ? { version: file.version } : {}),
    ...(file.modifiedFrom ? { modified_from: { id: file.modifiedFrom.id, storage_session_id: file.modifiedFrom.sessionId } } : {}),
  };
}

/**
 * Keeps one session's sandbox (/mnt/data) and its stored files in step: before
 * a run, places the files the sandbox does not hold yet; after it, stores what
 * the run created or changed as new files (a changed file gets a new id that
 * names the one it came from) and forgets what the run deleted.
 *
 * Quota: MAX_TOTAL_FILE_SIZE_MB and MAX_FILES_PER_SESSION bound everything the
 * session keeps in the store, superseded versions included. A superseded
 * version stays downloadable by its id (references and LibreChat's links still
 * name it) while there is room; a new file or figure takes the room of the
 * oldest ones, which are deleted. Only what must stay counts against a new
 * file: the current files and what the current run handed back.
 */
export class SandboxFiles {
  readonly #sessionId: string;
  readonly #store: FileStore;
  readonly #limits: FileLimits;
  /** What the current sandbox holds, by path. */
  readonly #held = new Map<string, HeldFile>();
  /** Ids the current run hands back: its response names them, so they stay even once superseded. */
  readonly #pinned = new Set<string>();

  constructor(sessionId: string, store: FileStore, limits: FileLimits) {
    this.#sessionId = sessionId;
    this.#store = store;
    this.#limits = limits;
  }

  /** A new sandbox holds nothing yet. */
  reset(): void {
    this.#held.clear();
  }

  /** The session's current files (newest version of each path, superseded ones left out). */
  async current(): Promise<StoredFile[]> {
    return (await this.#store.list(this.#sessionId)).filter((file) => !file.superseded && !file.internal);
  }

  /**
   * Place the session's current files and `inputs` (files of other sessions the
   * caller may use) in the sandbox. Where two claim one path, the newer wins.
   */
  async prepare(agent: AgentClient, inputs: readonly StoredFile[] = []): Promise<void> {
    const wanted = new Map<string, StoredFile>();
    for (const file of [...(await this.current()), ...inputs]) {
      const other = wanted.get(file.name);
      if (!other || other.lastModified <= file.lastModified) wanted.set(file.name, file);
    }
    for (const [path, file] of wanted) {
      const held = this.#held.get(path);
      if (held && held.fileId === file.id && held.sessionId === file.sessionId) continue;
      const data = await this.#store.read(file.sessionId, file.id);
      if (!data) continue;
      await agent.putFile(path, data, file.readOnly);
      this.#held.set(path, { fileId: file.id, sessionId: file.sessionId, readOnly: file.readOnly });
    }
  }

  /** Store what the run changed; returns the references to hand back. */
  async collect(agent: AgentClient, exit: Pick<AgentExit, "files"> & { deleted?: string[] }): Promise<CollectResult> {
    const refs: FileRef[] = [];
    const notes: string[] = [];
    this.#pinned.clear();
    for (const path of exit.deleted ?? []) await this.#forget(path);

    const current = await this.current();
    let skipped = 0;
    for (const change of exit.files) {
      const held = this.#held.get(change.path);
      if (held?.readOnly) {
        await this.#restore(agent, change.path, held);
        notes.push(`${change.path} is read-only: the run's change to it was not kept`);
        continue;
      }
      const replaces = held && held.sessionId === this.#sessionId ? current.find((file) => file.id === held.fileId) : undefined;
      if (refs.length >= this.#limits.outputFiles) {
        skipped++;
        continue;
      }
      if (change.size > this.#limits.fileBytes) {
        notes.push(`${change.path} was not kept: ${change.size} bytes is over the ${this.#limits.fileBytes}-byte file limit`);
        continue;
      }
      const refused = await this.#admit(change.path, change.size, replaces);
      if (refused) {
        notes.push(refused);
        continue;
      }
      const data = await agent.getFile(change.path, change.size);
      const stored = await this.#store.put(
        this.#sessionId,
        {
          name: change.path,
          readOnly: false,
          generated: true,
          ...(held ? { modifiedFrom: { id: held.fileId, sessionId: held.sessionId } } : {}),
        },
        data,
        this.#limits.fileBytes,
      );
      this.#pinned.add(stored.id);
      if (replaces) await this.#supersede(replaces);
      this.#held.set(change.path, { fileId: stored.id, sessionId: this.#sessionId, readOnly: false });
      refs.push(fileRef(stored));
    }
    if (skipped > 0) notes.push(`${skipped} more changed file(s) were not kept: one run hands back at most ${this.#limits.outputFiles}`);
    return { refs, notes };
  }

  /** What the agent may send of a run's figures: as many as the output file cap, each no larger than a file may be. */
  get figureLimits(): { maxDisplays: number; maxDisplayBytes: number } {
    return { maxDisplays: this.#limits.outputFiles, maxDisplayBytes: this.#limits.fileBytes };
  }

  /** A line for the caller's stderr: `dropped` figures of the run were not sent. */
  figuresDroppedNote(dropped: number): string {
    const mb = Math.round((this.#limits.fileBytes / 1024 / 1024) * 10) / 10;
    return `${dropped} more figure(s) were not sent: one run shows at most ${this.#limits.outputFiles} (MAX_OUTPUT_FILES), each up to ${mb} MB`;
  }

  /**
   * A rich output of the run (a matplotlib figure shown) as a generated file
   * of the session, `<name>.png`; a newer figure of the same name supersedes
   * the older one. A figure that does not fit the session's quota is not
   * stored: undefined, and `notes` (the run's stderr lines) says so.
   */
  async storeDisplay(display: { mime: string; data: string; name?: string }, index: number, notes: string[] = []): Promise<FileRef | undefined> {
    const extension = display.mime === "image/png" ? "png" : display.mime === "image/svg+xml" ? "svg" : "bin";
    const base = (display.name ?? `figure-${index + 1}`).replace(/[^\w.-]+/g, "_").slice(0, 100) || `figure-${index + 1}`;
    const name = base.endsWith(`.${extension}`) ? base : `${base}.${extension}`;
    const older = (await this.current()).find((file) => file.name === name);
    const data = Buffer.from(display.data, "base64");
    const refused = await this.#admit(name, data.length, older);
    if (refused) {
      notes.push(refused);
      return undefined;
    }
    const stored = await this.#store.put(this.#sessionId, { name, readOnly: false, generated: true, contentType: display.mime }, data, this.#limits.fileBytes);
    this.#pinned.add(stored.id);
    if (older) await this.#supersede(older);
    return fileRef(stored);
  }

  /**
   * Whether a new file `name` of `size` bytes, superseding `replaces` (a current
   * file of the session) if given, fits the quota: a note when it does not.
   * When it does, makes room for it first by deleting the oldest superseded
   * versions the current run does not hand back.
   */
  async #admit(name: string, size: number, replaces: StoredFile | undefined): Promise<string | undefined> {
    const stored = await this.#stored();
    const staying = stored.filter((file) => this.#pinned.has(file.id) || (!file.superseded && file.id !== replaces?.id));
    if (staying.length + 1 > this.#limits.filesPerSession) {
      return `${name} was not kept: the session already has ${staying.length} files (the MAX_FILES_PER_SESSION limit)`;
    }
    if (staying.reduce((sum, file) => sum + file.size, 0) + size > this.#limits.totalBytes) {
      return `${name} was not kept: the session's files would exceed ${this.#limits.totalBytes} bytes (MAX_TOTAL_FILE_SIZE_MB)`;
    }
    await this.#makeRoom(stored, size, 1);
    return undefined;
  }

  /** `file` has a newer version (or was deleted by a run): mark it, and delete it at once when the session has no room left for it. */
  async #supersede(file: StoredFile): Promise<void> {
    await this.#store.update(this.#sessionId, file.id, { superseded: true });
    await this.#makeRoom(await this.#stored(), 0, 0);
  }

  /** Delete the oldest superseded versions not handed back by the current run until `stored` plus `bytes` in `files` more fits the quota. */
  async #makeRoom(stored: StoredFile[], bytes: number, files: number): Promise<void> {
    let total = stored.reduce((sum, file) => sum + file.size, 0) + bytes;
    let count = stored.length + files;
    for (const file of stored) {
      if (total <= this.#limits.totalBytes && count <= this.#limits.filesPerSession) return;
      if (!file.superseded || this.#pinned.has(file.id)) continue;
      if (await this.#store.delete(this.#sessionId, file.id)) {
        total -= file.size;
        count--;
      }
    }
  }

  /** Everything the session keeps in the store, superseded versions included, oldest first (the server's saved Python state aside). */
  async #stored(): Promise<StoredFile[]> {
    return (await this.#store.list(this.#sessionId)).filter((file) => !file.internal);
  }

  /** `file` was deleted from the store: delete it from the sandbox if it is what the sandbox holds at its path. */
  async remove(agent: AgentClient, file: StoredFile): Promise<void> {
    const held = this.#held.get(file.name);
    if (!held || held.fileId !== file.id || held.sessionId !== file.sessionId) return;
    this.#held.delete(file.name);
    await agent.deleteFile(file.name).catch(() => {});
  }

  /** The run deleted `path`: a file of this session stops being current; a read-only one comes back on the next run. */
  async #forget(path: string): Promise<void> {
    const held = this.#held.get(path);
    if (!held) return;
    this.#held.delete(path);
    if (held.sessionId !== this.#sessionId || held.readOnly) return;
    const file = await this.#store.get(this.#sessionId, held.fileId);
    if (file && !file.superseded) await this.#supersede(file);
  }

  async #restore(agent: AgentClient, path: string, held: HeldFile): Promise<void> {
    const data = await this.#store.read(held.sessionId, held.fileId);
    if (data) await agent.putFile(path, data, true);
    else this.#held.delete(path);
  }
}
