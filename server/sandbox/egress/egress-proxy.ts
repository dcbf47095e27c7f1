/**
 * The egress proxy (ENABLE_SANDBOX_NETWORK): the one way out of a sandbox.
 * A local sandbox gets a unix socket of its own (the agent relays its
 * 127.0.0.1:SANDBOX_EGRESS_PORT to it, sidecar-agent/egress-relay.ts), so
 * which sandbox asks is known by where the request arrives. Pods reach one
 * TCP listener of their replica instead, each with a credential of its own
 * in its proxy URL (`Proxy-Authorization`), granted for the pod's life.
 * Only `CONNECT name:port` is served, for a name and port on the
 * allowlist, to a public address (or the one the operator pinned); TLS runs
 * end to end through the tunnel. Everything else gets an HTTP error and a
 * security event in the log.
 */

import { randomBytes } from "node:crypto";
import { lookup } from "node:dns/promises";
import { chmod } from "node:fs/promises";
import { createConnection, createServer, isIP, type Server, type Socket } from "node:net";
import { isPublicAddress } from "./address-policy.ts";
import { type EgressAllowlist, normalizeHostName } from "./allowlist.ts";

export type RefusalReason =
  | "not_connect"
  | "bad_request"
  | "ip_literal"
  | "bad_name"
  | "not_allowed"
  | "private_address"
  | "unresolvable"
  | "unreachable"
  | "too_many_tunnels"
  | "unauthenticated";

export interface EgressEvent {
  sandboxId: string;
  /** The target as the sandbox wrote it (truncated), or the method for a non-CONNECT request. */
  target: string;
  reason?: RefusalReason;
  address?: string;
  bytesUp?: number;
  bytesDown?: number;
}

export interface EgressProxyOptions {
  allowlist: EgressAllowlist;
  /** SANDBOX_EGRESS_RESOLVE: addresses the operator pinned, by name; they skip DNS and the public-address check. */
  pinned?: ReadonlyMap<string, string>;
  /** A security event: a refused request (warn) or an opened and closed tunnel (info). */
  onEvent?: (event: "egress_refused" | "egress_tunnel", fields: EgressEvent) => void;
  connectTimeoutMs?: number;
  /** A tunnel with no bytes either way for this long is closed. */
  idleTimeoutMs?: number;
  maxTunnelsPerSandbox?: number;
  resolve?: (name: string) => Promise<string[]>;
}

/** Longest request head read before answering 431 (a CONNECT head is a few hundred bytes). */
const MAX_HEAD_BYTES = 8 * 1024;
const HEAD_TIMEOUT_MS = 10_000;

const STATUS: Record<RefusalReason, string> = {
  not_connect: "405 Method Not Allowed",
  bad_request: "400 Bad Request",
  ip_literal: "403 Forbidden",
  bad_name: "403 Forbidden",
  not_allowed: "403 Forbidden",
  private_address: "403 Forbidden",
  unresolvable: "502 Bad Gateway",
  unreachable: "502 Bad Gateway",
  too_many_tunnels: "429 Too Many Requests",
  unauthenticated: '407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="sandbox egress"',
};

const MESSAGES: Record<RefusalReason, string> = {
  not_connect: "only HTTPS through CONNECT is allowed",
  bad_request: "malformed proxy request",
  ip_literal: "addresses are refused: ask for a host name",
  bad_name: "not a host name",
  not_allowed: "this host and port are not on the sandbox egress allowlist",
  private_address: "the host resolves to a private or reserved address",
  unresolvable: "the host name does not resolve",
  unreachable: "the host cannot be reached",
  too_many_tunnels: "too many open connections from this sandbox",
  unauthenticated: "no valid sandbox credential in Proxy-Authorization",
};

async function resolveAll(name: string): Promise<string[]> {
  const found = await lookup(name, { all: true, verbatim: true });
  return found.map((entry) => entry.address);
}

/** The target of a CONNECT line: host and port, the host without IPv6 brackets. */
function parseTarget(target: string): { host: string; port: number } | undefined {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):(\d{1,5})$/.exec(target);
  if (!match) return undefined;
  const port = Number(match[2]);
  if (port < 1 || port > 65535) return undefined;
  return { host: match[1]!.replace(/^\[|\]$/g, ""), port };
}

export interface EgressListener {
  close(): Promise<void>;
}

/** Who is asking: a sandbox id, from the socket it came through or the credential its request carries. */
type Identify = (head: string) => string | undefined;

/** The password of a `Proxy-Authorization: Basic` header. */
function proxyPassword(head: string): string | undefined {
  const match = /^proxy-authorization:\s*basic\s+([A-Za-z0-9+/=]+)\s*$/im.exec(head);
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  return colon === -1 ? undefined : decoded.slice(colon + 1);
}

