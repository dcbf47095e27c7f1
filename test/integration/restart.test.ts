import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type RedisServers, startRedis } from "../helpers/redis-servers.ts";
import { type S3Server, startS3 } from "../helpers/s3-server.ts";
import { type ServerProcess, startServer, TEST_API_KEY } from "../helpers/server-process.ts";
import { type Frame, TestClient } from "../helpers/ws-client.ts";

/**
 * A server restarted the way an operator restarts it (SIGTERM, then a new
 * process on the same FILE_STORAGE_PATH, or the same Redis and S3): a session's
 * seq never goes backwards, a client resuming from before the restart gets
 * what it missed (or gap: true), and the next Python exec finds its variables.
 */
const seqsOf = (frames: readonly Frame[]) => frames.filter((f) => typeof f.seq === "number").map((f) => f.seq as number);
const lastSeqOf = (client: TestClient) => Math.max(...seqsOf(client.frames));

describe.each(["local", "redis"] as const)("a restart with sessions open (%s stores)", (stores) => {
  let storageDir: string;
  let redis: RedisServers | undefined;
  let s3: S3Server | undefined;
  const servers: ServerProcess[] = [];
  const clients: TestClient[] = [];

  const start = async (env: Record<string, string> = {}) => {
    const server = await startServer({
      transport: "node",
      storageDir,
      env: { SANDBOX_POOL_ENABLED: "false", SHUTDOWN_GRACE_SECONDS: "2", ...(redis?.env ?? {}), ...(s3?.env ?? {}), ...env },
    });
    servers.push(server);
    return server;
  };
  const connect = async (server: ServerProcess) => {
    const client = await TestClient.connect(server.wsUrl, { apiKey: TEST_API_KEY });
    clients.push(client);
    return client;
  };
  /** SIGTERM, as a deploy does, and wait for the exit: a clean one. */
  const sigterm = async (server: ServerProcess) => {
    const exited = new Promise<number | null>((resolve) => server.child.once("exit", (code) => resolve(code)));
    server.child.kill("SIGTERM");
    expect(await exited).toBe(0);
  };

  beforeAll(async () => {
    if (stores === "redis") [redis, s3] = await Promise.all([startRedis("standalone"), startS3()]);
  });
  afterAll(async () => {
    await Promise.all([redis?.stop(), s3?.destroy()]);
  });
  afterEach(async () => {
    for (const client of clients.splice(0)) client.terminate();
    for (const server of servers.splice(0)) await server.stop();
    rmSync(storageDir, { recursive: true, force: true });
  });

  beforeEach(() => {
    storageDir = mkdtempSync(join(tmpdir(), "ci-restart-storage-"));
  });

  it("keeps the stream's seq and the Python variables; a run cut short ends with server_restart and the client is told to reconnect (1012)", async () => {
    const first = await start();
    const client = await connect(first);
    const ready = await client.openSession();
    const sessionId = ready.sessionId as string;
    expect((await client.run("set", "py", "x = 41")).exit).toMatchObject({ reason: "exited", code: 0 });
    await client.run("two", "bash", "echo two");
    // A run still going when the server stops: longer than the grace.
    client.send({ type: "exec", id: "long", lang: "py", code: "import time\nprint('started', flush=True)\ntime.sleep(60)" });
    await client.waitFor((f) => f.type === "out" && f.id === "long");
    await sigterm(first);
    await client.closed;
    expect(client.closeCode).toBe(1012);
    expect(client.frames.find((f) => f.type === "exit" && f.id === "long")).toMatchObject({ reason: "server_restart" });
    const lastSeq = lastSeqOf(client);

    const second = await start();
    const again = await connect(second);
    again.send({ type: "session.open", sessionId, lastSeq });
    const resumed = await again.waitFor((f) => f.type === "session.ready");
    expect(resumed).toMatchObject({ sessionId, resumed: true });
    expect(resumed.gap).toBeUndefined();
    expect(resumed.seq as number).toBeGreaterThan(lastSeq);
    const after = await again.run("after", "py", "print(x + 1)");
    expect({ stdout: after.stdout, stderr: after.stderr }).toEqual({ stdout: "42\n", stderr: "" });
    expect(Math.min(...seqsOf(again.frames))).toBeGreaterThan(lastSeq);
  });

  it("replays to a client that missed frames before the restart, with their original seqs", async () => {
    const first = await start();
    const client = await connect(first);
    const ready = await client.openSession();
    const sessionId = ready.sessionId as string;
    await client.run("one", "bash", "echo one");
    const seenUpTo = lastSeqOf(client);
    const missed = await client.run("two", "bash", "echo two");
    const missedSeqs = seqsOf(missed.frames);
    client.terminate();
    await sigterm(first);

    const second = await start();
    const again = await connect(second);
    again.send({ type: "session.open", sessionId, lastSeq: seenUpTo });
    const resumed = await again.waitFor((f) => f.type === "session.ready");
    expect(resumed.gap).toBeUndefined();
    const replayed = again.frames.filter((f) => f.id === "two");
    expect(seqsOf(replayed)).toEqual(missedSeqs);
    expect(replayed.map((f) => f.data ?? "").join("")).toBe("two\n");
  });

  it("after SIGKILL, the seq still goes on past every seq sent (with gap: true when the log is lost)", async () => {
    const first = await start();
    const client = await connect(first);
    const ready = await client.openSession();
    const sessionId = ready.sessionId as string;
    await client.run("one", "bash", "echo one");
    const lastSeq = lastSeqOf(client);
    first.child.kill("SIGKILL");
    await client.closed;

    const second = await start();
    // With Redis the killed server's claim on the session runs out first (close 1013 until then): retry as a client does.
    let again: TestClient | undefined;
    for (let attempt = 0; !again && attempt < 40; attempt++) {
      const client = await connect(second);
      client.send({ type: "session.open", sessionId, lastSeq });
      await client
        .waitFor((f) => f.type === "session.ready", 10_000)
        .then(
          () => {
            again = client;
          },
          () => expect(client.closeCode).toBe(1013),
        );
      if (!again) await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
    if (!again) throw new Error("the session could not be resumed");
    const resumed = again.frames.find((f) => f.type === "session.ready")!;
    expect(resumed).toMatchObject({ sessionId, resumed: true });
    // Locally the log died with the process; Redis's shared stream kept every frame, so nothing is missing there.
    expect(resumed.gap).toBe(stores === "local" ? true : undefined);
    expect(resumed.seq as number).toBeGreaterThan(lastSeq);
    const after = await again.run("after", "bash", "echo after");
    expect(after.stdout).toBe("after\n");
    expect(Math.min(...seqsOf(again.frames))).toBeGreaterThan(lastSeq);
  });

  it("lets a run finish within SHUTDOWN_GRACE_SECONDS, refusing new execs meanwhile", async () => {
    const first = await start({ SHUTDOWN_GRACE_SECONDS: "20" });
    const client = await connect(first);
    await client.openSession();
    client.send({ type: "exec", id: "finishing", lang: "py", code: "import time\nprint('started', flush=True)\ntime.sleep(3)\nprint('done')" });
    await client.waitFor((f) => f.type === "out" && f.id === "finishing");
    const exited = new Promise<number | null>((resolve) => first.child.once("exit", (code) => resolve(code)));
    first.child.kill("SIGTERM");
    // While it drains: not ready, and a new exec is refused with a reason to retry elsewhere.
    await expect.poll(async () => (await fetch(`${first.httpUrl}/ready`)).status, { timeout: 5_000 }).toBe(503);
    const refused = await fetch(`${first.httpUrl}/exec`, {
      method: "POST",
      headers: { "x-api-key": TEST_API_KEY, "content-type": "application/json" },
      body: JSON.stringify({ lang: "py", code: "print(1)" }),
    });
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).not.toBeNull();
    const exit = await client.waitFor((f) => f.type === "exit" && f.id === "finishing", 20_000);
    expect(exit).toMatchObject({ reason: "exited", code: 0 });
    expect(await exited).toBe(0);
  });
});
