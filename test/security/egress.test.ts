import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type HttpsStandIn, makeCertificate, startHttpsStandIn } from "../helpers/https-stand-in.ts";
import { mountsUnder } from "../helpers/mounts.ts";
import { type ServerProcess, startServer, TEST_API_KEY } from "../helpers/server-process.ts";
import { TestClient } from "../helpers/ws-client.ts";

/**
 * ENABLE_SANDBOX_NETWORK: a sandbox reaches the outside only through the
 * server's allowlist proxy. Two loopback HTTPS servers stand in for the
 * world: registry.test (allowed, serving a PEP 503 index with one wheel) and
 * evil.test (pinned to an address like the registry, but not on the list).
 */
// biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
type Json = any;

const OTHER_KEY = "other-key-0123456789abcdef";
const SANDBOX_UID = 1001;

/** A pure-Python wheel `tinypkg` 1.0 (VALUE = 42), built by the host's Python. */
function makeWheel(dir: string): { name: string; bytes: Buffer; sha256: string } {
  const name = "tinypkg-1.0-py3-none-any.whl";
  const script = `
import base64, hashlib, sys, zipfile
files = {
  "tinypkg/__init__.py": b"VALUE = 42\\n",
  "tinypkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\\nName: tinypkg\\nVersion: 1.0\\n",
  "tinypkg-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\\nGenerator: egress-test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
}
record = "".join(f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}\\n" for p, d in files.items())
files["tinypkg-1.0.dist-info/RECORD"] = (record + "tinypkg-1.0.dist-info/RECORD,,\\n").encode()
with zipfile.ZipFile(sys.argv[1], "w") as z:
    for p, d in files.items(): z.writestr(p, d)
`;
  execFileSync("/usr/bin/python3", ["-c", script, join(dir, name)], { timeout: 30_000 });
  const bytes = readFileSync(join(dir, name));
  const sha256 = execFileSync("sha256sum", [join(dir, name)])
    .toString()
    .split(" ")[0]!;
  return { name, bytes, sha256 };
}

/** A TCP port free on 127.0.0.1 right now. */
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

/** The stand-in internet: a registry (hello, a PEP 503 index with the wheel) and a host that is not listed. */
interface World {
  work: string;
  cert: string;
  registry: HttpsStandIn;
  evil: HttpsStandIn;
}

async function startWorld(): Promise<World> {
  const work = mkdtempSync(join(tmpdir(), "egress-test-"));
  chmodSync(work, 0o711); // the sandbox uid walks through it to its cache folder
  const tls = makeCertificate(work, ["registry.test", "evil.test"]);
  const wheel = makeWheel(work);
  const registry = await startHttpsStandIn(tls, (path) => {
    if (path === "/hello") return { status: 200, type: "text/plain", body: "hello from the registry" };
    if (path === "/simple/tinypkg/") {
      const html = `<!DOCTYPE html><html><body><a href="/packages/${wheel.name}#sha256=${wheel.sha256}">${wheel.name}</a></body></html>`;
      return { status: 200, type: "text/html", body: html };
    }
    if (path === `/packages/${wheel.name}`) return { status: 200, type: "application/octet-stream", body: wheel.bytes };
    return { status: 404, type: "text/plain", body: "not here" };
  });
  const evil = await startHttpsStandIn(tls, () => ({ status: 200, type: "text/plain", body: "secrets" }));
  return { work, cert: tls.cert, registry, evil };
}

async function stopWorld(world: World | undefined): Promise<void> {
  await world?.registry.close();
  await world?.evil.close();
  if (world) rmSync(world.work, { recursive: true, force: true });
}

function egressEnv(world: World): Record<string, string> {
  return {
    ENABLE_SANDBOX_NETWORK: "true",
    SANDBOX_EGRESS_ALLOWLIST: `registry.test:${world.registry.port}`,
    SANDBOX_EGRESS_RESOLVE: "registry.test=127.0.0.1,evil.test=127.0.0.1",
  };
}

