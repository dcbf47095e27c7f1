import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServerProcess, startServer, TEST_API_KEY, TEST_MASTER_KEY } from "../helpers/server-process.ts";
import { TestClient } from "../helpers/ws-client.ts";

/**
 * A session belongs to the key, and the end user (`userId`), that opened it:
 * over WebSocket, another key or another user of the same key cannot attach
 * to or resume it, and is told exactly what an unknown id gets (4003
 * session_not_found), so ids do not leak; the master key sees every session.
 * (The HTTP routes' side of the same rule is in test/integration/http-api.test.ts.)
 */
const OTHER_KEY = "other-key-0123456789abcdef";
// biome-ignore lint/suspicious/noExplicitAny: frames are checked field by field
type Json = any;

describe.each(["node", "uws"] as const)("session ownership over WebSocket (%s transport)", (transport) => {
  let server: ServerProcess;
  const clients: TestClient[] = [];

  beforeAll(async () => {
    server = await startServer({ transport, env: { API_KEYS: OTHER_KEY, SANDBOX_POOL_ENABLED: "false" } });
  });
  afterAll(async () => {
    for (const client of clients) client.terminate();
    await server?.stop();
  });

  const connect = async (apiKey: string) => {
    const client = await TestClient.connect(server.wsUrl, { apiKey });
    clients.push(client);
    return client;
  };

  /** Try to attach to `sessionId`: the session.ready frame, or the close code and error code. */
  const attach = async (apiKey: string, sessionId: string, userId?: string): Promise<Json> => {
    const client = await connect(apiKey);
    client.send({ type: "session.open", sessionId, lastSeq: 0, ...(userId !== undefined ? { userId } : {}) });
    const frame: Json = await client.waitFor((f) => f.type === "session.ready" || f.type === "error");
    if (frame.type === "session.ready") return { ready: frame, client };
    await client.closed;
    return { closeCode: client.closeCode, code: frame.code, message: frame.message };
  };

  it("keeps a user's session to that key and user; strangers get what an unknown id gets", async () => {
    const owner = await connect(TEST_API_KEY);
    const ready: Json = await owner.openSession({ userId: "alice" });
    expect(ready.type).toBe("session.ready");
    const { stdout } = await owner.run("secret", "bash", "echo s3cret > /mnt/data/secret.txt; echo ok");
    expect(stdout).toBe("ok\n");

    const unknown = await attach(TEST_API_KEY, "A".repeat(32), "alice");
    expect(unknown).toMatchObject({ closeCode: 4003, code: "session_not_found" });
    for (const [key, userId] of [
      [OTHER_KEY, "alice"],
      [OTHER_KEY, undefined],
      [TEST_API_KEY, "bob"],
      [TEST_API_KEY, undefined],
    ] as const) {
      const refused = await attach(key, ready.sessionId, userId);
      expect(refused, `${key === OTHER_KEY ? "other key" : "same key"}, user ${userId}`).toEqual({
        ...unknown,
        message: unknown.message!.replace("A".repeat(32), ready.sessionId),
      });
    }

    const same = await attach(TEST_API_KEY, ready.sessionId, "alice");
    expect(same.ready).toMatchObject({ sessionId: ready.sessionId, resumed: true });
    const again = await same.client!.run("read", "bash", "cat /mnt/data/secret.txt");
    expect(again.stdout).toBe("s3cret\n");
    const master = await attach(TEST_MASTER_KEY, ready.sessionId);
    expect(master.ready).toMatchObject({ sessionId: ready.sessionId, resumed: true });
  });

  it("keeps a session without a user to its key only", async () => {
    const owner = await connect(TEST_API_KEY);
    const ready: Json = await owner.openSession();
    expect(await attach(OTHER_KEY, ready.sessionId)).toMatchObject({ closeCode: 4003, code: "session_not_found" });
    expect((await attach(TEST_API_KEY, ready.sessionId, "anyone")).ready).toMatchObject({ sessionId: ready.sessionId, resumed: true });
  });

  it("gives sessions unguessable ids: 21 base62 characters, none alike", async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 5; i++) {
      const client = await connect(TEST_API_KEY);
      const ready: Json = await client.openSession();
      expect(ready.sessionId).toMatch(/^[0-9A-Za-z]{21}$/);
      ids.add(ready.sessionId);
    }
    expect(ids.size).toBe(5);
  });
});
