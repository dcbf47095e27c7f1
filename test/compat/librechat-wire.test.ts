/**
 * What the real LibreChat client packages put on the wire, recorded by a tiny
 * loopback server with canned answers (no code-interpreter server involved).
 * These pin down the facts docs/LIBRECHAT-CLIENTS.md states about each
 * generation; if a package update changes its requests, these fail first.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  type CodeTool,
  CURRENT_CLIENT_VERSION,
  type CurrentClient,
  invokeTool,
  LEGACY_CLIENT_VERSION,
  type LegacyClient,
  LIBRECHAT_USER_AGENT,
  loadCurrentClient,
  loadLegacyClient,
} from "../helpers/librechat-clients.ts";
import { type RecordedRequest, type RecordingServer, startRecordingServer } from "../helpers/recording-server.ts";

const EXEC_OK = { session_id: "exec-session-1", stdout: "hello\n", stderr: "", files: [] };

let recorder: RecordingServer;

beforeAll(async () => {
  recorder = await startRecordingServer();
});

afterAll(async () => {
  await recorder?.close();
});

afterEach(() => {
  recorder.requests.length = 0;
});

/** The one request the step made (fails when it made none or several). */
function only(requests: RecordedRequest[]): RecordedRequest {
  expect(requests.map((r) => `${r.method} ${r.path}`)).toHaveLength(1);
  return requests[0]!;
}

