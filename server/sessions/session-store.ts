/**
 * Session records: who owns a session and when it was last used. The live
 * `Session` object (sandbox, stream, clients) is a cache over its record, so a
 * session whose sandbox is gone, or whose replica restarted, can be revived
 * from the record and its files.
 */
export interface SessionRecord {
  id: string;
  /** SHA-256 of the API key that opened it ("anonymous" with auth off). */
  ownerKeyHash: string;
  userId?: string;
  entityId?: string;
  /** Epoch milliseconds. */
  createdAt: number;
  lastActiveAt: number;
}

export interface SessionStore {
  get(id: string): Promise<SessionRecord | undefined>;
  put(record: SessionRecord): Promise<void>;
  /** Mark the session used now (lazily persisted by implementations that write to disk). */
  touch(id: string, at: number): Promise<void>;
  delete(id: string): Promise<void>;
  /** The most recently used session of this entity, user and owner. */
  newestForEntity(entityId: string, userId: string | undefined, ownerKeyHash: string): Promise<SessionRecord | undefined>;
  /** Sessions not used since `before` (epoch ms). */
  idleSince(before: number): Promise<SessionRecord[]>;
  /** Whether the store answers (for /ready). */
  ping(): Promise<boolean>;
}
