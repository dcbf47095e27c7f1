import { readdirSync } from "node:fs";
import { totalmem } from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SANDBOX_ID_PATTERN } from "../../server/sandbox/local/host-files.ts";
import { type ServerProcess, startServer, TEST_API_KEY } from "../helpers/server-process.ts";

/**
 * One tenant's burst of session-less /exec calls must not take the machine:
 * without MAX_LIVE_SANDBOXES set, the server derives a cap from the machine's
 * memory and MAX_MEMORY_MB, and at the cap reclaims the least recently used
 * idle sandbox (its Python state saved) rather than starting one more. Within
 * that, one principal (a key and end user) holds at most half of them: its
 * burst reclaims its own sandboxes, never another tenant's.
 */
const CAP = 4;
// MAX_MEMORY_MB such that 80% of this machine's memory holds CAP sandboxes (and not CAP + 1).
const MEMORY_MB = Math.floor((totalmem() * 0.8) / CAP / 1024 ** 2);

const OTHER_KEY = "other-tenant-key-0123456789";

const exec = async (server: ServerProcess, body: Record<string, unknown>, apiKey = TEST_API_KEY) => {
  const reply = await fetch(`${server.httpUrl}/exec`, {
    method: "POST",
    headers: { "x-api-key": apiKey, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: reply.status, json: (await reply.json()) as { session_id: string; stdout: string; stderr: string } };
};

describe("the default cap on live sandboxes", () => {
  let server: ServerProcess;
  const liveSandboxes = () => readdirSync(server.baseDir).filter((name) => SANDBOX_ID_PATTERN.test(name)).length;

  beforeAll(async () => {
    server = await startServer({ transport: "node", env: { SANDBOX_POOL_ENABLED: "false", MAX_MEMORY_MB: String(MEMORY_MB), API_KEYS: OTHER_KEY } });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it(`holds at most ${CAP} sandboxes through 8 session-less /exec calls, each answered, the first one's variables kept`, async () => {
    const first = await exec(server, { lang: "py", code: "kept = 41\nprint('first')" });
    expect(first.json.stdout).toBe("first\n");
    let most = liveSandboxes();
    for (let i = 1; i < 8; i++) {
      const { status, json } = await exec(server, { lang: "py", code: `print(${i})` });
      expect({ status, stdout: json.stdout }).toEqual({ status: 200, stdout: `${i}\n` });
      most = Math.max(most, liveSandboxes());
    }
    expect(most).toBeLessThanOrEqual(CAP);
    // The first session's sandbox was reclaimed on the way; its state comes back with it.
    const again = await exec(server, { lang: "py", code: "print(kept + 1)", session_id: first.json.session_id });
    expect({ stdout: again.json.stdout, stderr: again.json.stderr }).toEqual({ stdout: "42\n", stderr: "" });
  });

  it(`keeps one key to ${CAP / 2} sandboxes (the derived MAX_SANDBOXES_PER_PRINCIPAL): another key's idle sandbox survives its burst`, async () => {
    // /tmp lives and dies with the sandbox (unlike /mnt/data and Python state): it tells whether this one was reclaimed.
    const other = await exec(server, { lang: "bash", code: "echo mine > /tmp/marker; echo ok" }, OTHER_KEY);
    expect(other.json.stdout).toBe("ok\n");
    for (let i = 0; i < 6; i++) {
      const { status, json } = await exec(server, { lang: "py", code: `print(${i})` });
      expect({ status, stdout: json.stdout }).toEqual({ status: 200, stdout: `${i}\n` });
      expect(liveSandboxes()).toBeLessThanOrEqual(CAP / 2 + 1);
    }
    const again = await exec(server, { lang: "bash", code: "cat /tmp/marker", session_id: other.json.session_id }, OTHER_KEY);
    expect({ stdout: again.json.stdout, stderr: again.json.stderr }).toEqual({ stdout: "mine\n", stderr: "" });
  });
});