describe(`@librechat/agents ${CURRENT_CLIENT_VERSION} (current generation) on the wire`, () => {
  let client: CurrentClient;

  beforeAll(async () => {
    client = await loadCurrentClient();
  });

  it("execute_code: POST {baseUrl}/exec, JSON, User-Agent LibreChat/1.0, no auth header at all by default, no session_id in the body", async () => {
    recorder.respondWith(() => ({ json: EXEC_OK }));
    const tool = client.createCodeExecutionTool({ baseUrl: `${recorder.url}/`, user_id: "user-1" });
    // ToolNode injects the previous exec session id; it never reaches the wire.
    const result = await invokeTool(tool, { lang: "py", code: "print('hello')", args: ["a", "b"] }, { session_id: "previous-exec" });

    const request = only(recorder.requests);
    expect(request.method).toBe("POST");
    expect(request.path).toBe("/exec"); // trailing slash of baseUrl trimmed
    expect(request.headers["user-agent"]).toBe(LIBRECHAT_USER_AGENT);
    expect(request.headers["content-type"]).toBe("application/json");
    expect(request.headers["x-api-key"]).toBeUndefined();
    expect(request.headers.authorization).toBeUndefined();
    expect(request.json).toEqual({ lang: "py", code: "print('hello')", args: ["a", "b"], user_id: "user-1" });

    expect(result.content).toBe("stdout:\nhello");
    expect(result.artifact).toEqual({ session_id: "exec-session-1" });
  });

  it("execute_code as the LibreChat app builds it: auth headers from a function, X-CodeAPI-Expected-Profile, extra params spread into the body, _injected_files replace params.files", async () => {
    const generated = { id: "f1", name: "chart.png", path: "chart.png", session_id: "exec-2", storage_session_id: "exec-2" };
    recorder.respondWith(() => ({ json: { session_id: "exec-2", stdout: "", stderr: "warn\n", files: [generated] } }));
    const primed = { id: "csv1", resource_id: "user-1", name: "sales.csv", storage_session_id: "upload-1", kind: "user" };
    const injected = [primed, { id: "old", resource_id: "old", name: "old.txt", storage_session_id: "exec-1", kind: "user" }];
    const tool = client.createCodeExecutionTool({
      baseUrl: recorder.url,
      user_id: "user-1",
      files: [primed],
      authHeaders: async () => ({ Authorization: "Bearer minted-jwt" }),
      // resolveCodeExecutionContext() of the app, default (stateless) profile:
      codeSessionKey: "execute_code",
      executionProfile: "default",
      statefulSessions: false,
    });
    const result = await invokeTool(tool, { lang: "py", code: "x" }, { session_id: "exec-1", _injected_files: injected, _runtime_session_hint: "ignored" });

    const request = only(recorder.requests);
    expect(request.headers.authorization).toBe("Bearer minted-jwt");
    expect(request.headers["x-codeapi-expected-profile"]).toBe("default");
    expect(request.json).toEqual({ lang: "py", code: "x", user_id: "user-1", files: injected, codeSessionKey: "execute_code" });

    expect(result.content).toContain("stdout: Empty. Ensure you're writing output explicitly.");
    expect(result.content).toContain("stderr:\nwarn");
    expect(result.content).toContain("Session files: 1 persisted file(s) are available in /mnt/data, including 1 image(s).");
    expect(result.artifact).toEqual({ session_id: "exec-2", files: [generated] });
  });

  it("execute_code with the stateful profile adds runtime_session_hint to the body", async () => {
    recorder.respondWith(() => ({ json: { ...EXEC_OK, runtime_session_id: "rt-1", runtime_status: "reused" } }));
    const tool = client.createCodeExecutionTool({
      baseUrl: recorder.url,
      user_id: "user-1",
      executionProfile: "stateful",
      statefulSessions: true,
      runtimeSessionHint: "v2:conversation:0123456789abcdef",
    });
    const result = await invokeTool(tool, { lang: "bash", code: "ls" });

    const request = only(recorder.requests);
    expect(request.headers["x-codeapi-expected-profile"]).toBe("stateful");
    expect(request.json).toEqual({ lang: "bash", code: "ls", user_id: "user-1", runtime_session_hint: "v2:conversation:0123456789abcdef" });
    expect(result.artifact).toEqual({ session_id: "exec-session-1", runtime_session_id: "rt-1", runtime_status: "reused" });
  });

  it("execute_code classifies HTTP failures by status only (404 reads as 'temporarily unavailable', retryable)", async () => {
    const tool = client.createCodeExecutionTool({ baseUrl: recorder.url });
    const failWith = async (status: number, json: unknown) => {
      recorder.respondWith(() => ({ status, json }));
      return invokeTool(tool, { lang: "py", code: "print(1)" }).then(
        () => "no error",
        (error: Error) => error.message,
      );
    };
    expect(await failWith(404, { error: "no route" })).toBe("Execution error:\n\nCode execution is temporarily unavailable. Please retry.");
    expect(await failWith(401, { error: "API key is required" })).toBe(
      "Execution error:\n\nCode execution is not authorized. Verify access before trying again.",
    );
    expect(await failWith(422, { error: "bad" })).toBe(
      "Execution error:\n\nThe code execution request was rejected. Please check the tool input and try again.",
    );
    expect(await failWith(429, { error: "rate_limited", retry_after_seconds: 7.2 })).toBe(
      "Execution error:\n\nCode execution is temporarily rate-limited. Retry after 8 seconds.",
    );
    expect(await failWith(400, { error: "execution_profile_mismatch" })).toContain("Code execution is not supported by the selected environment.");
  });

  it("bash_tool: POST /exec with lang bash and the command as code", async () => {
    recorder.respondWith(() => ({ json: EXEC_OK }));
    const tool = client.createBashExecutionTool({ baseUrl: recorder.url, user_id: "user-1" });
    await invokeTool(tool, { command: "echo hello", args: ["x"] });
    const request = only(recorder.requests);
    expect(request.path).toBe("/exec");
    expect(request.json).toEqual({ lang: "bash", code: "echo hello", args: ["x"], user_id: "user-1" });
  });

  it("programmatic tool calling: POST /exec/programmatic with tools, then {continuation_token, tool_results} until completed", async () => {
    recorder.respondWith((request) => {
      const body = request.json as { continuation_token?: string };
      if (body.continuation_token === undefined) {
        return {
          json: {
            status: "tool_call_required",
            session_id: "ptc-1",
            continuation_token: "token-1",
            tool_calls: [{ id: "call_001", name: "get_weather", input: { city: "Paris" } }],
          },
        };
      }
      return { json: { status: "completed", session_id: "ptc-1", stdout: "21\n", stderr: "", files: [] } };
    });
    const weather: CodeTool = { name: "get_weather", invoke: async (input) => ({ city: (input as { city: string }).city, celsius: 21 }) };
    const toolDefs = [
      {
        name: "get_weather",
        description: "Weather of a city",
        parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
        allowed_callers: ["code_execution"],
      },
    ];
    const tool = client.createProgrammaticToolCallingTool({ baseUrl: recorder.url, authHeaders: { "X-API-Key": "key-1" } });
    const result = await invokeTool(
      tool,
      { code: 'w = await get_weather(city="Paris")\nprint(w["celsius"])' },
      { session_id: "exec-1", toolMap: new Map([["get_weather", weather]]), toolDefs },
    );

    expect(recorder.requests.map((r) => `${r.method} ${r.path}`)).toEqual(["POST /exec/programmatic", "POST /exec/programmatic"]);
    const [first, second] = recorder.requests;
    expect(first!.headers["x-api-key"]).toBe("key-1");
    expect(first!.headers["user-agent"]).toBe(LIBRECHAT_USER_AGENT);
    // No `lang` (the server defaults to py); timeout in milliseconds; session_id is the previous exec session.
    expect(first!.json).toEqual({ code: 'w = await get_weather(city="Paris")\nprint(w["celsius"])', tools: toolDefs, session_id: "exec-1", timeout: 15_000 });
    expect(second!.headers["x-api-key"]).toBe("key-1");
    expect(second!.json).toEqual({
      continuation_token: "token-1",
      tool_results: [{ call_id: "call_001", result: { city: "Paris", celsius: 21 }, is_error: false }],
    });
    expect(result.content).toBe("stdout:\n21");
    expect(result.artifact).toEqual({ session_id: "ptc-1", files: [] });
  });

  it("fetchSessionFiles: GET /files/{session}?detail=full&kind=&id=, ids from `id` (or from `name`), names from metadata.original-filename", async () => {
    recorder.respondWith(() => ({
      json: [
        {
          name: "store-1/abc",
          id: "abc",
          session_id: "store-1",
          storage_session_id: "store-1",
          content: null,
          size: 12,
          lastModified: "2025-01-01T00:00:00.000Z",
          etag: '"x"',
          metadata: { "content-type": "text/csv", "original-filename": "sales.csv" },
          contentType: "text/csv",
        },
        { name: "store-1/def.png", metadata: { "original-filename": "chart.png" } },
      ],
    }));
    const files = await client.fetchSessionFiles(recorder.url, "store-1", { kind: "user", id: "user-1" }, { "X-API-Key": "key-1" });
    const request = only(recorder.requests);
    expect(request.method).toBe("GET");
    expect(request.path).toBe("/files/store-1");
    expect(request.query).toEqual({ detail: "full", kind: "user", id: "user-1" });
    expect(request.headers["x-api-key"]).toBe("key-1");
    expect(files).toEqual([
      { storage_session_id: "store-1", kind: "user", id: "abc", resource_id: "user-1", name: "sales.csv" },
      { storage_session_id: "store-1", kind: "user", id: "def", resource_id: "user-1", name: "chart.png" },
    ]);
  });
});

