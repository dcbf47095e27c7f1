/** Longest exec number a marker carries (Number.MAX_SAFE_INTEGER has 16 digits). */
const MAX_DIGITS = 16;
const NEWLINE = 0x0a;

/**
 * Splits one output pipe of the persistent interpreter into output bytes and
 * end-of-exec markers: the line NUL ESC <marker> ":" <n> LF that the driver
 * writes after exec n. The marker is random per interpreter, so output that
 * merely looks alike passes through as output. A marker cut across two chunks
 * is held back until its end arrives.
 */
export class MarkerSplitter {
  readonly #prefix: Buffer;
  #held: Buffer | null = null;

  constructor(marker: Buffer) {
    this.#prefix = Buffer.concat([Buffer.from([0x00, 0x1b]), marker, Buffer.from(":")]);
  }

  /** Output pieces (Buffer) and exec numbers of markers (number), in stream order. */
  push(chunk: Buffer): Array<Buffer | number> {
    const buf = this.#held ? Buffer.concat([this.#held, chunk]) : chunk;
    this.#held = null;
    const items: Array<Buffer | number> = [];
    let from = 0;
    for (;;) {
      const at = buf.indexOf(this.#prefix, from);
      if (at < 0) {
        const keep = this.#partialPrefixAtEnd(buf, from);
        if (buf.length - keep > from) items.push(buf.subarray(from, buf.length - keep));
        if (keep > 0) this.#held = Buffer.from(buf.subarray(buf.length - keep));
        return items;
      }
      if (at > from) items.push(buf.subarray(from, at));
      const digitsAt = at + this.#prefix.length;
      let end = digitsAt;
      while (end < buf.length && end - digitsAt <= MAX_DIGITS && buf[end]! >= 0x30 && buf[end]! <= 0x39) end++;
      if (end === buf.length && end - digitsAt <= MAX_DIGITS) {
        this.#held = Buffer.from(buf.subarray(at)); // the rest of the line comes with the next chunk
        return items;
      }
      if (buf[end] === NEWLINE && end > digitsAt && end - digitsAt <= MAX_DIGITS) {
        items.push(Number(buf.toString("latin1", digitsAt, end)));
        from = end + 1;
      } else {
        // Not a marker line after all: output. (The prefix has one NUL, at its start, so no marker begins inside it.)
        items.push(buf.subarray(at, digitsAt));
        from = digitsAt;
      }
    }
  }

  /** The pipe ended: what is held can never become a marker. */
  end(): Buffer | null {
    const held = this.#held;
    this.#held = null;
    return held;
  }

  /** Length of the longest tail of buf[from..] that is a proper prefix of the marker prefix. */
  #partialPrefixAtEnd(buf: Buffer, from: number): number {
    if (buf.indexOf(0x00, Math.max(from, buf.length - this.#prefix.length + 1)) < 0) return 0; // the usual case
    for (let k = Math.min(this.#prefix.length - 1, buf.length - from); k > 0; k--) {
      if (buf.subarray(buf.length - k).equals(this.#prefix.subarray(0, k))) return k;
    }
    return 0;
  }
}
