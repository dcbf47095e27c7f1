import { describe, expect, it } from "vitest";
import { Utf8Chunker, type Utf8Segment } from "../../../sidecar-agent/utf8-chunker.ts";

function bytesOf(segments: Utf8Segment[]): Buffer {
  return Buffer.concat(segments.map((s) => Buffer.from(s.data, s.encoding === "base64" ? "base64" : "utf8")));
}

/** Feed `chunks` through one chunker and return every segment, end included. */
function feed(chunks: Buffer[]): Utf8Segment[] {
  const chunker = new Utf8Chunker();
  const out: Utf8Segment[] = [];
  for (const chunk of chunks) out.push(...chunker.push(chunk));
  out.push(...chunker.end());
  return out;
}

function check(segments: Utf8Segment[]): void {
  for (const seg of segments) {
    expect(seg.bytes).toBeGreaterThan(0);
    const raw = Buffer.from(seg.data, seg.encoding === "base64" ? "base64" : "utf8");
    expect(raw.length).toBe(seg.bytes);
    if (!seg.encoding) {
      // text segments never carry a replacement character made from broken bytes
      expect(seg.data).not.toContain("\uFFFD");
    }
  }
}

const samples = [
  ["2-byte", "é"],
  ["3-byte", "€"],
  ["3-byte CJK", "中"],
  ["4-byte", "😀"],
  ["mixed", "a\u00e9\u20ac\u{1F600}z"],
] as const;

