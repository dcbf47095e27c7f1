import { createHash, randomBytes } from "node:crypto";
import { existsSync, readdirSync, readlinkSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServerProcess, startServer, TEST_API_KEY } from "../helpers/server-process.ts";
import { TestClient } from "../helpers/ws-client.ts";

/**
 * The HTTP contract of HTTP-API.md (the LibreChat "Code Interpreter API")
 * against the real built server with real sandboxes, on both transports: every
 * route, every auth mode, the error body, each bad input (with nothing already
 * stored lost), and the behaviours LibreChat relies on.
 */

const OTHER_KEY = "other-key-0123456789abcdef";
const CUSTOM_HEADER = "x-custom-key";
const MAX_FILE_MB = 3;
const MAX_FILES = 5;
const MAX_CODE_BYTES = 65536;
const CORS_ORIGIN = "http://allowed.example";

// biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
type Json = any;

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  json: Json;
}

interface CallOptions {
  method?: string;
  /** The x-api-key to send; null: none. */
  key?: string | null;
  headers?: Record<string, string>;
  body?: string | Buffer;
  json?: unknown;
}

async function call(base: string, path: string, options: CallOptions = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...options.headers };
  const key = options.key === undefined ? TEST_API_KEY : options.key;
  if (key !== null) headers["x-api-key"] = key;
  let body = typeof options.body === "string" || options.body === undefined ? options.body : new Uint8Array(options.body);
  if (options.json !== undefined) {
    body = JSON.stringify(options.json);
    headers["content-type"] = "application/json";
  }
  const response = await fetch(`${base}${path}`, { method: options.method ?? (body === undefined ? "GET" : "POST"), headers, body });
  const text = await response.text();
  let json: Json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json };
}

/** A field, or a file; `disposition` replaces the file's `filename="..."` parameter as written. */
type Part = { name: string; value: string } | { name: string; filename: string; data: string | Buffer; type?: string; disposition?: string };

/** A multipart/form-data body written by hand, so that tests control every byte (odd names, cut-off bodies). */
function multipart(parts: Part[], options: { close?: boolean } = {}): { body: Buffer; contentType: string } {
  const boundary = `----citest${randomBytes(8).toString("hex")}`;
  const chunks: Buffer[] = [];
  for (const part of parts) {
    chunks.push(Buffer.from(`--${boundary}\r\n`));
    if ("value" in part) {
      chunks.push(Buffer.from(`Content-Disposition: form-data; name="${part.name}"\r\n\r\n${part.value}\r\n`));
    } else {
      chunks.push(
        Buffer.from(
          `Content-Disposition: form-data; name="${part.name}"; ${part.disposition ?? `filename="${part.filename}"`}\r\n` +
            `Content-Type: ${part.type ?? "application/octet-stream"}\r\n\r\n`,
        ),
      );
      chunks.push(Buffer.isBuffer(part.data) ? part.data : Buffer.from(part.data));
      chunks.push(Buffer.from("\r\n"));
    }
  }
  if (options.close !== false) chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}

