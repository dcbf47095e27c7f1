import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { hashKey } from "../../../server/auth/api-keys.ts";
import { runKeysCommand } from "../../../server/auth/keys-cli.ts";
import { LocalKeyStore } from "../../../server/auth/local-key-store.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "ci-keys-cli-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function keys(args: string[], env: Record<string, string> = {}) {
  let stdout = "";
  let stderr = "";
  const code = await runKeysCommand(
    args,
    { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) } },
    { env: { FILE_STORAGE_PATH: dir, MASTER_API_KEY: "master-key-0123456789abcdef", ...env }, envFile: false },
  );
  return { code, stdout, stderr };
}

// biome-ignore lint/suspicious/noExplicitAny: JSON output checked field by field
const json = (text: string): any => JSON.parse(text);

describe("keys CLI", () => {
  it("creates a key, prints it once, and stores only its hash", async () => {
    const created = await keys(["create", "--name", "ci bot", "--rate-limit", "minute=60,per_day=1000", "--json"]);
    expect(created.code).toBe(0);
    const body = json(created.stdout);
    expect(body.key).toMatch(/^sk-[0-9A-Za-z]{48}$/);
    expect(body).toMatchObject({
      key_hash: hashKey(body.key),
      name: "ci bot",
      enabled: true,
      rate_limits: { per_second: null, per_minute: 60, per_hour: null, per_day: 1000, per_month: null },
      usage: { requests: 0, last_used_at: null },
    });
    const stored = await (await LocalKeyStore.open(dir)).get(body.key_hash);
    expect(stored?.rateLimits).toEqual({ minute: 60, day: 1000 });

    const listed = await keys(["list", "--json"]);
    expect(json(listed.stdout)).toEqual([expect.objectContaining({ key_hash: body.key_hash, name: "ci bot" })]);
    expect(listed.stdout).not.toContain(body.key);
    const table = await keys(["list"]);
    expect(table.stdout).toContain(body.key_hash.slice(0, 16));
    expect(table.stdout).toContain("60/minute, 1000/day");
  });

  it("fills windows left out from RATE_LIMIT_DEFAULT_PER_*, and `none` overrides a default", async () => {
    const env = { RATE_LIMIT_DEFAULT_PER_MINUTE: "30", RATE_LIMIT_DEFAULT_PER_MONTH: "5000" };
    const body = json((await keys(["create", "--rate-limit", "month=none", "--json"], env)).stdout);
    expect(body.rate_limits).toMatchObject({ per_minute: 30, per_month: null });
  });

  it("disables, enables and deletes by full hash or unique prefix", async () => {
    const { key_hash: hash } = json((await keys(["create", "--json"])).stdout);
    const prefix = hash.slice(0, 10);
    expect(await keys(["disable", prefix])).toMatchObject({ code: 0, stdout: expect.stringContaining(`disabled ${hash}`) });
    expect(json((await keys(["list", "--json"])).stdout)[0].enabled).toBe(false);
    expect((await keys(["enable", hash])).code).toBe(0);
    expect(json((await keys(["list", "--json"])).stdout)[0].enabled).toBe(true);
    expect((await keys(["delete", hash])).code).toBe(0);
    expect(json((await keys(["list", "--json"])).stdout)).toEqual([]);
    expect(await keys(["delete", hash])).toMatchObject({ code: 1, stderr: expect.stringContaining("no key") });
  });

  it("explains wrong arguments", async () => {
    expect(await keys(["disable", "sk-abcdef"])).toMatchObject({ code: 1, stderr: expect.stringContaining("not the key itself") });
    expect(await keys(["disable", "abc"])).toMatchObject({ code: 1, stderr: expect.stringContaining("8 to 64 hex") });
    expect(await keys(["create", "--rate-limit", "week=5"])).toMatchObject({ code: 2, stderr: expect.stringContaining("WINDOW=N") });
    expect(await keys(["create", "--bogus"])).toMatchObject({ code: 2, stderr: expect.stringContaining("unknown option") });
    expect(await keys(["rotate"])).toMatchObject({ code: 2, stderr: expect.stringContaining("unknown keys command") });
    expect(await keys([])).toMatchObject({ code: 2, stderr: expect.stringContaining("usage:") });
  });

  it("refuses to manage keys without MASTER_API_KEY (the guides require it)", async () => {
    const result = await keys(["list"], { MASTER_API_KEY: "" });
    expect(result).toMatchObject({ code: 1, stderr: expect.stringContaining("MASTER_API_KEY is not configured") });
  });
});
