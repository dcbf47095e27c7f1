/**
 * A stand-in for the Kubernetes API server, on loopback, for the Kubernetes
 * provider's tests. It speaks the HTTP API the provider uses — pods (create,
 * get, list, watch, delete, with resourceVersions, label selectors, watch
 * events, 410 Gone for a resourceVersion it no longer keeps) and Secrets
 * (create, get, delete) — and validates every object it is given against the
 * Kubernetes API types (kubernetes-models), answering 422 like the real one.
 *
 * Each sandbox pod it accepts becomes a real sidecar-agent in a local
 * bubblewrap sandbox listening on the pod's own loopback address (127.x.y.z,
 * port from the pod's AGENT_LISTEN), with the token read from the Secret the
 * pod mounts, so the server dials it exactly as it would dial a pod IP.
 * Other pods (a replica's own pod, for ownership tests) just run.
 */
import { randomInt, randomUUID } from "node:crypto";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { V1Pod, V1Secret } from "@kubernetes/client-node";
import { Pod } from "kubernetes-models/v1/Pod";
import { Secret } from "kubernetes-models/v1/Secret";
import { parseQuantity } from "../../server/sandbox/kubernetes/pod-manifest.ts";
import { type LocalSandbox, LocalSandboxProvider } from "../../server/sandbox/local/local-provider.ts";
import { REPO_ROOT } from "./repo-root.ts";

type WatchType = "ADDED" | "MODIFIED" | "DELETED";
interface LoggedEvent {
  rv: number;
  type: WatchType;
  pod: V1Pod;
}
interface Watcher {
  selector: Selector;
  res: ServerResponse;
}
type Selector = (labels: Record<string, string>) => boolean;

/** Events kept for watches that resume; older resourceVersions get 410 Gone. */
const EVENT_LOG_SIZE = 500;

export interface StandInOptions {
  namespace?: string;
  /** Delay before a new pod "runs" (scheduling and image pull). */
  startDelayMs?: number;
}

export interface KubeStandIn {
  url: string;
  namespace: string;
  /** A kubeconfig file pointing at the stand-in (KUBECONFIG for the server). */
  kubeconfig: string;
  /** Pods as the API server has them now. */
  pods(): V1Pod[];
  secrets(): V1Secret[];
  /** Every request: "METHOD path?query". */
  requests: string[];
  /** Delete a pod as `kubectl delete pod` would (its agent dies). */
  deletePod(name: string): Promise<void>;
  /** Add a plain running pod (a replica's own pod); returns its uid. */
  addPod(name: string, labels?: Record<string, string>): string;
  /** Make the next resumed watches too old: forget the event log (their next resume gets 410 Gone). */
  compactEvents(): void;
  /** Stop answering (connections refused), keeping pods and agents; `resume` listens again on the same port. */
  pause(): Promise<void>;
  resume(): Promise<void>;
  close(): Promise<void>;
}

function parseSelector(text: string | null): Selector {
  const terms = (text ?? "")
    .split(",")
    .map((t) => t.trim())
    .filter(Boolean)
    .map((term) => {
      const notEqual = term.indexOf("!=");
      if (notEqual > 0) return { key: term.slice(0, notEqual), value: term.slice(notEqual + 2), negate: true };
      const equal = term.indexOf("=");
      if (equal < 0) return { key: term, value: undefined, negate: false };
      return { key: term.slice(0, equal), value: term.slice(equal + (term[equal + 1] === "=" ? 2 : 1)), negate: false };
    });
  return (labels) =>
    terms.every(({ key, value, negate }) => {
      if (value === undefined) return key in labels;
      return negate ? labels[key] !== value : labels[key] === value;
    });
}

