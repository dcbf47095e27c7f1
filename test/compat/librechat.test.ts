/**
 * LibreChat compatibility, end to end: the real LibreChat code-execution clients
 * from npm (@librechat/agents 3.9.x and 2.4.x) drive the real built server with
 * real sandboxes, on both transports.
 *
 * Per generation: run Python and read its stdout; upload a CSV the way the
 * LibreChat app does and read it with pandas in an exec that references it;
 * draw a PNG with matplotlib into /mnt/data and download it the way the app
 * does; continue the session and find a variable an earlier exec defined.
 *
 * The agents packages hold the tools (execute_code, programmatic tool calling);
 * uploads, priming lookups and downloads live in the LibreChat app, so those
 * calls are replicated request for request in test/helpers/librechat-clients.ts.
 * docs/LIBRECHAT-CLIENTS.md describes every request.
 *
 * Every failure names the step and lists the requests the server saw during it
 * (from its access log), so "404 on POST /exec" reads as such even where the
 * client hides the status behind its own message.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type AuthHeaders,
  batchUploadCodeEnvFiles,
  type CodeEnvFile,
  CodeSessionTracker,
  type CodeTool,
  CURRENT_CLIENT_VERSION,
  type CurrentClient,
  codeEnvFile,
  downloadCodeOutput,
  type ExecArtifact,
  type FileRefLike,
  invokeTool,
  LEGACY_CLIENT_VERSION,
  type LegacyClient,
  legacyDownloadCodeOutput,
  legacyFileRef,
  legacyGetSessionInfo,
  legacyIsActive,
  legacyUploadCodeEnvFile,
  librechatAgentId,
  librechatUserId,
  loadCurrentClient,
  loadLegacyClient,
  type ToolResult,
} from "../helpers/librechat-clients.ts";
import { type ServerProcess, startServer, TEST_API_KEY } from "../helpers/server-process.ts";

const TRANSPORTS = ["node", "uws"] as const;

const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const CSV_NAME = "sales.csv";
const CSV = Buffer.from("region,amount\nnorth,120\nsouth,80\neast,45.5\n");

const PY_HELLO = 'print("hello from LibreChat")';
const PY_READ_CSV = ["import pandas as pd", `df = pd.read_csv("${CSV_NAME}")`, "print(f\"rows={len(df)} total={df['amount'].sum():.1f}\")"].join("\n");
const PY_CHART = [
  "import matplotlib",
  'matplotlib.use("Agg")',
  "import matplotlib.pyplot as plt",
  "fig, ax = plt.subplots(figsize=(4, 3))",
  'ax.bar(["north", "south", "east"], [120, 80, 45.5])',
  'ax.set_title("Sales by region")',
  'fig.savefig("/mnt/data/chart.png")',
  'print("chart saved")',
].join("\n");
const PY_SET_STATE = [
  'librechat_marker = "kept-" + str(6 * 7)',
  'with open("/mnt/data/state.txt", "w") as f:',
  '    f.write("written by the first exec")',
  'print("marker set")',
].join("\n");
const PY_TEXT_FILE = 'with open("/mnt/data/report.txt", "w") as f:\n    f.write("total=245.5\\n")\nprint("report written")';
/** LibreChat's own route GET /api/files/code/download/:session_id/:fileId rejects other ids with 400 (isValidID). */
const LIBRECHAT_ID = /^[A-Za-z0-9_-]{21}$/;
// The file first: when the variable is missing, the output still tells whether the session's files came along.
const PY_GET_STATE = 'print(open("state.txt").read())\nprint(librechat_marker)';
const STATE_OUTPUT = "written by the first exec\nkept-42";

// ---------------------------------------------------------------- diagnosis

