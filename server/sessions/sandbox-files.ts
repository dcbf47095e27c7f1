import type { AgentExit, FileRef } from "../../protocol/index.ts";
import type { FileStore, StoredFile } from "../files/file-store.ts";
import type { AgentClient } from "../sandbox/agent-client.ts";

export interface FileLimits {
  /** MAX_FILE_SIZE_MB in bytes: one file. */
  fileBytes: number;
  /** MAX_TOTAL_FILE_SIZE_MB in bytes: the session's current files together. */
  totalBytes: number;
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
 */
export class SandboxFiles {
  readonly #sessionId: string;
  readonly #store: FileStore;
  readonly #limits: FileLimits;
  /** What the current sandbox holds, by path. */
  readonly #held = new Map<string, HeldFile>();

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
    for (const path of exit.deleted ?? []) await this.#forget(path);

    const current = await this.current();
    let count = current.length;
    let total = current.reduce((sum, file) => sum + file.size, 0);
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
      if (!replaces && count + 1 > this.#limits.filesPerSession) {
        notes.push(`${change.path} was not kept: the session already has ${count} files (the limit)`);
        continue;
      }
      if (total - (replaces?.size ?? 0) + change.size > this.#limits.totalBytes) {
        notes.push(`${change.path} was not kept: the session's files would exceed ${this.#limits.totalBytes} bytes`);
        continue;
      }
      const data = await agent.getFile(change.path);
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
      if (replaces) {
        await this.#store.update(this.#sessionId, replaces.id, { superseded: true });
        total -= replaces.size;
      } else {
        count++;
      }
      total += stored.size;
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
   * the older one.
   */
  async storeDisplay(display: { mime: string; data: string; name?: string }, index: number): Promise<FileRef> {
    const extension = display.mime === "image/png" ? "png" : display.mime === "image/svg+xml" ? "svg" : "bin";
    const base = (display.name ?? `figure-${index + 1}`).replace(/[^\w.-]+/g, "_").slice(0, 100) || `figure-${index + 1}`;
    const name = base.endsWith(`.${extension}`) ? base : `${base}.${extension}`;
    const older = (await this.current()).find((file) => file.name === name);
    const stored = await this.#store.put(
      this.#sessionId,
      { name, readOnly: false, generated: true, contentType: display.mime },
      Buffer.from(display.data, "base64"),
      this.#limits.fileBytes,
    );
    if (older) await this.#store.update(this.#sessionId, older.id, { superseded: true });
    return fileRef(stored);
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
    if (held.sessionId === this.#sessionId && !held.readOnly) await this.#store.update(this.#sessionId, held.fileId, { superseded: true });
  }

  async #restore(agent: AgentClient, path: string, held: HeldFile): Promise<void> {
    const data = await this.#store.read(held.sessionId, held.fileId);
    if (data) await agent.putFile(path, data, true);
    else this.#held.delete(path);
  }
}
