import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jwksOf, mintToken, newSigner, type TestSigner } from "../helpers/librechat-tokens.ts";
import { type ServerProcess, startServer, TEST_API_KEY, TEST_MASTER_KEY } from "../helpers/server-process.ts";
import { TestClient } from "../helpers/ws-client.ts";

/**
 * The current LibreChat host with CODEAPI_AUTH_PROVIDER=librechat-jwt or
 * both: every request carries `Authorization: Bearer <JWT>` minted as the host
 * mints it, and the server's principal is the token's (tenant_id, sub).
 */
// biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
type Json = any;

let ed: TestSigner;
let rsa: TestSigner;

beforeAll(async () => {
  ed = await newSigner("EdDSA", "lc-codeapi-2026-05");
  rsa = await newSigner("RS256", "lc-rsa-2026");
});

/** POST /exec, optionally from another loopback address (the auth-failure limiter counts per address). */
function exec(
  server: ServerProcess,
  body: Record<string, unknown>,
  headers: Record<string, string>,
  localAddress = "127.0.0.1",
): Promise<{ status: number; json: Json }> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port: server.port, path: "/exec", method: "POST", localAddress, headers: { ...headers, "content-type": "application/json" } },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          text += chunk;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : {} }));
      },
    );
    req.once("error", reject);
    req.end(payload);
  });
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe("CODEAPI_AUTH_PROVIDER=both", () => {
  let server: ServerProcess;
  const clients: TestClient[] = [];

  beforeAll(async () => {
    server = await startServer({
      transport: "node",
      env: { SANDBOX_POOL_ENABLED: "false", CODEAPI_AUTH_PROVIDER: "both", CODEAPI_JWT_JWKS_JSON: jwksOf(ed, rsa), AUTH_FAILURE_LIMIT: "3" },
    });
  });
  afterAll(async () => {
    for (const client of clients) client.terminate();
    await server?.stop();
  });

  it("runs code for an EdDSA and an RS256 token, and for an API key beside them", async () => {
    for (const signer of [ed, rsa]) {
      const reply = await exec(server, { lang: "py", code: "print(6 * 7)" }, bearer(await mintToken(signer, { sub: "alice", tenantId: "acme" })));
      expect({ status: reply.status, stdout: reply.json.stdout }).toEqual({ status: 200, stdout: "42\n" });
    }
    const keyed = await exec(server, { lang: "py", code: "print(1)" }, { "x-api-key": TEST_API_KEY });
    expect({ status: keyed.status, stdout: keyed.json.stdout }).toEqual({ status: 200, stdout: "1\n" });
  });

  it("keeps a session to its token's tenant and user: another user, another tenant and a body user_id get nothing of it", async () => {
    const alice = bearer(await mintToken(ed, { sub: "alice", tenantId: "acme" }));
    const made = await exec(server, { lang: "bash", code: "echo top-secret > /mnt/data/secret.txt; echo made" }, alice);
    expect(made.json.stdout).toBe("made\n");
    const sessionId = made.json.session_id as string;
    const fileId = (made.json.files as Array<{ id: string; name: string }>).find((f) => f.name === "secret.txt")!.id;

    // The listing names a file `<session>/<file id>` (what the LibreChat clients read).
    const list = async (headers: Record<string, string>) => (await (await fetch(`${server.httpUrl}/files/${sessionId}`, { headers })).json()) as Json[];
    const download = async (headers: Record<string, string>) => (await fetch(`${server.httpUrl}/download/${sessionId}/${fileId}`, { headers })).status;
    expect((await list(alice)).map((f) => f.name)).toContain(`${sessionId}/${fileId}`);
    expect(await download(alice)).toBe(200);

    const bob = bearer(await mintToken(ed, { sub: "bob", tenantId: "acme" }));
    const aliceElsewhere = bearer(await mintToken(ed, { sub: "alice", tenantId: "globex" }));
    for (const other of [bob, aliceElsewhere, { "x-api-key": TEST_API_KEY }]) {
      expect(await list(other)).toEqual([]);
      expect(await download(other)).toBe(404);
      // Naming the owner in the body or the User-Id header changes nothing.
      expect(await list({ ...other, "user-id": "alice" })).toEqual([]);
      const reach = await exec(server, { lang: "bash", code: "cat /mnt/data/secret.txt 2>&1 || true", session_id: sessionId, user_id: "alice" }, other);
      expect(reach.json.stdout ?? "").not.toContain("top-secret");
    }
  });

  it("answers every refused token with 401, and counts it as a failed login for its address", async () => {
    const refused = [await mintToken(ed, { iatOffset: -400 }), await mintToken(ed, { iss: "evil" }), await mintToken(ed, { header: { kid: "unknown" } })];
    for (const token of refused) {
      const reply = await exec(server, { lang: "py", code: "print(1)" }, bearer(token), "127.0.0.9");
      expect(reply.status).toBe(401);
    }
    // AUTH_FAILURE_LIMIT=3: that address is blocked now, even with a good token; others are not.
    expect((await exec(server, { lang: "py", code: "print(1)" }, bearer(await mintToken(ed)), "127.0.0.9")).status).toBe(429);
    expect((await exec(server, { lang: "py", code: "print(1)" }, bearer(await mintToken(ed)))).status).toBe(200);
  });

  it("WebSocket: a token on the upgrade opens a session for its user; another user cannot attach to it", async () => {
    const client = await TestClient.connect(server.wsUrl, { headers: bearer(await mintToken(ed, { sub: "carol", tenantId: "acme" })) });
    clients.push(client);
    const ready = await client.openSession();
    expect(ready.type).toBe("session.ready");
    const run = await client.run("t1", "py", "print('via token')");
    expect(run).toMatchObject({ exit: { reason: "exited", code: 0 }, stdout: "via token\n" });

    const intruder = await TestClient.connect(server.wsUrl, { headers: bearer(await mintToken(ed, { sub: "dave", tenantId: "acme" })) });
    clients.push(intruder);
    intruder.send({ type: "session.open", sessionId: ready.sessionId, userId: "carol" });
    await intruder.closed;
    expect(intruder.closeCode).toBe(4003);
  });
});

describe("CODEAPI_AUTH_PROVIDER=librechat-jwt", () => {
  let server: ServerProcess;
  beforeAll(async () => {
    server = await startServer({
      transport: "uws",
      env: { SANDBOX_POOL_ENABLED: "false", CODEAPI_AUTH_PROVIDER: "librechat-jwt", CODEAPI_JWT_JWKS_JSON: jwksOf(ed) },
    });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("takes tokens and refuses API keys on user routes; the master key keeps the admin routes", async () => {
    const token = await fetch(`${server.httpUrl}/exec`, {
      method: "POST",
      headers: { ...bearer(await mintToken(ed)), "content-type": "application/json" },
      body: JSON.stringify({ lang: "py", code: "print(2)" }),
    });
    expect({ status: token.status, stdout: ((await token.json()) as Json).stdout }).toEqual({ status: 200, stdout: "2\n" });
    const keyed = await fetch(`${server.httpUrl}/exec`, {
      method: "POST",
      headers: { "x-api-key": TEST_API_KEY, "content-type": "application/json" },
      body: JSON.stringify({ lang: "py", code: "print(2)" }),
    });
    expect(keyed.status).toBe(401);
    const admin = await fetch(`${server.httpUrl}/api/v1/admin/keys`, { headers: { "x-api-key": TEST_MASTER_KEY } });
    expect(admin.status).toBe(200);
  });
});
