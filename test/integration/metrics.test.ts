import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServerProcess, startServer, TEST_API_KEY, TEST_MASTER_KEY } from "../helpers/server-process.ts";
import { TestClient } from "../helpers/ws-client.ts";

/** GET /metrics against the real server: a run over WebSocket and one over HTTP show up in the counters. */
describe("GET /metrics", () => {
  let server: ServerProcess;
  beforeAll(async () => {
    server = await startServer({ transport: "node", env: { METRICS_AUTH: "api_key" } });
  });
  afterAll(async () => {
    await server?.stop();
  });

  const scrape = async (key?: string) => {
    const res = await fetch(`${server.httpUrl}/metrics`, { headers: key ? { "x-api-key": key } : {} });
    return { status: res.status, type: res.headers.get("content-type") ?? "", text: await res.text() };
  };
  const value = (text: string, series: string): number => {
    const line = text.split("\n").find((l) => l.startsWith(`${series} `));
    return line ? Number(line.slice(series.length + 1)) : 0;
  };

  it("needs an API key (METRICS_AUTH=api_key)", async () => {
    expect((await scrape()).status).toBe(401);
    expect((await scrape("wrong-key-0123456789")).status).toBe(401);
    expect((await scrape(TEST_MASTER_KEY)).status).toBe(200);
  });

  it("counts a WebSocket run and an HTTP run", async () => {
    const before = (await scrape(TEST_API_KEY)).text;
    const client = await TestClient.connect(server.wsUrl, { apiKey: TEST_API_KEY });
    await client.openSession();
    const { exit } = await client.run("m1", "py", "print('metrics')");
    expect(exit).toMatchObject({ type: "exit", code: 0 });
    const during = (await scrape(TEST_API_KEY)).text;
    expect(value(during, "code_interpreter_websocket_connections")).toBeGreaterThanOrEqual(1);
    expect(value(during, "code_interpreter_sessions_live")).toBeGreaterThanOrEqual(1);
    expect(value(during, "code_interpreter_sandboxes_live")).toBeGreaterThanOrEqual(1);
    client.terminate();

    const res = await fetch(`${server.httpUrl}/exec`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": TEST_API_KEY },
      body: JSON.stringify({ lang: "py", code: "print(2)" }),
    });
    expect(res.status).toBe(200);
    await res.json();

    const after = await scrape(TEST_API_KEY);
    expect(after.status).toBe(200);
    expect(after.type).toMatch(/^text\/plain/);
    const runs = 'code_interpreter_executions_total{lang="py",reason="exited"}';
    expect(value(after.text, runs) - value(before, runs)).toBe(2);
    expect(value(after.text, 'code_interpreter_exec_duration_seconds_count{lang="py"}')).toBeGreaterThanOrEqual(2);
    expect(value(after.text, 'code_interpreter_streamed_bytes_total{stream="stdout"}')).toBeGreaterThanOrEqual("metrics\n".length);
    expect(value(after.text, 'code_interpreter_http_requests_total{method="POST",route="/exec",status="200"}')).toBe(1);
    expect(value(after.text, 'code_interpreter_http_requests_total{method="GET",route="/metrics",status="401"}')).toBeGreaterThanOrEqual(1);
    expect(after.text).toContain("code_interpreter_process_resident_memory_bytes");
    expect(after.text).toContain("code_interpreter_pool_enabled");
  });

  it("is listed as implemented in the OpenAPI document", async () => {
    const doc = (await (await fetch(`${server.httpUrl}/openapi.json`)).json()) as { paths: Record<string, Record<string, Record<string, unknown>>> };
    expect(doc.paths["/metrics"]!.get!["x-implemented"]).toBeUndefined();
  });
});
