import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../../server/config/load.ts";
import { InProcessEventBus } from "../../../server/events/event-bus.ts";
import { contentDisposition, contentTypeFor, sanitizeFileName } from "../../../server/files/file-names.ts";
import { FileTooLargeError } from "../../../server/files/file-store.ts";
import { LocalFileStore } from "../../../server/files/local-file-store.ts";
import type { SandboxProvider } from "../../../server/sandbox/provider.ts";
import { LocalSessionStore } from "../../../server/sessions/local-session-store.ts";
import { SessionManager } from "../../../server/sessions/session-manager.ts";

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "stores-"));
});
afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

const principal = { keyHash: "k1", isMaster: false };
const other = { keyHash: "k2", isMaster: false };

describe("file names", () => {
  it("keeps nested relative paths, makes absolute ones relative, and refuses traversal, NUL and long names", () => {
    expect(sanitizeFileName("data/sales.csv", 255)).toEqual({ ok: true, name: "data/sales.csv" });
    expect(sanitizeFileName("/etc/passwd", 255)).toEqual({ ok: true, name: "etc/passwd" });
    expect(sanitizeFileName("a\\b\\c.txt", 255)).toEqual({ ok: true, name: "a/b/c.txt" });
    expect(sanitizeFileName("./x//y.txt", 255)).toEqual({ ok: true, name: "x/y.txt" });
    expect(sanitizeFileName("../../etc/passwd", 255).ok).toBe(false);
    expect(sanitizeFileName("a/../b", 255).ok).toBe(false);
    expect(sanitizeFileName("a\u0000b", 255).ok).toBe(false);
    expect(sanitizeFileName("/", 255).ok).toBe(false);
    expect(sanitizeFileName("x".repeat(256), 255).ok).toBe(false);
  });

  it("guesses content types and writes an RFC 6266 disposition", () => {
    expect(contentTypeFor("out/chart.PNG")).toBe("image/png");
    expect(contentTypeFor("noext")).toBe("application/octet-stream");
    expect(contentDisposition('dir/résumé "v1".pdf')).toBe("attachment; filename=\"r_sum_ _v1_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22v1%22.pdf");
  });
});

describe("LocalFileStore", () => {
  it("stores a stream, lists, reads, updates and deletes, and reloads what it wrote from disk", async () => {
    const store = await LocalFileStore.open(root);
    const body = Readable.from([Buffer.from("a,b\n"), Buffer.from("1,2\n")]);
    const file = await store.put("S1", { name: "d/x.csv", readOnly: false, generated: false }, body, 1024);
    expect(file).toMatchObject({
      sessionId: "S1",
      name: "d/x.csv",
      size: 8,
      contentType: "text/csv",
      etag: createHash("md5").update("a,b\n1,2\n").digest("hex"),
    });
    expect(file.id).toMatch(/^[A-Za-z0-9]{21}$/);
    expect((await store.read("S1", file.id))?.toString()).toBe("a,b\n1,2\n");
    await store.update("S1", file.id, { superseded: true, kind: "user" });
    const reopened = await LocalFileStore.open(root);
    expect(await reopened.list("S1")).toEqual([{ ...file, superseded: true, kind: "user" }]);
    expect(await reopened.delete("S1", file.id)).toBe(true);
    expect(await reopened.delete("S1", file.id)).toBe(false);
    expect(await reopened.list("S1")).toEqual([]);
  });

  it("refuses a body past the limit and leaves nothing behind", async () => {
    const store = await LocalFileStore.open(root);
    await expect(store.put("S1", { name: "big.bin", readOnly: false, generated: false }, Buffer.alloc(2048), 1024)).rejects.toBeInstanceOf(FileTooLargeError);
    expect(await store.list("S1")).toEqual([]);
    expect(readdirSync(join(root, "files", "S1"))).toEqual([]);
  });

  it("never touches paths outside its folder for ids from URLs", async () => {
    const store = await LocalFileStore.open(root);
    expect(await store.get("..", "x")).toBeUndefined();
    expect(await store.list("../../etc")).toEqual([]);
    expect(await store.open("S1", "../../etc/passwd")).toBeUndefined();
  });
});

