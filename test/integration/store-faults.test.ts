import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RedisServers, startRedis } from "../helpers/redis-servers.ts";
import { type S3Server, startS3 } from "../helpers/s3-server.ts";
import { type ServerProcess, startServer, TEST_API_KEY } from "../helpers/server-process.ts";
import { TestClient } from "../helpers/ws-client.ts";

/**
 * Redis or S3 going away under a running server: it says so in /ready and
 * /health/detailed, refuses new work with 503 and a clear body instead of
 * hanging, keeps streaming what already runs, recovers by itself, and loses
 * nothing that was acknowledged.
 */
describe("Redis and S3 outages", () => {
  let redis: RedisServers;
  let s3: S3Server;
  let server: ServerProcess;
  const clients: TestClient[] = [];
  const headers = { "x-api-key": TEST_API_KEY };
  const ready = async () => (await fetch(`${server.httpUrl}/ready`)).status;
  const exec = async (body: Record<string, unknown>) => {
    const started = Date.now();
    const res = await fetch(`${server.httpUrl}/exec`, {
      method: "POST",
      headers: { ...headers, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return { status: res.status, json: JSON.parse(await res.text()) as Record<string, unknown>, ms: Date.now() - started };
  };
  const waitFor = async (check: () => Promise<boolean>, ms = 20_000) => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (await check()) return true;
      await new Promise((r) => setTimeout(r, 200));
    }
    return false;
  };

  beforeAll(async () => {
    [redis, s3] = await Promise.all([startRedis("standalone"), startS3({ env: { S3_REQUEST_TIMEOUT: "2" } })]);
    server = await startServer({ transport: "node", env: { ...redis.env, ...s3.env, REDIS_SOCKET_TIMEOUT: "1" } });
  });

  afterAll(async () => {
    for (const client of clients) client.terminate();
    await server?.stop();
    await Promise.all([redis?.stop(), s3?.destroy()]);
  });

  it("keeps a running exec streaming through a Redis outage, refuses new work with 503, and recovers", async () => {
    const client = await TestClient.connect(server.wsUrl, { apiKey: TEST_API_KEY });
    clients.push(client);
    const session = await client.openSession();
    await client.run("define", "py", "kept = 'state'");
    const code = "import time\nfor i in range(20):\n    print('tick', i, flush=True)\n    time.sleep(0.1)";
    client.send({ type: "exec", id: "through", lang: "py", code });
    await client.waitFor((f) => f.type === "out" && f.id === "through");
    await redis.down();

    expect(await waitFor(async () => (await ready()) === 503)).toBe(true);
    const detailed = await fetch(`${server.httpUrl}/health/detailed`, { headers });
    expect(detailed.status).toBe(503);
    const refused = await exec({ lang: "py", code: "print(1)" });
    expect(refused.status).toBe(503);
    expect(refused.json).toMatchObject({ error_type: "service_unavailable" });
    expect(refused.ms).toBeLessThan(5_000);

    // What was already running finished and reached its client.
    const exit = await client.waitFor((f) => f.type === "exit" && f.id === "through");
    expect(exit).toMatchObject({ reason: "exited", code: 0 });
    const out = client.frames
      .filter((f) => f.type === "out" && f.id === "through")
      .map((f) => f.data)
      .join("");
    expect(out).toBe(Array.from({ length: 20 }, (_, i) => `tick ${i}\n`).join(""));

    await redis.up();
    expect(await waitFor(async () => (await ready()) === 200)).toBe(true);
    const after = await exec({ lang: "py", code: "print(kept)", session_id: session.sessionId });
    expect(after.json).toMatchObject({ session_id: session.sessionId, stdout: "state\n" });
  }, 90_000);

  it("refuses uploads and downloads with 503 while S3 is away, and loses no acknowledged upload", async () => {
    const form = new FormData();
    form.append("file", new Blob(["acknowledged\n"]), "kept.txt");
    const upload = await fetch(`${server.httpUrl}/upload`, { method: "POST", headers, body: form });
    expect(upload.status).toBe(200);
    const uploaded = (await upload.json()) as { session_id: string; files: { fileId: string }[] };
    const url = `${server.httpUrl}/download/${uploaded.session_id}/${uploaded.files[0]!.fileId}`;

    await s3.stop();
    expect(await waitFor(async () => (await ready()) === 503)).toBe(true);
    const started = Date.now();
    const download = await fetch(url, { headers });
    expect(download.status).toBe(503);
    expect(Date.now() - started).toBeLessThan(10_000);
    const again = new FormData();
    again.append("file", new Blob(["later\n"]), "later.txt");
    const refused = await fetch(`${server.httpUrl}/upload`, { method: "POST", headers, body: again });
    expect(refused.status).toBe(503);

    await s3.restart();
    expect(await waitFor(async () => (await ready()) === 200)).toBe(true);
    const back = await fetch(url, { headers });
    expect(back.status).toBe(200);
    expect(await back.text()).toBe("acknowledged\n");
  }, 90_000);
});
