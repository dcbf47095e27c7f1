import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { type KubeStandIn, startKubeStandIn } from "../helpers/kube-stand-in.ts";
import { kubernetesEnv, type ServerProcess, startServer, TEST_API_KEY } from "../helpers/server-process.ts";
import { TestClient } from "../helpers/ws-client.ts";

/**
 * EXECUTION_BACKEND=kubernetes against the API server stand-in: every pod the
 * provider creates is a real agent in a local sandbox on its own loopback
 * address, dialled by the server as a pod IP.
 */
const SANDBOX_SELECTOR = "app.kubernetes.io/component";
const sandboxPods = (kube: KubeStandIn) => kube.pods().filter((pod) => pod.metadata?.labels?.[SANDBOX_SELECTOR] === "sandbox");

async function until<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function kubeEnv(kube: KubeStandIn, extra: Record<string, string> = {}): Record<string, string> {
  return { ...kubernetesEnv(kube), ...extra };
}

async function execHttp(server: ServerProcess, body: Record<string, unknown>): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${server.httpUrl}/exec`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": TEST_API_KEY },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

describe("Kubernetes provider against the API server stand-in", () => {
  let kube: KubeStandIn;
  let server: ServerProcess;
  const clients: TestClient[] = [];
  const connect = async () => {
    const client = await TestClient.connect(server.wsUrl, { apiKey: TEST_API_KEY });
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    kube = await startKubeStandIn();
    server = await startServer({ transport: "node", env: kubeEnv(kube, { SANDBOX_POOL_ENABLED: "false" }) });
  });

  afterAll(async () => {
    for (const client of clients) client.terminate();
    await server?.stop();
    await kube?.close();
  });

  it("runs code in a hardened pod dialled on its pod IP, with the token from the pod's own Secret", async () => {
    const client = await connect();
    await client.openSession();
    const { exit, stdout } = await client.run("k1", "py", "import os\nprint(os.getcwd(), os.getuid(), 'AGENT_TOKEN' in os.environ)");
    expect(exit).toMatchObject({ reason: "exited", code: 0 });
    expect(stdout).toBe("/mnt/data 1001 False\n");

    const [pod] = sandboxPods(kube);
    expect(pod).toBeDefined();
    const spec = pod!.spec!;
    const container = spec.containers[0]!;
    expect(pod!.metadata!.labels).toMatchObject({ "app.kubernetes.io/name": "code-interpreter", "app.kubernetes.io/component": "sandbox" });
    expect(spec.automountServiceAccountToken).toBe(false);
    expect(spec.restartPolicy).toBe("Never");
    expect(spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1001, seccompProfile: { type: "RuntimeDefault" } });
    expect(container.image).toBe("code-interpreter/sandbox:test");
    expect(container.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
      privileged: false,
    });
    expect(container.resources?.limits).toMatchObject({ cpu: "1", memory: "512Mi" });
    expect(container.resources?.limits?.["ephemeral-storage"]).toBeDefined();
    expect(spec.volumes?.map((v) => v.name).sort()).toEqual(["agent-token", "data", "tmp"]);
    expect(container.env?.some((e) => e.name === "AGENT_TOKEN")).toBe(false);

    // The agent refuses anyone without the Secret's token.
    const ip = pod!.status!.podIP!;
    const refused = await new Promise<string>((resolve) => {
      const ws = new WebSocket(`ws://${ip}:9090/`, { headers: { "x-agent-token": "guess" } });
      ws.once("unexpected-response", (_req, res) => resolve(String(res.statusCode)));
      ws.once("open", () => resolve("open"));
      ws.once("error", (error) => resolve(error.message));
    });
    expect(refused).toBe("401");
    expect(kube.secrets().map((s) => s.metadata?.name)).toContain(pod!.metadata!.name);
  });

  it("serves HTTP /exec with files in a pod, and keeps Python state across calls", async () => {
    const first = await execHttp(server, { lang: "py", code: "x = 41\nopen('out.txt','w').write('hi')\nprint('ok')" });
    expect(first.status).toBe(200);
    expect(first.json).toMatchObject({ stdout: "ok\n" });
    expect(first.json.files).toEqual([expect.objectContaining({ name: "out.txt" })]);
    const second = await execHttp(server, { lang: "py", code: "print(x + 1)", session_id: first.json.session_id });
    expect(second.json).toMatchObject({ stdout: "42\n", session_id: first.json.session_id });
  });

  it("a pod deleted mid-exec ends the run with sandbox_lost; the next run gets a new pod with the Python state restored", async () => {
    const client = await connect();
    await client.openSession();
    const define = await client.run("d1", "py", "kept = 'still here'\nprint('defined')");
    expect(define.exit).toMatchObject({ code: 0 });
    const before = new Set(sandboxPods(kube).map((p) => p.metadata!.name!));
    client.send({ type: "exec", id: "d2", lang: "py", code: "import time\nprint('start', flush=True)\ntime.sleep(30)" });
    await client.waitFor((f) => f.type === "out" && f.id === "d2");
    // Find the pod of this session: the one running the sleep is the newest among those alive before the exec.
    const names = [...before];
    let lost = false;
    for (const name of names.reverse()) {
      await kube.deletePod(name);
      const exit = await client.waitFor((f) => f.type === "exit" && f.id === "d2", 3_000).catch(() => undefined);
      if (exit) {
        expect(exit).toMatchObject({ reason: "sandbox_lost" });
        lost = true;
        break;
      }
    }
    expect(lost).toBe(true);
    const after = await client.run("d3", "py", "print(kept)");
    expect(after.exit).toMatchObject({ reason: "exited", code: 0 });
    expect(after.stdout).toBe("still here\n");
    expect(sandboxPods(kube).some((p) => !before.has(p.metadata!.name!))).toBe(true);
  });

  it("deletes a session's pod and its Secret when the session ends", async () => {
    const client = await connect();
    const ready = await client.openSession();
    await client.run("e1", "bash", "echo hi");
    const mine = new Set(sandboxPods(kube).map((p) => p.metadata!.name!));
    client.send({ type: "session.close" });
    await client.closed.catch(() => {});
    await until("the session's pod to go", () => sandboxPods(kube).length < mine.size || undefined);
    const live = new Set(sandboxPods(kube).map((p) => p.metadata!.name!));
    const gone = [...mine].filter((name) => !live.has(name));
    expect(gone.length).toBeGreaterThan(0);
    const secrets = new Set(kube.secrets().map((s) => s.metadata!.name!));
    for (const name of gone) expect(secrets.has(name)).toBe(false);
    expect(ready.sessionId).toBeDefined();
  });

  it("watches pods instead of polling them", () => {
    const watches = kube.requests.filter((r) => r.startsWith("GET") && r.includes("watch=true"));
    const reads = kube.requests.filter((r) => /^GET \/api\/v1\/namespaces\/[^/]+\/pods\/[^?]+/.test(r));
    expect(watches.length).toBeGreaterThan(0);
    expect(reads).toEqual([]);
    expect(kube.requests.some((r) => r.includes("/exec") || r.includes("/log"))).toBe(false);
  });
});