describe("LocalSessionStore", () => {
  it("persists records, finds the newest of an entity for the same user and owner", async () => {
    const store = await LocalSessionStore.open(root);
    await store.put({ id: "a", ownerKeyHash: "k1", entityId: "e", userId: "u", createdAt: 1, lastActiveAt: 10 });
    await store.put({ id: "b", ownerKeyHash: "k1", entityId: "e", userId: "u", createdAt: 2, lastActiveAt: 20 });
    await store.put({ id: "c", ownerKeyHash: "k1", entityId: "e", userId: "other", createdAt: 3, lastActiveAt: 30 });
    await store.put({ id: "d", ownerKeyHash: "k2", entityId: "e", userId: "u", createdAt: 4, lastActiveAt: 40 });
    const reopened = await LocalSessionStore.open(root);
    expect((await reopened.newestForEntity("e", "u", "k1"))?.id).toBe("b");
    expect((await reopened.idleSince(25)).map((r) => r.id).sort()).toEqual(["a", "b"]);
    await reopened.delete("b");
    expect((await (await LocalSessionStore.open(root)).newestForEntity("e", "u", "k1"))?.id).toBe("a");
  });
});

describe("SessionManager rules", () => {
  const provider = {
    kind: "local",
    create: () => Promise.reject(new Error("no sandboxes in this test")),
  } as unknown as SandboxProvider;

  async function manager(env: Record<string, string> = {}) {
    const { config } = loadConfig({ env: { FILE_STORAGE_PATH: root, ...env }, envFile: false });
    const store = await LocalSessionStore.open(root);
    const files = await LocalFileStore.open(root);
    const sessions = new SessionManager({
      config,
      provider,
      events: new InProcessEventBus(),
      logger: pino({ level: "silent" }),
      availableLanguages: () => ["py"],
      store,
      files,
    });
    return { sessions, store, files, config };
  }

  it("chooses a live session_id, else a referenced file's session of the same user, else the newest of the entity, else a new one", async () => {
    const { sessions, files } = await manager();
    const mine = { principal, userId: "u1" };
    const a = await sessions.create(mine, { entityId: "agent1" });
    expect((await sessions.choose({ sessionId: a.id, inputs: [] }, mine)).id).toBe(a.id);
    // Another key never sees it: a new session instead.
    expect((await sessions.choose({ sessionId: a.id, inputs: [] }, { principal: other })).id).not.toBe(a.id);

    const upload = await sessions.create(mine);
    const file = await files.put(upload.id, { name: "x.txt", readOnly: false, generated: false }, Buffer.from("x"), 10);
    expect((await sessions.choose({ inputs: [file] }, mine)).id).toBe(upload.id);
    // A file of another user's session: not chosen (and not resolvable as an input).
    const theirs = await sessions.create({ principal, userId: "u2" });
    const theirFile = await files.put(theirs.id, { name: "t.txt", readOnly: false, generated: false }, Buffer.from("t"), 10);
    expect((await sessions.choose({ inputs: [theirFile] }, mine)).id).not.toBe(theirs.id);
    expect(await sessions.resolveInputs([{ id: theirFile.id, name: "t.txt", session_id: theirs.id }], mine)).toMatchObject({ ok: false, index: 0 });
    expect(await sessions.resolveInputs([{ id: file.id, name: "x.txt", storage_session_id: upload.id }], mine)).toMatchObject({ ok: true });
    expect(await sessions.resolveInputs([{ id: "nope", name: "x.txt", session_id: upload.id }], mine)).toMatchObject({ ok: false });

    expect((await sessions.choose({ entityId: "agent1", inputs: [] }, mine)).id).toBe(a.id);
    expect((await sessions.choose({ entityId: "agent1", inputs: [] }, { principal, userId: "u9" })).id).not.toBe(a.id);
  });

  it("sweeps sessions idle past SESSION_TTL_HOURS with their files, and file folders with no session", async () => {
    const { sessions, store, files, config } = await manager({ SESSION_TTL_HOURS: "1" });
    const old = await sessions.create({ principal });
    const fresh = await sessions.create({ principal });
    await files.put(old.id, { name: "o.txt", readOnly: false, generated: false }, Buffer.from("o"), 10);
    await files.put(fresh.id, { name: "f.txt", readOnly: false, generated: false }, Buffer.from("f"), 10);
    await files.put("orphan", { name: "z.txt", readOnly: false, generated: false }, Buffer.from("z"), 10);
    const record = (await store.get(old.id))!;
    await store.put({ ...record, lastActiveAt: Date.now() - config.sessions.ttlMs - 1000 });
    expect(await sessions.sweepExpiredSessions()).toBe(1);
    expect(await store.get(old.id)).toBeUndefined();
    expect(await files.list(old.id)).toEqual([]);
    expect(await files.list(fresh.id)).toHaveLength(1);
    expect((await files.sessionIds()).sort()).toEqual([fresh.id]);
    expect(await sessions.record(old.id, principal)).toBeUndefined();
    await sessions.shutdown();
  });

  /** A client that keeps every frame it is sent. */
  const recorder = () => {
    const frames: Array<{ type: string; seq: number; id?: string; gap?: boolean }> = [];
    return { frames, send: (text: string) => frames.push(JSON.parse(text)) > 0 };
  };

  it("keeps a session's stream when it drops the idle object and revives it: same seqs on, what was missed replayed", async () => {
    const { sessions } = await manager();
    const session = await sessions.create({ principal });
    const first = recorder();
    session.attach(first);
    session.error("busy", "frame one", "a");
    const seen = first.frames.at(-1)!.seq;
    session.error("busy", "frame two", "b");
    session.detach(first);
    await sessions.sweepIdleSandboxes();
    expect(sessions.size).toBe(0);
    const revived = await sessions.get(session.id, principal);
    expect(revived).not.toBe(session);
    const second = recorder();
    await revived!.attach(second, seen);
    expect(second.frames.map((f) => [f.type, f.id, f.seq])).toEqual([
      ["error", "b", seen + 1],
      ["session.ready", undefined, seen + 2],
    ]);
    expect(second.frames.at(-1)!.gap).toBeUndefined();
    await sessions.shutdown();
  });

  it("goes on past every reserved seq, with a gap, when the last server died without parking the stream", async () => {
    const before = await manager();
    const session = await before.sessions.create({ principal });
    const client = recorder();
    session.attach(client);
    session.error("busy", "frame", "a");
    const lastSeq = client.frames.at(-1)!.seq;
    // No shutdown: the next manager over the same folder is a restart after SIGKILL.
    const after = await manager();
    const revived = await after.sessions.get(session.id, principal);
    const again = recorder();
    await revived!.attach(again, lastSeq);
    const ready = again.frames.at(-1)!;
    expect(ready).toMatchObject({ type: "session.ready", gap: true });
    expect(ready.seq).toBeGreaterThan(10_000);
    expect((await after.store.get(session.id))?.seqReserved).toBeGreaterThan(ready.seq);
    await after.sessions.shutdown();
  });

  it("goes on far past any old seq for a record written before seqs were reserved", async () => {
    const { sessions, store } = await manager();
    const now = Date.now();
    await store.put({ id: "legacy-session-000000", ownerKeyHash: principal.keyHash, createdAt: now, lastActiveAt: now });
    const revived = await sessions.get("legacy-session-000000", principal);
    const client = recorder();
    await revived!.attach(client, 42);
    expect(client.frames.at(-1)).toMatchObject({ type: "session.ready", gap: true });
    expect(client.frames.at(-1)!.seq).toBeGreaterThan(1_000_000);
    await sessions.shutdown();
  });
});
