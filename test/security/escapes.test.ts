import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServerProcess, startServer, TEST_API_KEY } from "../helpers/server-process.ts";
import { TestClient } from "../helpers/ws-client.ts";

/**
 * Escape and abuse attempts from inside a sandbox, each with its precise
 * outcome: links out of /mnt/data are never collected or served, system
 * paths are read-only, `kill -1` loses only the caller's own sandbox, and
 * disk and inode bombs hit the sandbox's own limits with the session intact.
 */
// biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
type Json = any;

// Both transports with local sandboxes, and Kubernetes pods (the API server stand-in: each pod a local sandbox on its own address).
describe.each([
  ["node", "local"],
  ["uws", "local"],
  ["node", "kubernetes"],
] as const)("escape attempts from a sandbox (%s transport, %s sandboxes)", (transport, backend) => {
  let server: ServerProcess;
  const clients: TestClient[] = [];

  beforeAll(async () => {
    server = await startServer({ transport, backend, env: { SANDBOX_POOL_ENABLED: "false", SANDBOX_DATA_SIZE_MB: "16", MAX_OUTPUT_FILES: "10" } });
  });
  afterAll(async () => {
    for (const client of clients) client.terminate();
    await server?.stop();
  });

  const exec = async (body: Record<string, unknown>): Promise<Json> => {
    const res = await fetch(`${server.httpUrl}/exec`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": TEST_API_KEY },
      body: JSON.stringify(body),
    });
    expect(res.status).toBe(200);
    return res.json();
  };

  it("collects only regular files: symlinks out of /mnt/data (files, /proc, folders), FIFOs and hard links are not handed back", async () => {
    const code = [
      "cd /mnt/data",
      "echo hi > real.txt",
      "ln -s /etc/passwd link.txt",
      "ln -s /proc/self/environ environ.txt",
      "mkdir -p d && ln -s /opt/agent d/agent && ln -s / d/root",
      "mkfifo pipe",
      "ln /etc/passwd hard.txt",
    ].join("\n");
    const result = await exec({ lang: "bash", code });
    expect(result.files.map((file: Json) => file.name)).toEqual(["real.txt"]);
    expect(result.stderr).toMatch(/Invalid cross-device link/);
    const listed = await fetch(`${server.httpUrl}/files/${result.session_id}?detail=simple`, { headers: { "x-api-key": TEST_API_KEY } }).then((r) => r.json());
    expect((listed as Json[]).map((file) => file.name)).toEqual(["real.txt"]);
    // A later run that reads through the links sees only the sandbox's own view (a synthetic /etc/passwd, no host secrets).
    const view = await exec({ lang: "bash", code: "grep -c root /mnt/data/link.txt; cat /etc/shadow 2>&1 | head -1", session_id: result.session_id });
    expect(view.stdout).toMatch(/^1\n.*No such file or directory/);
  });

  it("keeps system paths read-only", async () => {
    const result = await exec({ lang: "bash", code: "touch /usr/x; echo > /etc/passwd; mkdir /opt/agent/x; touch /x; echo done" });
    expect(result.stdout).toBe("done\n");
    expect(result.stderr.match(/Read-only file system/g)?.length).toBe(4);
  });

  it("`kill -9 -1` reaches only the program's own jail: the session keeps its sandbox, files and variables, another session runs on", async () => {
    const other = await TestClient.connect(server.wsUrl, { apiKey: TEST_API_KEY });
    clients.push(other);
    await other.openSession();
    other.send({ type: "exec", id: "steady", lang: "bash", code: "for i in 1 2 3 4 5 6; do echo tick $i; sleep 0.3; done" });
    await other.waitFor((f) => f.type === "out" && f.id === "steady");

    const first = await exec({ lang: "py", code: "y = 6\nopen('/mnt/data/kept.txt', 'w').write('keep\\n')" });
    // kill(-1) spares the caller and its namespace's init: there is nobody else to reach.
    const killer = await exec({ lang: "bash", code: "sleep 0.2; kill -9 -1; echo survived", session_id: first.session_id });
    expect(killer.stdout).toBe("survived\n");
    expect(killer.stderr).toMatch(/kill: \(-1\) - No such process\n$/);
    const again = await exec({ lang: "py", code: "print(open('kept.txt').read(), y * 7)", session_id: first.session_id });
    expect({ stdout: again.stdout, stderr: again.stderr }).toEqual({ stdout: "keep\n 42\n", stderr: "" });

    const exit = await other.waitFor((f) => f.type === "exit" && f.id === "steady", 20_000);
    expect(exit).toMatchObject({ reason: "exited", code: 0 });
  });

  it("stops a disk bomb at the sandbox's /mnt/data size and an inode bomb at the output file cap, the session intact", async () => {
    const disk = await exec({ lang: "bash", code: "head -c 64M /dev/zero > /mnt/data/big; echo \"rc=$?\"; df -m /mnt/data | tail -1 | awk '{print $2}'" });
    expect(disk.stdout).toMatch(/^rc=1\n1[67]\n$/);
    expect(disk.stderr).toMatch(/No space left on device/);
    const inodes = await exec({
      lang: "bash",
      code: "rm -f /mnt/data/big; for i in $(seq 1 2000); do : > /mnt/data/f$i; done; echo made",
      session_id: disk.session_id,
    });
    expect(inodes.stdout).toBe("made\n");
    expect(inodes.files).toHaveLength(10);
    expect(inodes.stderr).toMatch(/1990 more changed file\(s\) were not kept/);
    const after = await exec({ lang: "py", code: "print('fine')", session_id: disk.session_id });
    expect(after.stdout).toBe("fine\n");
  });
});
