import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import type { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../server/config/load.ts";
import type { S3Config } from "../../server/config/types.ts";
import { type FileStore, FileStoreUnavailableError, FileTooLargeError, type NewFile } from "../../server/files/file-store.ts";
import { LocalFileStore } from "../../server/files/local-file-store.ts";
import { openFileStore } from "../../server/files/open-file-store.ts";
import { S3FileStore } from "../../server/files/s3-file-store.ts";
import { randomId } from "../../server/ids.ts";
import { type S3Server, startS3 } from "../helpers/s3-server.ts";

/**
 * One behaviour suite for every FileStore (the embedded folder and S3 on a real
 * S3-compatible server, s3rver, in its own process), then what only S3 has:
 * several replicas on one bucket, and S3 going away and coming back.
 */

const MIB = 1024 * 1024;
/** The smallest part S3 accepts: multi-MB bodies below become multipart uploads of several parts. */
const PART_BYTES = 5 * MIB;
/** Short, so that the fault cases stay fast; production default is 10 s. */
const TIMEOUT_MS = 1_000;
/** A fault case that hangs fails on its own, well before the suite's 60 s. */
const FAULT_TEST_MS = 15_000;

interface Backend {
  store: FileStore;
  /** What the backend still holds for a session on disk (file names, objects, unfinished uploads). */
  residue(sessionId: string): string[];
  /** A second store on the same data (another replica, or a reopened folder). */
  reopen(): Promise<FileStore>;
}

const meta = (name: string, extra: Partial<NewFile> = {}): NewFile => ({ name, readOnly: false, generated: false, ...extra });
const sid = () => randomId(21);
const md5 = (data: Buffer) => createHash("md5").update(data).digest("hex");

/** `total` random bytes in chunks of `chunk`, counting what the store pulled. */
function producer(total: number, chunk = 64 * 1024): { body: AsyncIterable<Uint8Array>; data: Buffer; pulled: () => number } {
  const data = randomBytes(total);
  let pulled = 0;
  async function* body() {
    for (let offset = 0; offset < total; offset += chunk) {
      const piece = data.subarray(offset, Math.min(offset + chunk, total));
      pulled += piece.length;
      yield piece;
    }
  }
  return { body: body(), data, pulled: () => pulled };
}

async function drain(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function walk(dir: string): string[] {
  try {
    return readdirSync(dir, { recursive: true, encoding: "utf8" });
  } catch {
    return [];
  }
}

function s3Settings(s3: S3Server, env: Record<string, string> = {}): S3Config {
  const { config, errors } = loadConfig({ env: { ...s3.env, S3_REQUEST_TIMEOUT: String(TIMEOUT_MS / 1000), ...env }, envFile: false });
  expect(errors).toEqual([]);
  expect(config.storage.backend).toBe("s3");
  return config.storage.s3;
}

async function timed<T>(promise: Promise<T>): Promise<{ ms: number; error: unknown; value?: T }> {
  const started = Date.now();
  try {
    const value = await promise;
    return { ms: Date.now() - started, error: undefined, value };
  } catch (error) {
    return { ms: Date.now() - started, error };
  }
}

let s3: S3Server;
let localRoot: string;
const stores: FileStore[] = [];

beforeAll(async () => {
  s3 = await startS3();
  localRoot = mkdtempSync(join(tmpdir(), "file-store-"));
});

afterAll(async () => {
  for (const store of stores) await store.close?.();
  await s3?.destroy();
  rmSync(localRoot, { recursive: true, force: true });
});

const backends: { name: string; open: () => Promise<Backend> }[] = [
  {
    name: "LocalFileStore",
    open: async () => {
      const store = await LocalFileStore.open(localRoot);
      return {
        store,
        residue: (sessionId) => walk(join(localRoot, "files", sessionId)),
        reopen: () => LocalFileStore.open(localRoot),
      };
    },
  },
  {
    name: "S3FileStore",
    open: async () => {
      const settings = s3Settings(s3);
      const open = async () => {
        const store = await S3FileStore.open(settings, { partBytes: PART_BYTES });
        stores.push(store);
        return store;
      };
      const bucketDir = join(s3.dataDir, s3.bucket);
      return {
        store: await open(),
        // The session's objects, and any upload s3rver still keeps (parts of an unfinished multipart upload).
        residue: (sessionId) =>
          walk(bucketDir).filter((path) => path.includes(sessionId) || /_S3rver_uploads./.test(relative(bucketDir, join(bucketDir, path)))),
        reopen: open,
      };
    },
  },
];

describe.each(backends)("$name", ({ open }) => {
  let backend: Backend;
  let store: FileStore;
  beforeAll(async () => {
    backend = await open();
    store = backend.store;
  });

  it("stores, gets, lists oldest first (superseded included), reads, updates and deletes, and a reopened store sees the same", async () => {
    const session = sid();
    const first = await store.put(session, meta("d/x.csv", { kind: "user", modifiedFrom: { id: "abc", sessionId: "other" } }), Buffer.from("a,b\n1,2\n"), 1024);
    expect(first).toMatchObject({
      sessionId: session,
      name: "d/x.csv",
      size: 8,
      contentType: "text/csv",
      etag: md5(Buffer.from("a,b\n1,2\n")),
      kind: "user",
      modifiedFrom: { id: "abc", sessionId: "other" },
    });
    expect(first.id).toMatch(/^[A-Za-z0-9]{21}$/);
    await new Promise((r) => setTimeout(r, 5));
    const second = await store.put(session, meta("chart.png", { generated: true, contentType: "image/x-custom" }), Buffer.alloc(0), 1024);
    expect(second).toMatchObject({ size: 0, contentType: "image/x-custom", generated: true });

    expect(await store.get(session, first.id)).toEqual(first);
    expect((await store.read(session, first.id))?.toString()).toBe("a,b\n1,2\n");
    expect((await store.read(session, second.id))?.length).toBe(0);
    expect((await store.list(session)).map((f) => f.id)).toEqual([first.id, second.id]);

    await store.update(session, first.id, { superseded: true, readOnly: true });
    const other = await backend.reopen();
    expect(await other.list(session)).toEqual([{ ...first, superseded: true, readOnly: true }, second]);
    expect(await store.list(session)).toEqual([{ ...first, superseded: true, readOnly: true }, second]);

    expect(await store.delete(session, first.id)).toBe(true);
    expect(await store.delete(session, first.id)).toBe(false);
    expect(await store.get(session, first.id)).toBeUndefined();
    expect(await store.open(session, first.id)).toBeUndefined();
    expect(await store.read(session, first.id)).toBeUndefined();
    await store.update(session, first.id, { superseded: false });
    expect(await store.get(session, first.id)).toBeUndefined();
    expect((await store.list(session)).map((f) => f.id)).toEqual([second.id]);
    expect(await store.get(sid(), second.id)).toBeUndefined();
  });

  it("streams multi-MB bodies in and out unchanged (stream and whole-buffer puts)", async () => {
    const session = sid();
    const streamed = producer(12 * MIB + 123);
    const file = await store.put(session, meta("big.bin"), streamed.body, 20 * MIB);
    expect(file.size).toBe(streamed.data.length);
    expect(file.etag).toBe(md5(streamed.data));
    const stream = await store.open(session, file.id);
    expect(stream).toBeDefined();
    let chunks = 0;
    const hash = createHash("md5");
    for await (const chunk of stream!) {
      chunks++;
      hash.update(chunk as Buffer);
    }
    expect(hash.digest("hex")).toBe(file.etag);
    expect(chunks).toBeGreaterThan(1);

    // Exactly two parts' worth: the last part must not come out empty.
    const exact = producer(2 * PART_BYTES);
    const exactFile = await store.put(session, meta("exact.bin"), exact.body, 20 * MIB);
    expect(md5((await store.read(session, exactFile.id))!)).toBe(md5(exact.data));

    const whole = randomBytes(11 * MIB);
    const wholeFile = await store.put(session, meta("whole.bin"), whole, 20 * MIB);
    expect(wholeFile.etag).toBe(md5(whole));
    expect((await store.read(session, wholeFile.id))!.equals(whole)).toBe(true);
  });

  it("refuses a body past the limit while it streams, stops reading it, and leaves nothing behind", async () => {
    const session = sid();
    // Past the limit within the first part (nothing sent yet)...
    const small = producer(2 * MIB);
    await expect(store.put(session, meta("a.bin"), small.body, MIB)).rejects.toBeInstanceOf(FileTooLargeError);
    expect(small.pulled()).toBeLessThan(2 * MIB);
    // ...after whole parts went out (a multipart upload to abort)...
    const large = producer(16 * MIB);
    await expect(store.put(session, meta("b.bin"), large.body, 11 * MIB)).rejects.toBeInstanceOf(FileTooLargeError);
    expect(large.pulled()).toBeLessThanOrEqual(11 * MIB + 64 * 1024);
    // ...and a whole buffer over it.
    await expect(store.put(session, meta("c.bin"), Buffer.alloc(1025), 1024)).rejects.toBeInstanceOf(FileTooLargeError);

    expect(await store.list(session)).toEqual([]);
    expect(backend.residue(session)).toEqual([]);
    // At the limit exactly is fine.
    const fits = await store.put(session, meta("d.bin"), Buffer.alloc(1024), 1024);
    expect(fits.size).toBe(1024);
  });

  it("rejects with the body's own error when the body fails mid-stream (a client gone), and leaves nothing behind", async () => {
    const session = sid();
    const gone = new Error("request aborted by the client");
    for (const before of [1000, 7 * MIB]) {
      const body = (async function* () {
        yield randomBytes(before);
        throw gone;
      })();
      await expect(store.put(session, meta("partial.bin"), body, 20 * MIB)).rejects.toBe(gone);
    }
    expect(await store.list(session)).toEqual([]);
    expect(backend.residue(session)).toEqual([]);
  });

  it("never reaches outside a session for ids from URLs", async () => {
    const session = sid();
    const victim = sid();
    const kept = await store.put(victim, meta("secret.txt"), Buffer.from("secret"), 100);
    const mine = await store.put(session, meta("mine.txt"), Buffer.from("mine"), 100);
    for (const bad of ["..", "../..", `../${victim}`, `${victim}/`, "a/b", "", "x.json", `${mine.id}.json`, "a\u0000b", "%2e%2e"]) {
      expect(await store.get(bad, kept.id)).toBeUndefined();
      expect(await store.get(session, bad)).toBeUndefined();
      expect(await store.list(bad)).toEqual([]);
      expect(await store.open(session, bad)).toBeUndefined();
      expect(await store.open(`${session}/../${victim}`, kept.id)).toBeUndefined();
      expect(await store.read(session, `../${victim}/${kept.id}`)).toBeUndefined();
      expect(await store.delete(session, bad)).toBe(false);
      expect(await store.delete(bad, kept.id)).toBe(false);
      await store.update(bad, kept.id, { superseded: true });
      await store.deleteSession(bad);
      await expect(store.put(bad, meta("x.txt"), Buffer.from("x"), 10)).rejects.toThrow(/invalid session id/);
    }
    await store.deleteSession(`${victim}/..`);
    expect(await store.get(victim, kept.id)).toEqual(kept);
    expect(await store.get(session, mine.id)).toEqual(mine);
    expect(await store.get(session, kept.id)).toBeUndefined();
  });

  it("keeps every one of many concurrent puts to one session", async () => {
    const session = sid();
    const bodies = Array.from({ length: 24 }, (_, i) => randomBytes(i % 6 === 0 ? 6 * MIB : 1000 + i));
    const stored = await Promise.all(
      bodies.map((body, i) =>
        store.put(
          session,
          meta(`f${i}.bin`),
          (async function* () {
            for (let o = 0; o < body.length; o += 256 * 1024) yield body.subarray(o, o + 256 * 1024);
          })(),
          10 * MIB,
        ),
      ),
    );
    expect(new Set(stored.map((f) => f.id)).size).toBe(bodies.length);
    const listed = await store.list(session);
    expect(listed.map((f) => f.name).sort()).toEqual(bodies.map((_, i) => `f${i}.bin`).sort());
    for (const [i, file] of stored.entries()) expect(md5((await store.read(session, file.id))!)).toBe(md5(bodies[i]!));
  });

  it("deletes a whole session and reports the sessions that have files", async () => {
    const a = sid();
    const b = sid();
    await store.put(a, meta("1.txt"), Buffer.from("1"), 10);
    await store.put(a, meta("2.txt"), producer(6 * MIB).body, 10 * MIB);
    await store.put(b, meta("3.txt"), Buffer.from("3"), 10);
    expect(await store.sessionIds()).toEqual(expect.arrayContaining([a, b]));
    await store.deleteSession(a);
    expect(await store.list(a)).toEqual([]);
    expect(backend.residue(a)).toEqual([]);
    expect(await store.sessionIds()).not.toContain(a);
    expect(await store.list(b)).toHaveLength(1);
    await store.deleteSession(a);
    expect(await store.ping()).toBe(true);
  });
});

describe("S3FileStore only", () => {
  it("creates its bucket when missing, and says which bucket and endpoint when S3 cannot be used", async () => {
    const fresh = await startS3({ createBucket: false });
    try {
      const store = await S3FileStore.open(s3Settings(fresh));
      stores.push(store);
      expect(await store.ping()).toBe(true);
      const file = await store.put(sid(), meta("x.txt"), Buffer.from("x"), 10);
      expect((await store.read(file.sessionId, file.id))?.toString()).toBe("x");
      // A second replica starting on the same, now existing, bucket.
      stores.push(await S3FileStore.open(s3Settings(fresh)));

      await fresh.stop();
      const down = await timed(S3FileStore.open(s3Settings(fresh)));
      expect(String(down.error)).toContain(`S3 bucket "${fresh.bucket}" at http://127.0.0.1:${fresh.port} cannot be used`);
      expect(down.ms).toBeLessThan(TIMEOUT_MS + 1_000);
      // (s3rver checks the access key but not v4 signatures: a wrong secret would pass there.)
      const badKeys = await timed(S3FileStore.open(s3Settings(s3, { S3_ACCESS_KEY: "nobody" })));
      expect(String(badKeys.error)).toMatch(/cannot be used: .*(InvalidAccessKeyId|AccessDenied|Forbidden|403)/i);
    } finally {
      await fresh.destroy();
    }
  });

  it("lets replicas on one bucket see each other's writes at once (the listing cache is checked against S3)", async () => {
    const settings = s3Settings(s3);
    const [one, two] = [await S3FileStore.open(settings), await S3FileStore.open(settings)];
    stores.push(one, two);
    const session = sid();
    const a = await one.put(session, meta("a.txt"), Buffer.from("a"), 10);
    expect(await two.list(session)).toEqual([a]);
    const b = await two.put(session, meta("b.txt"), Buffer.from("b"), 10);
    expect((await one.list(session)).map((f) => f.id)).toEqual([a.id, b.id]);
    await two.update(session, a.id, { superseded: true });
    expect((await one.list(session))[0]).toEqual({ ...a, superseded: true });
    await two.update(session, a.id, { kind: "k" });
    expect((await one.list(session))[0]).toEqual({ ...a, superseded: true, kind: "k" });
    await one.delete(session, b.id);
    expect((await two.list(session)).map((f) => f.id)).toEqual([a.id]);
    await two.deleteSession(session);
    expect(await one.list(session)).toEqual([]);
  });

  it("reports no session ids with ENABLE_ORPHAN_S3_CLEANUP=false, and openFileStore picks the backend from the configuration", async () => {
    const store = await S3FileStore.open(s3Settings(s3, { ENABLE_ORPHAN_S3_CLEANUP: "false" }));
    stores.push(store);
    await store.put(sid(), meta("x.txt"), Buffer.from("x"), 10);
    expect(await store.sessionIds()).toEqual([]);

    const viaS3 = await openFileStore(loadConfig({ env: s3.env, envFile: false }).config);
    stores.push(viaS3);
    expect(viaS3).toBeInstanceOf(S3FileStore);
    const viaLocal = await openFileStore(loadConfig({ env: { FILE_STORAGE_PATH: localRoot }, envFile: false }).config);
    expect(viaLocal).toBeInstanceOf(LocalFileStore);
  });

  describe("when S3 goes away", () => {
    let outage: S3Server;
    let store: FileStore;
    beforeAll(async () => {
      outage = await startS3();
      store = await S3FileStore.open(s3Settings(outage), { partBytes: PART_BYTES });
      stores.push(store);
    });
    afterAll(async () => {
      await outage?.destroy();
    });

    /** Every kind of call, each expected to fail with FileStoreUnavailableError within the timeout. */
    async function expectAllFailFast(session: string, fileId: string, budgetMs: number): Promise<void> {
      const calls: [string, () => Promise<unknown>][] = [
        ["put", () => store.put(session, meta("new.txt"), Buffer.from("new"), 10)],
        ["put (stream)", () => store.put(session, meta("new.bin"), producer(7 * MIB).body, 10 * MIB)],
        ["get", () => store.get(session, fileId)],
        ["list", () => store.list(session)],
        ["open", () => store.open(session, fileId)],
        ["read", () => store.read(session, fileId)],
        ["update", () => store.update(session, fileId, { superseded: true })],
        ["delete", () => store.delete(session, fileId)],
        ["deleteSession", () => store.deleteSession(session)],
        ["sessionIds", () => store.sessionIds()],
      ];
      const results = await Promise.all(calls.map(async ([name, call]) => ({ name, ...(await timed(call())) })));
      for (const result of results) {
        expect({ name: result.name, error: result.error instanceof FileStoreUnavailableError }).toEqual({ name: result.name, error: true });
        expect({ name: result.name, late: result.ms > budgetMs }).toEqual({ name: result.name, late: false });
      }
      const ping = await timed(store.ping());
      expect(ping.value).toBe(false);
      expect(ping.ms).toBeLessThan(budgetMs);
    }

    it(
      "fails every call fast while S3 is stopped, then works again with nothing acknowledged lost",
      async () => {
        const session = sid();
        const small = await store.put(session, meta("small.txt"), Buffer.from("kept"), 100);
        const big = producer(11 * MIB);
        const large = await store.put(session, meta("large.bin"), big.body, 20 * MIB);
        await store.update(session, small.id, { kind: "marked" });

        await outage.stop();
        await expectAllFailFast(session, small.id, TIMEOUT_MS);

        await outage.restart();
        expect(await store.ping()).toBe(true);
        expect(await store.list(session)).toEqual([{ ...small, kind: "marked" }, large]);
        expect((await store.read(session, small.id))?.toString()).toBe("kept");
        expect(md5((await store.read(session, large.id))!)).toBe(md5(big.data));
        const after = await store.put(session, meta("after.txt"), Buffer.from("after"), 100);
        expect((await store.read(session, after.id))?.toString()).toBe("after");
      },
      FAULT_TEST_MS,
    );

    it(
      "fails every call within the timeout while S3 hangs (no answer at all), then works again",
      async () => {
        const session = sid();
        const kept = await store.put(session, meta("kept.txt"), Buffer.from("kept"), 100);
        outage.pause();
        try {
          await expectAllFailFast(session, kept.id, TIMEOUT_MS + 1_000);
        } finally {
          outage.resume();
        }
        expect(await store.ping()).toBe(true);
        expect(await store.list(session)).toEqual([kept]);
        expect((await store.read(session, kept.id))?.toString()).toBe("kept");
      },
      FAULT_TEST_MS,
    );

    it(
      "errors a download that S3 stops sending, instead of hanging it",
      async () => {
        const session = sid();
        const body = producer(12 * MIB);
        const file = await store.put(session, meta("big.bin"), body.body, 20 * MIB);
        const stream = (await store.open(session, file.id))!;
        const first = await new Promise<Buffer>((resolve) => stream.once("data", resolve));
        stream.pause();
        expect(first.length).toBeGreaterThan(0);
        outage.pause();
        try {
          const result = await timed(drain(stream.resume()));
          expect(result.error).toBeInstanceOf(Error);
          expect(result.ms).toBeLessThan(TIMEOUT_MS + 1_500);
        } finally {
          outage.resume();
        }
        expect(md5((await store.read(session, file.id))!)).toBe(md5(body.data));
      },
      FAULT_TEST_MS,
    );
  });
});
