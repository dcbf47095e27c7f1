import { describe, expect, it } from "vitest";
import { InProcessEventBus } from "../../../server/events/event-bus.ts";
import { poolFigures, routeLabel, ServiceMetrics } from "../../../server/metrics/registry.ts";

const at = () => new Date().toISOString();

function setup(options: { replicaId?: string; pool?: () => Record<string, unknown> | undefined } = {}) {
  const events = new InProcessEventBus();
  let sessions = 2;
  const metrics = new ServiceMetrics({
    events,
    ...(options.replicaId ? { replicaId: options.replicaId } : {}),
    sessionsLive: () => sessions,
    sandboxesLive: () => 3,
    ...(options.pool ? { poolStats: options.pool } : {}),
  });
  return { events, metrics, setSessions: (n: number) => (sessions = n) };
}

describe("ServiceMetrics", () => {
  it("counts executions from the event bus, by language and reason, with latency histograms", async () => {
    const { events, metrics } = setup();
    events.publish({ topic: "executions", kind: "started", at: at(), sessionId: "s1", execId: "e1", lang: "py" });
    events.publish({ topic: "executions", kind: "finished", at: at(), sessionId: "s1", execId: "e1", lang: "py", reason: "exited", wallMs: 12 });
    events.publish({ topic: "executions", kind: "started", at: at(), sessionId: "s1", execId: "e2", lang: "py" });
    events.publish({ topic: "executions", kind: "finished", at: at(), sessionId: "s1", execId: "e2", lang: "py", reason: "timeout", wallMs: 1000 });
    const { body, contentType } = await metrics.render();
    expect(contentType).toMatch(/^text\/plain/);
    expect(body).toContain('code_interpreter_executions_started_total{lang="py"} 2');
    expect(body).toContain('code_interpreter_executions_total{lang="py",reason="exited"} 1');
    expect(body).toContain('code_interpreter_executions_total{lang="py",reason="timeout"} 1');
    expect(body).toContain('code_interpreter_exec_duration_seconds_count{lang="py"} 2');
    expect(body).toContain('code_interpreter_exec_wall_seconds_bucket{le="0.025",lang="py"} 1');
    expect(body).toContain("code_interpreter_process_resident_memory_bytes");
    metrics.close();
  });

  it("counts only this replica's events when they come from every replica", async () => {
    const { events, metrics } = setup({ replicaId: "me" });
    events.publish({ topic: "executions", kind: "finished", at: at(), lang: "js", reason: "exited", wallMs: 1, replica: "other" });
    events.publish({ topic: "executions", kind: "finished", at: at(), lang: "js", reason: "exited", wallMs: 1, replica: "me" });
    expect((await metrics.render()).body).toContain('code_interpreter_executions_total{lang="js",reason="exited"} 1');
    metrics.close();
  });

  it("records HTTP requests, WebSocket connections, streamed bytes and gauges", async () => {
    const { metrics, setSessions } = setup();
    metrics.observeHttp({ method: "POST", route: "/exec", status: 200, seconds: 0.004 });
    metrics.observeHttp({ method: "BREW", route: "unmatched", status: 404, seconds: 0.001 });
    metrics.wsOpened();
    metrics.wsOpened();
    metrics.wsClosed();
    metrics.wsFrameSent(JSON.stringify({ type: "out", id: "1", stream: "stdout", data: "héllo\n", sessionId: "s", seq: 1 }));
    metrics.wsFrameSent(JSON.stringify({ type: "out", id: "1", stream: "stderr", data: Buffer.from("abc").toString("base64"), encoding: "base64" }));
    metrics.wsFrameSent(JSON.stringify({ type: "exit", id: "1" }));
    setSessions(7);
    const { body } = await metrics.render();
    expect(body).toContain('code_interpreter_http_requests_total{method="POST",route="/exec",status="200"} 1');
    expect(body).toContain('code_interpreter_http_requests_total{method="OTHER",route="unmatched",status="404"} 1');
    expect(body).toContain('code_interpreter_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/exec"} 1');
    expect(body).toContain("code_interpreter_websocket_connections 1");
    expect(body).toContain("code_interpreter_websocket_connections_total 2");
    expect(body).toContain('code_interpreter_streamed_bytes_total{stream="stdout"} 7');
    expect(body).toContain('code_interpreter_streamed_bytes_total{stream="stderr"} 3');
    expect(body).toContain("code_interpreter_sessions_live 7");
    expect(body).toContain("code_interpreter_sandboxes_live 3");
    expect(body).toContain("code_interpreter_pool_enabled 0");
    metrics.close();
  });

  it("reads the pool through its callback at scrape time, and survives one that throws", async () => {
    let stats: Record<string, unknown> | undefined = { enabled: true, size: 4, target: 5, creating: 1, hits: 10, misses: 2 };
    const { metrics } = setup({ pool: () => stats });
    let body = (await metrics.render()).body;
    expect(body).toContain("code_interpreter_pool_enabled 1");
    expect(body).toContain('code_interpreter_pool_warm_sandboxes{lang="all"} 4');
    expect(body).toContain('code_interpreter_pool_starting_sandboxes{lang="all"} 1');
    expect(body).toContain('code_interpreter_pool_hits_total{lang="all"} 10');
    expect(body).toContain('code_interpreter_pool_misses_total{lang="all"} 2');
    stats = { size: 6, hits: 11, misses: 2 };
    body = (await metrics.render()).body;
    expect(body).toContain('code_interpreter_pool_warm_sandboxes{lang="all"} 6');
    expect(body).toContain('code_interpreter_pool_hits_total{lang="all"} 11');
    stats = undefined;
    expect((await metrics.render()).body).toContain("code_interpreter_pool_enabled 0");
    const broken = setup({
      pool: () => {
        throw new Error("no pool");
      },
    });
    expect((await broken.metrics.render()).body).toContain("code_interpreter_pool_enabled 0");
    metrics.close();
    broken.metrics.close();
  });
});

describe("poolFigures and routeLabel", () => {
  it("breaks pool figures down by language when the pool does", () => {
    expect(poolFigures({ byLanguage: { py: { size: 2 }, js: { size: 1 } } }, (s) => s.size)).toEqual([
      ["py", 2],
      ["js", 1],
      ["all", 3],
    ]);
  });

  it("turns parameter segments into their names", () => {
    expect(routeLabel("/files/abc123", { sessionId: "abc123" })).toBe("/files/:sessionId");
    expect(routeLabel("/download/s%20x/f1", { sessionId: "s x", fileId: "f1" })).toBe("/download/:sessionId/:fileId");
    expect(routeLabel("/exec", {})).toBe("/exec");
  });
});
