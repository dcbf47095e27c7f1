import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServerProcess, startServer, TEST_API_KEY } from "../helpers/server-process.ts";
import { TestClient } from "../helpers/ws-client.ts";

/**
 * Findings of the red-team pass of issue 16, against real servers:
 * - a programmatic run calls only the tools its request declared, even when
 *   the program reaches the driver's `tool_round` and names another tool;
 * - MAX_SESSIONS_PER_ENTITY counts an entity_id per key, so one key cannot
 *   lock another key's entity out;
 * - the file routes keep a session of an end user from requests naming
 *   another user of the same key (requests naming none keep working).
 */
const OTHER_KEY = "other-key-0123456789abcdef";
// biome-ignore lint/suspicious/noExplicitAny: bodies and frames are checked field by field
type Json = any;

const TOOLS = [{ name: "get_weather", description: "weather of a city", parameters: { type: "object", properties: { city: { type: "string" } } } }];
const REFUSED = 'tool "delete_all_user_files" was not declared for this run';
/** Reaches the driver's tool_round and asks for an undeclared tool alone, then in a round with a declared one. */
const SMUGGLER = [
  'tr = get_weather.__globals__["tool_round"]',
  'print("alone", tr([{"id": "evil_1", "name": "delete_all_user_files", "input": {}}]))',
  'mixed = tr([{"id": "good_1", "name": "get_weather", "input": {"city": "Oslo"}}, {"id": "evil_2", "name": "delete_all_user_files", "input": {}}])',
  'print("mixed", sorted(mixed.items()))',
].join("\n");
const ALONE = `alone {'evil_1': (False, '${REFUSED}')}\n`;
const MIXED = `mixed [('evil_2', (False, '${REFUSED}')), ('good_1', (True, 'sunny'))]\n`;

