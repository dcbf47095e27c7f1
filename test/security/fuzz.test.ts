import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { WS_SUBPROTOCOL } from "../../protocol/index.ts";
import { type ServerProcess, startServer, TEST_API_KEY, TEST_MASTER_KEY } from "../helpers/server-process.ts";

/**
 * A bounded fuzz run of the HTTP bodies and WebSocket frames against the real
 * server: valid requests with fields replaced, dropped, added or retyped, and
 * garbage, from a fixed seed (so a failure reproduces). Every answer must be a
 * clear refusal or a result — never a 5xx, never a crash, never an
 * `internal` error — and the server must still serve afterwards.
 */

const HTTP_CASES = 240;
const WS_CASES = 160;
const SEED = Number(process.env.FUZZ_SEED ?? 20261127);

/** mulberry32: a small seeded PRNG. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const KEYS = [
  "type",
  "id",
  "lang",
  "code",
  "session_id",
  "sessionId",
  "files",
  "tools",
  "name",
  "args",
  "timeout",
  "timeoutMs",
  "stdin",
  "data",
  "eof",
  "signal",
  "results",
  "call_id",
  "continuation_token",
  "tool_results",
  "user_id",
  "entity_id",
  "lastSeq",
  "topic",
  "apiKey",
  "request_id",
  "rate_limits",
  "__proto__",
  "constructor",
];
const STRINGS = [
  "",
  " ",
  "py",
  "bash",
  "js",
  "../../etc/passwd",
  "/etc/shadow",
  "a\u0000b",
  "SIGKILL",
  "SIGSTOP",
  "💥",
  "x".repeat(70_000),
  "%00",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a log4shell-style probe string, not a template
  "${jndi:ldap://x}",
  "<script>",
  "null",
  "NaN",
  "-1",
  "session.open",
  "exec",
  "tool_result",
];

function randomValue(r: () => number, depth = 0): unknown {
  const kind = Math.floor(r() * (depth > 2 ? 6 : 8));
  switch (kind) {
    case 0:
      return null;
    case 1:
      return r() < 0.5;
    case 2:
      return [0, -1, 1e308, -1e308, 2 ** 53 + 1, 0.5, 65536, 4294967296][Math.floor(r() * 8)];
    case 3:
    case 4:
      return STRINGS[Math.floor(r() * STRINGS.length)];
    case 5:
      return String.fromCharCode(...Array.from({ length: Math.floor(r() * 40) }, () => Math.floor(r() * 0xd7ff)));
    case 6:
      return Array.from({ length: Math.floor(r() * 5) }, () => randomValue(r, depth + 1));
    default:
      return Object.fromEntries(Array.from({ length: Math.floor(r() * 5) }, () => [KEYS[Math.floor(r() * KEYS.length)]!, randomValue(r, depth + 1)]));
  }
}

/** A valid object with one to three fields replaced, dropped or added. */
function mutate(r: () => number, valid: Record<string, unknown>): unknown {
  if (r() < 0.1) return randomValue(r);
  const out: Record<string, unknown> = { ...valid };
  const fields = Object.keys(out);
  for (let i = 0, n = 1 + Math.floor(r() * 3); i < n; i++) {
    const roll = r();
    if (roll < 0.4 && fields.length > 0) out[fields[Math.floor(r() * fields.length)]!] = randomValue(r);
    else if (roll < 0.6 && fields.length > 0) delete out[fields[Math.floor(r() * fields.length)]!];
    else out[KEYS[Math.floor(r() * KEYS.length)]!] = randomValue(r);
  }
  return out;
}

const HTTP_TARGETS: Array<{ method: string; path: string; valid: Record<string, unknown>; master?: boolean }> = [
  { method: "POST", path: "/exec", valid: { lang: "py", code: "print(1)" } },
  { method: "POST", path: "/exec/programmatic", valid: { lang: "py", code: "print(1)", tools: [{ name: "t" }] } },
  { method: "POST", path: "/exec/programmatic", valid: { continuation_token: "ct_x", tool_results: [{ call_id: "c", result: 1 }] } },
  { method: "POST", path: "/exec/programmatic/cancel", valid: { request_id: "r" } },
  { method: "POST", path: "/api/v1/admin/keys", valid: { name: "k", rate_limits: { minute: 5 } }, master: true },
];
const PLAIN_TARGETS = ["/files/", "/download/", "/sessions/", "/files/x/", "/api/v1/admin/keys/", "/languages?x=", "/health/detailed?"];

const WS_FRAMES: Array<Record<string, unknown>> = [
  { type: "session.open" },
  { type: "exec", id: "e1", lang: "py", code: "print(1)" },
  { type: "stdin", id: "e1", data: "x", eof: true },
  { type: "signal", id: "e1", signal: "SIGINT" },
  { type: "tool_result", id: "e1", results: [{ call_id: "c", result: 1 }] },
  { type: "subscribe", topic: "pool" },
  { type: "ping" },
  { type: "auth", apiKey: "k" },
];

