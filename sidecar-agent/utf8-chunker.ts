import { isUtf8 } from "node:buffer";

/** One piece of output, ready for an `out` frame. */
export interface Utf8Segment {
  /** Text, or base64 when `encoding` is set. */
  data: string;
  /** Set when the bytes are not valid UTF-8. */
  encoding?: "base64";
  /** Raw byte count of this piece. */
  bytes: number;
}

/**
 * What the bytes at `i` are, by the well-formed sequences of Unicode Table 3-7:
 * n > 0: a complete, valid character of n bytes;
 * n < 0: an ill-formed sequence; -n bytes (its maximal valid prefix, at least 1) are invalid;
 * 0: a valid prefix that runs to the end of the buffer (the rest may come in the next chunk).
 */
function classify(b: Buffer, i: number): number {
  const c = b[i]!;
  if (c < 0x80) return 1;
  let need: number;
  let lo = 0x80;
  let hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf) need = 1;
  else if (c >= 0xe0 && c <= 0xef) {
    need = 2;
    if (c === 0xe0)
      lo = 0xa0; // overlong
    else if (c === 0xed) hi = 0x9f; // UTF-16 surrogates
  } else if (c >= 0xf0 && c <= 0xf4) {
    need = 3;
    if (c === 0xf0)
      lo = 0x90; // overlong
    else if (c === 0xf4) hi = 0x8f; // above U+10FFFF
  } else return -1; // continuation byte without a lead, C0/C1 (overlong), F5..FF
  for (let k = 1; k <= need; k++) {
    if (i + k >= b.length) return 0;
    const x = b[i + k]!;
    if (k === 1 ? x < lo || x > hi : x < 0x80 || x > 0xbf) return -k;
  }
  return need + 1;
}

/** Where a trailing incomplete (but so far valid) sequence starts, or b.length. */
function incompleteTailStart(b: Buffer): number {
  for (let j = b.length - 1; j >= 0 && j >= b.length - 3; j--) {
    if ((b[j]! & 0xc0) !== 0x80) return classify(b, j) === 0 ? j : b.length;
  }
  return b.length;
}

/**
 * Splits one output stream into frames without ever cutting a multi-byte
 * character in two: an incomplete sequence at the end of a chunk waits for the
 * next chunk. Valid UTF-8 comes out as text; invalid bytes come out as separate
 * base64 segments. Call `end()` when the stream ends to flush what is held.
 */
export class Utf8Chunker {
  #held: Buffer | null = null;

  /** Bytes held back, waiting for the rest of their character. */
  get heldBytes(): number {
    return this.#held?.length ?? 0;
  }

  push(chunk: Buffer): Utf8Segment[] {
    const buf = this.#held ? Buffer.concat([this.#held, chunk]) : chunk;
    this.#held = null;
    if (buf.length === 0) return [];
    const out: Utf8Segment[] = [];
    // Fast path: everything but a possibly incomplete tail is valid UTF-8.
    const cut = incompleteTailStart(buf);
    if (isUtf8(buf.subarray(0, cut))) {
      if (cut > 0) out.push({ data: buf.toString("utf8", 0, cut), bytes: cut });
      if (cut < buf.length) this.#held = Buffer.from(buf.subarray(cut));
      return out;
    }
    let i = 0;
    let runStart = 0;
    let runValid = true;
    const flush = (end: number) => {
      if (end > runStart) out.push(segment(buf, runStart, end, runValid));
      runStart = end;
    };
    while (i < buf.length) {
      const r = classify(buf, i);
      if (r === 0) {
        flush(i);
        this.#held = Buffer.from(buf.subarray(i));
        return out;
      }
      const valid = r > 0;
      if (valid !== runValid) {
        flush(i);
        runValid = valid;
      }
      i += valid ? r : -r;
    }
    flush(buf.length);
    return out;
  }

  /** The stream ended: what is still held can never complete; send it as invalid bytes. */
  end(): Utf8Segment[] {
    const held = this.#held;
    this.#held = null;
    return held && held.length > 0 ? [segment(held, 0, held.length, false)] : [];
  }
}

function segment(buf: Buffer, start: number, end: number, valid: boolean): Utf8Segment {
  return valid
    ? { data: buf.toString("utf8", start, end), bytes: end - start }
    : { data: buf.toString("base64", start, end), encoding: "base64", bytes: end - start };
}