describe("Utf8Chunker", () => {
  for (const [label, text] of samples) {
    it(`never splits a ${label} character, at any split position`, () => {
      const input = Buffer.from(`x${text}y${text}`, "utf8");
      for (let cut = 0; cut <= input.length; cut++) {
        const segments = feed([input.subarray(0, cut), input.subarray(cut)]);
        check(segments);
        expect(segments.every((s) => !s.encoding)).toBe(true);
        expect(segments.map((s) => s.data).join("")).toBe(input.toString("utf8"));
      }
      for (let a = 0; a <= input.length; a++) {
        for (let b = a; b <= input.length; b++) {
          const segments = feed([input.subarray(0, a), input.subarray(a, b), input.subarray(b)]);
          expect(segments.every((s) => !s.encoding)).toBe(true);
          expect(segments.map((s) => s.data).join("")).toBe(input.toString("utf8"));
        }
      }
    });
  }

  it("handles a stream fed one byte at a time", () => {
    const text = "héllo €uro 😀 中文 end\n";
    const input = Buffer.from(text);
    const chunker = new Utf8Chunker();
    const out: Utf8Segment[] = [];
    for (let i = 0; i < input.length; i++) {
      const segs = chunker.push(input.subarray(i, i + 1));
      for (const s of segs) expect(s.encoding).toBeUndefined();
      out.push(...segs);
    }
    out.push(...chunker.end());
    expect(out.map((s) => s.data).join("")).toBe(text);
  });

  it("holds back an incomplete tail until the next chunk", () => {
    const chunker = new Utf8Chunker();
    const euro = Buffer.from("€");
    expect(chunker.push(Buffer.concat([Buffer.from("ab"), euro.subarray(0, 2)]))).toEqual([{ data: "ab", bytes: 2 }]);
    expect(chunker.heldBytes).toBe(2);
    expect(chunker.push(euro.subarray(2))).toEqual([{ data: "€", bytes: 3 }]);
    expect(chunker.heldBytes).toBe(0);
    expect(chunker.end()).toEqual([]);
  });

  it("flushes an incomplete sequence as base64 at the end", () => {
    const chunker = new Utf8Chunker();
    const partial = Buffer.from("😀").subarray(0, 3);
    expect(chunker.push(Buffer.concat([Buffer.from("x"), partial]))).toEqual([{ data: "x", bytes: 1 }]);
    expect(chunker.end()).toEqual([{ data: partial.toString("base64"), encoding: "base64", bytes: 3 }]);
  });

  it("sends invalid bytes as separate base64 segments", () => {
    const input = Buffer.from([0x61, 0xff, 0xfe, 0x62]);
    expect(feed([input])).toEqual([
      { data: "a", bytes: 1 },
      { data: Buffer.from([0xff, 0xfe]).toString("base64"), encoding: "base64", bytes: 2 },
      { data: "b", bytes: 1 },
    ]);
  });

  it("treats a lone continuation byte as invalid", () => {
    expect(feed([Buffer.from([0x80])])).toEqual([{ data: "gA==", encoding: "base64", bytes: 1 }]);
  });

  it("treats a lead byte followed by a non-continuation as invalid, keeping what follows", () => {
    // E2 82 is a valid prefix of €, then "A" breaks it
    const segs = feed([Buffer.from([0xe2, 0x82, 0x41])]);
    expect(segs).toEqual([
      { data: Buffer.from([0xe2, 0x82]).toString("base64"), encoding: "base64", bytes: 2 },
      { data: "A", bytes: 1 },
    ]);
  });

  it("rejects overlong encodings", () => {
    const overlongs = [
      [0xc0, 0xaf], // '/' in 2 bytes
      [0xc1, 0xbf],
      [0xe0, 0x80, 0xaf], // '/' in 3 bytes
      [0xe0, 0x9f, 0xbf],
      [0xf0, 0x80, 0x80, 0xaf], // '/' in 4 bytes
      [0xf0, 0x8f, 0xbf, 0xbf],
    ];
    for (const bytes of overlongs) {
      const input = Buffer.from([0x41, ...bytes, 0x42]);
      const segs = feed([input]);
      check(segs);
      expect(segs[0]).toEqual({ data: "A", bytes: 1 });
      expect(segs.at(-1)).toEqual({ data: "B", bytes: 1 });
      const middle = segs.slice(1, -1);
      expect(middle.every((s) => s.encoding === "base64")).toBe(true);
      expect(bytesOf(middle)).toEqual(Buffer.from(bytes));
    }
  });

  it("rejects UTF-16 surrogates encoded in UTF-8", () => {
    for (const bytes of [
      [0xed, 0xa0, 0x80], // U+D800
      [0xed, 0xbf, 0xbf], // U+DFFF
      [0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80], // a CESU-8 pair
    ]) {
      const segs = feed([Buffer.from(bytes)]);
      expect(segs.every((s) => s.encoding === "base64")).toBe(true);
      expect(bytesOf(segs)).toEqual(Buffer.from(bytes));
    }
    // U+D7FF and U+E000 on either side are fine
    expect(feed([Buffer.from("\uD7FF\uE000")])).toEqual([{ data: "\uD7FF\uE000", bytes: 6 }]);
  });

  it("rejects code points above U+10FFFF and bytes F5..FF", () => {
    for (const bytes of [[0xf4, 0x90, 0x80, 0x80], [0xf5, 0x80, 0x80, 0x80], [0xff]]) {
      const segs = feed([Buffer.from(bytes)]);
      expect(segs.every((s) => s.encoding === "base64")).toBe(true);
      expect(bytesOf(segs)).toEqual(Buffer.from(bytes));
    }
    expect(feed([Buffer.from("\u{10FFFF}")])).toEqual([{ data: "\u{10FFFF}", bytes: 4 }]);
  });

  it("does not hold back a tail that can never become valid", () => {
    const chunker = new Utf8Chunker();
    // E0 80 is already invalid (overlong), even though it is short
    const segs = chunker.push(Buffer.from([0x41, 0xe0, 0x80]));
    expect(chunker.heldBytes).toBe(0);
    expect(bytesOf(segs)).toEqual(Buffer.from([0x41, 0xe0, 0x80]));
  });

  it("keeps every byte, whatever the input and the split (random)", () => {
    let seed = 12345;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    const pieces = [
      Buffer.from("a"),
      Buffer.from("é"),
      Buffer.from("€"),
      Buffer.from("😀"),
      Buffer.from([0xff]),
      Buffer.from([0x80]),
      Buffer.from([0xe2, 0x82]),
    ];
    for (let round = 0; round < 300; round++) {
      const parts: Buffer[] = [];
      for (let i = 0; i < 30; i++) parts.push(pieces[Math.floor(rand() * pieces.length)]!);
      const input = Buffer.concat(parts);
      const chunks: Buffer[] = [];
      let at = 0;
      while (at < input.length) {
        const n = 1 + Math.floor(rand() * 7);
        chunks.push(input.subarray(at, at + n));
        at += n;
      }
      const segs = feed(chunks);
      check(segs);
      expect(bytesOf(segs)).toEqual(input);
      expect(segs.reduce((n, s) => n + s.bytes, 0)).toBe(input.length);
      // the text parts, decoded, match a whole-buffer decode of the valid parts
      const whole = feed([input]);
      expect(
        whole
          .filter((s) => !s.encoding)
          .map((s) => s.data)
          .join(""),
      ).toBe(
        segs
          .filter((s) => !s.encoding)
          .map((s) => s.data)
          .join(""),
      );
    }
  });

  it("handles large valid chunks on the fast path", () => {
    const text = "é".repeat(40_000);
    const input = Buffer.from(text);
    const segs = feed([input.subarray(0, 65_537), input.subarray(65_537)]);
    expect(segs.every((s) => !s.encoding)).toBe(true);
    expect(segs.map((s) => s.data).join("")).toBe(text);
  });

  it("ignores empty chunks", () => {
    const chunker = new Utf8Chunker();
    expect(chunker.push(Buffer.alloc(0))).toEqual([]);
    expect(chunker.end()).toEqual([]);
  });
});