function status(res: ServerResponse, code: number, reason: string, message: string): void {
  res.writeHead(code, { "content-type": "application/json" });
  res.end(JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Failure", reason, message, code }));
}

function json(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

const clone = <T>(value: T): T => structuredClone(value);

export async function startKubeStandIn(options: StandInOptions = {}): Promise<KubeStandIn> {
  const namespace = options.namespace ?? "sandboxes";
  const pods = new Map<string, V1Pod>();
  const secrets = new Map<string, V1Secret>();
  const agents = new Map<string, LocalSandbox>();
  const events: LoggedEvent[] = [];
  const watchers = new Set<Watcher>();
  const requests: string[] = [];
  let resourceVersion = randomInt(1000, 100_000);
  // One /16 of loopback addresses per stand-in, so that parallel test files never share an address.
  const octet = randomInt(16, 250);
  let nextHost = 0;
  const dir = mkdtempSync(join(tmpdir(), "kube-"));
  // The sandboxes' uid must pass through to their folders under it.
  chmodSync(dir, 0o711);
  // One local provider per uid the pods ask for (securityContext.runAsUser).
  const locals = new Map<number, LocalSandboxProvider>();
  const localFor = (uid: number, gid: number) => {
    let local = locals.get(uid);
    if (!local) {
      local = new LocalSandboxProvider({ baseDir: join(dir, `u${uid}`), uid, gid, agentDir: join(REPO_ROOT, "dist/agent") });
      locals.set(uid, local);
    }
    return local;
  };

  const record = (type: WatchType, pod: V1Pod) => {
    resourceVersion += 1;
    pod.metadata!.resourceVersion = String(resourceVersion);
    events.push({ rv: resourceVersion, type, pod: clone(pod) });
    if (events.length > EVENT_LOG_SIZE) events.shift();
    for (const watcher of watchers) {
      if (watcher.selector(pod.metadata?.labels ?? {})) watcher.res.write(`${JSON.stringify({ type, object: pod })}\n`);
    }
  };

  const update = (name: string, change: (pod: V1Pod) => void) => {
    const pod = pods.get(name);
    if (!pod) return;
    change(pod);
    record("MODIFIED", pod);
  };

  const startAgent = async (pod: V1Pod) => {
    const name = pod.metadata!.name!;
    const container = pod.spec!.containers[0]!;
    const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value ?? ""]));
    const secretName = pod.spec!.volumes?.find((v) => v.secret)?.secret?.secretName;
    const secret = secretName ? secrets.get(secretName) : undefined;
    const fail = (reason: string, message: string) =>
      update(name, (p) => {
        p.status = {
          ...p.status,
          containerStatuses: [
            { name: container.name, image: container.image!, imageID: "", ready: false, restartCount: 0, state: { waiting: { reason, message } } },
          ],
        };
      });
    if (container.image?.includes("does-not-exist")) return fail("ErrImagePull", `pull access denied for ${container.image}`);
    if (!secret?.data?.token) return fail("CreateContainerConfigError", `secret "${secretName}" not found`);
    const port = Number(/^tcp:[^:]+:(\d+)$/.exec(env.AGENT_LISTEN ?? "")?.[1]);
    if (!port) return fail("RunContainerError", `AGENT_LISTEN is not tcp:HOST:PORT: ${env.AGENT_LISTEN}`);
    nextHost += 1;
    const host = `127.${octet}.${Math.floor(nextHost / 250)}.${(nextHost % 250) + 2}`;
    const limits = container.resources?.limits ?? {};
    const sizeOf = (volume: string) => parseQuantity(String(pod.spec!.volumes?.find((v) => v.name === volume)?.emptyDir?.sizeLimit ?? "64Mi"));
    const agentEnv: Record<string, string> = {};
    for (const key of ["AGENT_PROGRAM_ENV", "AGENT_PYTHON_PRELOAD"]) if (env[key] !== undefined) agentEnv[key] = env[key];
    if (options.startDelayMs) await new Promise((r) => setTimeout(r, options.startDelayMs));
    if (!pods.has(name)) return;
    const context = { ...pod.spec!.securityContext, ...container.securityContext };
    if (!context.runAsUser || context.runAsUser === 0) return fail("CreateContainerConfigError", "the stand-in runs sandboxes only as a non-root runAsUser");
    let sandbox: LocalSandbox;
    try {
      sandbox = await localFor(context.runAsUser, context.runAsGroup ?? context.runAsUser).create(
        {
          sessionId: name,
          limits: {
            memoryBytes: parseQuantity(String(limits.memory ?? "512Mi")),
            pids: 512,
            cpuQuotaUs: Math.round(parseQuantity(String(limits.cpu ?? "1")) * 100_000),
            openFiles: 1024,
            fileSizeBytes: 100 * 2 ** 20,
            dataBytes: sizeOf("data"),
            tmpBytes: sizeOf("tmp"),
          },
        },
        { token: Buffer.from(secret.data.token, "base64").toString("utf8"), tcpListen: { host, port }, env: agentEnv },
      );
    } catch (error) {
      return fail("RunContainerError", (error as Error).message.slice(0, 300));
    }
    if (!pods.has(name)) {
      await sandbox.destroy();
      return;
    }
    agents.set(name, sandbox);
    update(name, (p) => {
      p.status = {
        phase: "Running",
        podIP: host,
        podIPs: [{ ip: host }],
        startTime: new Date(),
        conditions: [{ type: "Ready", status: "True" }],
        containerStatuses: [{ name: container.name, image: container.image!, imageID: "", ready: true, restartCount: 0, state: { running: {} } }],
      };
    });
    void sandbox.exited.then(({ reason }) => {
      if (agents.get(name) !== sandbox) return;
      agents.delete(name);
      update(name, (p) => {
        p.status = {
          ...p.status,
          phase: "Failed",
          containerStatuses: [
            { name: container.name, image: container.image!, imageID: "", ready: false, restartCount: 0, state: { terminated: { exitCode: 137, reason } } },
          ],
        };
      });
    });
  };

  const removePod = async (name: string) => {
    const pod = pods.get(name);
    if (!pod) return undefined;
    pods.delete(name);
    const agent = agents.get(name);
    agents.delete(name);
    await agent?.destroy();
    pod.metadata!.deletionTimestamp = new Date();
    record("DELETED", pod);
    return pod;
  };

  const serveWatch = (req: IncomingMessage, res: ServerResponse, url: URL) => {
    const selector = parseSelector(url.searchParams.get("labelSelector"));
    const from = url.searchParams.get("resourceVersion");
    res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
    res.flushHeaders();
    if (!from || from === "0") {
      for (const pod of pods.values()) if (selector(pod.metadata?.labels ?? {})) res.write(`${JSON.stringify({ type: "ADDED", object: pod })}\n`);
    } else {
      const rv = Number(from);
      const oldest = events[0]?.rv ?? resourceVersion + 1;
      if (rv < oldest - 1 && rv < resourceVersion) {
        res.end(
          `${JSON.stringify({ type: "ERROR", object: { kind: "Status", apiVersion: "v1", status: "Failure", reason: "Expired", code: 410, message: `too old resource version: ${rv}` } })}\n`,
        );
        return;
      }
      for (const event of events)
        if (event.rv > rv && selector(event.pod.metadata?.labels ?? {})) res.write(`${JSON.stringify({ type: event.type, object: event.pod })}\n`);
    }
    const watcher: Watcher = { selector, res };
    watchers.add(watcher);
    const seconds = Number(url.searchParams.get("timeoutSeconds") ?? 0);
    const timer = seconds > 0 ? setTimeout(() => res.end(), seconds * 1000) : undefined;
    req.on("close", () => {
      clearTimeout(timer);
      watchers.delete(watcher);
    });
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://stand-in");
    requests.push(`${req.method} ${url.pathname}${url.search}`);
    const match = /^\/api\/v1\/namespaces\/([^/]+)\/(pods|secrets)(?:\/([^/]+))?$/.exec(url.pathname);
    if (!match) return status(res, 404, "NotFound", `the server could not find the requested resource (${url.pathname})`);
    const [, ns, kind, name] = match;
    if (ns !== namespace) return status(res, 403, "Forbidden", `namespace ${ns} is not ${namespace}`);
    if (kind === "secrets") {
      if (req.method === "POST" && !name) {
        const body = (await readBody(req)) as V1Secret;
        try {
          new Secret(body as never).validate();
        } catch (error) {
          return status(res, 422, "Invalid", (error as Error).message);
        }
        const secretName = body.metadata?.name ?? "";
        if (secrets.has(secretName)) return status(res, 409, "AlreadyExists", `secrets "${secretName}" already exists`);
        const stored = { ...clone(body), metadata: { ...body.metadata, uid: randomUUID(), namespace } };
        secrets.set(secretName, stored);
        return json(res, 201, stored);
      }
      const secret = name ? secrets.get(name) : undefined;
      if (!secret) return status(res, 404, "NotFound", `secrets "${name}" not found`);
      if (req.method === "GET") return json(res, 200, secret);
      if (req.method === "DELETE") {
        secrets.delete(name!);
        return json(res, 200, { kind: "Status", apiVersion: "v1", status: "Success" });
      }
      return status(res, 405, "MethodNotAllowed", `${req.method} is not allowed`);
    }
    if (!name) {
      if (req.method === "GET" && url.searchParams.get("watch") === "true") return serveWatch(req, res, url);
      if (req.method === "GET") {
        const selector = parseSelector(url.searchParams.get("labelSelector"));
        const items = [...pods.values()].filter((pod) => selector(pod.metadata?.labels ?? {}));
        return json(res, 200, { kind: "PodList", apiVersion: "v1", metadata: { resourceVersion: String(resourceVersion) }, items });
      }
      if (req.method === "POST") {
        const body = (await readBody(req)) as V1Pod;
        try {
          new Pod(body as never).validate();
        } catch (error) {
          return status(res, 422, "Invalid", (error as Error).message);
        }
        const podName = body.metadata?.name ?? "";
        if (pods.has(podName)) return status(res, 409, "AlreadyExists", `pods "${podName}" already exists`);
        const pod: V1Pod = clone(body);
        pod.metadata = { ...pod.metadata, namespace, uid: randomUUID(), creationTimestamp: new Date() };
        pod.status = { phase: "Pending", conditions: [{ type: "PodScheduled", status: "True" }] };
        pods.set(podName, pod);
        record("ADDED", pod);
        const sandbox = pod.metadata.labels?.["app.kubernetes.io/component"] === "sandbox";
        if (sandbox) void startAgent(pod);
        else update(podName, (p) => (p.status = { phase: "Running", podIP: "127.0.0.1" }));
        return json(res, 201, pod);
      }
      return status(res, 405, "MethodNotAllowed", `${req.method} is not allowed`);
    }
    if (req.method === "GET") {
      const pod = pods.get(name);
      return pod ? json(res, 200, pod) : status(res, 404, "NotFound", `pods "${name}" not found`);
    }
    if (req.method === "DELETE") {
      const pod = await removePod(name);
      return pod ? json(res, 200, pod) : status(res, 404, "NotFound", `pods "${name}" not found`);
    }
    return status(res, 405, "MethodNotAllowed", `${req.method} is not allowed`);
  };

  let server: Server = createServer((req, res) => {
    handle(req, res).catch((error: Error) => status(res, 500, "InternalError", error.message));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  const kubeconfig = join(dir, "kubeconfig.json");
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      // client-node speaks plain HTTP only with skip-TLS-verify set.
      clusters: [{ name: "stand-in", cluster: { server: url, "insecure-skip-tls-verify": true } }],
      users: [{ name: "tester", user: { token: "stand-in-token" } }],
      contexts: [{ name: "stand-in", context: { cluster: "stand-in", user: "tester", namespace } }],
      "current-context": "stand-in",
    }),
  );
  const closeServer = () =>
    new Promise<void>((resolve) => {
      for (const watcher of watchers) watcher.res.destroy();
      watchers.clear();
      server.closeAllConnections();
      server.close(() => resolve());
    });

  return {
    url,
    namespace,
    kubeconfig,
    requests,
    pods: () => [...pods.values()].map(clone),
    secrets: () => [...secrets.values()].map(clone),
    deletePod: async (name) => {
      await removePod(name);
    },
    addPod: (name, labels = {}) => {
      const pod: V1Pod = { apiVersion: "v1", kind: "Pod", metadata: { name, namespace, labels, uid: randomUUID() }, status: { phase: "Running" } };
      pods.set(name, pod);
      record("ADDED", pod);
      return pod.metadata!.uid!;
    },
    compactEvents: () => {
      events.length = 0;
    },
    pause: closeServer,
    resume: async () => {
      const handler = server.listeners("request")[0] as (req: IncomingMessage, res: ServerResponse) => void;
      server = createServer(handler);
      await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    },
    close: async () => {
      await closeServer();
      await Promise.all([...agents.values()].map((agent) => agent.destroy()));
      await Promise.all([...locals.values()].map((local) => local.shutdown()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
