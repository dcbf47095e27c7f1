import { lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { deletedFiles, diffSnapshots, snapshot, WALK_MAX_DEPTH } from "../../../sidecar-agent/files.ts";
import { AgentConn, startTestAgent, type TestAgent } from "./helpers.ts";

let agent: TestAgent;
let conn: AgentConn;
let outside: string;
let n = 0;
const req = () => `req-${++n}`;

beforeAll(() => {
  outside = mkdtempSync(join(tmpdir(), "agent-outside-"));
  writeFileSync(join(outside, "secret.txt"), "secret");
});
afterAll(() => rmSync(outside, { recursive: true, force: true }));

afterEach(async () => {
  await conn?.close();
  await agent?.stop();
});

async function setup() {
  agent = await startTestAgent();
  conn = await AgentConn.open(agent.socketPath);
}

const b64 = (s: string) => Buffer.from(s).toString("base64");

describe("file operations", () => {
  it("put, get, list, delete", async () => {
    await setup();
    const put = await conn.request({ type: "file.put", reqId: req(), path: "dir/sub/a.txt", data: b64("hello") });
    expect(put).toMatchObject({ type: "file.result", ok: true, file: { path: "dir/sub/a.txt", size: 5, readOnly: false } });
    expect(readFileSync(join(agent.dataDir, "dir/sub/a.txt"), "utf8")).toBe("hello");
    expect(statSync(join(agent.dataDir, "dir/sub/a.txt")).mode & 0o777).toBe(0o644);

    const ro = await conn.request({ type: "file.put", reqId: req(), path: "ro.bin", data: Buffer.from([0, 255, 1]).toString("base64"), readOnly: true });
    expect(ro).toMatchObject({ ok: true, file: { readOnly: true, size: 3 } });
    expect(statSync(join(agent.dataDir, "ro.bin")).mode & 0o777).toBe(0o444);
    // overwrite of a read-only file by the server works (replaced by rename)
    expect(await conn.request({ type: "file.put", reqId: req(), path: "ro.bin", data: b64("new") })).toMatchObject({ ok: true, file: { readOnly: false } });

    const got = await conn.request({ type: "file.get", reqId: req(), path: "dir/sub/a.txt" });
    expect(got).toMatchObject({ ok: true, data: b64("hello"), file: { path: "dir/sub/a.txt", size: 5 } });

    writeFileSync(join(agent.dataDir, "fifo-like"), "");
    symlinkSync("/etc/passwd", join(agent.dataDir, "link"));
    const list = await conn.request({ type: "file.list", reqId: req() });
    expect(list.type === "file.result" && list.files?.map((f) => f.path)).toEqual(["dir/sub/a.txt", "fifo-like", "ro.bin"]);

    expect(await conn.request({ type: "file.delete", reqId: req(), path: "dir/sub/a.txt" })).toMatchObject({ ok: true });
    expect(await conn.request({ type: "file.get", reqId: req(), path: "dir/sub/a.txt" })).toMatchObject({
      ok: false,
      error: expect.stringMatching(/no such file/),
    });
    expect(await conn.request({ type: "file.delete", reqId: req(), path: "missing" })).toMatchObject({ ok: false });
    expect(await conn.request({ type: "file.delete", reqId: req(), path: "dir" })).toMatchObject({ ok: false, error: expect.stringMatching(/folder/) });
    // deleting a symlink removes the link, not its target
    expect(await conn.request({ type: "file.delete", reqId: req(), path: "link" })).toMatchObject({ ok: true });
    expect(readFileSync("/etc/passwd").length).toBeGreaterThan(0);
    expect(conn.invalid).toEqual([]);
  });

  it("refuses paths that leave the data folder", async () => {
    await setup();
    for (const path of ["../x", "a/../../x", "/etc/passwd", "./a", "a/./b", ""]) {
      const answer = await conn.request({ type: "file.put", reqId: req(), path, data: b64("x") });
      expect(answer).toMatchObject({ type: "error", code: "invalid_frame" });
    }
    expect(await conn.request({ type: "file.get", reqId: req(), path: "../../etc/passwd" })).toMatchObject({ type: "error", code: "invalid_frame" });
  });

  it("refuses to go through symlinks, in any component", async () => {
    await setup();
    symlinkSync(outside, join(agent.dataDir, "out"));
    symlinkSync(join(outside, "secret.txt"), join(agent.dataDir, "secret-link"));
    mkdirSync(join(agent.dataDir, "real"));
    symlinkSync(outside, join(agent.dataDir, "real", "deeper"));

    expect(await conn.request({ type: "file.put", reqId: req(), path: "out/evil.txt", data: b64("x") })).toMatchObject({ ok: false });
    expect(await conn.request({ type: "file.put", reqId: req(), path: "real/deeper/evil.txt", data: b64("x") })).toMatchObject({ ok: false });
    expect(await conn.request({ type: "file.get", reqId: req(), path: "out/secret.txt" })).toMatchObject({ ok: false });
    expect(await conn.request({ type: "file.get", reqId: req(), path: "secret-link" })).toMatchObject({ ok: false });
    expect(await conn.request({ type: "file.delete", reqId: req(), path: "out/secret.txt" })).toMatchObject({ ok: false });
    expect(readFileSync(join(outside, "secret.txt"), "utf8")).toBe("secret");
    expect(() => lstatSync(join(outside, "evil.txt"))).toThrow();

    // a put onto a symlink replaces the link itself; the target is untouched
    expect(await conn.request({ type: "file.put", reqId: req(), path: "secret-link", data: b64("mine") })).toMatchObject({ ok: true });
    expect(lstatSync(join(agent.dataDir, "secret-link")).isFile()).toBe(true);
    expect(readFileSync(join(outside, "secret.txt"), "utf8")).toBe("secret");

    // a file where a folder is expected
    writeFileSync(join(agent.dataDir, "plain"), "x");
    expect(await conn.request({ type: "file.put", reqId: req(), path: "plain/x", data: b64("x") })).toMatchObject({ ok: false });
  });

  it("list skips symlinked folders", async () => {
    await setup();
    symlinkSync(outside, join(agent.dataDir, "out"));
    const list = await conn.request({ type: "file.list", reqId: req() });
    expect(list).toMatchObject({ ok: true, files: [] });
  });
});

describe("read-only files", () => {
  it("put readOnly: 0444 in new 0755 folders; a later put replaces it, read-only or not", async () => {
    await setup();
    const path = "inputs/deep/data.csv";
    expect(await conn.request({ type: "file.put", reqId: req(), path, data: b64("a,b"), readOnly: true })).toMatchObject({
      ok: true,
      file: { path, size: 3, readOnly: true },
    });
    expect(statSync(join(agent.dataDir, path)).mode & 0o777).toBe(0o444);
    expect(statSync(join(agent.dataDir, "inputs")).mode & 0o777).toBe(0o755);
    expect(statSync(join(agent.dataDir, "inputs/deep")).mode & 0o777).toBe(0o755);
    expect(await conn.request({ type: "file.put", reqId: req(), path, data: b64("c,d,e"), readOnly: true })).toMatchObject({
      ok: true,
      file: { size: 5, readOnly: true },
    });
    expect(readFileSync(join(agent.dataDir, path), "utf8")).toBe("c,d,e");
    expect(await conn.request({ type: "file.put", reqId: req(), path, data: b64("f") })).toMatchObject({ ok: true, file: { readOnly: false } });
    expect(statSync(join(agent.dataDir, path)).mode & 0o777).toBe(0o644);
    const list = await conn.request({ type: "file.list", reqId: req() });
    expect(list).toMatchObject({ ok: true, files: [{ path, readOnly: false }] });
  });
});

describe("snapshots", () => {
  it("bounds the walk depth and reports created and modified files", async () => {
    const root = mkdtempSync(join(tmpdir(), "agent-snap-"));
    try {
      let deep = root;
      for (let i = 0; i < WALK_MAX_DEPTH + 5; i++) {
        deep = join(deep, "d");
        mkdirSync(deep);
        writeFileSync(join(deep, "f"), "x");
      }
      const before = await snapshot(root);
      // paths have at most WALK_MAX_DEPTH components
      expect(before.size).toBe(WALK_MAX_DEPTH - 1);
      writeFileSync(join(root, "d", "f"), "yy");
      writeFileSync(join(root, "new"), "");
      const changes = diffSnapshots(before, await snapshot(root));
      expect(changes.map((c) => [c.path, c.change, c.size])).toEqual([
        ["d/f", "modified", 2],
        ["new", "created", 0],
      ]);
      rmSync(join(root, "d", "f"));
      const after = await snapshot(root);
      expect(await deletedFiles(root, before, after)).toEqual(["d/f"]);
      // a file the walk missed (here: dropped from the snapshot) is checked on disk, not reported
      after.delete("d/d/f");
      expect(await deletedFiles(root, before, after)).toEqual(["d/f"]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
