import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RedisServers, startRedis } from "../helpers/redis-servers.ts";
import { type S3Server, startS3 } from "../helpers/s3-server.ts";
import { type ServerProcess, startServer, TEST_API_KEY, TEST_MASTER_KEY } from "../helpers/server-process.ts";
import { TestClient } from "../helpers/ws-client.ts";

/**
 * Two real server processes sharing one real redis-server and one S3 server:
 * any replica serves any session, frames and events cross replicas, and a
 * replica that dies loses its running exec, not the session's files.
 */
describe.each(["standalone", "cluster"] as const)("two replicas sharing Redis (%s) and S3", (mode) => {
  let redis: RedisServers;
  let s3: S3Server;
  let a: ServerProcess;
  let b: ServerProcess;
  const clients: TestClient[] = [];
  const connect = async (server: ServerProcess, apiKey = TEST_API_KEY) => {
    const client = await TestClient.connect(server.wsUrl, { apiKey });
    clients.push(client);
    return client;
  };
  const post = async (server: ServerProcess, path: string, body: unknown) => {
    const res = await fetch(`${server.httpUrl}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": TEST_API_KEY },
      body: JSON.stringify(body),
    });
    return { status: res.status, json: JSON.parse(await res.text()) as Record<string, unknown> };
  };

  beforeAll(async () => {
    [redis, s3] = await Promise.all([startRedis(mode), startS3()]);
    const env = { ...redis.env, ...s3.env, SESSION_IDLE_GRACE: "30" };
    [a, b] = await Promise.all([startServer({ transport: "node", env }), startServer({ transport: "uws", env })]);
  });

  afterAll(async () => {
    for (const client of clients) client.terminate();
    await Promise.all([a?.stop(), b?.stop()]);
    await Promise.all([redis?.stop(), s3?.destroy()]);
  });

  it("resumes a session's stream on the other replica with no frame lost or repeated", async () => {
    const first = await connect(a);
    const ready = await first.openSession();
    const code = "import time\nfor i in range(30):\n    print('line', i, flush=True)\n    time.sleep(0.05)";
    first.send({ type: "exec", id: "moving", lang: "py", code });
    await first.waitFor((f) => f.type === "out" && f.id === "moving" && String(f.data).includes("line 3"));
    first.terminate();
    const lastSeq = Math.max(...first.frames.filter((f) => typeof f.seq === "number").map((f) => f.seq as number));

    const second = await connect(b);
    second.send({ type: "session.open", sessionId: ready.sessionId, lastSeq });
    const resumed = await second.waitFor((f) => f.type === "session.ready");
    expect(resumed).toMatchObject({ sessionId: ready.sessionId, resumed: true });
    expect(resumed.gap).toBeUndefined();
    const exit = await second.waitFor((f) => f.type === "exit" && f.id === "moving");
    expect(exit).toMatchObject({ reason: "exited", code: 0 });

    const outOf = (client: TestClient) =>
      client.frames
        .filter((f) => f.type === "out" && f.id === "moving")
        .map((f) => f.data)
        .join("");
    const expected = Array.from({ length: 30 }, (_, i) => `line ${i}\n`).join("");
    expect(outOf(first) + outOf(second)).toBe(expected);
    // seq goes up by one through both connections' session frames, except where session.ready answered the other client.
    const seqs = [...first.frames, ...second.frames].filter((f) => typeof f.seq === "number").map((f) => f.seq as number);
    expect(new Set(seqs).size).toBe(seqs.length);

    // The session still works from the second replica: files and Python state.
    const more = await second.run("after", "py", "print(i)");
    expect(more.stdout).toBe("29\n");
  });

  it("uploads through one replica and downloads through the other", async () => {
    const form = new FormData();
    form.append("file", new Blob(["x,y\n1,2\n"]), "data.csv");
    const upload = await fetch(`${a.httpUrl}/upload`, { method: "POST", headers: { "x-api-key": TEST_API_KEY }, body: form });
    const uploaded = (await upload.json()) as { session_id: string; files: { fileId: string }[] };
    const download = await fetch(`${b.httpUrl}/download/${uploaded.session_id}/${uploaded.files[0]!.fileId}`, { headers: { "x-api-key": TEST_API_KEY } });
    expect(download.status).toBe(200);
    expect(await download.text()).toBe("x,y\n1,2\n");
    const listed = await fetch(`${b.httpUrl}/files/${uploaded.session_id}?detail=simple`, { headers: { "x-api-key": TEST_API_KEY } });
    expect(await listed.json()).toEqual([expect.objectContaining({ id: uploaded.files[0]!.fileId, name: "data.csv" })]);
  });

  it("runs an HTTP /exec on either replica in the same session, and shows its events on the other replica", async () => {
    const operator = await connect(b, TEST_MASTER_KEY);
    operator.send({ type: "subscribe", topic: "executions" });
    await new Promise((r) => setTimeout(r, 200));
    const first = await post(a, "/exec", { lang: "py", code: "state = 'kept'\nopen('f.txt','w').write('on a')" });
    expect(first.status).toBe(200);
    const sessionId = first.json.session_id as string;
    const finished = await operator.waitFor((f) => f.type === "event" && f.kind === "finished" && f.sessionId === sessionId, 15_000);
    expect(finished).toMatchObject({ reason: "exited", lang: "py" });
    // The session's sandbox lives on replica A; replica B carries the exec there and brings the output back.
    const second = await post(b, "/exec", { lang: "py", code: "print(state, open('f.txt').read())", session_id: sessionId });
    expect(second.json).toMatchObject({ session_id: sessionId, stdout: "kept on a\n" });
  });

  it("continues a programmatic run on the replica the follow-up reaches: tokens in Redis, the paused exec resumed through its holder", async () => {
    const tools = [{ name: "get-weather", description: "weather", parameters: {} }];
    const code =
      'print("start")\nw = await get_weather(city="Paris")\nprint("got", w["celsius"])\nv = await get_weather(city="Oslo")\nprint("and", v["celsius"])';
    const first = await post(a, "/exec/programmatic", { code, tools });
    expect(first.json, JSON.stringify(first.json)).toMatchObject({ status: "tool_call_required", stdout: "start\n" });
    const calls = first.json.tool_calls as Array<{ id: string; input: unknown }>;
    expect(calls.map((call) => call.input)).toEqual([{ city: "Paris" }]);
    // Round 2 through B (A holds the session), round 3 back through A.
    const second = await post(b, "/exec/programmatic", {
      continuation_token: first.json.continuation_token,
      tool_results: [{ call_id: calls[0]!.id, result: { celsius: 21 } }],
    });
    expect(second.json, JSON.stringify(second.json)).toMatchObject({
      status: "tool_call_required",
      stdout: "start\ngot 21\n",
      session_id: first.json.session_id,
    });
    const again = await post(a, "/exec/programmatic", { continuation_token: first.json.continuation_token, tool_results: [] });
    expect(again.status).toBe(404); // a token serves one follow-up, fleet-wide
    const next = (second.json.tool_calls as Array<{ id: string }>)[0]!;
    const third = await post(a, "/exec/programmatic", {
      continuation_token: second.json.continuation_token,
      tool_results: [{ call_id: next.id, result: { celsius: 5 } }],
    });
    expect(third.json, JSON.stringify(third.json)).toMatchObject({ status: "completed", stdout: "start\ngot 21\nand 5\n" });

    // A run started through B in a session A holds: the round is read from the shared stream, the results travel to A.
    const remote = await post(b, "/exec/programmatic", {
      code: 'x = await get_weather(city="Rome")\nprint(w["celsius"], x["celsius"])',
      tools,
      session_id: first.json.session_id,
    });
    expect(remote.json, JSON.stringify(remote.json)).toMatchObject({ status: "tool_call_required", session_id: first.json.session_id });
    const done = await post(b, "/exec/programmatic", {
      continuation_token: remote.json.continuation_token,
      tool_results: [{ call_id: (remote.json.tool_calls as Array<{ id: string }>)[0]!.id, result: { celsius: 30 } }],
    });
    expect(done.json, JSON.stringify(done.json)).toMatchObject({ status: "completed", stdout: "21 30\n" });
  });

  it("cancels a programmatic run through the other replica by its request id", async () => {
    const started = await fetch(`${a.httpUrl}/exec/programmatic`, {
      method: "POST",
      headers: { "x-api-key": TEST_API_KEY, "content-type": "application/json", "x-librechat-code-request-id": `req-${mode}` },
      body: JSON.stringify({ code: 'await get_weather(city="x")\nprint("never")', tools: [{ name: "get-weather" }] }),
    });
    const first = (await started.json()) as { status: string; continuation_token: string; session_id: string; tool_calls: Array<{ id: string }> };
    expect(first.status).toBe("tool_call_required");
    expect((await post(b, "/exec/programmatic/cancel", { request_id: `req-${mode}` })).json).toEqual({ cancelled: true });
    const late = await post(a, "/exec/programmatic", {
      continuation_token: first.continuation_token,
      tool_results: [{ call_id: first.tool_calls[0]!.id, result: 1 }],
    });
    expect(late.status).toBe(404);
    expect((await post(b, "/exec/programmatic/cancel", { request_id: "never-started" })).json).toEqual({ cancelled: false });
  });

  it("loses the running exec of a replica that dies, not the session's files: the other replica takes over", async () => {
    const survivor = b;
    const doomed = await startServer({ transport: "node", env: { ...redis.env, ...s3.env } });
    const client = await connect(doomed);
    const ready = await client.openSession();
    await client.run("write", "bash", "echo precious > keep.txt");
    client.send({ type: "exec", id: "long", lang: "bash", code: "echo started; sleep 60" });
    await client.waitFor((f) => f.type === "out" && f.id === "long");
    const lastSeq = Math.max(...client.frames.filter((f) => typeof f.seq === "number").map((f) => f.seq as number));
    // A crash, not a shutdown: no chance to hand anything over.
    doomed.child.kill("SIGKILL");
    await new Promise((r) => doomed.child.once("exit", r));
    await doomed.stop();

    // Once the dead replica's claim expires, the other replica takes the session over; until then it says to try again.
    const deadline = Date.now() + 40_000;
    let again: TestClient | undefined;
    while (!again && Date.now() < deadline) {
      const attempt = await connect(survivor);
      attempt.send({ type: "session.open", sessionId: ready.sessionId, lastSeq });
      const answer = await Promise.race([
        attempt.waitFor((f) => f.type === "session.ready", 20_000).catch(() => undefined),
        attempt.closed.then(() => undefined),
      ]);
      if (answer) again = attempt;
      else await new Promise((r) => setTimeout(r, 1000));
    }
    const resumed = again?.frames.find((f) => f.type === "session.ready");
    expect(resumed).toBeDefined();
    if (!again) throw new Error("the session was never taken over");
    const lost = await again.waitFor((f) => f.type === "exit" && f.id === "long", 10_000);
    expect(lost).toMatchObject({ reason: "sandbox_lost" });
    const { stdout } = await again.run("read", "bash", "cat keep.txt");
    expect(stdout).toBe("precious\n");
  }, 90_000);
});
