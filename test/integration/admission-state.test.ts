import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RedisServers, startRedis } from "../helpers/redis-servers.ts";
import { type ServerProcess, startServer, TEST_API_KEY } from "../helpers/server-process.ts";

/**
 * Admission across the fleet and saved state under the live-sandbox cap, with
 * real server processes (and a real redis-server where said).
 */

const headers = { "x-api-key": TEST_API_KEY, "content-type": "application/json" };

interface ExecResult {
  status: number;
  retryAfter: string | null;
  json: { session_id?: string; stdout?: string; stderr?: string; error_type?: string };
}

async function exec(server: ServerProcess, body: Record<string, unknown>): Promise<ExecResult> {
  const response = await fetch(`${server.httpUrl}/exec`, { method: "POST", headers, body: JSON.stringify(body) });
  return { status: response.status, retryAfter: response.headers.get("retry-after"), json: JSON.parse(await response.text()) as ExecResult["json"] };
}

/** A bash program that prints its start and end time (ns since the epoch) around a sleep. */
const timed = (seconds: number) => `echo start $(date +%s%N); sleep ${seconds}; echo end $(date +%s%N)`;
const times = (stdout: string | undefined) => {
  const start = /start (\d+)/.exec(stdout ?? "")?.[1];
  const end = /end (\d+)/.exec(stdout ?? "")?.[1];
  if (!start || !end) throw new Error(`no timestamps in ${JSON.stringify(stdout)}`);
  return { start: BigInt(start), end: BigInt(end) };
};

async function until(check: () => Promise<boolean> | boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("MAX_CONCURRENT_EXECUTIONS across two replicas sharing a real redis-server", () => {
  let redis: RedisServers;
  let a: ServerProcess;
  let b: ServerProcess;

  beforeAll(async () => {
    redis = await startRedis("standalone");
    const env = {
      ...redis.env,
      REDIS_KEY_PREFIX: "adm-test:",
      MAX_CONCURRENT_EXECUTIONS: "1",
      ADMISSION_QUEUE_TIMEOUT: "2.5",
      SANDBOX_POOL_ENABLED: "false",
    };
    [a, b] = await Promise.all([startServer({ transport: "node", env }), startServer({ transport: "node", env })]);
  });

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await redis?.stop();
  });

  it("runs an exec on replica B only once the one on replica A has ended, never both at once", async () => {
    const first = exec(a, { lang: "bash", code: timed(1.2) });
    await new Promise((r) => setTimeout(r, 400));
    const second = await exec(b, { lang: "bash", code: timed(0.1) });
    const done = await first;
    expect(done.status).toBe(200);
    expect(second.status).toBe(200);
    const ta = times(done.json.stdout);
    const tb = times(second.json.stdout);
    // B's program started after A's ended.
    expect(tb.start > ta.end, `A ${ta.start}..${ta.end}, B ${tb.start}..${tb.end}`).toBe(true);
  });

  it("refuses the exec on replica B with 503 and Retry-After once it waited past ADMISSION_QUEUE_TIMEOUT", async () => {
    const first = exec(a, { lang: "bash", code: timed(4) });
    await new Promise((r) => setTimeout(r, 400));
    const asked = Date.now();
    const refused = await exec(b, { lang: "bash", code: timed(0) });
    expect(refused.status).toBe(503);
    expect(Number(refused.retryAfter)).toBeGreaterThan(0);
    expect(refused.json.error_type).toBe("service_unavailable");
    expect(Date.now() - asked).toBeGreaterThanOrEqual(2_000);
    const done = await first;
    expect(done.status).toBe(200);
    expect(times(done.json.stdout).end > times(done.json.stdout).start).toBe(true);
    // The slot came back: B runs now.
    expect((await exec(b, { lang: "bash", code: "echo free" })).json.stdout).toBe("free\n");
  });
});

const DEFINE = [
  "import pandas as pd",
  "total = 42",
  "def double(x):\n    return 2 * x",
  "df = pd.DataFrame({'a': [1, 2, 3], 'b': [4.5, 5.5, 6.5]})",
  "print('defined')",
].join("\n");
const CHECK = "print(total, double(21), int(df['a'].sum()), round(float(df['b'].mean()), 1))";

/** The archived state files of a session in the local file store (internal files, never listed). */
function archivedState(server: ServerProcess, sessionId: string): string[] {
  const dir = join(server.storageDir, "files", sessionId);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((name) => name.endsWith(".json"))
    .filter((name) => (JSON.parse(readFileSync(join(dir, name), "utf8")) as { name?: string }).name === ".code-interpreter/python-state");
}