describe(`@librechat/agents ${LEGACY_CLIENT_VERSION} (legacy generation) on the wire`, () => {
  let client: LegacyClient;

  beforeAll(async () => {
    client = await loadLegacyClient(recorder.url);
  });

  it("refuses to build the tool without an API key", () => {
    const saved = process.env.LIBRECHAT_CODE_API_KEY;
    delete process.env.LIBRECHAT_CODE_API_KEY;
    try {
      expect(() => client.createCodeExecutionTool({ user_id: "user-1" })).toThrow("No API key provided for code execution tool.");
    } finally {
      if (saved !== undefined) process.env.LIBRECHAT_CODE_API_KEY = saved;
    }
  });

  it("execute_code: POST {LIBRECHAT_CODE_BASEURL}/exec with X-API-Key; every construction param (the key too) lands in the body", async () => {
    recorder.respondWith(() => ({ json: EXEC_OK }));
    const files = [{ id: "abc", session_id: "upload-1", name: "sales.csv" }];
    const tool = client.createCodeExecutionTool({ user_id: "user-1", files, LIBRECHAT_CODE_API_KEY: "key-1" });
    const result = await invokeTool(tool, { lang: "py", code: "print('hello')" });

    const request = only(recorder.requests);
    expect(`${request.method} ${request.path}`).toBe("POST /exec");
    expect(request.headers["x-api-key"]).toBe("key-1");
    expect(request.headers["user-agent"]).toBe(LIBRECHAT_USER_AGENT);
    expect(request.headers["content-type"]).toBe("application/json");
    expect(request.json).toEqual({ lang: "py", code: "print('hello')", user_id: "user-1", files, LIBRECHAT_CODE_API_KEY: "key-1" });
    expect(result.content).toBe("stdout:\nhello");
    expect(result.artifact).toEqual({ session_id: "exec-session-1" });
  });

  it("session_id argument: GET /files/{id}?detail=full first, refs built from name and metadata; session_id itself never sent", async () => {
    recorder.respondWith((request) => {
      if (request.method === "GET") {
        return {
          json: [
            { name: "exec-1/fid1", id: "fid1", metadata: { "content-type": "image/png", "original-filename": "chart.png" } },
            { name: "exec-1/fid2.ignored-after-the-dot", metadata: { "original-filename": "notes.txt" } },
          ],
        };
      }
      return {
        json: { session_id: "exec-1", stdout: "", stderr: "", files: [{ id: "fid3", name: "out.csv", session_id: "exec-1" }] },
      };
    });
    const primed = [{ id: "abc", session_id: "upload-1", name: "sales.csv" }];
    const tool = client.createCodeExecutionTool({ user_id: "user-1", files: primed, LIBRECHAT_CODE_API_KEY: "key-1" });
    const result = await invokeTool(tool, { lang: "py", code: "print(1)", session_id: "exec-1" });

    expect(recorder.requests.map((r) => `${r.method} ${r.path}`)).toEqual(["GET /files/exec-1", "POST /exec"]);
    const [listing, exec] = recorder.requests;
    expect(listing!.query).toEqual({ detail: "full" });
    expect(listing!.headers["x-api-key"]).toBe("key-1");
    expect(listing!.headers["user-agent"]).toBe(LIBRECHAT_USER_AGENT);
    expect(exec!.json).toEqual({
      lang: "py",
      code: "print(1)",
      user_id: "user-1",
      LIBRECHAT_CODE_API_KEY: "key-1",
      files: [...primed, { session_id: "exec-1", id: "fid1", name: "chart.png" }, { session_id: "exec-1", id: "fid2", name: "notes.txt" }],
    });
    expect(result.content).toBe(
      "stdout: Empty. Ensure you're writing output explicitly.\nGenerated files:\n- /mnt/data/out.csv | File is already downloaded by the user\nsession_id: exec-1\n\n" +
        "Note: Files are READ-ONLY. Save changes to NEW filenames. To access these files in future executions, provide the `session_id` as a parameter (not in your code).",
    );
    expect(result.artifact).toEqual({ session_id: "exec-1", files: [{ id: "fid3", name: "out.csv", session_id: "exec-1" }] });
  });

  it("a failed file listing is swallowed: the exec goes out without the session's files", async () => {
    recorder.respondWith((request) => (request.method === "GET" ? { status: 404, json: { error: "no route" } } : { json: EXEC_OK }));
    const tool = client.createCodeExecutionTool({ user_id: "user-1", LIBRECHAT_CODE_API_KEY: "key-1" });
    const warn = console.warn;
    console.warn = () => {};
    try {
      await invokeTool(tool, { lang: "py", code: "print(1)", session_id: "gone" });
    } finally {
      console.warn = warn;
    }
    expect(recorder.requests.map((r) => `${r.method} ${r.path}`)).toEqual(["GET /files/gone", "POST /exec"]);
    expect(recorder.requests[1]!.json).toEqual({ lang: "py", code: "print(1)", user_id: "user-1", LIBRECHAT_CODE_API_KEY: "key-1" });
  });

  it("an HTTP failure surfaces only the status", async () => {
    recorder.respondWith(() => ({ status: 404, json: { error: "no route" } }));
    const tool = client.createCodeExecutionTool({ LIBRECHAT_CODE_API_KEY: "key-1" });
    await expect(invokeTool(tool, { lang: "py", code: "print(1)" })).rejects.toThrow("Execution error:\n\nHTTP error! status: 404");
  });
});