describe("Kubernetes provider: faults, pools and orphans", () => {
  let kube: KubeStandIn;
  const servers: ServerProcess[] = [];
  const clients: TestClient[] = [];

  beforeAll(async () => {
    kube = await startKubeStandIn();
  });
  afterAll(async () => {
    for (const client of clients) client.terminate();
    await Promise.all(servers.map((s) => s.stop()));
    await kube?.close();
  });

  it("keeps a warm pool of ready pods, leases from it, and refills it", async () => {
    const server = await startServer({
      transport: "node",
      env: kubeEnv(kube, { SANDBOX_POOL_PY: "2", SANDBOX_POOL_JS: "0", POD_NAME: "api-pool", ...zeroOtherPools() }),
    });
    servers.push(server);
    await until("two warm pods", () => sandboxPods(kube).filter((p) => p.status?.phase === "Running").length >= 2 || undefined, 60_000);
    const warm = new Set(sandboxPods(kube).map((p) => p.metadata!.name!));
    const client = await TestClient.connect(server.wsUrl, { apiKey: TEST_API_KEY });
    clients.push(client);
    await client.openSession();
    const started = performance.now();
    const { exit } = await client.run("p1", "py", "print('warm')");
    expect(exit).toMatchObject({ code: 0 });
    expect(performance.now() - started).toBeLessThan(5_000);
    const leased = await fetch(`${server.httpUrl}/health/detailed`, { headers: { "x-api-key": TEST_API_KEY } }).then((r) => r.json());
    expect(JSON.stringify(leased)).toContain("kubernetes");
    // The lease took a warm pod (no new pod was needed for it); the pool refills to two ready ones.
    await until("the pool to refill", () => sandboxPods(kube).filter((p) => !warm.has(p.metadata!.name!)).length >= 1 || undefined, 60_000);
    expect(sandboxPods(kube).every((p) => p.metadata!.labels!["code-interpreter.dev/replica"] === "api-pool")).toBe(true);
    client.terminate();
    await server.stop();
    servers.splice(servers.indexOf(server), 1);
    await until("a stopped replica's pods to be deleted", () => sandboxPods(kube).length === 0 || undefined);
  }, 120_000);

  it("gives languages with their own image or resources pods of their own, a pool of their own, and swaps a session's pod when its language needs another", async () => {
    const server = await startServer({
      transport: "node",
      env: kubeEnv(kube, {
        ...zeroOtherPools(),
        SANDBOX_POOL_PY: "0",
        SANDBOX_POOL_JS: "0",
        SANDBOX_POOL_GO: "1",
        POD_NAME: "api-classes",
        LANG_IMAGE_GO: "registry.example/code-interpreter/sandbox-go:1.0",
        K8S_MEMORY_LIMIT_GO: "1Gi",
      }),
    });
    servers.push(server);
    const mine = () => sandboxPods(kube).filter((p) => p.metadata!.labels!["code-interpreter.dev/replica"] === "api-classes");
    const goPods = () => mine().filter((p) => p.spec!.containers[0]!.image === "registry.example/code-interpreter/sandbox-go:1.0");
    const warmGo = await until("a warm Go pod", () => goPods().find((p) => p.status?.phase === "Running"), 60_000);
    expect(warmGo.metadata!.labels!["code-interpreter.dev/pool"]).toBe("go");
    expect(warmGo.spec!.containers[0]!.resources!.limits).toMatchObject({ memory: "1Gi" });
    const health = (await fetch(`${server.httpUrl}/health/detailed`, { headers: { "x-api-key": TEST_API_KEY } }).then((r) => r.json())) as {
      checks: { pool: { classes?: Record<string, { target: number }> } };
    };
    expect(health.checks.pool.classes).toMatchObject({ default: { target: 0 }, go: { target: 1 } });

    // A session that starts with Python gets a default pod; its Go run swaps it for the warm Go pod; Python comes back with its state.
    const client = await TestClient.connect(server.wsUrl, { apiKey: TEST_API_KEY });
    clients.push(client);
    await client.openSession();
    expect((await client.run("c1", "py", "kept = 'across pods'\nprint('py')")).stdout).toBe("py\n");
    const go = await client.run("c2", "go", 'package main\nimport "fmt"\nfunc main() { fmt.Println("go") }', {}, 120_000);
    expect(go.exit).toMatchObject({ reason: "exited", code: 0 });
    expect(go.stdout).toBe("go\n");
    const back = await client.run("c3", "py", "print(kept)");
    expect(back.stdout).toBe("across pods\n");
    // The Go run took the warm pod (gone with the swap back to Python) and the pool made another.
    await until(
      "a new warm Go pod",
      () => goPods().some((p) => p.status?.phase === "Running" && p.metadata!.name !== warmGo.metadata!.name) || undefined,
      60_000,
    );
    expect(goPods().some((p) => p.metadata!.name === warmGo.metadata!.name)).toBe(false);
    expect(mine().filter((p) => p.metadata!.labels!["code-interpreter.dev/pool"] === "default")).toHaveLength(1);
  }, 180_000);

  it("refuses clearly while the API server is unreachable, and recovers without a restart", async () => {
    const server = await startServer({ transport: "node", env: kubeEnv(kube, { SANDBOX_POOL_ENABLED: "false", POD_NAME: "api-outage" }) });
    servers.push(server);
    // Ready once the start-up check's probe pod ran.
    await until("/ready to say 200", async () => (await fetch(`${server.httpUrl}/ready`)).status === 200 || undefined, 30_000);
    await kube.pause();
    try {
      await until("/ready to say 503", async () => (await fetch(`${server.httpUrl}/ready`)).status === 503 || undefined, 10_000);
      const ready = (await (await fetch(`${server.httpUrl}/ready`)).json()) as { reason: string };
      expect(ready.reason).toMatch(/Kubernetes API unreachable/);
      const refused = await execHttp(server, { lang: "py", code: "print(1)" });
      expect(refused.status).toBe(503);
      expect(refused.json).toMatchObject({ error_type: "service_unavailable", error: expect.stringMatching(/No sandbox could be started/) });
    } finally {
      await kube.resume();
    }
    await until("/ready to recover", async () => (await fetch(`${server.httpUrl}/ready`)).status === 200 || undefined, 10_000);
    const ok = await execHttp(server, { lang: "py", code: "print('back')" });
    expect(ok.json).toMatchObject({ stdout: "back\n" });
  }, 60_000);

  it("reports a pod that cannot pull its image with Kubernetes' reason", async () => {
    const server = await startServer({
      transport: "node",
      env: kubeEnv(kube, { SANDBOX_POOL_ENABLED: "false", POD_NAME: "api-badimage", K8S_IMAGE_REGISTRY: "registry.example/does-not-exist" }),
    });
    servers.push(server);
    const client = await TestClient.connect(server.wsUrl, { apiKey: TEST_API_KEY });
    clients.push(client);
    // session.open starts the session's sandbox: the refusal comes there (or at the first exec when the open succeeded).
    let error = await client.openSession();
    if (error.type === "session.ready") {
      client.send({ type: "exec", id: "b1", lang: "py", code: "print(1)" });
      error = await client.waitFor((f) => f.type === "error" && f.id === "b1", 15_000);
    }
    expect(error).toMatchObject({ type: "error", code: "sandbox_unavailable" });
    expect(server.logs.join("\n")).toMatch(/ErrImagePull/);
    await until(
      "the failed pod to be deleted",
      () => !sandboxPods(kube).some((p) => p.metadata!.labels!["code-interpreter.dev/replica"] === "api-badimage") || undefined,
    );
  });

  it("deletes pods of a crashed replica: its own earlier process at restart, and any replica whose pod is gone", async () => {
    const ownerUid = kube.addPod("api-crash", { "app.kubernetes.io/name": "code-interpreter", "app.kubernetes.io/component": "api" });
    const env = kubeEnv(kube, {
      SANDBOX_POOL_PY: "1",
      ...zeroOtherPools(),
      SANDBOX_POOL_JS: "0",
      POD_NAME: "api-crash",
      POD_UID: ownerUid,
      POD_NAMESPACE: kube.namespace,
    });
    const first = await startServer({ transport: "node", env });
    await until(
      "a warm pod of api-crash",
      () => sandboxPods(kube).some((p) => p.metadata!.labels!["code-interpreter.dev/replica"] === "api-crash" && p.status?.phase === "Running") || undefined,
      60_000,
    );
    const leftBehind = sandboxPods(kube).filter((p) => p.metadata!.labels!["code-interpreter.dev/replica"] === "api-crash");
    expect(leftBehind[0]!.metadata!.ownerReferences).toEqual([expect.objectContaining({ kind: "Pod", name: "api-crash", uid: ownerUid })]);
    first.child.kill("SIGKILL");
    await new Promise((resolve) => first.child.once("exit", resolve));
    // Same replica, new process: its start-up sweep deletes the earlier instance's pods.
    const second = await startServer({ transport: "node", env: { ...env, SANDBOX_POOL_ENABLED: "false" } });
    servers.push(second);
    const names = new Set(leftBehind.map((p) => p.metadata!.name!));
    await until("the earlier process's pods to go", () => !sandboxPods(kube).some((p) => names.has(p.metadata!.name!)) || undefined);

    // Another replica dies with its pod: a living replica's periodic sweep deletes its sandboxes.
    const deadUid = kube.addPod("api-dead", { "app.kubernetes.io/name": "code-interpreter", "app.kubernetes.io/component": "api" });
    const doomed = await startServer({
      transport: "node",
      env: kubeEnv(kube, {
        SANDBOX_POOL_PY: "1",
        ...zeroOtherPools(),
        SANDBOX_POOL_JS: "0",
        POD_NAME: "api-dead",
        POD_UID: deadUid,
        POD_NAMESPACE: kube.namespace,
      }),
    });
    await until(
      "a warm pod of api-dead",
      () => sandboxPods(kube).some((p) => p.metadata!.labels!["code-interpreter.dev/replica"] === "api-dead" && p.status?.phase === "Running") || undefined,
      60_000,
    );
    doomed.child.kill("SIGKILL");
    await new Promise((resolve) => doomed.child.once("exit", resolve));
    await kube.deletePod("api-dead");
    const sweeper = await startServer({
      transport: "node",
      env: kubeEnv(kube, { SANDBOX_POOL_ENABLED: "false", POD_NAME: "api-sweeper", K8S_ORPHAN_SWEEP_INTERVAL: "1" }),
    });
    servers.push(sweeper);
    await until(
      "the dead replica's pods to go",
      () => !sandboxPods(kube).some((p) => p.metadata!.labels!["code-interpreter.dev/replica"] === "api-dead") || undefined,
    );
  }, 120_000);

  it("resumes its watch after the API server forgets old resourceVersions (410 Gone), and still sees pods go", async () => {
    const server = await startServer({ transport: "node", env: kubeEnv(kube, { SANDBOX_POOL_ENABLED: "false", POD_NAME: "api-gone" }) });
    servers.push(server);
    const client = await TestClient.connect(server.wsUrl, { apiKey: TEST_API_KEY });
    clients.push(client);
    await client.openSession();
    await client.run("g1", "py", "x = 1");
    // Break the watch stream and forget history: the provider must list again, not resume from its old resourceVersion.
    kube.compactEvents();
    await kube.pause();
    await sleep(300);
    await kube.resume();
    const mine = await until("this replica's pod", () => sandboxPods(kube).find((p) => p.metadata!.labels!["code-interpreter.dev/replica"] === "api-gone"));
    await sleep(1_000);
    client.send({ type: "exec", id: "g2", lang: "py", code: "import time\nprint('x', flush=True)\ntime.sleep(20)" });
    await client.waitFor((f) => f.type === "out" && f.id === "g2");
    await kube.deletePod(mine.metadata!.name!);
    expect(await client.waitFor((f) => f.type === "exit" && f.id === "g2", 10_000)).toMatchObject({ reason: "sandbox_lost" });
  });
});

/** Pool sizes of every language but Python at 0 (so that a test counts exactly its own warm pods). */
function zeroOtherPools(): Record<string, string> {
  return Object.fromEntries(["JS", "TS", "GO", "JAVA", "C", "CPP", "PHP", "RS", "R", "F90", "D"].map((code) => [`SANDBOX_POOL_${code}`, "0"]));
}
