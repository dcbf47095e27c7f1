import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServerProcess, startServer, TEST_API_KEY } from "../helpers/server-process.ts";
import { TestClient } from "../helpers/ws-client.ts";

/**
 * Behind the TLS proxy SECURITY.md recommends, every client has the proxy's
 * address: one client guessing keys must not get everyone else blocked. With
 * TRUSTED_PROXIES the limiter counts the client X-Forwarded-For names; from a
 * peer that is not a trusted proxy the header changes nothing.
 */
const LIMIT = 3;
const exec = (server: ServerProcess, key: string, forwardedFor?: string) =>
  fetch(`${server.httpUrl}/exec`, {
    method: "POST",
    headers: { "x-api-key": key, "content-type": "application/json", ...(forwardedFor ? { "x-forwarded-for": forwardedFor } : {}) },
    body: JSON.stringify({ lang: "bash", code: "echo ok" }),
  });
/** Wrong keys from `forwardedFor` until the limiter blocks it (429). */
const guessKeys = async (server: ServerProcess, forwardedFor: string) => {
  for (let i = 0; i <= LIMIT; i++) await exec(server, `wrong-key-${i}-0123456789`, forwardedFor);
  expect((await exec(server, TEST_API_KEY, forwardedFor)).status).toBe(429);
};

describe.each(["node", "uws"] as const)("the auth-failure limiter behind a proxy (%s)", (transport) => {
  const env = { SANDBOX_POOL_ENABLED: "false", AUTH_FAILURE_LIMIT: String(LIMIT) };
  let behindProxy: ServerProcess;
  let direct: ServerProcess;

  beforeAll(async () => {
    [behindProxy, direct] = await Promise.all([
      startServer({ transport, env: { ...env, TRUSTED_PROXIES: "127.0.0.1" } }),
      // The proxy named is not the peer the tests connect from: the header must be ignored.
      startServer({ transport, env: { ...env, TRUSTED_PROXIES: "10.0.0.0/8" } }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([behindProxy?.stop(), direct?.stop()]);
  });

  it("blocks the client that guesses keys, not the others behind the same proxy (HTTP and WebSocket)", async () => {
    await guessKeys(behindProxy, "203.0.113.1");
    const other = await exec(behindProxy, TEST_API_KEY, "203.0.113.2");
    expect(other.status).toBe(200);
    expect(((await other.json()) as { stdout: string }).stdout).toBe("ok\n");
    const ws = await TestClient.connect(behindProxy.wsUrl, { apiKey: TEST_API_KEY, headers: { "x-forwarded-for": "203.0.113.3" } });
    try {
      expect((await ws.openSession()).type).toBe("session.ready");
    } finally {
      ws.terminate();
    }
    // The guesser itself stays blocked, also over WebSocket.
    const blocked = new TestClient(behindProxy.wsUrl, { apiKey: TEST_API_KEY, headers: { "x-forwarded-for": "203.0.113.1" } });
    await blocked.opened.catch(() => {});
    await blocked.closed;
    expect(blocked.closeCode ?? 0).not.toBe(1000);
  });

  it("ignores X-Forwarded-For from a peer that is not a trusted proxy: a client cannot pick its address", async () => {
    await guessKeys(direct, "203.0.113.1");
    // Another forged address does not escape the block: the limiter counts the real peer.
    expect((await exec(direct, TEST_API_KEY, "203.0.113.99")).status).toBe(429);
  });
});
