/**
 * ENABLE_SANDBOX_NETWORK figures: a new HTTPS connection and GET from inside
 * a sandbox through the relay and the egress proxy, against the same GET
 * from the host straight to the server (no proxy); and new session -> first
 * exec with egress on (a proxy socket and a relay per sandbox). The "internet"
 * is a loopback HTTPS stand-in pinned with SANDBOX_EGRESS_RESOLVE.
 */
import { execFile } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeCertificate, startHttpsStandIn } from "../helpers/https-stand-in.ts";
import { startServer, TEST_API_KEY } from "../helpers/server-process.ts";
import { newSessionFirstExec } from "./scenarios.ts";
import { summarize } from "./stats.ts";

/** Python timing `runs` fresh TLS connections + GET /hello, optionally through a CONNECT proxy; prints a JSON list of ms. */
function timingProgram(cert: string, port: number, runs: number, proxyPort?: number): string {
  return `
import json, socket, ssl, time
ctx = ssl.create_default_context(cadata=${JSON.stringify(cert)})
samples = []
for _ in range(${runs}):
    t = time.perf_counter()
    sock = socket.create_connection(("127.0.0.1", ${proxyPort ?? port}))
    ${
      proxyPort
        ? `sock.sendall(b"CONNECT registry.test:${port} HTTP/1.1\\r\\nHost: registry.test:${port}\\r\\n\\r\\n")
    head = b""
    while b"\\r\\n\\r\\n" not in head: head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 200"), head`
        : "pass"
    }
    tls = ctx.wrap_socket(sock, server_hostname="registry.test")
    tls.sendall(b"GET /hello HTTP/1.1\\r\\nHost: registry.test\\r\\nConnection: close\\r\\n\\r\\n")
    body = b""
    while chunk := tls.recv(65536): body += chunk
    assert b"hello" in body, body
    tls.close()
    samples.append((time.perf_counter() - t) * 1000)
print(json.dumps(samples))
`;
}

export async function egressFigures(options: { runs: number; coldRuns: number; serverEnv: Record<string, string> }) {
  const work = mkdtempSync(join(tmpdir(), "bench-egress-"));
  chmodSync(work, 0o711);
  const tls = makeCertificate(work, ["registry.test"]);
  const registry = await startHttpsStandIn(tls, () => ({ status: 200, type: "text/plain", body: "hello" }));
  const server = await startServer({
    transport: "node",
    env: {
      ...options.serverEnv,
      SANDBOX_POOL_ENABLED: "false",
      ENABLE_SANDBOX_NETWORK: "true",
      SANDBOX_EGRESS_ALLOWLIST: `registry.test:${registry.port}`,
      SANDBOX_EGRESS_RESOLVE: "registry.test=127.0.0.1",
      SKILL_DEPS_PATH: join(work, "skill-deps"),
      ENABLE_SECURITY_LOGS: "false",
    },
  });
  try {
    const res = await fetch(`${server.httpUrl}/exec`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": TEST_API_KEY },
      body: JSON.stringify({ lang: "py", code: timingProgram(tls.cert, registry.port, options.runs, 18443), timeout: 30_000 }),
    });
    const body = (await res.json()) as { stdout: string; stderr: string };
    if (res.status !== 200 || !body.stdout.startsWith("[")) throw new Error(`egress timing failed: ${res.status} ${JSON.stringify(body).slice(0, 500)}`);
    const direct = await new Promise<string>((resolve, reject) =>
      execFile("/usr/bin/python3", ["-c", timingProgram(tls.cert, registry.port, options.runs)], (error, stdout) => (error ? reject(error) : resolve(stdout))),
    );
    const cold = await newSessionFirstExec(server, options.coldRuns);
    return {
      httpsGetThroughProxyMs: summarize(JSON.parse(body.stdout) as number[]),
      httpsGetDirectFromHostMs: summarize(JSON.parse(direct) as number[]),
      newSessionWithEgress: cold,
    };
  } finally {
    await server.stop();
    await registry.close();
    rmSync(work, { recursive: true, force: true });
  }
}
