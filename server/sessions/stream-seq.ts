/**
 * A session stream's seq counter. The seqs it may hand out are reserved ahead
 * in the session record (seqReserved), a block at a time, so a replica that
 * revives the session after this one was killed starts past every seq sent,
 * without a write per frame.
 */

/** Seqs reserved at a time; the next block is asked for when half of this one is used. */
export const SEQ_RESERVE_BLOCK = 10_000;

const RETRY_AFTER_MS = 1_000;

export interface StreamSeqOptions {
  /** The last seq already sent (the stream goes on from start + 1). */
  start: number;
  /** Seqs up to this are reserved in the store already. */
  reserved: number;
  /** Raise the stored reservation; without it (tests) nothing is reserved. */
  reserve?: (upTo: number) => Promise<void>;
  onReserveFailed?: (error: unknown) => void;
}

export class StreamSeq {
  #seq: number;
  #reserved: number;
  #reserving = false;
  /** After a failed reservation (store away), the next try waits this long rather than come with every frame. */
  #retryAt = 0;
  readonly #options: StreamSeqOptions;

  constructor(options: StreamSeqOptions) {
    this.#options = options;
    this.#seq = options.start;
    this.#reserved = options.reserved;
  }

  /** The last seq handed out. */
  get current(): number {
    return this.#seq;
  }

  next(): number {
    const seq = ++this.#seq;
    if (this.#options.reserve && !this.#reserving && seq > this.#reserved - SEQ_RESERVE_BLOCK / 2 && Date.now() >= this.#retryAt) {
      this.#reserveMore(seq + SEQ_RESERVE_BLOCK);
    }
    return seq;
  }

  #reserveMore(upTo: number): void {
    this.#reserving = true;
    this.#options.reserve!(upTo)
      .then(
        () => {
          this.#reserved = Math.max(this.#reserved, upTo);
        },
        (error: unknown) => {
          this.#retryAt = Date.now() + RETRY_AFTER_MS;
          this.#options.onReserveFailed?.(error);
        },
      )
      .finally(() => {
        this.#reserving = false;
      });
  }
}