export class EgressProxy {
  readonly #options: EgressProxyOptions;
  readonly allowlist: EgressAllowlist;
  readonly #resolve: (name: string) => Promise<string[]>;
  /** Pod credentials (TCP listener) and the sandbox each one stands for. */
  readonly #grants = new Map<string, string>();
  readonly #granted = new Map<string, string>();
  /** Open client connections per sandbox (the tunnel limit). */
  readonly #connections = new Map<string, number>();
  /** Tunnels opened so far and open now, and refusals by reason (metrics, health). */
  readonly counts = { tunnels: 0, open: 0, refused: {} as Partial<Record<RefusalReason, number>> };

  constructor(options: EgressProxyOptions) {
    this.#options = options;
    this.allowlist = options.allowlist;
    this.#resolve = options.resolve ?? resolveAll;
  }

  /** Serve one sandbox on a unix socket at `path` (made 0666: the sandbox uid connects to it). */
  async listen(path: string, sandboxId: string): Promise<EgressListener> {
    return this.#listen(
      (server) => server.listen(path),
      () => sandboxId,
      () => chmod(path, 0o666),
    );
  }

  /** Serve pods on one TCP address; each request must carry a credential from `grant`. */
  listenTcp(host: string, port: number): Promise<EgressListener & { port: number }> {
    let bound = port;
    return this.#listen(
      (server) => server.listen(port, host),
      (head) => {
        const password = proxyPassword(head);
        return password === undefined ? undefined : this.#grants.get(password);
      },
      async (server) => {
        bound = (server.address() as { port: number }).port;
      },
    ).then((listener) => ({ ...listener, port: bound }));
  }

  /** A new credential for sandbox `sandboxId` on the TCP listener, valid until `revoke`. */
  grant(sandboxId: string): string {
    const credential = randomBytes(24).toString("base64url");
    this.#grants.set(credential, sandboxId);
    this.#granted.set(sandboxId, credential);
    return credential;
  }

  revoke(sandboxId: string): void {
    const credential = this.#granted.get(sandboxId);
    if (credential !== undefined) this.#grants.delete(credential);
    this.#granted.delete(sandboxId);
  }

  async #listen(start: (server: Server) => void, identify: Identify, ready: (server: Server) => Promise<void>): Promise<EgressListener> {
    const sockets = new Set<Socket>();
    const server: Server = createServer((client) => {
      sockets.add(client);
      client.once("close", () => sockets.delete(client));
      this.#serve(client, identify);
    });
    await new Promise<void>((resolveListen, reject) => {
      server.once("error", reject);
      server.once("listening", () => resolveListen());
      start(server);
    });
    await ready(server);
    return {
      close: () =>
        new Promise<void>((done) => {
          for (const socket of sockets) socket.destroy();
          server.close(() => done());
        }),
    };
  }

  #serve(client: Socket, identify: Identify): void {
    let head = Buffer.alloc(0);
    client.setTimeout(HEAD_TIMEOUT_MS, () => client.destroy());
    client.on("error", () => {});
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf("\r\n\r\n");
      if (end === -1) {
        if (head.length > MAX_HEAD_BYTES) {
          // Stop reading: a client that keeps sending after the refusal must not grow `head` further.
          client.off("data", onData);
          this.#refuse(client, identify(head.toString("latin1")) ?? "(unknown)", "bad_request", "(head too long)");
        }
        return;
      }
      client.off("data", onData);
      client.pause();
      client.setTimeout(0);
      const text = head.subarray(0, end).toString("latin1");
      const line = text.slice(0, text.indexOf("\r\n") === -1 ? undefined : text.indexOf("\r\n"));
      const sandboxId = identify(text);
      if (sandboxId === undefined) return this.#refuse(client, "(unknown)", "unauthenticated", line.split(" ")[1]?.slice(0, 300) ?? "");
      this.#connections.set(sandboxId, (this.#connections.get(sandboxId) ?? 0) + 1);
      client.once("close", () => {
        const left = (this.#connections.get(sandboxId) ?? 1) - 1;
        if (left > 0) this.#connections.set(sandboxId, left);
        else this.#connections.delete(sandboxId);
      });
      void this.#connect(client, sandboxId, line, head.subarray(end + 4));
    };
    client.on("data", onData);
  }

  async #connect(client: Socket, sandboxId: string, line: string, early: Buffer): Promise<void> {
    const [method = "", target = "", version = ""] = line.split(" ");
    const shown = target.slice(0, 300);
    if (method !== "CONNECT")
      return this.#refuse(client, sandboxId, method && version.startsWith("HTTP/") ? "not_connect" : "bad_request", `${method.slice(0, 20)} ${shown}`);
    const parsed = version.startsWith("HTTP/1.") ? parseTarget(target) : undefined;
    if (!parsed) return this.#refuse(client, sandboxId, "bad_request", shown);
    if (isIP(parsed.host) !== 0) return this.#refuse(client, sandboxId, "ip_literal", shown);
    const name = normalizeHostName(parsed.host);
    if (!name) return this.#refuse(client, sandboxId, "bad_name", shown);
    if (!this.allowlist.allows(name, parsed.port)) return this.#refuse(client, sandboxId, "not_allowed", shown);
    const limit = this.#options.maxTunnelsPerSandbox ?? 32;
    if ((this.#connections.get(sandboxId) ?? 0) > limit) return this.#refuse(client, sandboxId, "too_many_tunnels", shown);

    let address = this.#options.pinned?.get(name);
    if (address === undefined) {
      let addresses: string[];
      try {
        addresses = await this.#resolve(name);
      } catch {
        return this.#refuse(client, sandboxId, "unresolvable", shown);
      }
      if (addresses.length === 0) return this.#refuse(client, sandboxId, "unresolvable", shown);
      // Every address must be public: a name answering with one inward address is not trusted for the others either.
      if (!addresses.every(isPublicAddress)) return this.#refuse(client, sandboxId, "private_address", shown, addresses.join(","));
      address = addresses[0]!;
    }
    if (client.destroyed) return;
    this.#tunnel(client, sandboxId, shown, address, parsed.port, early);
  }

  #tunnel(client: Socket, sandboxId: string, target: string, address: string, port: number, early: Buffer): void {
    const upstream = createConnection({ host: address, port });
    let connected = false;
    let bytesUp = early.length;
    let bytesDown = 0;
    const connectTimer = setTimeout(() => upstream.destroy(new Error("connect timeout")), this.#options.connectTimeoutMs ?? 10_000);
    upstream.once("connect", () => {
      clearTimeout(connectTimer);
      connected = true;
      this.counts.tunnels++;
      this.counts.open++;
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (early.length > 0) upstream.write(early);
      const idle = this.#options.idleTimeoutMs ?? 120_000;
      upstream.setTimeout(idle, () => upstream.destroy());
      client.setTimeout(idle, () => client.destroy());
      client.on("data", (chunk: Buffer) => {
        bytesUp += chunk.length;
      });
      upstream.on("data", (chunk: Buffer) => {
        bytesDown += chunk.length;
      });
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    upstream.on("error", () => {});
    upstream.once("close", () => {
      clearTimeout(connectTimer);
      if (!connected) {
        // The sandbox hung up while we dialled: nothing to answer.
        if (!client.destroyed) this.#refuse(client, sandboxId, "unreachable", target, address);
        return;
      }
      this.counts.open--;
      client.destroy();
      this.#options.onEvent?.("egress_tunnel", { sandboxId, target, address, bytesUp, bytesDown });
    });
    client.once("close", () => upstream.destroy());
  }

  #refuse(client: Socket, sandboxId: string, reason: RefusalReason, target: string, address?: string): void {
    this.counts.refused[reason] = (this.counts.refused[reason] ?? 0) + 1;
    this.#options.onEvent?.("egress_refused", { sandboxId, target, reason, ...(address ? { address } : {}) });
    if (client.destroyed) return;
    const body = `egress refused: ${MESSAGES[reason]}\n`;
    client.end(
      `HTTP/1.1 ${STATUS[reason]}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
}

/** Programs' environment that sends HTTP clients (pip, npm, curl, cargo, R...) through `url` (the sandbox's relay, or a pod's proxy URL). */
export function egressProxyEnv(url: string): Record<string, string> {
  const local = "localhost,127.0.0.1,::1";
  const { hostname, port, username } = new URL(url);
  // Java reads no proxy variables: the java command adds these system properties (protocol/languages.ts). Not with
  // a pod's credential: the JDK sends none for CONNECT unless the program installs an Authenticator.
  const java: Record<string, string> = username
    ? {}
    : {
        SANDBOX_JAVA_PROXY_FLAGS: ["https", "http"]
          .flatMap((scheme) => [`-D${scheme}.proxyHost=${hostname}`, `-D${scheme}.proxyPort=${port}`])
          .concat("-Dhttp.nonProxyHosts=localhost|127.0.0.1")
          .join(" "),
      };
  return {
    ...java,
    HTTPS_PROXY: url,
    https_proxy: url,
    HTTP_PROXY: url,
    http_proxy: url,
    NO_PROXY: local,
    no_proxy: local,
    npm_config_https_proxy: url,
    npm_config_proxy: url,
  };
}