describe("MAX_LIVE_SANDBOXES=1 with saved Python state (no Redis: the file store)", () => {
  let server: ServerProcess;
  const live = () => readdirSync(server.baseDir).filter((name) => !name.startsWith(".")).length; // not .owner, the lock

  beforeAll(async () => {
    server = await startServer({ transport: "node", env: { MAX_LIVE_SANDBOXES: "1", SANDBOX_POOL_ENABLED: "false" } });
  });

  afterAll(async () => {
    await server?.stop();
  });

  it("reclaims the least recently used session's sandbox and restores its variables in its next exec", async () => {
    const one = await exec(server, { lang: "py", code: DEFINE });
    expect(one.json.stdout, one.json.stderr).toBe("defined\n");
    const sid1 = one.json.session_id!;
    expect(live()).toBe(1);
    const two = await exec(server, { lang: "py", code: "x = 1\nprint('two')" });
    expect(two.json.stdout).toBe("two\n");
    const sid2 = two.json.session_id!;
    expect(sid2).not.toBe(sid1);
    expect(live()).toBe(1);
    // Without Redis the state goes to the file store at once.
    expect(archivedState(server, sid1)).toHaveLength(1);
    const again = await exec(server, { lang: "py", code: CHECK, session_id: sid1 });
    expect(again.json, JSON.stringify(again.json)).toMatchObject({ session_id: sid1, stdout: "42 42 6 5.5\n" });
    expect(again.json.stderr ?? "").not.toMatch(/\[state\]/);
    expect(live()).toBe(1);
    // And session 2's variable came back the same way.
    const back = await exec(server, { lang: "py", code: "print(x)", session_id: sid2 });
    expect(back.json).toMatchObject({ session_id: sid2, stdout: "1\n" });
  });

  it("never lets two sessions starting at once both take the last sandbox slot", async () => {
    let most = 0;
    const sampler = setInterval(() => {
      most = Math.max(most, live());
    }, 20);
    try {
      // Two new sessions at once, neither idle: one gets the slot (reclaiming an idle one), the other is refused.
      const results = await Promise.all([0, 1].map((i) => exec(server, { lang: "bash", code: `sleep 1; echo ran ${i}` })));
      const ran = results.filter((r) => r.status === 200 && /^ran \d\n$/.test(r.json.stdout ?? ""));
      expect(ran, JSON.stringify(results)).toHaveLength(1);
      // The other one is told to come back later: 503 with Retry-After, not a failed run.
      const refused = results.find((r) => r !== ran[0])!;
      expect(refused.status, JSON.stringify(refused)).toBe(503);
      expect(refused.json.error_type).toBe("service_unavailable");
      expect(Number(refused.retryAfter)).toBeGreaterThan(0);
    } finally {
      clearInterval(sampler);
    }
    expect(most).toBe(1);
  });
});

describe("MAX_LIVE_SANDBOXES=1 with saved Python state in Redis, archived to the file store", () => {
  let redis: RedisServers;
  let direct: Redis;
  let server: ServerProcess;
  const PREFIX = "state-test:";
  const live = () => readdirSync(server.baseDir).filter((name) => !name.startsWith(".")).length; // not .owner, the lock

  beforeAll(async () => {
    redis = await startRedis("standalone");
    direct = new Redis(redis.url!, { lazyConnect: true });
    await direct.connect();
    server = await startServer({
      transport: "node",
      env: {
        ...redis.env,
        REDIS_KEY_PREFIX: PREFIX,
        MAX_LIVE_SANDBOXES: "1",
        SANDBOX_POOL_ENABLED: "false",
        STATE_ARCHIVE_AFTER_SECONDS: "2",
        STATE_ARCHIVE_CHECK_INTERVAL_SECONDS: "1",
      },
    });
  });

  afterAll(async () => {
    await server?.stop();
    direct?.disconnect();
    await redis?.stop();
  });

  it("keeps the state in Redis under the key prefix, archives it after STATE_ARCHIVE_AFTER_SECONDS, and restores it from there", async () => {
    const one = await exec(server, { lang: "py", code: DEFINE });
    expect(one.json.stdout, one.json.stderr).toBe("defined\n");
    const sid1 = one.json.session_id!;
    const two = await exec(server, { lang: "bash", code: "echo two" });
    expect(two.json.stdout).toBe("two\n");
    expect(live()).toBe(1);
    // Session 1's sandbox was reclaimed: its state is hot in Redis, under REDIS_KEY_PREFIX.
    expect(await direct.exists(`${PREFIX}python-state:{${sid1}}`)).toBe(1);
    expect(await direct.exists(`python-state:{${sid1}}`)).toBe(0);
    expect(archivedState(server, sid1)).toHaveLength(0);

    // Past STATE_ARCHIVE_AFTER_SECONDS it moves to the file store.
    await until(async () => (await direct.exists(`${PREFIX}python-state:{${sid1}}`)) === 0, 10_000);
    await until(() => archivedState(server, sid1).length === 1, 5_000);

    const again = await exec(server, { lang: "py", code: CHECK, session_id: sid1 });
    expect(again.json, JSON.stringify(again.json)).toMatchObject({ session_id: sid1, stdout: "42 42 6 5.5\n" });
    expect(again.json.stderr ?? "").not.toMatch(/\[state\]/);
    expect(live()).toBe(1);
  });
});