/** The requests the server logged (ENABLE_ACCESS_LOGS) since log line `from`. */
function requestsSince(server: ServerProcess, from: number): string {
  const seen: string[] = [];
  for (const line of server.logs.slice(from)) {
    try {
      const entry = JSON.parse(line) as { msg?: string; method?: string; path?: string; status?: number };
      if (entry.msg === "request") seen.push(`${entry.method} ${entry.path} -> ${entry.status}`);
    } catch {
      // not a JSON line (stderr output)
    }
  }
  return seen.length > 0 ? seen.join("; ") : "no request reached the server";
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Run one step; on failure, say which step and what the server saw meanwhile.
 * The server writes its access-log line after the response, and the line reaches
 * us through a pipe: short pauses keep earlier steps' lines out and let this
 * step's last line in.
 */
async function step<T>(server: ServerProcess, label: string, run: () => Promise<T>): Promise<T> {
  await sleep(50);
  const from = server.logs.length;
  try {
    return await run();
  } catch (error) {
    await sleep(300);
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(`${label} failed: ${message}\n    the server saw: ${requestsSince(server, from)}`, { cause: error });
  }
}

/** Assert on a tool result with the whole text in the message (stderr shows a missing module, for instance). */
function expectStdout(result: ToolResult, expected: string): void {
  expect(result.content, `tool output was:\n${result.content}`).toContain(`stdout:\n${expected}`);
}

/** For a failed continuation: which sessions the two execs ran in, and what the second printed. */
function sessionsReport(first: ToolResult, second: ToolResult): string {
  return `first exec ran in session ${first.artifact?.session_id}, second in ${second.artifact?.session_id}; second exec output:\n${second.content}`;
}

function expectSessionId(artifact: ExecArtifact | undefined): string {
  const sessionId = artifact?.session_id;
  expect(sessionId, `artifact: ${JSON.stringify(artifact)}`).toEqual(expect.any(String));
  expect(sessionId).not.toBe("");
  return sessionId as string;
}

function generatedFile(artifact: ExecArtifact | undefined, name: string): FileRefLike {
  const file = artifact?.files?.find((candidate) => candidate.name === name && candidate.inherited !== true);
  expect(file, `no generated ${name} in the exec response files: ${JSON.stringify(artifact?.files)}`).toBeDefined();
  return file as FileRefLike;
}

function expectPng(bytes: Buffer): void {
  expect(bytes.length, "PNG size").toBeGreaterThan(PNG_MAGIC.length + 100);
  expect(bytes.subarray(0, PNG_MAGIC.length).toString("hex"), "PNG magic bytes").toBe(PNG_MAGIC.toString("hex"));
}

// ---------------------------------------------------------------- the current client (agents 3.9)

/**
 * The execute_code tool as the current LibreChat app builds it (handleTools.js):
 * `createCodeExecutionTool({ user_id, files, authHeaders, ...codeExecutionContext })`,
 * with the default (stateless) execution context. Without configured Code API auth
 * the app passes an auth-header function that yields no header at all.
 */
function currentCodeTool(client: CurrentClient, options: { baseUrl: string; userId: string; files?: CodeEnvFile[]; authHeaders?: AuthHeaders }): CodeTool {
  return client.createCodeExecutionTool({
    user_id: options.userId,
    ...(options.files ? { files: options.files } : {}),
    ...(options.authHeaders ? { authHeaders: async () => options.authHeaders } : {}),
    baseUrl: options.baseUrl,
    codeSessionKey: "execute_code",
    executionProfile: "default",
    statefulSessions: false,
  });
}

function describeCurrentClient(label: string, target: () => ServerProcess, authHeaders: AuthHeaders | undefined): void {
  describe(`@librechat/agents ${CURRENT_CLIENT_VERSION} ${label}`, () => {
    let client: CurrentClient;
    let server: ServerProcess;
    const headers = authHeaders ?? {};

    beforeAll(async () => {
      client = await loadCurrentClient();
      server = target();
    });

    /** The app's batch upload of one CSV attachment, as a CodeEnvFile ref. */
    async function uploadCsv(userId: string): Promise<CodeEnvFile> {
      const upload = await step(server, "POST /upload/batch (the app's batchUploadCodeEnvFiles)", () =>
        batchUploadCodeEnvFiles({
          baseUrl: server.httpUrl,
          authHeaders: headers,
          userId,
          kind: "user",
          id: userId,
          files: [{ filename: CSV_NAME, data: CSV, contentType: "text/csv" }],
        }),
      );
      const stored = upload.files.find((file) => file.filename === CSV_NAME);
      expect(stored, `upload/batch files: ${JSON.stringify(upload.files)}`).toBeDefined();
      return codeEnvFile({ fileId: stored!.fileId, filename: CSV_NAME, storageSessionId: upload.storageSessionId, kind: "user", resourceId: userId });
    }

    it("runs Python and returns its stdout", async () => {
      const tool = currentCodeTool(client, { baseUrl: server.httpUrl, userId: librechatUserId(), authHeaders });
      const result = await step(server, "execute_code (POST /exec)", () => invokeTool(tool, { lang: "py", code: PY_HELLO }));
      expectStdout(result, "hello from LibreChat");
      expectSessionId(result.artifact);
    });

    it("uploads a CSV through /upload/batch and reads it with pandas in an exec that references it", async () => {
      const userId = librechatUserId();
      const csv = await uploadCsv(userId);
      // The app primes the attachment into the tool's `files` and seeds the run's code session with it.
      const session = new CodeSessionTracker();
      session.seed([csv]);
      const tool = currentCodeTool(client, { baseUrl: server.httpUrl, userId, files: [csv], authHeaders });
      const result = await step(server, "execute_code reading the CSV (POST /exec)", () =>
        invokeTool(tool, { lang: "py", code: PY_READ_CSV }, session.injection()),
      );
      expectStdout(result, "rows=3 total=245.5");
    });

    it("draws a PNG chart with matplotlib and downloads it the way the app does", async () => {
      const userId = librechatUserId();
      const tool = currentCodeTool(client, { baseUrl: server.httpUrl, userId, authHeaders });
      const result = await step(server, "execute_code drawing the chart (POST /exec)", () => invokeTool(tool, { lang: "py", code: PY_CHART }));
      expectStdout(result, "chart saved");
      const execSessionId = expectSessionId(result.artifact);
      const chart = generatedFile(result.artifact, "chart.png");
      expect(result.content).toContain("Session files: 1 persisted file(s) are available in /mnt/data, including 1 image(s).");
      const sessionId = chart.storage_session_id ?? execSessionId;
      const png = await step(server, `download of chart.png (GET /download/${sessionId}/${chart.id}?kind=user&id=...)`, () =>
        downloadCodeOutput({ baseUrl: server.httpUrl, authHeaders: headers, sessionId, fileId: chart.id, userId }),
      );
      expectPng(png);
    });

    it("gives a generated file ids that LibreChat's download route accepts (21-character nanoids)", async () => {
      const tool = currentCodeTool(client, { baseUrl: server.httpUrl, userId: librechatUserId(), authHeaders });
      const result = await step(server, "execute_code writing report.txt (POST /exec)", () => invokeTool(tool, { lang: "py", code: PY_TEXT_FILE }));
      expectStdout(result, "report written");
      const report = generatedFile(result.artifact, "report.txt");
      // callbacks.js links the file as /api/files/code/download/<storage_session_id>/<id>.
      const ids = { storage_session_id: report.storage_session_id ?? result.artifact?.session_id, id: report.id };
      expect(ids, `LibreChat's isValidID is /^[A-Za-z0-9_-]{21}$/, got ${JSON.stringify(ids)}`).toEqual({
        storage_session_id: expect.stringMatching(LIBRECHAT_ID),
        id: expect.stringMatching(LIBRECHAT_ID),
      });
    });

    it("continues the session: a later exec finds a variable an earlier exec defined", async () => {
      const userId = librechatUserId();
      const csv = await uploadCsv(userId);
      const session = new CodeSessionTracker();
      session.seed([csv]);
      const tool = currentCodeTool(client, { baseUrl: server.httpUrl, userId, files: [csv], authHeaders });
      const first = await step(server, "first execute_code (POST /exec)", () => invokeTool(tool, { lang: "py", code: PY_SET_STATE }, session.injection()));
      expectStdout(first, "marker set");
      session.update(first.artifact);
      // This client never sends session_id: the session comes back through the injected file refs.
      const second = await step(server, "second execute_code (POST /exec)", () => invokeTool(tool, { lang: "py", code: PY_GET_STATE }, session.injection()));
      expect(second.content, sessionsReport(first, second)).toContain(`stdout:\n${STATE_OUTPUT}`);
    });

    // Issue 8's acceptance test.
    it("runs programmatic tool calling (POST /exec/programmatic): the Python awaits a declared tool, the client answers the call", async () => {
      const calls: unknown[] = [];
      const weather: CodeTool = {
        name: "get-weather",
        invoke: async (input) => {
          calls.push(input);
          return { city: (input as { city?: string }).city, celsius: 21 };
        },
      };
      const toolDefs = [
        {
          name: "get-weather",
          description: "Current weather of a city",
          parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
          allowed_callers: ["code_execution"],
        },
      ];
      const tool = client.createProgrammaticToolCallingTool({ baseUrl: server.httpUrl, ...(authHeaders ? { authHeaders } : {}) });
      // As the tool's own description tells the model: tools are async, hyphens become underscores.
      const code = "w = await get_weather(city=\"Paris\")\nprint(f\"{w['city']}: {w['celsius']}C\")";
      const result = await step(server, "programmatic tool calling (POST /exec/programmatic)", () =>
        invokeTool(tool, { code }, { toolMap: new Map([["get-weather", weather]]), toolDefs }),
      );
      expect(calls).toEqual([{ city: "Paris" }]);
      expectStdout(result, "Paris: 21C");
    });
  });
}

// ---------------------------------------------------------------- the legacy client (agents 2.4)

function describeLegacyClient(target: () => ServerProcess): void {
  describe(`@librechat/agents ${LEGACY_CLIENT_VERSION} with X-API-Key`, () => {
    let client: LegacyClient;
    let server: ServerProcess;

    beforeAll(async () => {
      server = target();
      client = await loadLegacyClient(server.httpUrl);
    });

    /**
     * The legacy app: upload with entity_id (crud.js uploadCodeEnvFile), then on
     * the next turn check the upload is still there and fresh (process.js
     * primeFiles/getSessionInfo) and pass `{id, session_id, name}` to the tool.
     */
    async function uploadAndPrimeCsv(userId: string): Promise<ReturnType<typeof legacyFileRef>> {
      const entityId = librechatAgentId();
      const upload = await step(server, "POST /upload with entity_id (the app's uploadCodeEnvFile)", () =>
        legacyUploadCodeEnvFile({ baseUrl: server.httpUrl, apiKey: TEST_API_KEY, userId, entityId, filename: CSV_NAME, data: CSV, contentType: "text/csv" }),
      );
      const lastModified = await step(server, `GET /files/${upload.sessionId}?detail=summary&entity_id=... (the app's getSessionInfo)`, () =>
        legacyGetSessionInfo({ baseUrl: server.httpUrl, apiKey: TEST_API_KEY, fileIdentifier: upload.fileIdentifier }),
      );
      expect(lastModified, `no summary entry whose name starts with ${upload.fileIdentifier.split("?")[0]}: the app would re-upload every turn`).toEqual(
        expect.any(String),
      );
      expect(legacyIsActive(lastModified as string), `lastModified ${lastModified} is not a recent ISO date`).toBe(true);
      return legacyFileRef(upload.fileIdentifier, CSV_NAME);
    }

    it("runs Python and returns its stdout", async () => {
      const tool = client.createCodeExecutionTool({ user_id: librechatUserId(), LIBRECHAT_CODE_API_KEY: TEST_API_KEY });
      const result = await step(server, "execute_code (POST /exec)", () => invokeTool(tool, { lang: "py", code: PY_HELLO }));
      expectStdout(result, "hello from LibreChat");
      expectSessionId(result.artifact);
    });

    it("is turned away with a wrong key", async () => {
      const tool = client.createCodeExecutionTool({ user_id: librechatUserId(), LIBRECHAT_CODE_API_KEY: "not-the-key" });
      await step(server, "execute_code with a wrong key (POST /exec)", () =>
        expect(invokeTool(tool, { lang: "py", code: PY_HELLO })).rejects.toThrow("HTTP error! status: 401"),
      );
    });

    it("uploads a CSV through /upload with entity_id and reads it with pandas in an exec that references it", async () => {
      const userId = librechatUserId();
      const csv = await uploadAndPrimeCsv(userId);
      const tool = client.createCodeExecutionTool({ user_id: userId, files: [csv], LIBRECHAT_CODE_API_KEY: TEST_API_KEY });
      const result = await step(server, "execute_code reading the CSV (POST /exec)", () => invokeTool(tool, { lang: "py", code: PY_READ_CSV }));
      expectStdout(result, "rows=3 total=245.5");
    });

    it("draws a PNG chart with matplotlib and downloads it the way the app does", async () => {
      const tool = client.createCodeExecutionTool({ user_id: librechatUserId(), LIBRECHAT_CODE_API_KEY: TEST_API_KEY });
      const result = await step(server, "execute_code drawing the chart (POST /exec)", () => invokeTool(tool, { lang: "py", code: PY_CHART }));
      expectStdout(result, "chart saved");
      const sessionId = expectSessionId(result.artifact);
      const chart = generatedFile(result.artifact, "chart.png");
      expect(result.content).toContain("- /mnt/data/chart.png | Image is already displayed to the user");
      expect(result.content).toContain(`session_id: ${sessionId}`);
      // processCodeOutput downloads with the response's top-level session_id.
      const png = await step(server, `download of chart.png (GET /download/${sessionId}/${chart.id})`, () =>
        legacyDownloadCodeOutput({ baseUrl: server.httpUrl, apiKey: TEST_API_KEY, sessionId, fileId: chart.id }),
      );
      expectPng(png);
    });

    it("gives a generated file ids that LibreChat's download route accepts (21-character nanoids)", async () => {
      const tool = client.createCodeExecutionTool({ user_id: librechatUserId(), LIBRECHAT_CODE_API_KEY: TEST_API_KEY });
      const result = await step(server, "execute_code writing report.txt (POST /exec)", () => invokeTool(tool, { lang: "py", code: PY_TEXT_FILE }));
      expectStdout(result, "report written");
      const report = generatedFile(result.artifact, "report.txt");
      // processCodeOutput links a non-image file as /api/files/code/download/<session_id>/<id>.
      const ids = { session_id: result.artifact?.session_id, id: report.id };
      expect(ids, `LibreChat's isValidID is /^[A-Za-z0-9_-]{21}$/, got ${JSON.stringify(ids)}`).toEqual({
        session_id: expect.stringMatching(LIBRECHAT_ID),
        id: expect.stringMatching(LIBRECHAT_ID),
      });
    });

    it("continues the session: given session_id, it lists the session's files and a later exec finds an earlier variable", async () => {
      const userId = librechatUserId();
      const csv = await uploadAndPrimeCsv(userId);
      const tool = client.createCodeExecutionTool({ user_id: userId, files: [csv], LIBRECHAT_CODE_API_KEY: TEST_API_KEY });
      const first = await step(server, "first execute_code (POST /exec)", () => invokeTool(tool, { lang: "py", code: PY_SET_STATE }));
      expectStdout(first, "marker set");
      // The model learns the session id from the tool output (printed when files were generated).
      const shown = /session_id: (\S+)/.exec(first.content)?.[1];
      expect(shown, `no session_id line in the tool output:\n${first.content}`).toBe(expectSessionId(first.artifact));
      // With session_id the client first GETs /files/<id>?detail=full and references every file it lists.
      const second = await step(server, "second execute_code with session_id (GET /files/{id}?detail=full, POST /exec)", () =>
        invokeTool(tool, { lang: "py", code: PY_GET_STATE, session_id: shown }),
      );
      expect(second.content, sessionsReport(first, second)).toContain(`stdout:\n${STATE_OUTPUT}`);
    });
  });
}

// ---------------------------------------------------------------- the servers

for (const transport of TRANSPORTS) {
  describe(`LibreChat clients against the server (${transport} transport)`, () => {
    let keyed: ServerProcess | undefined;
    let open: ServerProcess | undefined;

    beforeAll(async () => {
      // keyed: the default test server (AUTH_ENABLED defaults to true, API_KEY=TEST_API_KEY);
      // open: AUTH_ENABLED=false, the usual setup for the current LibreChat client.
      [keyed, open] = await Promise.all([
        startServer({ transport, env: { ENABLE_ACCESS_LOGS: "true" } }),
        startServer({ transport, env: { ENABLE_ACCESS_LOGS: "true", AUTH_ENABLED: "false" } }),
      ]);
    });

    afterAll(async () => {
      await Promise.all([keyed?.stop(), open?.stop()]);
    });

    describeLegacyClient(() => keyed!);
    describeCurrentClient("with no API key (server AUTH_ENABLED=false)", () => open!, undefined);
    describeCurrentClient("with X-API-Key auth headers", () => keyed!, { "X-API-Key": TEST_API_KEY });

    describe(`@librechat/agents ${CURRENT_CLIENT_VERSION} against a server that requires a key`, () => {
      it("is told it is not authorized when it sends no key", async () => {
        const client = await loadCurrentClient();
        const tool = currentCodeTool(client, { baseUrl: keyed!.httpUrl, userId: librechatUserId() });
        await step(keyed!, "execute_code without a key (POST /exec)", () =>
          expect(invokeTool(tool, { lang: "py", code: PY_HELLO })).rejects.toThrow("Code execution is not authorized"),
        );
      });

      it("runs Python with the key as Authorization: Bearer", async () => {
        const client = await loadCurrentClient();
        const tool = currentCodeTool(client, { baseUrl: keyed!.httpUrl, userId: librechatUserId(), authHeaders: { Authorization: `Bearer ${TEST_API_KEY}` } });
        const result = await step(keyed!, "execute_code with a Bearer key (POST /exec)", () => invokeTool(tool, { lang: "py", code: PY_HELLO }));
        expectStdout(result, "hello from LibreChat");
      });
    });
  });
}
