import type { FileInput } from "../../protocol/index.ts";
import { api, downloadFile, uploadFiles } from "./api.ts";

interface ListedFile {
  id: string;
  name: string;
  sessionId: string;
  size?: number;
}

interface FullListing {
  id: string;
  session_id: string;
  size?: number;
  metadata?: { "original-filename"?: string };
}

/**
 * The files panel: uploads (kept by the console and placed in /mnt/data on
 * every run through `exec.files`) and the session's own files (written by runs).
 */
export class FilesPanel {
  readonly #uploads = new Map<string, ListedFile>();
  #sessionFiles: ListedFile[] = [];

  constructor(
    private readonly list: HTMLUListElement,
    private readonly progress: HTMLProgressElement,
    private readonly key: () => string,
    private readonly sessionId: () => string | undefined,
    private readonly report: (message: string) => void,
  ) {}

  /** What the next exec should place in /mnt/data. */
  execFiles(): FileInput[] {
    return [...this.#uploads.values()].map((f) => ({ id: f.id, name: f.name, session_id: f.sessionId }));
  }

  async upload(files: FileList): Promise<void> {
    this.progress.hidden = false;
    this.progress.value = 0;
    try {
      const result = await uploadFiles(this.key(), files, (fraction) => {
        this.progress.value = fraction;
      });
      for (const f of result.files) this.#uploads.set(f.filename, { id: f.fileId, name: f.filename, sessionId: result.session_id });
      this.report(`uploaded ${result.files.map((f) => f.filename).join(", ")}: placed in /mnt/data on the next run`);
    } finally {
      this.progress.hidden = true;
    }
    this.render();
  }

  async refresh(): Promise<void> {
    const sessionId = this.sessionId();
    if (!sessionId) return;
    const listing = await api<FullListing[]>(this.key(), "GET", `/files/${encodeURIComponent(sessionId)}?detail=full`);
    this.#sessionFiles = listing.map((f) => ({
      id: f.id,
      name: f.metadata?.["original-filename"] ?? f.id,
      sessionId: f.session_id,
      ...(f.size !== undefined ? { size: f.size } : {}),
    }));
    this.render();
  }

  render(): void {
    const rows: ListedFile[] = [...this.#sessionFiles];
    for (const upload of this.#uploads.values()) if (!rows.some((r) => r.name === upload.name)) rows.push(upload);
    this.list.replaceChildren(
      ...rows.map((file) => {
        const item = document.createElement("li");
        const name = document.createElement("span");
        name.textContent = `${file.name}${file.size !== undefined ? ` (${file.size} B)` : ""}`;
        const get = document.createElement("button");
        get.type = "button";
        get.textContent = "Download";
        get.setAttribute("aria-label", `Download ${file.name}`);
        get.onclick = () => void downloadFile(this.key(), file.sessionId, file.id, file.name).catch((e: Error) => this.report(e.message));
        const del = document.createElement("button");
        del.type = "button";
        del.textContent = "Delete";
        del.setAttribute("aria-label", `Delete ${file.name}`);
        del.onclick = () => void this.#delete(file).catch((e: Error) => this.report(e.message));
        item.append(name, get, del);
        return item;
      }),
    );
  }

  async #delete(file: ListedFile): Promise<void> {
    await api(this.key(), "DELETE", `/files/${encodeURIComponent(file.sessionId)}/${encodeURIComponent(file.id)}`);
    if (this.#uploads.get(file.name)?.id === file.id) this.#uploads.delete(file.name);
    this.#sessionFiles = this.#sessionFiles.filter((f) => f.id !== file.id);
    this.render();
  }
}