// Both transports with local sandboxes, and node with Kubernetes pods (the API server stand-in): the same server code, another sandbox provider.
describe.each([
  ["node", "local"],
  ["uws", "local"],
  ["node", "kubernetes"],
] as const)("bounded fuzz of bodies and frames (%s transport, %s sandboxes)", (transport, backend) => {
  let server: ServerProcess;

  beforeAll(async () => {
    server = await startServer({
      transport,
      backend,
      env: { SANDBOX_POOL_ENABLED: "false", MAX_EXECUTION_TIME: "5", RATE_LIMIT_ENABLED: "false", AUTH_FAILURE_LIMIT: "100000" },
    });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it(`answers ${HTTP_CASES} mutated HTTP requests with results or clear 4xx, never a 5xx`, async () => {
    const r = prng(SEED);
    const seen = new Map<number, number>();
    for (let i = 0; i < HTTP_CASES; i++) {
      let response: Response;
      const label = `case ${i} (seed ${SEED})`;
      if (r() < 0.75) {
        const target = HTTP_TARGETS[Math.floor(r() * HTTP_TARGETS.length)]!;
        const raw = r() < 0.15 ? String(randomValue(r)).slice(0, 2000) : JSON.stringify(mutate(r, target.valid));
        response = await fetch(`${server.httpUrl}${target.path}`, {
          method: target.method,
          headers: { "content-type": r() < 0.9 ? "application/json" : "text/plain", "x-api-key": target.master ? TEST_MASTER_KEY : TEST_API_KEY },
          body: raw,
        });
      } else {
        const path = `${PLAIN_TARGETS[Math.floor(r() * PLAIN_TARGETS.length)]}${encodeURIComponent(String(randomValue(r)).slice(0, 300))}`;
        const method = ["GET", "DELETE", "PUT", "PATCH"][Math.floor(r() * 4)]!;
        response = await fetch(`${server.httpUrl}${path}`, { method, headers: { "x-api-key": TEST_API_KEY } });
      }
      const text = await response.text();
      seen.set(response.status, (seen.get(response.status) ?? 0) + 1);
      expect(response.status, `${label}: ${text.slice(0, 300)}`).toBeLessThan(500);
      if (response.status >= 400) expect(() => JSON.parse(text), `${label}: error bodies are JSON`).not.toThrow();
    }
    // The run reached the handlers, not only the validators: some requests ran.
    expect(seen.get(200) ?? 0).toBeGreaterThan(0);
    expect((await fetch(`${server.httpUrl}/health`)).status).toBe(200);
    expect(server.logs.some((line) => line.includes('"msg":"request failed"'))).toBe(false);
  }, 180_000);

  it(`closes on ${WS_CASES} mutated WebSocket frames with protocol codes only, never an internal error`, async () => {
    const r = prng(SEED + 1);
    const closeCodes = new Map<number, number>();
    let socket: WebSocket | undefined;
    let internal = 0;
    const open = () =>
      new Promise<WebSocket>((resolve, reject) => {
        const ws = new WebSocket(server.wsUrl, WS_SUBPROTOCOL, { headers: { "x-api-key": TEST_API_KEY } });
        ws.on("message", (data) => {
          const frame = JSON.parse(data.toString()) as { type: string; code?: string };
          if (frame.type === "error" && frame.code === "internal") internal += 1;
        });
        ws.once("close", (code) => closeCodes.set(code, (closeCodes.get(code) ?? 0) + 1));
        ws.once("open", () => resolve(ws));
        ws.once("error", reject);
      });
    for (let i = 0; i < WS_CASES; i++) {
      if (!socket || socket.readyState !== WebSocket.OPEN) {
        socket = await open();
        socket.send(JSON.stringify({ type: "session.open" }));
      }
      const roll = r();
      if (roll < 0.05) socket.send(Buffer.from([0, 1, 2, 3]));
      else if (roll < 0.15) socket.send(String(randomValue(r)).slice(0, 5000));
      else socket.send(JSON.stringify(mutate(r, WS_FRAMES[Math.floor(r() * WS_FRAMES.length)]!)));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    socket?.close();
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(internal).toBe(0);
    // 1000/1005: our own close; 4002: invalid frame; 1009: a frame too large; 4001: an `auth` frame with a wrong key;
    // 4003: a session that does not exist; 4008: rate limited. Never 1011 (internal error) or an abrupt 1006.
    for (const code of closeCodes.keys()) {
      expect([1000, 1005, 1009, 4001, 4002, 4003, 4008], `close codes seen: ${JSON.stringify([...closeCodes])}`).toContain(code);
    }
    expect(closeCodes.get(4002) ?? 0).toBeGreaterThan(0);
    expect((await fetch(`${server.httpUrl}/health`)).status).toBe(200);
  }, 180_000);
});