describe("undeclared tools in a programmatic run", () => {
  let server: ServerProcess;
  const clients: TestClient[] = [];

  beforeAll(async () => {
    server = await startServer({ transport: "node", env: { SANDBOX_POOL_ENABLED: "false" } });
  });
  afterAll(async () => {
    for (const client of clients) client.terminate();
    await server?.stop();
  });

  const post = async (body: unknown) => {
    const response = await fetch(`${server.httpUrl}/exec/programmatic`, {
      method: "POST",
      headers: { "x-api-key": TEST_API_KEY, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return { status: response.status, json: (await response.json()) as Json };
  };

  it("POST /exec/programmatic: the call fails in the program and never reaches the client; declared calls work", async () => {
    const first = await post({ code: SMUGGLER, tools: TOOLS, timeout: 15000 });
    expect(first.status, JSON.stringify(first.json)).toBe(200);
    expect(first.json, JSON.stringify(first.json)).toMatchObject({ status: "tool_call_required", stdout: ALONE });
    expect(first.json.tool_calls).toEqual([{ id: "good_1", name: "get_weather", input: { city: "Oslo" } }]);
    const second = await post({ continuation_token: first.json.continuation_token, tool_results: [{ call_id: "good_1", result: "sunny" }] });
    expect(second.json, JSON.stringify(second.json)).toMatchObject({ status: "completed", stdout: ALONE + MIXED });
  });

  it("WebSocket exec with tools: no tool_call frame for the undeclared tool; declared calls work", async () => {
    const client = await TestClient.connect(server.wsUrl, { apiKey: TEST_API_KEY });
    clients.push(client);
    await client.openSession();
    const from = client.frames.length;
    client.send({ type: "exec", id: "smuggle", lang: "py", code: SMUGGLER, tools: TOOLS });
    const round: Json = await client.waitFor((f) => (f.type === "tool_call" || f.type === "exit") && f.id === "smuggle", 30_000, from);
    expect(round.type, client.describe()).toBe("tool_call");
    expect(round.calls).toEqual([{ id: "good_1", name: "get_weather", input: { city: "Oslo" } }]);
    client.send({ type: "tool_result", id: "smuggle", results: [{ call_id: "good_1", result: "sunny" }] });
    const exit: Json = await client.waitFor((f) => f.type === "exit" && f.id === "smuggle", 30_000, from);
    expect(exit.code).toBe(0);
    const frames = client.frames.slice(from).filter((f) => f.id === "smuggle");
    expect(frames.filter((f) => f.type === "tool_call")).toHaveLength(1);
    const stdout = frames
      .filter((f) => f.type === "out" && f.stream === "stdout")
      .map((f) => f.data)
      .join("");
    expect(stdout).toBe(ALONE + MIXED);
  });
});

describe("MAX_SESSIONS_PER_ENTITY across keys", () => {
  let server: ServerProcess;

  beforeAll(async () => {
    server = await startServer({ transport: "node", env: { API_KEYS: OTHER_KEY, MAX_SESSIONS_PER_ENTITY: "2", SANDBOX_POOL_ENABLED: "false" } });
  });
  afterAll(async () => {
    await server?.stop();
  });

  const upload = async (key: string, entityId: string) => {
    const form = new FormData();
    form.append("entity_id", entityId);
    form.append("file", new Blob(["x\n"]), "x.txt");
    const response = await fetch(`${server.httpUrl}/upload`, { method: "POST", headers: { "x-api-key": key }, body: form });
    return { status: response.status, text: await response.text() };
  };

  it("counts an entity per key: one key filling its cap leaves another key's same entity_id alone", async () => {
    for (let i = 0; i < 2; i++) expect((await upload(TEST_API_KEY, "agent_victim")).status).toBe(200);
    expect((await upload(TEST_API_KEY, "agent_victim")).status).toBe(429);
    const other = await upload(OTHER_KEY, "agent_victim");
    expect(other.status, other.text).toBe(200);
    expect((await upload(OTHER_KEY, "agent_victim")).status).toBe(200);
    expect((await upload(OTHER_KEY, "agent_victim")).status).toBe(429);
  });
});

describe("file routes and the end user of the same key", () => {
  let server: ServerProcess;

  beforeAll(async () => {
    server = await startServer({ transport: "node", env: { SANDBOX_POOL_ENABLED: "false" } });
  });
  afterAll(async () => {
    await server?.stop();
  });

  const request = async (method: string, path: string, headers: Record<string, string> = {}) => {
    const response = await fetch(`${server.httpUrl}${path}`, { method, headers: { "x-api-key": TEST_API_KEY, ...headers } });
    return { status: response.status, text: await response.text() };
  };

  it("answers a request naming another user like one for a missing file; the owner and requests naming none still get it", async () => {
    const form = new FormData();
    form.append("user_id", "alice");
    form.append("file", new Blob(["alice's secret\n"]), "secret.txt");
    const uploaded = await fetch(`${server.httpUrl}/upload`, { method: "POST", headers: { "x-api-key": TEST_API_KEY }, body: form });
    expect(uploaded.status).toBe(200);
    const body = (await uploaded.json()) as Json;
    const sessionId: string = body.session_id;
    const fileId: string = body.files[0].fileId;
    const missingFile = await request("GET", `/download/${sessionId}/${"B".repeat(21)}`);
    expect(missingFile.status).toBe(404);
    const missingSession = await request("GET", `/files/${"A".repeat(21)}?detail=full`);

    const asBob: Array<{ headers: Record<string, string>; query: string }> = [
      { headers: { "user-id": "bob" }, query: "" },
      { headers: {}, query: "?kind=user&id=bob" },
    ];
    for (const { headers, query } of asBob) {
      const download = await request("GET", `/download/${sessionId}/${fileId}${query}`, headers);
      expect(download.status, `download ${query || "User-Id"}`).toBe(404);
      expect(JSON.parse(download.text).error).toBe(`File ${fileId} not found in session ${sessionId}`);
      const listing = await request("GET", `/files/${sessionId}${query || "?detail=full"}`, headers);
      expect(listing, `listing ${query || "User-Id"}`).toEqual(missingSession);
      const removed = await request("DELETE", `/files/${sessionId}/${fileId}${query}`, headers);
      expect(removed.status, `delete ${query || "User-Id"}`).toBe(404);
    }

    const asAliceOrNobody: Array<{ headers: Record<string, string>; query: string }> = [
      { headers: {}, query: "" },
      { headers: { "user-id": "alice" }, query: "" },
      { headers: {}, query: "?kind=user&id=alice" },
    ];
    for (const { headers, query } of asAliceOrNobody) {
      const download = await request("GET", `/download/${sessionId}/${fileId}${query}`, headers);
      expect(download, `download ${JSON.stringify(headers)} ${query}`).toEqual({ status: 200, text: "alice's secret\n" });
      if (query) continue; // kind=user&id= also filters the listing by kind: the uploaded file has none
      const listing = await request("GET", `/files/${sessionId}?detail=full`, headers);
      expect(JSON.parse(listing.text).map((f: Json) => f.id)).toEqual([fileId]);
    }
    const removed = await request("DELETE", `/files/${sessionId}/${fileId}?kind=user&id=alice`);
    expect(removed.status).toBe(200);
  });
});
