import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServerProcess, startServer, TEST_API_KEY } from "../helpers/server-process.ts";
import { TestClient } from "../helpers/ws-client.ts";

/**
 * POST /exec/programmatic (issue 8) against the real built server: concurrent
 * tool calls come back as one round, a tool error reaches the program as an
 * exception, sync calls work, and unknown/expired tokens and bad input are refused.
 */

// biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
type Json = any;

const PAUSE_SECONDS = 2;

async function post(server: ServerProcess, body: unknown): Promise<{ status: number; json: Json }> {
  const response = await fetch(`${server.httpUrl}/exec/programmatic`, {
    method: "POST",
    headers: { "x-api-key": TEST_API_KEY, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, json: JSON.parse(text) };
}

const TOOLS = [
  { name: "get-weather", description: "weather of a city", parameters: { type: "object", properties: { city: { type: "string" } } } },
  { name: "2fail", description: "always fails", parameters: {} },
  { name: "lambda", description: "a keyword", parameters: {} },
];

describe("POST /exec/programmatic", () => {
  let server: ServerProcess;

  beforeAll(async () => {
    server = await startServer({ transport: "node", env: { PROGRAMMATIC_PAUSE_SECONDS: String(PAUSE_SECONDS), MAX_CODE_BYTES: "65536" } });
  });

  afterAll(async () => {
    await server?.stop();
  });

  it("returns concurrent calls (asyncio.gather) as one round, then completes with the results", async () => {
    const code = [
      "import asyncio",
      'print("before")',
      'a, b = await asyncio.gather(get_weather(city="Paris"), get_weather(city="Oslo"))',
      "print(a['celsius'], b['celsius'])",
    ].join("\n");
    const first = await post(server, { code, tools: TOOLS, timeout: 15000 });
    expect(first.status, JSON.stringify(first.json)).toBe(200);
    expect(first.json.status).toBe("tool_call_required");
    expect(first.json.stdout).toBe("before\n");
    expect(first.json.tool_calls).toHaveLength(2);
    expect(first.json.tool_calls.map((call: Json) => call.name)).toEqual(["get-weather", "get-weather"]);
    expect(first.json.tool_calls.map((call: Json) => call.input)).toEqual([{ city: "Paris" }, { city: "Oslo" }]);
    const results = first.json.tool_calls.map((call: Json, i: number) => ({ call_id: call.id, result: { celsius: 20 + i }, is_error: false }));
    const second = await post(server, { continuation_token: first.json.continuation_token, tool_results: results });
    expect(second.status, JSON.stringify(second.json)).toBe(200);
    // Each response holds all the run printed so far: the client shows the model only the last one.
    expect(second.json).toMatchObject({ status: "completed", session_id: first.json.session_id, stdout: "before\n20 21\n" });
    // The token is used up.
    const again = await post(server, { continuation_token: first.json.continuation_token, tool_results: results });
    expect(again.status).toBe(404);
  });

  it("raises a tool error in the program, and supports sync calls and keyword/digit names", async () => {
    const code = ["try:", "    _2fail()", "except ToolError as e:", '    print("caught:", e)', "print(lambda_tool())"].join("\n");
    const first = await post(server, { code, tools: TOOLS });
    expect(first.json.status, JSON.stringify(first.json)).toBe("tool_call_required");
    expect(first.json.tool_calls).toEqual([{ id: expect.any(String), name: "2fail", input: {} }]);
    const second = await post(server, {
      continuation_token: first.json.continuation_token,
      tool_results: [{ call_id: first.json.tool_calls[0].id, result: null, is_error: true, error_message: "boom" }],
    });
    expect(second.json.status, JSON.stringify(second.json)).toBe("tool_call_required");
    expect(second.json.stdout).toBe("caught: boom\n");
    expect(second.json.tool_calls[0].name).toBe("lambda");
    const third = await post(server, {
      continuation_token: second.json.continuation_token,
      tool_results: [{ call_id: second.json.tool_calls[0].id, result: "ok", is_error: false }],
    });
    expect(third.json).toMatchObject({ status: "completed", stdout: "caught: boom\nok\n" });
  });

  it("refuses an unknown token, results for calls not made, and a tool name that is no identifier", async () => {
    const unknown = await post(server, { continuation_token: "ct_nope", tool_results: [] });
    expect(unknown.status).toBe(404);
    expect(unknown.json.error).toMatch(/continuation token/);
    const bad = await post(server, { code: "print(1)", tools: [{ name: "!!!", description: "", parameters: {} }] });
    expect(bad.status).toBe(400);
    expect(bad.json.details[0].code).toBe("invalid_tool_name");
    const first = await post(server, { code: 'await get_weather(city="x")', tools: TOOLS });
    expect(first.json.status).toBe("tool_call_required");
    const wrong = await post(server, {
      continuation_token: first.json.continuation_token,
      tool_results: [{ call_id: "call_other", result: 1, is_error: false }],
    });
    expect(wrong.status).toBe(400);
    expect(wrong.json.details[0].code).toBe("unknown_call_id");
  });

  it("expires a paused run with a clear error, and keeps the interpreter's state", async () => {
    const first = await post(server, { code: 'kept = 7\nprint("paused")\nawait get_weather(city="x")\nprint("never")', tools: TOOLS });
    expect(first.json.status, JSON.stringify(first.json)).toBe("tool_call_required");
    await new Promise((resolve) => setTimeout(resolve, PAUSE_SECONDS * 1000 + 1500));
    const late = await post(server, {
      continuation_token: first.json.continuation_token,
      tool_results: [{ call_id: first.json.tool_calls[0].id, result: 1, is_error: false }],
    });
    expect(late.status).toBe(404);
    expect(late.json.error).toMatch(/expired/);
    // The session is free again for the next run.
    const next = await post(server, { code: "x = 5\nprint(x, kept)", tools: [], session_id: first.json.session_id });
    expect(next.json, JSON.stringify(next.json)).toMatchObject({ status: "completed", stdout: "5 7\n" });
  });

  it("stops a run past 50 rounds with a clear error, and keeps the session", async () => {
    let reply = await post(server, { code: "n = 0\nwhile True:\n    await get_weather(city=str(n))\n    n += 1", tools: TOOLS });
    let rounds = 0;
    while (reply.json.status === "tool_call_required") {
      rounds += 1;
      reply = await post(server, { continuation_token: reply.json.continuation_token, tool_results: [{ call_id: reply.json.tool_calls[0].id, result: 1 }] });
    }
    expect(rounds).toBe(50);
    expect(reply.json, JSON.stringify(reply.json)).toMatchObject({ status: "error", error: "Too many tool call rounds (limit 50)" });
    const after = await post(server, { code: "print(n)", tools: [], session_id: reply.json.session_id });
    expect(after.json, JSON.stringify(after.json)).toMatchObject({ status: "completed", stdout: "50\n" });
  });

  it("refuses a tool result over the body limit (413) and keeps the run paused for a proper one", async () => {
    const first = await post(server, { code: 'r = await get_weather(city="x")\nprint(len(r))', tools: TOOLS });
    const call = first.json.tool_calls[0].id;
    // The server answers 413 as soon as Content-Length is over the limit and drops the rest: a client still
    // writing may see the connection end before it reads the answer. Either way nothing reaches the run.
    const huge = await post(server, {
      continuation_token: first.json.continuation_token,
      tool_results: [{ call_id: call, result: "x".repeat(5 * 1024 * 1024) }],
    }).catch((error: Error) => ({ status: 0, json: { error_type: `connection ended: ${error.message}` } as Json }));
    if (huge.status !== 0) expect(huge).toMatchObject({ status: 413, json: { error_type: "resource_exhausted" } });
    const fine = await post(server, { continuation_token: first.json.continuation_token, tool_results: [{ call_id: call, result: "abc" }] });
    expect(fine.json, JSON.stringify(fine.json)).toMatchObject({ status: "completed", stdout: "3\n" });
  });

  it("ends a program that never calls and never ends at its time limit, and returns the files a run wrote", async () => {
    const stuck = await post(server, { code: "while True:\n    pass", tools: TOOLS, timeout: 1000 });
    expect(stuck.json, JSON.stringify(stuck.json)).toMatchObject({ status: "error", error: "Time limit exceeded (1 s)" });
    const first = await post(server, { code: 'w = await get_weather(city="Rome")\nopen("weather.json", "w").write(str(w))', tools: TOOLS });
    const done = await post(server, {
      continuation_token: first.json.continuation_token,
      tool_results: [{ call_id: first.json.tool_calls[0].id, result: { c: 1 } }],
    });
    expect(done.json, JSON.stringify(done.json)).toMatchObject({ status: "completed" });
    expect(done.json.files).toEqual([expect.objectContaining({ name: "weather.json" })]);
  });

  it("cancels a run by its X-LibreChat-Code-Request-ID: the paused program stops, the interpreter's variables stay", async () => {
    const started = await fetch(`${server.httpUrl}/exec/programmatic`, {
      method: "POST",
      headers: { "x-api-key": TEST_API_KEY, "content-type": "application/json", "x-librechat-code-request-id": "req-cancel-1" },
      body: JSON.stringify({ code: 'before = "kept"\nawait get_weather(city="x")\nprint("never")', tools: TOOLS }),
    });
    const first = (await started.json()) as Json;
    expect(first.status).toBe("tool_call_required");
    const cancel = await fetch(`${server.httpUrl}/exec/programmatic/cancel`, {
      method: "POST",
      headers: { "x-api-key": TEST_API_KEY, "content-type": "application/json" },
      body: JSON.stringify({ request_id: "req-cancel-1" }),
    });
    expect(await cancel.json()).toEqual({ cancelled: true });
    const late = await post(server, { continuation_token: first.continuation_token, tool_results: [{ call_id: first.tool_calls[0].id, result: 1 }] });
    expect(late.status).toBe(404);
    const after = await post(server, { code: "print(before)", tools: [], session_id: first.session_id });
    expect(after.json, JSON.stringify(after.json)).toMatchObject({ status: "completed", stdout: "kept\n" });
  });

  it("offers the same over WebSocket: a tool_call frame out, a tool_result frame back", async () => {
    const client = await TestClient.connect(server.wsUrl, { apiKey: TEST_API_KEY });
    try {
      await client.openSession();
      const code =
        'import asyncio\na, b = await asyncio.gather(get_weather(city="A"), get_weather(city="B"))\nprint(a, b)\ntry:\n    await _2fail()\nexcept ToolError as e:\n    print("error:", e)';
      client.send({ type: "exec", id: "w1", lang: "py", code, tools: TOOLS });
      const round = await client.waitFor((f) => f.type === "tool_call" && f.id === "w1");
      const calls = round.calls as Array<{ id: string; name: string; input: unknown }>;
      expect(calls.map((call) => call.input)).toEqual([{ city: "A" }, { city: "B" }]);
      // Results for calls not made, and for an exec that is not paused, are refused; the run stays paused.
      client.send({ type: "tool_result", id: "w1", results: [{ call_id: "nope", result: 1 }] });
      expect(await client.waitFor((f) => f.type === "error" && f.id === "w1")).toMatchObject({ code: "unknown_call_id" });
      client.send({ type: "tool_result", id: "other", results: [] });
      expect(await client.waitFor((f) => f.type === "error" && f.id === "other")).toMatchObject({ code: "not_paused" });
      client.send({ type: "tool_result", id: "w1", results: calls.map((call, i) => ({ call_id: call.id, result: i + 1 })) });
      const second = await client.waitFor((f) => f.type === "tool_call" && f.id === "w1" && f.seq !== round.seq);
      const failing = (second.calls as Array<{ id: string; name: string }>)[0]!;
      expect(failing.name).toBe("2fail");
      client.send({ type: "tool_result", id: "w1", results: [{ call_id: failing.id, is_error: true, error_message: "broken tool" }] });
      const exit = await client.waitFor((f) => f.type === "exit" && f.id === "w1");
      expect(exit).toMatchObject({ reason: "exited", code: 0 });
      const stdout = client.frames
        .filter((f) => f.type === "out" && f.id === "w1")
        .map((f) => f.data)
        .join("");
      expect(stdout).toBe("1 2\nerror: broken tool\n");
      // A tool whose name cannot be a Python function, and tools for another language, are refused before anything runs.
      client.send({ type: "exec", id: "w2", lang: "py", code: "pass", tools: [{ name: "!!!" }] });
      expect(await client.waitFor((f) => f.type === "error" && f.id === "w2")).toMatchObject({ code: "invalid_tool_name" });
      client.send({ type: "exec", id: "w3", lang: "js", code: "1", tools: TOOLS });
      expect(await client.waitFor((f) => f.type === "error" && f.id === "w3")).toMatchObject({ code: "unsupported_language" });
    } finally {
      client.terminate();
    }
  });
});

describe("POST /exec/programmatic with lang bash", () => {
  let server: ServerProcess;

  beforeAll(async () => {
    server = await startServer({ transport: "node", env: { PROGRAMMATIC_PAUSE_SECONDS: String(PAUSE_SECONDS) } });
  });

  afterAll(async () => {
    await server?.stop();
  });

  it("makes each tool a command taking JSON and printing the result; background calls come back as one round; errors go to stderr", async () => {
    const code = [
      ': &\nwait "$!"',
      'echo "start"',
      '{ get_weather \'{"city": "Paris"}\' > /tmp/p.json; } &',
      '{ get_weather \'{"city": "Oslo"}\' > /tmp/o.json; } &',
      "wait",
      'echo "paris=$(cat /tmp/p.json) oslo=$(cat /tmp/o.json)"',
      "if _2fail '{}' 2>/tmp/err; then echo unexpected; else echo \"failed: $(cat /tmp/err)\"; fi",
      "name=$(lambda)",
      'echo "name=$name"',
    ].join("\n");
    const first = await post(server, { lang: "bash", code, tools: TOOLS, timeout: 15000 });
    expect(first.json, JSON.stringify(first.json)).toMatchObject({ status: "tool_call_required", stdout: "start\n" });
    const calls = first.json.tool_calls as Json[];
    expect(calls.map((call) => call.name)).toEqual(["get-weather", "get-weather"]);
    expect(calls.map((call) => call.input).sort((a: Json, b: Json) => a.city.localeCompare(b.city))).toEqual([{ city: "Oslo" }, { city: "Paris" }]);
    const results = calls.map((call: Json) => ({ call_id: call.id, result: { celsius: call.input.city === "Paris" ? 21 : 4 } }));
    const second = await post(server, { continuation_token: first.json.continuation_token, tool_results: results });
    expect(second.json.tool_calls, JSON.stringify(second.json)).toEqual([{ id: expect.any(String), name: "2fail", input: {} }]);
    const third = await post(server, {
      continuation_token: second.json.continuation_token,
      tool_results: [{ call_id: second.json.tool_calls[0].id, is_error: true, error_message: "boom" }],
    });
    expect(third.json.tool_calls, JSON.stringify(third.json)).toEqual([{ id: expect.any(String), name: "lambda", input: {} }]);
    const done = await post(server, {
      continuation_token: third.json.continuation_token,
      tool_results: [{ call_id: third.json.tool_calls[0].id, result: "plain text" }],
    });
    expect(done.json, JSON.stringify(done.json)).toMatchObject({
      status: "completed",
      stdout: 'start\nparis={"celsius":21} oslo={"celsius":4}\nfailed: boom\nname=plain text\n',
    });
  });

  it("refuses a tool input that is not JSON inside the program, and a tool name bash cannot take", async () => {
    const bad = await post(server, { lang: "bash", code: "get_weather 'not json' || echo \"status $?\"", tools: TOOLS });
    expect(bad.json, JSON.stringify(bad.json)).toMatchObject({ status: "completed", stdout: "status 1\n" });
    expect(bad.json.stderr).toMatch(/its argument is not JSON/);
    const name = await post(server, { lang: "bash", code: "true", tools: [{ name: "***" }] });
    expect(name.status).toBe(400);
    expect(name.json.details[0].code).toBe("invalid_tool_name");
    const other = await post(server, { lang: "js", code: "1", tools: TOOLS });
    expect(other.status).toBe(400);
    expect(other.json.details[0].code).toBe("unsupported_language");
  });
});
