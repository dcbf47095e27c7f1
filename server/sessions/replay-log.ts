/**
 * A bounded log of a session's serialized frames, by seq, so that a client that
 * reconnects can be sent what it missed. Frames are kept as the exact text that
 * was sent, so a replay is byte-identical to the original.
 */
export interface LoggedFrame {
  seq: number;
  text: string;
}

/** A log's content, as a parked stream keeps it. */
export interface ReplayLogSnapshot {
  droppedUpTo: number;
  frames: LoggedFrame[];
}

/** Bounded in frames and in bytes (UTF-16 length of the text, close enough to memory use); the newest frame always stays. */
export class ReplayLog {
  #frames: LoggedFrame[] = [];
  #start = 0;
  #bytes = 0;
  /** Highest seq that fell out of the log (0: nothing dropped yet). */
  #droppedUpTo = 0;

  constructor(
    readonly capacity: number,
    readonly maxBytes = Number.POSITIVE_INFINITY,
  ) {}

  append(seq: number, text: string): void {
    this.#frames.push({ seq, text });
    this.#bytes += text.length;
    while (this.size > 1 && (this.size > this.capacity || this.#bytes > this.maxBytes)) {
      const oldest = this.#frames[this.#start]!;
      this.#droppedUpTo = oldest.seq;
      this.#bytes -= oldest.text.length;
      this.#start++;
    }
    // Compact now and then instead of shifting on every append.
    if (this.#start > 1024 && this.#start * 2 > this.#frames.length) {
      this.#frames = this.#frames.slice(this.#start);
      this.#start = 0;
    }
  }

  /** Start again from a parked log: its frames (oldest first), with nothing known at or below `droppedUpTo` but them. */
  restore(frames: readonly LoggedFrame[], droppedUpTo: number): void {
    this.#frames = [];
    this.#start = 0;
    this.#bytes = 0;
    this.#droppedUpTo = droppedUpTo;
    for (const frame of frames) this.append(frame.seq, frame.text);
  }

  /** What the log holds, to be restored by the next owner of the stream. */
  snapshot(): ReplayLogSnapshot {
    return { droppedUpTo: this.#droppedUpTo, frames: this.#frames.slice(this.#start) };
  }

  get size(): number {
    return this.#frames.length - this.#start;
  }

  /**
   * Frames after `lastSeq`, oldest first. `complete` is false when some frame
   * after lastSeq already fell out, so the replay cannot start at lastSeq + 1.
   */
  since(lastSeq: number): { frames: LoggedFrame[]; complete: boolean } {
    const frames: LoggedFrame[] = [];
    for (let i = this.#start; i < this.#frames.length; i++) {
      const frame = this.#frames[i]!;
      if (frame.seq > lastSeq) frames.push(frame);
    }
    return { frames, complete: lastSeq >= this.#droppedUpTo };
  }
}
