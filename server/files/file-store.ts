import type { Readable } from "node:stream";

/** What the server knows of one stored file. */
export interface StoredFile {
  /** base62, no `.` or `/` (the older LibreChat client splits names on them). */
  id: string;
  sessionId: string;
  /** Relative path under /mnt/data, sanitised ("report.csv", "out/chart.png"). */
  name: string;
  size: number;
  contentType: string;
  /** Hex MD5 of the content. */
  etag: string;
  /** ISO-8601. */
  lastModified: string;
  /** Mounted read-only in the sandbox; a run's change to it is not kept. */
  readOnly: boolean;
  /** Written by a run (as opposed to uploaded). */
  generated: boolean;
  /** Replaced by a newer version of the same path: kept for references, left out of listings. */
  superseded?: boolean;
  /** The server's own (saved Python state): never listed, downloaded or placed in a sandbox. */
  internal?: boolean;
  kind?: string;
  resourceId?: string;
  version?: string;
  entityId?: string;
  modifiedFrom?: { id: string; sessionId: string };
}

export type FileMetaChanges = Partial<Pick<StoredFile, "superseded" | "readOnly" | "kind" | "entityId" | "resourceId" | "version">>;

export type NewFile = Omit<StoredFile, "id" | "sessionId" | "size" | "etag" | "lastModified" | "contentType"> & { contentType?: string };

/** A body larger than the limit: nothing was stored. */
export class FileTooLargeError extends Error {
  constructor(readonly limitBytes: number) {
    super(`file exceeds ${limitBytes} bytes`);
  }
}

/** The store could not be reached or did not answer in time (S3 down): the call failed, and a write may or may not have landed. */
export class FileStoreUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "FileStoreUnavailableError";
  }
}

/**
 * Files by session. The embedded implementation is a local folder; S3 is the
 * production one. Bodies are streamed in and out, never held whole.
 */
export interface FileStore {
  /** Store a file from a stream; rejects with FileTooLargeError past `limitBytes` (and stores nothing). */
  put(sessionId: string, file: NewFile, body: AsyncIterable<Uint8Array> | Uint8Array, limitBytes: number): Promise<StoredFile>;
  get(sessionId: string, fileId: string): Promise<StoredFile | undefined>;
  /** Every file of the session, superseded ones included, oldest first. */
  list(sessionId: string): Promise<StoredFile[]>;
  open(sessionId: string, fileId: string): Promise<Readable | undefined>;
  read(sessionId: string, fileId: string): Promise<Buffer | undefined>;
  /** Update metadata that may change after a file is stored. */
  update(sessionId: string, fileId: string, changes: FileMetaChanges): Promise<void>;
  delete(sessionId: string, fileId: string): Promise<boolean>;
  deleteSession(sessionId: string): Promise<void>;
  /** Session ids that have files (for the orphan sweep; empty when the store opts out of it). */
  sessionIds(): Promise<string[]>;
  /** Reachable now (bounded in time, never throws). */
  ping(): Promise<boolean>;
  /** Release connections (optional: the local store holds none). */
  close?(): Promise<void>;
}