async function execOn(server: ServerProcess, body: Record<string, unknown>, key = TEST_API_KEY): Promise<Json> {
  const res = await fetch(`${server.httpUrl}/exec`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": key },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(200);
  return res.json();
}

/** Python that writes 1 MiB files into the cache until it fails; prints the error and how many fit. */
const FILL_CACHE = [
  "import errno",
  "n = 0",
  "try:",
  "    while n < 200:",
  "        open(f'/opt/skill-deps/f{n}', 'wb').write(b'x' * 1048576)",
  "        n += 1",
  "except OSError as e:",
  "    print(errno.errorcode[e.errno], n)",
].join("\n");

/** Python that fetches each URL through the environment's proxy, trusting the test certificate, and prints one line per URL. */
function fetchEach(cert: string, urls: string[]): string {
  return [
    "import ssl, urllib.request",
    `open("/tmp/ca.pem", "w").write(${JSON.stringify(cert)})`,
    'ctx = ssl.create_default_context(cafile="/tmp/ca.pem")',
    `for url in ${JSON.stringify(urls)}:`,
    "    try:",
    '        print(url, "OK", urllib.request.urlopen(url, context=ctx, timeout=10).read().decode())',
    "    except Exception as e:",
    '        print(url, "FAIL", e)',
  ].join("\n");
}

/** The security events of one kind in the server's log. */
function securityEvents(server: ServerProcess, event: string): Json[] {
  return server.logs.filter((line) => line.includes(`"event":"${event}"`)).map((line) => JSON.parse(line.slice(line.indexOf("{"))) as Json);
}

describe.each(["node", "uws"] as const)("sandbox egress through the allowlist proxy (%s transport)", (transport) => {
  let server: ServerProcess;
  let world: World;
  let registry: HttpsStandIn;
  let evil: HttpsStandIn;
  let depsRoot: string;
  let cert: string;

  beforeAll(async () => {
    world = await startWorld();
    ({ registry, evil, cert } = world);
    depsRoot = join(world.work, "skill-deps");
    server = await startServer({
      transport,
      env: {
        API_KEYS: OTHER_KEY,
        SANDBOX_UID: String(SANDBOX_UID),
        SANDBOX_GID: String(SANDBOX_UID),
        SKILL_DEPS_PATH: depsRoot,
        SKILL_DEPS_MAX_MB: "32",
        ...egressEnv(world),
      },
    });
  });

  afterAll(async () => {
    await server?.stop();
    await stopWorld(world);
  });

  const exec = (body: Record<string, unknown>, key = TEST_API_KEY) => execOn(server, body, key);

  it("reaches an allowed name over HTTPS through the proxy, end to end encrypted", async () => {
    const url = `https://registry.test:${registry.port}/hello`;
    const result = await exec({ lang: "py", code: `import os\nprint(os.environ["HTTPS_PROXY"])\n${fetchEach(cert, [url])}` });
    expect(result.stderr).toBe("");
    expect(result.stdout).toBe(`http://127.0.0.1:18443\n${url} OK hello from the registry\n`);
    // The registry saw TLS for its own name: the proxy only carried bytes.
    expect(registry.requests).toContain(`registry.test registry.test:${registry.port} /hello`);
  });

  it("sends Java's HTTPS through the proxy too (Java reads no proxy variables: the java command sets its properties)", async () => {
    const url = `https://registry.test:${registry.port}/hello`;
    const code = [
      "import java.io.ByteArrayInputStream;",
      "import java.net.URL;",
      "import java.security.KeyStore;",
      "import java.security.cert.CertificateFactory;",
      "import javax.net.ssl.*;",
      "public class Fetch {",
      "  public static void main(String[] args) throws Exception {",
      `    String pem = ${JSON.stringify(cert)};`,
      "    KeyStore trusted = KeyStore.getInstance(KeyStore.getDefaultType());",
      "    trusted.load(null, null);",
      '    trusted.setCertificateEntry("test", CertificateFactory.getInstance("X.509").generateCertificate(new ByteArrayInputStream(pem.getBytes())));',
      "    TrustManagerFactory factory = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());",
      "    factory.init(trusted);",
      '    SSLContext tls = SSLContext.getInstance("TLS");',
      "    tls.init(null, factory.getTrustManagers(), null);",
      `    HttpsURLConnection connection = (HttpsURLConnection) new URL("${url}").openConnection();`,
      "    connection.setSSLSocketFactory(tls.getSocketFactory());",
      "    System.out.println(new String(connection.getInputStream().readAllBytes()));",
      "  }",
      "}",
    ].join("\n");
    const result = await exec({ lang: "java", code });
    expect(result.stderr).toBe("");
    expect(result.stdout).toBe("hello from the registry\n");
  });

  it("refuses other hosts, addresses, ports and plain HTTP, each logged as a security event", async () => {
    const cases = {
      [`https://evil.test:${evil.port}/`]: "403",
      "https://203.0.113.5/hello": "403", // an address, not a name (loopback ones are NO_PROXY: they stay inside the sandbox)
      "https://registry.test/hello": "403", // port 443 is not the listed port
      [`http://registry.test:${registry.port}/hello`]: "405",
    };
    const result = await exec({ lang: "py", code: fetchEach(cert, Object.keys(cases)) });
    const lines = result.stdout.trim().split("\n");
    expect(lines).toHaveLength(4);
    for (const [index, [url, status]] of Object.entries(cases).entries()) {
      expect(lines[index]).toMatch(new RegExp(`^${url.replace(/[.?]/g, "\\$&")} FAIL .*${status}`));
    }
    expect(evil.connections).toBe(0);
    const refused = securityEvents(server, "egress_refused");
    const reasons = refused.map((event) => event.reason);
    expect(reasons).toEqual(expect.arrayContaining(["not_allowed", "ip_literal", "not_connect"]));
    expect(refused.find((event) => event.reason === "not_allowed" && event.target === `evil.test:${evil.port}`)).toMatchObject({
      security: true,
      sandboxId: expect.any(String),
    });
  });

  it("has no other way out: direct connections fail, the relay is the only listener", async () => {
    const code = [
      "import socket",
      `for host, port in [("127.0.0.1", ${registry.port}), ("127.0.0.1", ${evil.port}), ("203.0.113.9", 443), ("8.8.8.8", 53)]:`,
      "    s = socket.socket(); s.settimeout(3)",
      "    try:",
      "        s.connect((host, port)); print(host, port, 'CONNECTED')",
      "    except OSError as e:",
      "        print(host, port, type(e).__name__)",
      "print(open('/proc/net/tcp').read().count(' 0A '))",
    ].join("\n");
    const before = registry.connections + evil.connections;
    const result = await exec({ lang: "py", code });
    expect(result.stdout).toBe(
      `127.0.0.1 ${registry.port} ConnectionRefusedError\n127.0.0.1 ${evil.port} ConnectionRefusedError\n203.0.113.9 443 OSError\n8.8.8.8 53 OSError\n1\n`,
    );
    expect(registry.connections + evil.connections).toBe(before);
  });

  it("pip installs from the allowed registry into the tenant's cache; only that tenant's later sessions see it", async () => {
    const install = await exec({
      lang: "bash",
      user_id: "alice",
      code: [
        "cat > /tmp/ca.pem <<'EOF'",
        cert.trim(),
        "EOF",
        `python3 -m pip install --disable-pip-version-check --no-input --progress-bar off --index-url https://registry.test:${registry.port}/simple --cert /tmp/ca.pem tinypkg 2>&1 | tail -1`,
      ].join("\n"),
    });
    expect(install.stdout).toMatch(/Successfully installed tinypkg-1.0/);
    expect(registry.requests.some((request) => request.endsWith("/simple/tinypkg/"))).toBe(true);

    const probe = "import importlib.util, os\nprint(importlib.util.find_spec('tinypkg') is not None, sorted(os.listdir('/opt/skill-deps')))";
    // Same key and user, a new session (a new sandbox): the package is there.
    const again = await exec({ lang: "py", user_id: "alice", code: `${probe}\nimport tinypkg\nprint(tinypkg.VALUE)` });
    expect(again.session_id).not.toBe(install.session_id);
    expect(again.stdout).toMatch(/^True \[.*'python'.*\]\n42\n$/);
    // Another user of the same key, and another key: an empty cache of their own.
    const bob = await exec({ lang: "py", user_id: "bob", code: probe });
    expect(bob.stdout).toBe("False []\n");
    const other = await exec({ lang: "py", user_id: "alice", code: probe }, OTHER_KEY);
    expect(other.stdout).toBe("False []\n");

    // On the host: one 0700 folder per tenant, the sandbox uid's, under a root-owned 0711 root; their images root's alone.
    expect(statSync(depsRoot).mode & 0o777).toBe(0o711);
    expect(statSync(depsRoot).uid).toBe(0);
    const images = statSync(join(depsRoot, ".images"));
    expect([images.mode & 0o777, images.uid]).toEqual([0o700, 0]);
    const tenants = readdirSync(depsRoot).filter((name) => name !== ".images" && name !== ".owner"); // .owner: the server's lock
    expect(tenants.length).toBeGreaterThanOrEqual(3); // alice and bob of one key, alice of the other (and the user-less sessions above)
    for (const tenant of tenants) {
      const stat = statSync(join(depsRoot, tenant));
      expect(stat.mode & 0o777).toBe(0o700);
      expect(stat.uid).toBe(SANDBOX_UID);
      // each one is its own volume while its sandboxes run (these sessions are still open)
      expect(mountsUnder(depsRoot)).toContain(join(depsRoot, tenant));
    }
  });

  it("a tenant's cache is a volume of SKILL_DEPS_MAX_MB: past it, 'No space left on device' inside, and no more host disk", async () => {
    const imagesBefore = readdirSync(join(depsRoot, ".images"));
    const fill = await exec({ lang: "py", user_id: "carol", code: FILL_CACHE });
    const [error, count] = fill.stdout.trim().split(" ");
    expect(error).toBe("ENOSPC");
    // 32 MiB less the file system's own blocks (journal, inode tables)
    expect(Number(count)).toBeGreaterThan(20);
    expect(Number(count)).toBeLessThan(32);
    const [image] = readdirSync(join(depsRoot, ".images")).filter((name) => !imagesBefore.includes(name));
    expect(image).toMatch(/^[0-9a-f]{32}\.ext4$/);
    const onDisk = statSync(join(depsRoot, ".images", image!)).blocks * 512;
    expect(onDisk).toBeLessThanOrEqual(32 * 1024 * 1024);
    const health = await fetch(`${server.httpUrl}/health/detailed`, { headers: { "x-api-key": TEST_API_KEY } }).then((res) => res.json() as Promise<Json>);
    expect(health.checks.sandbox.egress.packageCaches).toMatchObject({ root: depsRoot, maxBytes: 32 * 1024 * 1024 });
    expect(health.checks.sandbox.egress.packageCaches.inUse).toBeGreaterThanOrEqual(4); // alice (2 keys), bob, carol

    // The limit is per tenant: another user of the same key writes on.
    const dave = await exec({ lang: "py", user_id: "dave", code: "open('/opt/skill-deps/x', 'wb').write(b'x' * 4194304)\nprint('ok')" });
    expect(dave.stdout).toBe("ok\n");
    // And carol, once she deleted files, writes again: the space came back.
    const freed = await exec({
      lang: "py",
      user_id: "carol",
      session_id: fill.session_id,
      code: "import glob, os\nfor f in glob.glob('/opt/skill-deps/f*'): os.remove(f)\nopen('/opt/skill-deps/y', 'wb').write(b'x' * 8388608)\nprint('ok')",
    });
    expect(freed.stdout).toBe("ok\n");
  });
});

describe("package cache volumes across a crash and a stop (node transport)", () => {
  let world: World;
  const servers: ServerProcess[] = [];
  beforeAll(async () => {
    world = await startWorld();
  });
  afterAll(async () => {
    for (const server of servers) await server.stop();
    await stopWorld(world);
  });

  it("a killed server's mounts are taken down by the next one, which keeps the cache; a stopped server leaves none", async () => {
    const root = join(world.work, "skill-deps");
    const env = { ...egressEnv(world), SKILL_DEPS_PATH: root, SKILL_DEPS_MAX_MB: "16" };
    const first = await startServer({ transport: "node", env });
    servers.push(first);
    const wrote = await execOn(first, { lang: "py", user_id: "erin", code: "open('/opt/skill-deps/kept', 'w').write('kept')\nprint('ok')" });
    expect(wrote.stdout).toBe("ok\n");
    expect(mountsUnder(root)).toHaveLength(1);
    const exited = new Promise((resolve) => first.child.once("exit", resolve));
    first.child.kill("SIGKILL");
    await exited;
    expect(mountsUnder(root)).toHaveLength(1); // nothing took it down

    const second = await startServer({ transport: "node", env });
    servers.push(second);
    expect(mountsUnder(root)).toEqual([]);
    const again = await execOn(second, { lang: "py", user_id: "erin", code: "print(open('/opt/skill-deps/kept').read())" });
    expect(again.stdout).toBe("kept\n");
    expect(mountsUnder(root)).toHaveLength(1);
    await second.stop();
    expect(mountsUnder(root)).toEqual([]);
  });
});

// Pods reach their replica's proxy over the cluster network with a credential of their own. The stand-in's
// pods share the host's network (so nothing here shows that a pod has no other way out: that wall is the
// NetworkPolicy, checked in test/unit/deploy); what is shown is the proxy's side.
describe("sandbox egress for pods (node transport, Kubernetes stand-in)", () => {
  let server: ServerProcess;
  let world: World;
  let proxyPort: number;

  beforeAll(async () => {
    world = await startWorld();
    proxyPort = await freePort();
    server = await startServer({
      transport: "node",
      backend: "kubernetes",
      env: { ...egressEnv(world), SANDBOX_EGRESS_PORT: String(proxyPort), POD_IP: "127.0.0.1" },
    });
  });
  afterAll(async () => {
    await server?.stop();
    await stopWorld(world);
  });

  /** Python sending a bare CONNECT to the pods' proxy with `auth` (user:password or none); prints the status line. */
  const bareConnect = (auth: string | undefined) =>
    [
      "import base64, socket",
      `s = socket.create_connection(("127.0.0.1", ${proxyPort}), timeout=5)`,
      `auth = ${JSON.stringify(auth ?? "")}`,
      'header = f"Proxy-Authorization: Basic {base64.b64encode(auth.encode()).decode()}\\r\\n" if auth else ""',
      `s.sendall(f"CONNECT registry.test:${world.registry.port} HTTP/1.1\\r\\n{header}\\r\\n".encode())`,
      "print(s.recv(200).decode().split('\\r\\n')[0])",
    ].join("\n");

  it("gives each pod a proxy URL with its own credential; HTTPS to an allowed name works, another host is refused", async () => {
    const url = `https://registry.test:${world.registry.port}/hello`;
    const code = `import os\nprint(os.environ["HTTPS_PROXY"])\n${fetchEach(world.cert, [url, `https://evil.test:${world.evil.port}/`])}`;
    const result = await execOn(server, { lang: "py", code });
    const [proxyUrl, allowed, refused] = result.stdout.trim().split("\n");
    expect(proxyUrl).toMatch(new RegExp(`^http://sandbox:[A-Za-z0-9_-]{32}@127\\.0\\.0\\.1:${proxyPort}$`));
    expect(allowed).toBe(`${url} OK hello from the registry`);
    expect(refused).toMatch(/FAIL .*403/);
    expect(world.evil.connections).toBe(0);
    expect(securityEvents(server, "egress_refused").some((event) => event.reason === "not_allowed")).toBe(true);
  });

  it("refuses a request without a pod's credential, with a made-up one, and with one of a pod that is gone (407)", async () => {
    const client = await TestClient.connect(server.wsUrl, { apiKey: TEST_API_KEY });
    expect((await client.openSession()).type).toBe("session.ready");
    const { stdout } = await client.run("env", "py", 'import os\nprint(os.environ["HTTPS_PROXY"])');
    const credential = /^http:\/\/(sandbox:[^@]+)@/.exec(stdout)![1]!;
    // Ending the session deletes its pod, and its credential with it.
    client.send({ type: "session.close" });
    await client.closed;
    let probes: Json;
    for (let attempt = 0; attempt < 20; attempt++) {
      probes = await execOn(server, { lang: "py", code: [bareConnect(undefined), bareConnect("sandbox:made-up"), bareConnect(credential)].join("\n") });
      if (!probes.stdout.endsWith("200 Connection Established\n")) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(probes.stdout).toBe("HTTP/1.1 407 Proxy Authentication Required\n".repeat(3));
    expect(securityEvents(server, "egress_refused").filter((event) => event.reason === "unauthenticated").length).toBeGreaterThanOrEqual(3);
  });
});
