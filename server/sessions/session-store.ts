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
  /**
   * Every seq the session's stream has sent, or will send before it reserves
   * more, is at most this: a replica that revives the session without a
   * parked stream (the last one was killed) goes on from here.
   */
  seqReserved?: number;
}

/**
 * A session's stream as a replica left it when it let the session go (a
 * shutdown, an idle session dropped from memory): the exact seq, and the
 * frames still in the replay log, so the next replica goes on with no gap.
 */
export interface ParkedStream {
  seq: number;
  /** Highest seq no longer in `frames` (ReplayLog's droppedUpTo). */
  droppedUpTo: number;
  frames: { seq: number; text: string }[];
}

export interface SessionStore {
  get(id: string): Promise<SessionRecord | undefined>;
  put(record: SessionRecord): Promise<void>;
  /** Mark the session used now (lazily persisted by implementations that write to disk). */
  touch(id: string, at: number): Promise<void>;
  /** Raise the record's seqReserved to `upTo` (never lowers it); nothing when the record is gone. */
  reserveSeq(id: string, upTo: number): Promise<void>;
  /** Keep the stream of a session this replica lets go, for whoever revives it next. */
  parkStream(id: string, stream: ParkedStream): Promise<void>;
  /** The parked stream of `id`, removed as it is read: it is valid for one revival only. */
  takeParkedStream(id: string): Promise<ParkedStream | undefined>;
  /** The record and its parked stream. */
  delete(id: string): Promise<void>;
  /** The most recently used session of this entity, user and owner. */
  newestForEntity(entityId: string, userId: string | undefined, ownerKeyHash: string): Promise<SessionRecord | undefined>;
  /** Sessions not used since `before` (epoch ms). */
  idleSince(before: number): Promise<SessionRecord[]>;
  /** Whether the store answers (for /ready). */
  ping(): Promise<boolean>;
}
