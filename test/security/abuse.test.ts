import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServerProcess, startServer, TEST_API_KEY } from "../helpers/server-process.ts";
import { TestClient } from "../helpers/ws-client.ts";

/**
 * Abuse from inside a sandbox, each with its precise outcome: secrets and host
 * files out of reach, no network (not even the server's own port), and fork
 * and memory bombs stopped at the sandbox's own limits while other sessions
 * run on. (Links out of /mnt/data, read-only paths, kill -1 and disk bombs:
 * escapes.test.ts; egress: egress.test.ts.)
 */
describe.each([
  ["node", "local"],
  ["uws", "local"],
  ["node", "kubernetes"],
] as const)("abuse from a sandbox (%s transport, %s sandboxes)", (transport, backend) => {
  let server: ServerProcess;
  const clients: TestClient[] = [];
  const sessionClient = async () => {
    const client = await TestClient.connect(server.wsUrl, { apiKey: TEST_API_KEY });
    clients.push(client);
    const ready = await client.openSession();
    expect(ready.type).toBe("session.ready");
    return client;
  };

  beforeAll(async () => {
    server = await startServer({ transport, backend, env: { SANDBOX_POOL_ENABLED: "false", MAX_MEMORY_MB: "256", MAX_PIDS: "128", MAX_OUTPUT_FILES: "5" } });
  });
  afterAll(async () => {
    for (const client of clients) client.terminate();
    await server?.stop();
  });

  it("cannot read host files, the checkout, the server's environment or its /proc", async () => {
    const client = await sessionClient();
    const code = [
      "import os",
      `for path in ['/root', '/home', '${process.cwd()}', '/proc/${server.pid}/environ', '/etc/shadow', '/var/lib']:`,
      "    try:",
      "        if os.path.isdir(path):",
      "            print('listed', path, os.listdir(path))",
      "        else:",
      "            print('read', path, open(path, 'rb').read(40))",
      "    except OSError as e:",
      "        print('blocked', path, type(e).__name__)",
      "print('uid', os.getuid())",
      "print('env', sorted(os.environ))",
      // Every process the sandbox can see, and whether any environment carries a secret.
      // (The jail's init, which keeps its capabilities, cannot be read at all: nothing leaks there either.)
      "def environ(p):",
      "    try:",
      "        return open(f'/proc/{p}/environ', 'rb').read()",
      "    except PermissionError:",
      "        return b''",
      "leaks = [p for p in os.listdir('/proc') if p.isdigit() and any(k in environ(p) for k in (b'API_KEY=', b'MASTER_API_KEY=', b'AGENT_TOKEN=', b'REDIS_', b'S3_', b'AWS_'))]",
      "print('leaks', leaks)",
    ].join("\n");
    const { stdout } = await client.run("walls", "py", code);
    const lines = stdout.trim().split("\n");
    expect(lines.slice(0, 6)).toEqual([
      "blocked /root FileNotFoundError",
      "blocked /home FileNotFoundError",
      `blocked ${process.cwd()} FileNotFoundError`,
      `blocked /proc/${server.pid}/environ FileNotFoundError`,
      "blocked /etc/shadow FileNotFoundError",
      "blocked /var/lib FileNotFoundError",
    ]);
    expect(stdout).toContain("uid 1001");
    expect(stdout).not.toMatch(/API_KEY|MASTER|AGENT_TOKEN/);
    expect(stdout).toContain("leaks []");
  });

  // Pods get no network from their NetworkPolicy (deploy/, checked in test/unit/deploy); the stand-in's agents share the host's.
  const localOnly = backend === "local" ? it : () => {};
  localOnly("has no network, not even to the server's own port: only lo, connections refused or unreachable, no DNS", async () => {
    const client = await sessionClient();
    const code = [
      "import socket",
      `for host, port in [('127.0.0.1', ${server.port}), ('1.1.1.1', 53), ('203.0.113.9', 443)]:`,
      "    try:",
      "        socket.create_connection((host, port), timeout=2)",
      "        print('connected', host)",
      "    except OSError as e:",
      "        print('failed', host, type(e).__name__, e.errno)",
      "try:",
      "    socket.getaddrinfo('pypi.org', 443)",
      "    print('resolved')",
      "except OSError as e:",
      "    print('no dns', type(e).__name__)",
      "print(sorted(i[1] for i in socket.if_nameindex()))",
    ].join("\n");
    const { stdout } = await client.run("net", "py", code);
    // 111 ECONNREFUSED (nothing listens on the sandbox's own loopback), 101 ENETUNREACH (no route at all).
    expect(stdout).toBe(`failed 127.0.0.1 ConnectionRefusedError 111\nfailed 1.1.1.1 OSError 101\nfailed 203.0.113.9 OSError 101\nno dns gaierror\n['lo']\n`);
  });

  it("stops a fork bomb at MAX_PIDS and a memory bomb at MAX_MEMORY_MB; the session and another one run on", async () => {
    const client = await sessionClient();
    const other = await sessionClient();
    // Python watches (sleeping needs no fork) while bash forks without end; at the exec's end its whole process group goes.
    const watcher = "import subprocess, time; subprocess.Popen(['bash', '-c', 'bomb() { bomb | bomb & }; bomb']); time.sleep(2); print('survived')";
    const bomb = await client.run("forkbomb", "bash", `python3 -c "${watcher}"`, { timeoutMs: 10_000 }, 60_000);
    // The pids cgroup refuses forks (EAGAIN): the bomb stalls, the watcher finishes.
    expect(bomb.stderr).toMatch(/fork: (retry: )?Resource temporarily unavailable/);
    expect(bomb.stdout).toBe("survived\n");
    expect(bomb.exit.reason).toBe("exited");
    const memory = await client.run("membomb", "py", "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 * 1024))\n", {}, 60_000);
    expect(memory.exit.reason).toBe("memory");
    const healthy = await other.run("after", "py", "print(6 * 7)");
    expect(healthy.stdout).toBe("42\n");
    const again = await client.run("again", "bash", "echo still here; ls /proc | grep -c '^[0-9]'");
    expect(again.stdout).toMatch(/^still here\n\d+\n$/);
    // Nothing of the bomb is left: the agent, this shell and its ls and grep (and a persistent interpreter at most).
    expect(Number(again.stdout.split("\n")[1])).toBeLessThan(10);
  });

  it("keeps a figure flood to the output file cap, over HTTP and WebSocket, and says how many it dropped", async () => {
    const code = ["import matplotlib.pyplot as plt", "for i in range(12):", "    plt.figure(); plt.plot([0, i]); plt.show()", "print('shown')"].join("\n");
    const client = await sessionClient();
    const streamed = await client.run("flood", "py", code);
    expect(streamed.stdout).toBe("shown\n");
    expect(streamed.frames.filter((frame) => frame.type === "display")).toHaveLength(5);
    expect(streamed.stderr).toContain("7 more figure(s) were not sent: one run shows at most 5 (MAX_OUTPUT_FILES), each up to ");
    client.close();

    const res = await fetch(`${server.httpUrl}/exec`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": TEST_API_KEY },
      body: JSON.stringify({ lang: "py", code }),
    });
    const result = (await res.json()) as { stdout: string; stderr: string; files: { name: string }[] };
    expect(result.stdout).toBe("shown\n");
    expect(result.files).toHaveLength(5);
    for (const file of result.files) expect(file.name).toMatch(/^figure-\d+\.png$/);
    expect(result.stderr).toContain("7 more figure(s) were not sent: one run shows at most 5 (MAX_OUTPUT_FILES), each up to ");
  });
});