const sha256 = (data: Buffer | string) => createHash("sha256").update(data).digest("hex");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Both transports with local sandboxes, and the node transport with Kubernetes pods (the API server stand-in).
describe.each([
  ["node", "local"],
  ["uws", "local"],
  ["node", "kubernetes"],
] as const)("HTTP API over the %s transport, %s sandboxes", (transport, backend) => {
  let server: ServerProcess;
  let base: string;

  const get = (path: string, options: CallOptions = {}) => call(base, path, options);
  const exec = (body: Record<string, unknown>, options: CallOptions = {}) => call(base, "/exec", { ...options, json: body });
  const upload = (parts: Part[], options: CallOptions & { path?: string } = {}) => {
    const { body, contentType } = multipart(parts);
    return call(base, options.path ?? "/upload", { ...options, body, headers: { ...options.headers, "content-type": contentType } });
  };
  const uploadOne = async (name: string, data: string | Buffer, fields: Record<string, string> = {}) => {
    const reply = await upload([...Object.entries(fields).map(([n, value]) => ({ name: n, value })), { name: "file", filename: name, data }]);
    expect(reply.status, reply.text).toBe(200);
    return { sessionId: reply.json.session_id as string, fileId: reply.json.files[0].fileId as string, name: reply.json.files[0].filename as string };
  };
  const download = async (sessionId: string, fileId: string, key: string = TEST_API_KEY) => {
    const response = await fetch(`${base}/download/${sessionId}/${fileId}`, { headers: { "x-api-key": key } });
    return { status: response.status, headers: response.headers, data: Buffer.from(await response.arrayBuffer()) };
  };
  /** A session's files, content included: what "nothing lost or altered" compares. */
  const snapshot = async (sessionId: string) => {
    const listing = await get(`/files/${sessionId}?detail=full`);
    expect(listing.status).toBe(200);
    const files = [];
    for (const file of listing.json as Json[]) {
      const { data } = await download(sessionId, file.id);
      files.push({ id: file.id, name: file.metadata["original-filename"], size: file.size, etag: file.etag, sha: sha256(data) });
    }
    return files.sort((a, b) => a.id.localeCompare(b.id));
  };
  /** Session records and file folders on disk: a refused request must leave none behind. */
  const storedSessions = () => {
    const sessions = join(server.storageDir, "sessions");
    const files = join(server.storageDir, "files");
    return {
      records: existsSync(sessions) ? readdirSync(sessions).filter((n) => n.endsWith(".json")).length : 0,
      folders: existsSync(files) ? readdirSync(files).length : 0,
    };
  };
  /** Files under the storage folder the server process holds open (a stalled upload would hold its part file). */
  const openStorageFiles = () => {
    const fdDir = `/proc/${server.pid}/fd`;
    const open: string[] = [];
    for (const fd of readdirSync(fdDir)) {
      try {
        const target = readlinkSync(join(fdDir, fd));
        if (target.startsWith(server.storageDir)) open.push(target);
      } catch {
        // closed meanwhile
      }
    }
    return open;
  };
  /** Poll (bounded) until the server has cleaned up after a request it gave up on. */
  const settles = async (expected: ReturnType<typeof storedSessions>) => {
    for (let i = 0; i < 50 && JSON.stringify(storedSessions()) !== JSON.stringify(expected); i++) await sleep(100);
    expect(storedSessions()).toEqual(expected);
  };
  const expectError = (reply: Reply, status: number, errorType: string, detailCode?: string) => {
    expect(reply.status, reply.text).toBe(status);
    expect(reply.json).toMatchObject({ error: expect.any(String), error_type: errorType, request_id: reply.headers.get("x-request-id") });
    expect(Object.keys(reply.json).sort()).toEqual(["details", "error", "error_type", "request_id", "timestamp"]);
    expect(new Date(reply.json.timestamp).toISOString()).toBe(reply.json.timestamp);
    if (detailCode) expect(reply.json.details).toEqual(expect.arrayContaining([expect.objectContaining({ code: detailCode, field: expect.any(String) })]));
  };

  beforeAll(async () => {
    server = await startServer({
      transport,
      backend,
      env: {
        API_KEYS: OTHER_KEY,
        MAX_FILE_SIZE_MB: String(MAX_FILE_MB),
        MAX_TOTAL_FILE_SIZE_MB: "20",
        MAX_FILES_PER_SESSION: String(MAX_FILES),
        MAX_CODE_BYTES: String(MAX_CODE_BYTES),
        MAX_MEMORY_MB: "256",
        SESSION_IDLE_GRACE: "20",
      },
    });
    base = server.httpUrl;
  });

  afterAll(async () => {
    await server?.stop();
  });

  describe("health, languages and docs", () => {
    it("answers /health and /ready without a key", async () => {
      const health = await get("/health", { key: null });
      expect(health.status).toBe(200);
      expect(health.json).toMatchObject({ status: "healthy", version: expect.any(String), service: expect.any(String) });
      // Ready once a probe sandbox started and the warm pool holds its start target (bounded: READY_WAIT_FOR_POOL_SECONDS).
      let ready = await get("/ready", { key: null });
      for (let i = 0; i < 600 && ready.status === 503; i++) {
        expect(ready.json).toMatchObject({ status: "not_ready", reason: expect.stringMatching(/checking that a sandbox can start|warming the sandbox pool/) });
        await sleep(100);
        ready = await get("/ready", { key: null });
      }
      expect(ready.status).toBe(200);
      expect(ready.json).toEqual({ status: "ready" });
    });

    it("answers /health/detailed only with a key, per dependency", async () => {
      expectError(await get("/health/detailed", { key: null }), 401, "authentication");
      const detailed = await get("/health/detailed");
      expect(detailed.status).toBe(200);
      expect(["healthy", "degraded"]).toContain(detailed.json.status);
      expect(Object.keys(detailed.json.checks).sort()).toEqual(["files", "pool", "sandbox", "startup", "store"]);
      expect(detailed.json.checks.startup).toMatchObject({ status: "ok", attempts: 1, poolWait: { status: "reached" } });
      expect(detailed.json.checks.store.status).toBe("ok");
      expect(detailed.json.checks.files.status).toBe("ok");
      if (detailed.json.status === "degraded") expect(detailed.headers.get("x-health-status")).toBe("degraded");
    });

    it("lists the languages this instance can run, with versions", async () => {
      const languages = await get("/languages");
      expect(languages.status).toBe(200);
      const py = (languages.json as Json[]).find((l) => l.code === "py");
      // Pods: every toolchain of the sandbox image, versions not probed from the API server's side.
      expect(py).toMatchObject({ available: true, ...(backend === "local" ? { version: expect.any(String) } : {}) });
      expect((languages.json as Json[]).map((l) => l.code)).toEqual(expect.arrayContaining(["py", "js", "bash", "c"]));
    });

    it("serves /openapi.json and /docs without a key", async () => {
      const spec = await get("/openapi.json", { key: null });
      expect(spec.status).toBe(200);
      expect(spec.json.openapi).toMatch(/^3\./);
      for (const path of ["/exec", "/upload", "/upload/batch", "/files/{session_id}", "/download/{session_id}/{fileId}", "/health"]) {
        expect(Object.keys(spec.json.paths)).toContain(path);
      }
      const docs = await get("/docs", { key: null });
      expect(docs.status).toBe(200);
      expect(docs.headers.get("content-type")).toMatch(/^text\/html/);
      expect(docs.text).toContain("/exec");
    });
  });

  describe("authentication and the error body", () => {
    const basic = (value: string) => ({ authorization: `Basic ${Buffer.from(value).toString("base64")}` });
    // A route that needs a key and does nothing else: an unknown session lists as [].
    const probe = (options: CallOptions) => get("/files/nosuchsession", options);

    it("accepts x-api-key, Basic (key as user or password), Bearer, and an API_KEYS key", async () => {
      for (const options of [
        {},
        { key: OTHER_KEY },
        { key: null, headers: basic(`${TEST_API_KEY}:`) },
        { key: null, headers: basic(`:${TEST_API_KEY}`) },
        { key: null, headers: { authorization: `Bearer ${TEST_API_KEY}` } },
      ] satisfies CallOptions[]) {
        const reply = await probe(options);
        expect(reply.status, JSON.stringify(options)).toBe(200);
        expect(reply.json).toEqual([]);
      }
    });

    it("answers 401 'API key is required' or 'Invalid API key' with the error body", async () => {
      const missing = await probe({ key: null });
      expectError(missing, 401, "authentication");
      expect(missing.json.error).toBe("API key is required");
      for (const options of [
        { key: "wrong" },
        { key: null, headers: basic("wrong:") },
        { key: null, headers: basic(":wrong") },
        { key: null, headers: { authorization: "Bearer wrong" } },
      ] satisfies CallOptions[]) {
        const reply = await probe(options);
        expectError(reply, 401, "authentication");
        expect(reply.json.error).toBe("Invalid API key");
      }
      // The same on a POST whose body is never read.
      const post = await exec({ code: "print(1)", lang: "py" }, { key: null });
      expectError(post, 401, "authentication");
    });

    it("lets x-api-key win over Authorization", async () => {
      expect((await probe({ headers: { authorization: "Bearer wrong" } })).status).toBe(200);
      const reply = await probe({ key: "wrong", headers: { authorization: `Bearer ${TEST_API_KEY}` } });
      expectError(reply, 401, "authentication");
      expect(reply.json.error).toBe("Invalid API key");
    });

    it("echoes X-Request-ID when sent, and makes one up otherwise, on every response", async () => {
      const echoed = await probe({ headers: { "x-request-id": "req-1234.abc" } });
      expect(echoed.headers.get("x-request-id")).toBe("req-1234.abc");
      const failed = await probe({ key: "wrong", headers: { "x-request-id": "req-failed-1" } });
      expect(failed.headers.get("x-request-id")).toBe("req-failed-1");
      expect(failed.json.request_id).toBe("req-failed-1");
      // An id that could corrupt a log line is not echoed.
      const unsafe = await probe({ headers: { "x-request-id": "bad id\twith spaces" } });
      expect(unsafe.headers.get("x-request-id")).toMatch(/^[\w.:-]+$/);
      const made = await get("/health", { key: null });
      expect(made.headers.get("x-request-id")).toMatch(/^[\w.:-]{8,}$/);
      const other = await get("/health", { key: null });
      expect(other.headers.get("x-request-id")).not.toBe(made.headers.get("x-request-id"));
      const noRoute = await get("/no/such/route");
      expectError(noRoute, 404, "resource_not_found");
      expectError(await get("/exec"), 405, "validation");
    });

    it("sends no CORS headers when ENABLE_CORS is off", async () => {
      const reply = await get("/health", { key: null, headers: { origin: CORS_ORIGIN } });
      expect(reply.headers.get("access-control-allow-origin")).toBeNull();
    });
  });

  describe("POST /exec", () => {
    it("runs code: stdout ends with a newline, a fresh session each time by default", async () => {
      const first = await exec({ code: "import sys\nsys.stdout.write('no newline')", lang: "py" });
      expect(first.status, first.text).toBe(200);
      expect(first.headers.get("content-type")).toMatch(/^application\/json/);
      expect(first.json).toEqual({ session_id: expect.stringMatching(/^[A-Za-z0-9_-]+$/), stdout: "no newline\n", stderr: "", files: [] });
      // Multi-byte characters across the agent's output chunks arrive whole.
      const wide = await exec({ code: "print('é€😀' * 40000)", lang: "py" });
      expect(wide.json.stdout).toBe(`${"é€😀".repeat(40000)}\n`);
      const second = await exec({ code: "true", lang: "bash", unknown_field: { ignored: true } });
      expect(second.status, second.text).toBe(200);
      expect(second.json.stdout).toBe("");
      expect(second.json.session_id).not.toBe(first.json.session_id);
    });

    it("answers 200 for a failing program, with the error on stderr", async () => {
      const reply = await exec({ code: "print('before')\n1/0", lang: "py" });
      expect(reply.status).toBe(200);
      expect(reply.json.stdout).toBe("before\n");
      expect(reply.json.stderr).toContain("ZeroDivisionError");
      const compiled = await exec({ code: "int main(void) { return nope; }", lang: "c" });
      expect(compiled.status).toBe(200);
      expect(compiled.json.stderr).toContain("nope");
    });

    it("answers 200 for a run past its timeout, with a note on stderr", async () => {
      const started = Date.now();
      const reply = await exec({ code: "echo start; sleep 20; echo never", lang: "bash", timeout: 1000 });
      expect(reply.status).toBe(200);
      expect(reply.json.stdout).toBe("start\n");
      expect(reply.json.stderr).toMatch(/timed out after [\d.]+ s \(limit 1 s\)/);
      expect(Date.now() - started).toBeLessThan(10_000);
    });

    it("stops the run of a client that went away, and the session takes the next exec", async () => {
      const first = await exec({ code: "echo ready", lang: "bash" });
      const sessionId = first.json.session_id;
      const gone = new AbortController();
      const aborted = fetch(`${base}/exec`, {
        method: "POST",
        signal: gone.signal,
        headers: { "x-api-key": TEST_API_KEY, "content-type": "application/json" },
        body: JSON.stringify({ code: "sleep 20; touch marker", lang: "bash", session_id: sessionId }),
      }).catch((error: Error) => error.name);
      await sleep(800);
      gone.abort();
      expect(await aborted).toBe("AbortError");
      let next: Reply | undefined;
      const started = Date.now();
      // One exec at a time: the next one is refused (409) only until the stopped run has ended.
      for (let i = 0; i < 25; i++) {
        next = await exec({ code: "ls; echo next", lang: "bash", session_id: sessionId });
        if (next.status !== 409) break;
        expectError(next, 409, "resource_conflict", "busy");
        await sleep(200);
      }
      expect(next!.json).toMatchObject({ session_id: sessionId, stdout: "next\n" });
      expect(Date.now() - started).toBeLessThan(5000);
    });

    it("normalises args: a string, an array, anything else", async () => {
      const code = 'for a in "$@"; do printf "[%s]" "$a"; done';
      const cases: [unknown, string][] = [
        ["one two", "[one two]\n"],
        [["a", 1, true, { k: 1 }], '[a][1][true][{"k":1}]\n'],
        [42, "[42]\n"],
        [{ x: [1] }, '[{"x":[1]}]\n'],
        [false, "[false]\n"],
      ];
      for (const [args, expected] of cases) {
        const reply = await exec({ code, lang: "bash", args });
        expect(reply.json.stdout, JSON.stringify(args)).toBe(expected);
      }
      const py = await exec({ code: "import sys\nprint(sys.argv[1:])", lang: "py", args: ["x", 2] });
      expect(py.json.stdout).toBe("['x', '2']\n");
    });

    it("streams keep-alive whitespace before the JSON of a run longer than 3 s", async () => {
      const reply = await exec({ code: "sleep 4; echo done", lang: "bash" }, { headers: { "x-request-id": "long-run-1" } });
      expect(reply.status).toBe(200);
      expect(reply.headers.get("x-request-id")).toBe("long-run-1");
      expect(reply.headers.get("content-type")).toMatch(/^application\/json/);
      expect(reply.text).toMatch(/^\s+\{/);
      expect(JSON.parse(reply.text)).toMatchObject({ stdout: "done\n", stderr: "" });
      const quick = await exec({ code: "echo quick", lang: "bash" });
      expect(quick.text.startsWith("{")).toBe(true);
    });

    it("refuses bad bodies: 422 for JSON that does not parse or validate, 400 for empty code or an unknown language", async () => {
      const malformed = await call(base, "/exec", { body: '{"code": "print(1)", "lang":', headers: { "content-type": "application/json" } });
      expectError(malformed, 422, "validation", "invalid_json");
      const missingCode = await exec({ lang: "py" });
      expectError(missingCode, 422, "validation", "missing");
      expect(missingCode.json.details[0].field).toBe("code");
      const missingLang = await exec({ code: "print(1)" });
      expectError(missingLang, 422, "validation", "missing");
      expect(missingLang.json.details[0].field).toBe("lang");
      for (const body of [
        { code: 5, lang: "py" },
        { code: "print(1)", lang: ["py"] },
        { code: "print(1)", lang: "py", timeout: "soon" },
        { code: "print(1)", lang: "py", timeout: 10 },
        { code: "print(1)", lang: "py", files: "a.txt" },
        { code: "print(1)", lang: "py", files: [{ name: "no-id.txt" }] },
        { code: "print(1)", lang: "py", session_id: "../etc" },
        { code: "print(1)", lang: "py", entity_id: "has space" },
      ]) {
        const reply = await exec(body);
        expectError(reply, 422, "validation");
        expect(reply.json.details.length, JSON.stringify(body)).toBeGreaterThan(0);
      }
      expectError(await call(base, "/exec", { json: [1, 2] }), 422, "validation");
      expectError(await exec({ code: "", lang: "py" }), 400, "validation", "empty_code");
      expectError(await exec({ code: " \n\t ", lang: "bash" }), 400, "validation", "empty_code");
      const unknown = await exec({ code: "DISPLAY 'x'", lang: "cobol" });
      expectError(unknown, 400, "validation", "unsupported_language");
      expect(unknown.json.details[0].code).toBe("unsupported_language");
    });

    it("refuses code over MAX_CODE_BYTES and a body over the body limit with 413", async () => {
      const code = `# ${"x".repeat(MAX_CODE_BYTES)}\nprint(1)`;
      expectError(await exec({ code, lang: "py" }), 413, "resource_exhausted", "code_too_large");
      const huge = await exec({ code: "print(1)", lang: "py", padding: "y".repeat(3 * 1024 * 1024) });
      expectError(huge, 413, "resource_exhausted");
      // The server is still fine afterwards.
      expect((await exec({ code: "echo ok", lang: "bash" })).json.stdout).toBe("ok\n");
    });
  });

  describe("uploads and the file routes", () => {
    it("answers an upload with message, session_id, storage_session_id and the files, one `file` or several `files`", async () => {
      const one = await upload([
        { name: "entity_id", value: "asst_1" },
        { name: "file", filename: "one.txt", data: "1\n" },
      ]);
      expect(one.status, one.text).toBe(200);
      expect(one.json).toEqual({
        message: "success",
        session_id: expect.stringMatching(/^[A-Za-z0-9_-]+$/),
        storage_session_id: one.json.session_id,
        files: [{ fileId: expect.stringMatching(/^[A-Za-z0-9_-]+$/), filename: "one.txt" }],
      });
      const several = await upload([
        { name: "files", filename: "a.txt", data: "a\n" },
        { name: "files", filename: "b.txt", data: "b\n" },
      ]);
      expect(several.status, several.text).toBe(200);
      expect((several.json.files as Json[]).map((f) => f.filename)).toEqual(["a.txt", "b.txt"]);
      expect(several.json.session_id).not.toBe(one.json.session_id);
      const listed = ((await get(`/files/${several.json.session_id}?detail=simple`)).json as Json[]).map((f) => f.name).sort();
      expect(listed).toEqual(["a.txt", "b.txt"]);
    });

    it("uploads one file and lists it in summary, simple and full modes", async () => {
      const { sessionId, fileId, name } = await uploadOne("data.csv", "a,b\n1,2\n", { entity_id: "asst_1" });
      expect(name).toBe("data.csv");
      // The older client takes the id from the full listing's name: after the "/" and before the first ".".
      expect(fileId).toMatch(/^[A-Za-z0-9_-]+$/);

      const summary = await get(`/files/${sessionId}?detail=summary`);
      expect(summary.json).toEqual([{ name: `${sessionId}/${fileId}`, lastModified: expect.any(String) }]);
      const simple = await get(`/files/${sessionId}?detail=simple`);
      expect(simple.json).toEqual([{ id: fileId, name: "data.csv", path: "/mnt/data/data.csv" }]);
      for (const query of ["?detail=full", ""]) {
        const full = await get(`/files/${sessionId}${query}`);
        expect(full.json).toHaveLength(1);
        expect(full.json[0]).toMatchObject({
          name: `${sessionId}/${fileId}`,
          id: fileId,
          session_id: sessionId,
          storage_session_id: sessionId,
          content: null,
          size: 8,
          lastModified: summary.json[0].lastModified,
          etag: createHash("md5").update("a,b\n1,2\n").digest("hex"),
          metadata: { "content-type": "text/csv", "original-filename": "data.csv" },
          contentType: "text/csv",
        });
        const listed = full.json[0].name as string;
        expect(listed.slice(listed.indexOf("/") + 1).split(".")[0]).toBe(fileId);
      }
      expect((await get("/files/unknownsession0000")).json).toEqual([]);
      expect((await get("/files/bad.session")).json).toEqual([]);
    });

    it("filters the listing by kind, id and version", async () => {
      const reply = await upload(
        [
          { name: "kind", value: "skill" },
          { name: "id", value: "skill_abc" },
          { name: "version", value: "3" },
          { name: "file", filename: "SKILL.md", data: "# skill\n" },
          { name: "file", filename: "helper.py", data: "X = 1\n" },
        ],
        { path: "/upload/batch" },
      );
      expect(reply.status, reply.text).toBe(200);
      expect(reply.json).toMatchObject({ message: "success", succeeded: 2, failed: 0, session_id: reply.json.storage_session_id });
      const sessionId = reply.json.session_id;
      const list = async (query: string) =>
        ((await get(`/files/${sessionId}?detail=full&${query}`)).json as Json[]).map((f) => f.metadata["original-filename"]).sort();
      expect(await list("kind=skill&id=skill_abc&version=3")).toEqual(["SKILL.md", "helper.py"]);
      expect(await list("kind=skill&id=skill_abc&version=")).toEqual(["SKILL.md", "helper.py"]);
      expect(await list("kind=agent")).toEqual([]);
      expect(await list("kind=skill&id=other")).toEqual([]);
      expect(await list("kind=skill&id=skill_abc&version=4")).toEqual([]);
      const full = (await get(`/files/${sessionId}?kind=skill`)).json as Json[];
      expect(full[0]).toMatchObject({ kind: "skill", resource_id: "skill_abc", version: "3" });
    });

    it("downloads with a guessed type, both filename forms, and a multi-MB body intact", async () => {
      const { sessionId, fileId } = await uploadOne("rapport été.csv", "x,y\n");
      const small = await download(sessionId, fileId);
      expect(small.status).toBe(200);
      expect(small.headers.get("content-type")).toMatch(/^text\/csv/);
      expect(small.headers.get("content-disposition")).toBe("attachment; filename=\"rapport _t_.csv\"; filename*=UTF-8''rapport%20%C3%A9t%C3%A9.csv");
      expect(small.data.toString()).toBe("x,y\n");

      const big = randomBytes(Math.floor(2.5 * 1024 * 1024));
      const stored = await uploadOne("big.bin", big);
      const response = await fetch(`${base}/download/${stored.sessionId}/${stored.fileId}`, { headers: { "x-api-key": TEST_API_KEY } });
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toBe("application/octet-stream");
      expect(response.headers.get("content-disposition")).toBe("attachment; filename=\"big.bin\"; filename*=UTF-8''big.bin");
      // Read as a stream: several chunks, all the bytes, in order.
      let chunks = 0;
      const received: Buffer[] = [];
      const reader = response.body!.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        chunks++;
        received.push(Buffer.from(value));
      }
      expect(chunks).toBeGreaterThan(1);
      expect(sha256(Buffer.concat(received))).toBe(sha256(big));

      // HEAD: the headers of the download and no body; the connection stays usable.
      const head = await fetch(`${base}/download/${stored.sessionId}/${stored.fileId}`, { method: "HEAD", headers: { "x-api-key": TEST_API_KEY } });
      expect(head.status).toBe(200);
      expect(head.headers.get("content-length")).toBe(String(big.length));
      expect((await head.arrayBuffer()).byteLength).toBe(0);
      expect((await download(sessionId, fileId)).data.toString()).toBe("x,y\n");

      for (const path of [`/download/${sessionId}/nosuchfile`, `/download/nosuchsession/${fileId}`, `/download/${sessionId}/..%2F..%2Fetc`]) {
        expectError(await get(path), 404, "resource_not_found");
      }
      // Another key's session does not exist for it.
      expectError(await get(`/download/${sessionId}/${fileId}`, { key: OTHER_KEY }), 404, "resource_not_found");
      expect((await get(`/files/${sessionId}`, { key: OTHER_KEY })).json).toEqual([]);
    });

    it("downloads a file a run named with a quote and non-ASCII letters", async () => {
      const run = await exec({ code: "open('résumé \"v2\".md', 'w').write('# cv')", lang: "py" });
      expect(run.status, run.text).toBe(200);
      const [file] = run.json.files as Json[];
      expect(file).toMatchObject({ name: 'résumé "v2".md', path: '/mnt/data/résumé "v2".md' });
      const got = await download(run.json.session_id, file.id);
      expect(got.headers.get("content-type")).toMatch(/^text\/markdown/);
      expect(got.headers.get("content-disposition")).toBe("attachment; filename=\"r_sum_ _v2_.md\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22v2%22.md");
      expect(got.data.toString()).toBe("# cv");
    });

    it("reports an object's lastModified, and deletes a file (404 the second time)", async () => {
      const { sessionId, fileId } = await uploadOne("gone.txt", "bye\n");
      const kept = await uploadOne("kept.txt", "stay\n");
      const object = await get(`/sessions/${sessionId}/objects/${fileId}`);
      expect(object.status).toBe(200);
      expect(object.json).toEqual({ lastModified: expect.any(String) });
      expect(new Date(object.json.lastModified).toISOString()).toBe(object.json.lastModified);
      expectError(await get(`/sessions/${sessionId}/objects/nosuchfile`), 404, "resource_not_found");

      expectError(await get(`/files/${sessionId}/${fileId}`, { method: "DELETE", key: OTHER_KEY }), 404, "resource_not_found");
      const deleted = await get(`/files/${sessionId}/${fileId}`, { method: "DELETE" });
      expect(deleted.status).toBe(200);
      expectError(await get(`/files/${sessionId}/${fileId}`, { method: "DELETE" }), 404, "resource_not_found");
      expectError(await get(`/download/${sessionId}/${fileId}`), 404, "resource_not_found");
      expectError(await get(`/sessions/${sessionId}/objects/${fileId}`), 404, "resource_not_found");
      expect((await get(`/files/${sessionId}`)).json).toEqual([]);
      // Another session's file is untouched.
      expect((await download(kept.sessionId, kept.fileId)).data.toString()).toBe("stay\n");
    });

    it("keeps nested paths (filepath field or nested filename) and places them there in /mnt/data", async () => {
      const reply = await upload([
        { name: "filepath", value: "reports/2024/q1.txt" },
        { name: "file", filename: "q1.txt", data: "quarter one\n" },
        { name: "file", filename: "deep/er/notes.md", data: "notes\n" },
        { name: "file", filename: "/abs/olute.txt", data: "abs\n" },
      ]);
      expect(reply.status, reply.text).toBe(200);
      const names = (reply.json.files as Json[]).map((f) => f.filename);
      expect(names).toEqual(["reports/2024/q1.txt", "deep/er/notes.md", "abs/olute.txt"]);
      const sessionId = reply.json.session_id;
      const simple = (await get(`/files/${sessionId}?detail=simple`)).json as Json[];
      expect(simple.map((f) => f.path).sort()).toEqual(["/mnt/data/abs/olute.txt", "/mnt/data/deep/er/notes.md", "/mnt/data/reports/2024/q1.txt"]);
      const run = await exec({ code: "pwd; cat reports/2024/q1.txt deep/er/notes.md; find . -type f | sort", lang: "bash", session_id: sessionId });
      expect(run.json.session_id).toBe(sessionId);
      expect(run.json.stdout).toBe("/mnt/data\nquarter one\nnotes\n./abs/olute.txt\n./deep/er/notes.md\n./reports/2024/q1.txt\n");
      // Unchanged files of the session are not reported as the run's (or only as inherited).
      expect((run.json.files as Json[]).filter((f) => !f.inherited)).toEqual([]);
    });

    it("refuses bad uploads with the documented status, and stores nothing of them", async () => {
      const reference = await uploadOne("reference.txt", "reference content\n");
      const before = await snapshot(reference.sessionId);
      const stored = storedSessions();

      const file = (filename: string, data: string | Buffer = "x") => ({ name: "file", filename, data });
      expectError(await upload([file("../../etc/passwd")]), 400, "validation", "invalid_filename");
      expectError(await upload([file("a/../../b.txt")]), 400, "validation", "invalid_filename");
      expectError(await upload([{ name: "filepath", value: "../escape.txt" }, file("ok.txt")]), 400, "validation", "invalid_filename");
      // NUL: percent-encoded in filename*, in a filepath field, or raw in the part header (a malformed header).
      expectError(await upload([{ ...file("x"), disposition: "filename*=UTF-8''nul%00byte.txt" }]), 400, "validation", "invalid_filename");
      expectError(await upload([{ name: "filepath", value: "dir/nul\u0000.txt" }, file("ok.txt")]), 400, "validation", "invalid_filename");
      expectError(await upload([file("nul\u0000byte.txt")]), 400, "validation");
      expectError(await upload([file("x".repeat(300))]), 400, "validation", "invalid_filename");
      // All or nothing: a good file in the same request is not kept either.
      expectError(await upload([file("good.txt"), file("../bad.txt")]), 400, "validation", "invalid_filename");

      const tooBig = Buffer.alloc(MAX_FILE_MB * 1024 * 1024 + 1, 7);
      expectError(await upload([file("big.bin", tooBig)]), 413, "resource_exhausted", "file_too_large");
      const many = Array.from({ length: MAX_FILES + 1 }, (_, i) => file(`f${i}.txt`));
      expectError(await upload(many), 413, "resource_exhausted");
      expectError(await upload(many, { path: "/upload/batch" }), 413, "resource_exhausted");

      expectError(await upload([{ name: "entity_id", value: "asst_1" }]), 422, "validation", "missing");
      expectError(await upload([]), 422, "validation");
      expectError(await call(base, "/upload", { body: "{}", headers: { "content-type": "application/json" } }), 422, "validation", "missing");
      await settles(stored);

      // A batch keeps the good files and reports the bad ones.
      const partial = await upload([file("fine.txt", "fine\n"), file("../nope.txt"), file("huge.bin", tooBig)], { path: "/upload/batch" });
      expect(partial.status).toBe(200);
      expect(partial.json).toMatchObject({ message: "partial", succeeded: 1, failed: 2 });
      expect(partial.json.files).toEqual([
        { status: "success", fileId: expect.any(String), filename: "fine.txt" },
        { status: "error", filename: "../nope.txt", error: expect.any(String) },
        { status: "error", filename: "huge.bin", error: expect.any(String) },
      ]);
      expect(((await get(`/files/${partial.json.session_id}`)).json as Json[]).map((f) => f.metadata["original-filename"])).toEqual(["fine.txt"]);
      const none = await upload([file("../nope.txt")], { path: "/upload/batch" });
      expect(none.status).toBe(200);
      expect(none.json).toMatchObject({ message: "error", succeeded: 0, failed: 1 });
      await settles({ records: stored.records + 1, folders: stored.folders + 1 });

      expect(await snapshot(reference.sessionId)).toEqual(before);
    });

    it("survives a multipart body cut off mid-stream, or truncated inside a complete request, losing nothing", async () => {
      const reference = await uploadOne("reference.bin", randomBytes(200_000));
      const before = await snapshot(reference.sessionId);
      const stored = storedSessions();
      const { body, contentType } = multipart([{ name: "file", filename: "half.bin", data: randomBytes(1024 * 1024) }]);

      // The client goes away after half the body.
      const socket = netConnect(server.port, "127.0.0.1");
      await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
      const head = `POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: ${TEST_API_KEY}\r\nContent-Type: ${contentType}\r\nContent-Length: ${body.length}\r\n\r\n`;
      socket.write(head);
      await new Promise<void>((resolve) => socket.write(body.subarray(0, body.length >> 1), () => resolve()));
      await sleep(300);
      const answered: Buffer[] = [];
      socket.on("data", (chunk: Buffer) => answered.push(chunk));
      socket.on("error", () => {});
      socket.end();
      await new Promise((r) => socket.once("close", r));
      // Nobody was there to read an answer; whatever came, it was no success.
      expect(Buffer.concat(answered).toString()).not.toContain("200 OK");
      await settles(stored);
      for (let i = 0; i < 30 && openStorageFiles().length > 0; i++) await sleep(100);
      expect(openStorageFiles()).toEqual([]);

      // A complete request whose multipart ends before its closing boundary.
      const cut = multipart([{ name: "file", filename: "cut.bin", data: randomBytes(100_000) }], { close: false });
      const truncated = await call(base, "/upload", { body: cut.body.subarray(0, cut.body.length - 5000), headers: { "content-type": cut.contentType } });
      expectError(truncated, 400, "validation", "invalid_multipart");
      const unclosed = await call(base, "/upload/batch", { body: cut.body, headers: { "content-type": cut.contentType } });
      expectError(unclosed, 400, "validation", "invalid_multipart");
      expectError(
        await call(base, "/upload", { body: "not multipart at all", headers: { "content-type": "multipart/form-data; boundary=zzz" } }),
        400,
        "validation",
      );
      await settles(stored);

      expect(await snapshot(reference.sessionId)).toEqual(before);
      // And the server still takes uploads.
      expect((await uploadOne("after.txt", "after\n")).name).toBe("after.txt");
    });
  });

  describe("files in runs", () => {
    it("mounts referenced files by session_id or storage_session_id; changed ones get a new id and modified_from", async () => {
      const input = await uploadOne("input.txt", "original\n");
      const other = await upload([{ name: "file", filename: "other.txt", data: "other\n" }]);
      const otherRef = { id: other.json.files[0].fileId, name: "other.txt", session_id: other.json.session_id };
      const run = await exec({
        code: "cat input.txt other.txt; echo changed >> input.txt; mkdir -p out/deep; echo new > out/deep/new.txt; echo top > top.txt",
        lang: "bash",
        files: [{ id: input.fileId, name: "input.txt", storage_session_id: input.sessionId }, otherRef],
      });
      expect(run.status, run.text).toBe(200);
      expect(run.json.stdout).toBe("original\nother\n");
      // The session of the first referenced file (same user: none) is the one the run used.
      expect(run.json.session_id).toBe(input.sessionId);
      const files = run.json.files as Json[];
      const byName = Object.fromEntries(files.map((f) => [f.name, f]));
      expect(Object.keys(byName).sort()).toEqual(["input.txt", "out/deep/new.txt", "top.txt"].concat(byName["other.txt"] ? ["other.txt"] : []).sort());
      if (byName["other.txt"]) expect(byName["other.txt"]).toMatchObject({ inherited: true, id: otherRef.id });
      expect(byName["input.txt"]).toMatchObject({
        session_id: input.sessionId,
        storage_session_id: input.sessionId,
        modified_from: { id: input.fileId, storage_session_id: input.sessionId },
      });
      expect(byName["input.txt"].id).not.toBe(input.fileId);
      expect(byName["out/deep/new.txt"]).toMatchObject({ session_id: input.sessionId, storage_session_id: input.sessionId });
      expect(byName["out/deep/new.txt"].modified_from).toBeUndefined();
      for (const file of files) expect(file.id).toMatch(/^[A-Za-z0-9_-]+$/);

      expect((await download(input.sessionId, byName["input.txt"].id)).data.toString()).toBe("original\nchanged\n");
      expect((await download(input.sessionId, byName["out/deep/new.txt"].id)).data.toString()).toBe("new\n");
      // The listing shows the newest version only; the original stays downloadable for references.
      const listed = ((await get(`/files/${input.sessionId}?detail=simple`)).json as Json[]).map((f) => f.name).sort();
      expect(listed).toEqual(["input.txt", "out/deep/new.txt", "top.txt"]);
      expect((await download(input.sessionId, input.fileId)).data.toString()).toBe("original\n");
      // The other session's file is unchanged.
      expect((await download(otherRef.session_id, otherRef.id)).data.toString()).toBe("other\n");

      // A second run in the same session sees the files; only what it changes comes back.
      const again = await exec({ code: "cat input.txt out/deep/new.txt; echo two > second.txt; rm top.txt", lang: "bash", session_id: input.sessionId });
      expect(again.json.stdout).toBe("original\nchanged\nnew\n");
      expect((again.json.files as Json[]).map((f) => f.name)).toEqual(["second.txt"]);
      // A file the run deleted leaves the listing.
      const now = ((await get(`/files/${input.sessionId}?detail=simple`)).json as Json[]).map((f) => f.name).sort();
      expect(now).toEqual(["input.txt", "out/deep/new.txt", "second.txt"]);

      // Changing another session's file stores the new version in the run's session; the original stays as it was.
      const third = await exec({ code: "echo edited >> other.txt", lang: "bash", session_id: input.sessionId, files: [otherRef] });
      expect(third.json.session_id).toBe(input.sessionId);
      const edited = (third.json.files as Json[]).find((f) => f.name === "other.txt");
      expect(edited).toMatchObject({
        session_id: input.sessionId,
        storage_session_id: input.sessionId,
        modified_from: { id: otherRef.id, storage_session_id: otherRef.session_id },
      });
      expect((await download(input.sessionId, edited.id)).data.toString()).toBe("other\nedited\n");
      expect((await download(otherRef.session_id, otherRef.id)).data.toString()).toBe("other\n");
      expect(((await get(`/files/${otherRef.session_id}?detail=simple`)).json as Json[]).map((f) => f.name)).toEqual(["other.txt"]);
    });

    it("mounts read_only batch files read-only: a run's change is not kept and the stored file is unchanged", async () => {
      const batch = await upload(
        [
          { name: "read_only", value: "true" },
          { name: "kind", value: "skill" },
          { name: "file", filename: "ro.txt", data: "locked\n" },
        ],
        { path: "/upload/batch" },
      );
      expect(batch.status, batch.text).toBe(200);
      const ref = { id: batch.json.files[0].fileId, name: "ro.txt", storage_session_id: batch.json.storage_session_id };
      expect(((await get(`/files/${ref.storage_session_id}`)).json as Json[])[0]).toMatchObject({ read_only: true });
      const run = await exec({
        code: "echo changed > ro.txt 2>/dev/null && echo wrote || echo refused; rm -f ro.txt 2>/dev/null; echo replaced > ro.txt 2>/dev/null; cat ro.txt; true",
        lang: "bash",
        files: [ref],
      });
      expect(run.status, run.text).toBe(200);
      expect(run.json.stdout.split("\n")[0]).toBe("refused");
      expect((run.json.files as Json[]).filter((f) => f.name === "ro.txt" && !f.inherited)).toEqual([]);
      expect((await download(ref.storage_session_id, ref.id)).data.toString()).toBe("locked\n");
      const next = await exec({ code: "cat ro.txt", lang: "bash", session_id: run.json.session_id, files: [ref] });
      expect(next.json.stdout).toBe("locked\n");
      expect(((await get(`/files/${ref.storage_session_id}?detail=simple`)).json as Json[]).map((f) => f.name)).toEqual(["ro.txt"]);
    });

    it("takes a deleted file out of the session's live sandbox too", async () => {
      const { sessionId, fileId } = await uploadOne("doomed.txt", "doomed\n");
      const first = await exec({ code: "ls", lang: "bash", session_id: sessionId });
      expect(first.json.stdout).toBe("doomed.txt\n");
      expect((await get(`/files/${sessionId}/${fileId}`, { method: "DELETE" })).status).toBe(200);
      const after = await exec({ code: "ls; echo end", lang: "bash", session_id: sessionId });
      expect(after.json).toMatchObject({ session_id: sessionId, stdout: "end\n" });
    });

    it("keeps at most MAX_FILES_PER_SESSION files of a run, saying so on stderr", async () => {
      const run = await exec({ code: `for i in $(seq 1 ${MAX_FILES + 2}); do echo $i > f$i.txt; done; echo made`, lang: "bash" });
      expect(run.status).toBe(200);
      expect(run.json.stdout).toBe("made\n");
      expect(run.json.files).toHaveLength(MAX_FILES);
      expect(run.json.stderr).toContain("was not kept");
      expect((await get(`/files/${run.json.session_id}`)).json).toHaveLength(MAX_FILES);
    });

    it("refuses a reference to a missing file or another user's file with 404, running nothing", async () => {
      const mine = await uploadOne("private.txt", "secret\n", { user_id: "alice" });
      const stored = storedSessions();
      const before = await snapshot(mine.sessionId);
      const cases: [Record<string, unknown>, CallOptions][] = [
        [{ files: [{ id: "nosuchfile", name: "x.txt", session_id: mine.sessionId }] }, {}],
        [{ files: [{ id: mine.fileId, name: "x.txt", session_id: "nosuchsession" }] }, {}],
        [{ files: [{ id: mine.fileId, name: "x.txt" }] }, {}],
        [{ user_id: "bob", files: [{ id: mine.fileId, name: "private.txt", session_id: mine.sessionId }] }, {}],
        [{ files: [{ id: mine.fileId, name: "private.txt", storage_session_id: mine.sessionId }] }, {}],
        [{ user_id: "alice", files: [{ id: mine.fileId, name: "private.txt", session_id: mine.sessionId }] }, { key: OTHER_KEY }],
      ];
      for (const [extra, options] of cases) {
        const reply = await exec({ code: "cat private.txt; echo ran", lang: "bash", ...extra }, options);
        expectError(reply, 404, "resource_not_found", "file_not_found");
        expect(reply.json.details[0].field).toBe("files[0]");
        expect(reply.text).not.toContain("secret");
      }
      await settles(stored);
      expect(await snapshot(mine.sessionId)).toEqual(before);
      // The owner may use it.
      const owner = await exec({
        code: "cat private.txt",
        lang: "bash",
        user_id: "alice",
        files: [{ id: mine.fileId, name: "private.txt", session_id: mine.sessionId }],
      });
      expect(owner.json).toMatchObject({ session_id: mine.sessionId, stdout: "secret\n" });
    });
  });

  describe("session choice", () => {
    it("takes a live session_id, else a referenced file's session of the same user, else the newest of the entity, else a new one", async () => {
      // A live session_id: files and Python state carry over.
      const first = await exec({ code: "x = 41\nopen('kept.txt', 'w').write('kept')", lang: "py" });
      const sessionId = first.json.session_id;
      const same = await exec({ code: "print(x + 1, open('kept.txt').read())", lang: "py", session_id: sessionId });
      expect(same.json).toMatchObject({ session_id: sessionId, stdout: "42 kept\n" });
      // An unknown or another key's session_id: a new session.
      const unknown = await exec({ code: "ls", lang: "bash", session_id: "nosuchsession" });
      expect(unknown.json.session_id).not.toBe(sessionId);
      const foreign = await exec({ code: "ls", lang: "bash", session_id: sessionId }, { key: OTHER_KEY });
      expect(foreign.json.session_id).not.toBe(sessionId);
      expect(foreign.json.stdout).toBe("");

      // The session of a referenced file, only for the same user.
      const carol = await uploadOne("carol.txt", "carol\n", { user_id: "carol" });
      const carolRef = { id: carol.fileId, name: "carol.txt", session_id: carol.sessionId };
      const byFile = await exec({ code: "cat carol.txt", lang: "bash", user_id: "carol", files: [carolRef] });
      expect(byFile.json).toMatchObject({ session_id: carol.sessionId, stdout: "carol\n" });
      const shared = await uploadOne("shared.txt", "shared\n");
      const sharedRef = { id: shared.fileId, name: "shared.txt", storage_session_id: shared.sessionId };
      const otherUser = await exec({ code: "cat shared.txt", lang: "bash", user_id: "dave", files: [sharedRef] });
      expect(otherUser.json.stdout).toBe("shared\n");
      expect(otherUser.json.session_id).not.toBe(shared.sessionId);

      // The newest session of the same entity and user.
      const entity = `ent_${randomBytes(4).toString("hex")}`;
      const e1 = await exec({ code: "echo one > one.txt", lang: "bash", entity_id: entity, user_id: "erin" });
      const e2 = await exec({ code: "cat one.txt", lang: "bash", entity_id: entity, user_id: "erin" });
      expect(e2.json).toMatchObject({ session_id: e1.json.session_id, stdout: "one\n" });
      const otherUserSameEntity = await exec({ code: "ls", lang: "bash", entity_id: entity, user_id: "frank" });
      expect(otherUserSameEntity.json.session_id).not.toBe(e1.json.session_id);
      await sleep(5);
      const newer = await uploadOne("newer.txt", "newer\n", { entity_id: entity, user_id: "erin" });
      const e3 = await exec({ code: "ls | sort", lang: "bash", entity_id: entity, user_id: "erin" });
      expect(e3.json).toMatchObject({ session_id: newer.sessionId, stdout: "newer.txt\n" });
      // A live session_id wins over the entity.
      const e4 = await exec({ code: "cat one.txt", lang: "bash", entity_id: entity, user_id: "erin", session_id: e1.json.session_id });
      expect(e4.json).toMatchObject({ session_id: e1.json.session_id, stdout: "one\n" });
      // ...but not the session of another end user, even by its id.
      const stranger = await exec({ code: "ls", lang: "bash", user_id: "mallory", session_id: e1.json.session_id });
      expect(stranger.json.session_id).not.toBe(e1.json.session_id);
      expect(stranger.json.stdout).toBe("");
    });

    it("queues concurrent calls to one session instead of refusing them", async () => {
      const first = await exec({ code: "n = 0", lang: "py" });
      const sessionId = first.json.session_id;
      const calls = Array.from({ length: 3 }, (_, i) =>
        exec({ code: `import time\ntime.sleep(0.3)\nn += 1\nprint(${i}, n)`, lang: "py", session_id: sessionId }),
      );
      const results = await Promise.all(calls);
      for (const result of results) expect(result.status).toBe(200);
      // Each ran alone, one after the other: the counter went 1, 2, 3 in some order of the calls.
      const counts = results.map((r) => Number((r.json.stdout as string).trim().split(" ")[1])).sort();
      expect(counts).toEqual([1, 2, 3]);
    });

    it("is one session over HTTP and WebSocket", async () => {
      const http = await exec({ code: "echo from-http > http.txt", lang: "bash" });
      const sessionId = http.json.session_id as string;
      const ws = await TestClient.connect(server.wsUrl, { apiKey: TEST_API_KEY });
      try {
        ws.send({ type: "session.open", sessionId });
        const ready = await ws.waitFor((f) => f.type === "session.ready");
        expect(ready.sessionId).toBe(sessionId);
        const run = await ws.run("ws-1", "bash", "cat http.txt; echo from-ws > ws.txt");
        expect(run.stdout).toBe("from-http\n");
        expect((run.exit.files as Json[]).map((f) => f.name)).toEqual(["ws.txt"]);
        const back = await exec({ code: "cat ws.txt", lang: "bash", session_id: sessionId });
        expect(back.json).toMatchObject({ session_id: sessionId, stdout: "from-ws\n" });
        // The HTTP run's output reached the WebSocket client too.
        const out = await ws.waitFor((f) => f.type === "out" && f.data === "from-ws\n" && f.id !== "ws-1");
        expect(out.stream).toBe("stdout");
        expect(((await get(`/files/${sessionId}?detail=simple`)).json as Json[]).map((f) => f.name).sort()).toEqual(["http.txt", "ws.txt"]);
      } finally {
        ws.terminate();
      }
    });
  });

  describe("with a custom API_KEY_HEADER and CORS", () => {
    let custom: ServerProcess;
    beforeAll(async () => {
      custom = await startServer({ transport, backend, env: { API_KEY_HEADER: CUSTOM_HEADER, ENABLE_CORS: "true", CORS_ORIGINS: CORS_ORIGIN } });
    });
    afterAll(async () => {
      await custom?.stop();
    });

    it("reads the key from the configured header (x-api-key means nothing there), then Authorization", async () => {
      const probe = (headers: Record<string, string>) => call(custom.httpUrl, "/files/nosuchsession", { key: null, headers });
      expect((await probe({ [CUSTOM_HEADER]: TEST_API_KEY })).status).toBe(200);
      expect((await probe({ authorization: `Bearer ${TEST_API_KEY}` })).status).toBe(200);
      const ignored = await probe({ "x-api-key": TEST_API_KEY });
      expectError(ignored, 401, "authentication");
      expect(ignored.json.error).toBe("API key is required");
      const wrong = await probe({ [CUSTOM_HEADER]: "wrong", authorization: `Bearer ${TEST_API_KEY}` });
      expect(wrong.json.error).toBe("Invalid API key");
    });

    it("answers a CORS preflight from an allowed origin, and refuses another origin", async () => {
      const preflight = await call(custom.httpUrl, "/exec", {
        method: "OPTIONS",
        key: null,
        headers: { origin: CORS_ORIGIN, "access-control-request-method": "POST", "access-control-request-headers": `${CUSTOM_HEADER}, content-type` },
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get("access-control-allow-origin")).toBe(CORS_ORIGIN);
      expect(preflight.headers.get("access-control-allow-methods")).toContain("POST");
      expect(preflight.headers.get("access-control-allow-headers")).toContain(CUSTOM_HEADER);
      expect(preflight.headers.get("x-request-id")).toBeTruthy();
      const refused = await call(custom.httpUrl, "/exec", {
        method: "OPTIONS",
        key: null,
        headers: { origin: "http://evil.example", "access-control-request-method": "POST" },
      });
      expectError(refused, 403, "authorization");
      const simple = await call(custom.httpUrl, "/health", { key: null, headers: { origin: CORS_ORIGIN } });
      expect(simple.headers.get("access-control-allow-origin")).toBe(CORS_ORIGIN);
      expect(simple.headers.get("access-control-expose-headers")).toContain("X-Request-ID");
    });
  });

  describe("with AUTH_ENABLED=false", () => {
    let open: ServerProcess;
    beforeAll(async () => {
      open = await startServer({ transport, backend, env: { AUTH_ENABLED: "false" } });
    });
    afterAll(async () => {
      await open?.stop();
    });

    it("runs, uploads and lists with no key at all", async () => {
      const run = await call(open.httpUrl, "/exec", { key: null, json: { code: "echo open", lang: "bash" } });
      expect(run.status, run.text).toBe(200);
      expect(run.json.stdout).toBe("open\n");
      const { body, contentType } = multipart([{ name: "file", filename: "a.txt", data: "a\n" }]);
      const up = await call(open.httpUrl, "/upload", { key: null, body, headers: { "content-type": contentType } });
      expect(up.status).toBe(200);
      const listed = await call(open.httpUrl, `/files/${up.json.session_id}?detail=simple`, { key: null, headers: { "user-agent": "LibreChat/1.0" } });
      expect(listed.json).toEqual([{ id: up.json.files[0].fileId, name: "a.txt", path: "/mnt/data/a.txt" }]);
      expect((await call(open.httpUrl, "/health/detailed", { key: null })).status).toBe(200);
      // Whatever key a client sends is no obstacle either.
      expect((await call(open.httpUrl, "/files/nosuchsession", { key: "anything" })).status).toBe(200);
    });
  });
});
