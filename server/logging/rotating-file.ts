/**
 * A size-rotated log file for pino: appends synchronously to `file`; when the
 * next line would take it past `maxBytes`, it becomes `file.1` (the older ones
 * shift to `file.2` ... `file.N`, the oldest beyond `backupCount` is deleted) and
 * a fresh `file` is started. With backupCount 0 the file is simply restarted.
 */
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { dirname } from "node:path";

export class RotatingFileStream {
  readonly file: string;
  readonly maxBytes: number;
  readonly backupCount: number;
  #fd: number;
  #size: number;

  constructor(file: string, maxBytes: number, backupCount: number) {
    this.file = file;
    this.maxBytes = Math.max(1, maxBytes);
    this.backupCount = Math.max(0, Math.floor(backupCount));
    mkdirSync(dirname(file), { recursive: true });
    this.#fd = openSync(file, "a");
    this.#size = fstatSync(this.#fd).size;
  }

  /** Bytes in the current file. */
  get size(): number {
    return this.#size;
  }

  write(chunk: string): boolean {
    const data = Buffer.from(chunk);
    if (this.#size > 0 && this.#size + data.length > this.maxBytes) this.rotate();
    let offset = 0;
    while (offset < data.length) offset += writeSync(this.#fd, data, offset);
    this.#size += data.length;
    return true;
  }

  /** Roll the current file now (it becomes file.1). */
  rotate(): void {
    closeSync(this.#fd);
    if (this.backupCount === 0) {
      unlinkSync(this.file);
    } else {
      // Drop the oldest (and any left by an earlier, larger backupCount), then shift the rest up.
      for (let n = this.backupCount; existsSync(`${this.file}.${n}`); n += 1) unlinkSync(`${this.file}.${n}`);
      for (let n = this.backupCount - 1; n >= 1; n -= 1) {
        if (existsSync(`${this.file}.${n}`)) renameSync(`${this.file}.${n}`, `${this.file}.${n + 1}`);
      }
      renameSync(this.file, `${this.file}.1`);
    }
    this.#fd = openSync(this.file, "a");
    this.#size = 0;
  }

  /** pino calls this on flushSync(); writes are synchronous, nothing is buffered. */
  flushSync(): void {}

  end(): void {
    closeSync(this.#fd);
    this.#fd = -1;
  }
}
