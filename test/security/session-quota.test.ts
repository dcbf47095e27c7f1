import { createHash } from "node:crypto";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type S3Server, startS3 } from "../helpers/s3-server.ts";
import { type ServerProcess, startServer, TEST_API_KEY } from "../helpers/server-process.ts";

const MIB = 1024 * 1024;
const LIMIT_MB = 2;
const LIMIT = LIMIT_MB * MIB;
const FILES_LIMIT = 8;
/** The `.json` metadata next to each stored file (and s3rver's own per object): a few hundred bytes each. */
const METADATA_SLACK = 64 * 1024;

// biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
type Json = Record<string, any>;

/**
 * MAX_TOTAL_FILE_SIZE_MB and MAX_FILES_PER_SESSION bound everything a session
 * keeps in the file store (issue 16, findings 4 and 5): the figures of
 * `plt.show()` stored for HTTP callers, and the older versions of rewritten
 * files, not only the current files. Against the local store and S3 (s3rver),
 * whose data folder is measured the same way.
 */
describe.each(["local", "s3"] as const)("session file quota (%s file store)", (storeKind) => {
  let server: ServerProcess;
  let s3: S3Server | undefined;

  beforeAll(async () => {
    if (storeKind === "s3") s3 = await startS3();
    server = await startServer({
      transport: "node",
      env: {
        SANDBOX_POOL_ENABLED: "false",
        MAX_FILE_SIZE_MB: String(LIMIT_MB),
        MAX_TOTAL_FILE_SIZE_MB: String(LIMIT_MB),
        MAX_FILES_PER_SESSION: String(FILES_LIMIT),
        MAX_OUTPUT_FILES: "10",
        ...(s3?.env ?? {}),
      },
    });
  });
  afterAll(async () => {
    await server?.stop();
    await s3?.destroy();
  });

  const exec = async (body: Json): Promise<Json> => {
    const res = await fetch(`${server.httpUrl}/exec`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": TEST_API_KEY },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    expect(res.status, text).toBe(200);
    return JSON.parse(text) as Json;
  };
  const listed = async (sessionId: string): Promise<Json[]> => {
    const res = await fetch(`${server.httpUrl}/files/${sessionId}?detail=full`, { headers: { "x-api-key": TEST_API_KEY } });
    expect(res.status).toBe(200);
    return (await res.json()) as Json[];
  };
  const download = async (sessionId: string, fileId: string): Promise<{ status: number; data: Buffer }> => {
    const res = await fetch(`${server.httpUrl}/download/${sessionId}/${fileId}`, { headers: { "x-api-key": TEST_API_KEY } });
    return { status: res.status, data: Buffer.from(await res.arrayBuffer()) };
  };
  /** What the session occupies on disk: every file of its folder, bytes and metadata alike. */
  const onDisk = (sessionId: string): { bytes: number; dataFiles: number } => {
    // Local: `<file id>` and `<file id>.json`; s3rver: `<key>._S3rver_object` (+ `.md5`, `._S3rver_metadata.json`) per key.
    const dir = s3 ? join(s3.dataDir, s3.bucket, "sessions", sessionId) : join(server.storageDir, "files", sessionId);
    const data = s3 ? /^[A-Za-z0-9]+\._S3rver_object$/ : /^[A-Za-z0-9]+$/;
    let bytes = 0;
    let dataFiles = 0;
    for (const name of readdirSync(dir)) {
      bytes += statSync(join(dir, name)).size;
      if (data.test(name)) dataFiles++;
    }
    return { bytes, dataFiles };
  };

  it("stores figures only within the quota, says so on stderr, and does not fail the run", async () => {
    // Random noise compresses badly: each figure is a PNG of about 1 MB, four per run.
    const code = [
      "import matplotlib",
      "matplotlib.use('Agg')",
      "import matplotlib.pyplot as plt, numpy",
      "for i in range(4):",
      "    plt.figure(figsize=(7, 7))",
      "    plt.imshow(numpy.random.rand(1500, 1500))",
      "    plt.show()",
      "print('drawn')",
    ].join("\n");
    const checkRun = async (run: Json, sessionId: string) => {
      expect(run.session_id).toBe(sessionId);
      expect(run.stdout).toBe("drawn\n");
      const figures = (run.files as Json[]).filter((file) => file.name.endsWith(".png"));
      // Not every figure fits: the rest are named on stderr, the run itself succeeded.
      expect(figures.length).toBeGreaterThan(0);
      expect(figures.length).toBeLessThan(4);
      expect(run.stderr).toMatch(/\[files\] figure-\d\.png was not kept: the session's files would exceed 2097152 bytes/);
      // Every figure the run hands back downloads, superseded ones of the same name included.
      for (const figure of figures) {
        const got = await download(sessionId, figure.id);
        expect(got.status).toBe(200);
        expect(got.data.length).toBe(figure.size);
        expect(got.data.subarray(0, 4).toString("hex")).toBe("89504e47");
      }
      const files = await listed(sessionId);
      expect(files.length).toBeGreaterThan(0);
      expect(files.reduce((sum, file) => sum + (file.size as number), 0)).toBeLessThanOrEqual(LIMIT);
      expect(onDisk(sessionId).bytes).toBeLessThanOrEqual(LIMIT + METADATA_SLACK);
    };
    const first = await exec({ lang: "py", code });
    const sessionId = first.session_id as string;
    await checkRun(first, sessionId);
    await checkRun(await exec({ lang: "py", code, session_id: sessionId }), sessionId);
  });

  it("keeps older versions of a rewritten file only within the quota; the latest downloads intact", async () => {
    const code = "import os, hashlib\ndata = os.urandom(1_500_000)\nopen('/mnt/data/big.bin', 'wb').write(data)\nprint(hashlib.md5(data).hexdigest())";
    let sessionId: string | undefined;
    let last: Json | undefined;
    for (let run = 0; run < 6; run++) {
      last = await exec({ lang: "py", code, ...(sessionId ? { session_id: sessionId } : {}) });
      sessionId ??= last.session_id as string;
      expect(last.session_id).toBe(sessionId);
      expect(last.stderr).toBe("");
      expect((last.files as Json[]).map((file) => file.name)).toEqual(["big.bin"]);
    }
    const latest = (last!.files as Json[])[0]!;
    const got = await download(sessionId!, latest.id);
    expect(got.status).toBe(200);
    expect(got.data.length).toBe(1_500_000);
    expect(createHash("md5").update(got.data).digest("hex")).toBe(last!.stdout.trim());
    expect((await listed(sessionId!)).map((file) => file.id)).toEqual([latest.id]);
    expect(onDisk(sessionId!).bytes).toBeLessThanOrEqual(LIMIT + METADATA_SLACK);
    // The version it replaced did not fit next to it: its id is gone rather than over the quota.
    expect((await download(sessionId!, latest.modified_from.id)).status).toBe(404);
  });

  it("counts older versions against MAX_FILES_PER_SESSION, and keeps them while they fit", async () => {
    const first = await exec({ lang: "bash", code: "echo 0 > small.txt" });
    const sessionId = first.session_id as string;
    const original = (first.files as Json[])[0]!;
    const second = await exec({ lang: "bash", code: "echo 1 > small.txt", session_id: sessionId });
    // Room to spare: the superseded version stays downloadable for references that still name it.
    expect((await download(sessionId, original.id)).data.toString()).toBe("0\n");
    expect((second.files as Json[])[0]).toMatchObject({ modified_from: { id: original.id } });
    for (let run = 2; run < FILES_LIMIT + 4; run++) {
      const next = await exec({ lang: "bash", code: `echo ${run} > small.txt; echo ${run} > other-${run % 2}.txt`, session_id: sessionId });
      expect(next.stderr).toBe("");
    }
    expect(onDisk(sessionId).dataFiles).toBeLessThanOrEqual(FILES_LIMIT);
    const files = await listed(sessionId);
    expect(files.map((file) => file.metadata["original-filename"]).sort()).toEqual(["other-0.txt", "other-1.txt", "small.txt"]);
    const small = files.find((file) => file.metadata["original-filename"] === "small.txt")!;
    expect((await download(sessionId, small.id)).data.toString()).toBe(`${FILES_LIMIT + 3}\n`);
    // The oldest versions went first.
    expect((await download(sessionId, original.id)).status).toBe(404);
  });
});
