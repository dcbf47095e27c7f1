import { mkdtempSync, rmSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EgressAllowlist } from "../../../server/sandbox/egress/allowlist.ts";
import { type EgressEvent, type EgressListener, EgressProxy } from "../../../server/sandbox/egress/egress-proxy.ts";

/** Send `request` to the proxy socket; resolve with the first response bytes and the open socket. */
function ask(path: string, request: string): Promise<{ head: string; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path, () => socket.write(request));
    socket.once("data", (chunk) => resolve({ head: chunk.toString("latin1"), socket }));
    socket.once("error", reject);
    socket.once("end", () => resolve({ head: "", socket }));
  });
}

describe("egress proxy", () => {
  const dir = mkdtempSync(join(tmpdir(), "egress-"));
  const path = join(dir, "proxy.sock");
  const events: { event: string; fields: EgressEvent }[] = [];
  let echo: Server;
  let echoPort: number;
  let echoConnections = 0;
  let listener: EgressListener;
  let proxy: EgressProxy;

  beforeAll(async () => {
    echo = createServer((socket) => {
      echoConnections++;
      socket.on("data", (chunk) => socket.write(Buffer.concat([Buffer.from("echo:"), chunk])));
    });
    await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", resolve));
    echoPort = (echo.address() as { port: number }).port;
    proxy = new EgressProxy({
      allowlist: new EgressAllowlist([`echo.test:${echoPort}`, `inward.test:${echoPort}`, `nowhere.test:${echoPort}`, "gone.test:1"], { registries: false }),
      pinned: new Map([
        ["echo.test", "127.0.0.1"],
        ["gone.test", "127.0.0.1"],
      ]),
      resolve: async (name) => {
        if (name === "inward.test") return ["203.0.114.7", "127.0.0.1"];
        throw new Error("ENOTFOUND");
      },
      onEvent: (event, fields) => events.push({ event, fields }),
    });
    listener = await proxy.listen(path, "sandbox-1");
  });

  afterAll(async () => {
    await listener.close();
    echo.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("tunnels CONNECT to an allowed name and carries bytes sent with the request", async () => {
    const { head, socket } = await ask(path, `CONNECT echo.test:${echoPort} HTTP/1.1\r\nHost: echo.test:${echoPort}\r\n\r\nearly`);
    expect(head.startsWith("HTTP/1.1 200")).toBe(true);
    const more = head.includes("echo:early") ? head : await new Promise<string>((resolve) => socket.once("data", (c) => resolve(c.toString())));
    expect(more).toContain("echo:early");
    socket.write("late");
    const reply = await new Promise<string>((resolve) => socket.once("data", (c) => resolve(c.toString())));
    expect(reply).toBe("echo:late");
    expect(proxy.counts.open).toBe(1);
    socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(proxy.counts.open).toBe(0);
    const tunnel = events.find((e) => e.event === "egress_tunnel");
    expect(tunnel?.fields).toMatchObject({ sandboxId: "sandbox-1", target: `echo.test:${echoPort}`, address: "127.0.0.1", bytesUp: 9 });
  });

  const refusals: [string, string, string][] = [
    ["a name not on the list", "CONNECT evil.test:443 HTTP/1.1\r\n\r\n", "403 not_allowed"],
    ["an allowed name on another port", "CONNECT echo.test:443 HTTP/1.1\r\n\r\n", "403 not_allowed"],
    ["an IPv4 literal", "CONNECT 127.0.0.1:443 HTTP/1.1\r\n\r\n", "403 ip_literal"],
    ["an IPv6 literal", "CONNECT [::1]:443 HTTP/1.1\r\n\r\n", "403 ip_literal"],
    ["a numeric host", "CONNECT 2130706433:443 HTTP/1.1\r\n\r\n", "403 bad_name"],
    ["plain HTTP", "GET http://echo.test/ HTTP/1.1\r\n\r\n", "405 not_connect"],
    ["garbage", "\x16\x03\x01 hello\r\n\r\n", "400 bad_request"],
    ["a target without a port", "CONNECT echo.test HTTP/1.1\r\n\r\n", "400 bad_request"],
    ["a name resolving inward", "CONNECT inward.test:PORT HTTP/1.1\r\n\r\n", "403 private_address"],
    ["a name that does not resolve", "CONNECT nowhere.test:PORT HTTP/1.1\r\n\r\n", "502 unresolvable"],
    ["a closed port", "CONNECT gone.test:1 HTTP/1.1\r\n\r\n", "502 unreachable"],
  ];
  for (const [what, request, expected] of refusals) {
    it(`refuses ${what} and logs it`, async () => {
      const [status, reason] = expected.split(" ");
      const before = echoConnections;
      const { head, socket } = await ask(path, request.replace("PORT", String(echoPort)));
      expect(head.split("\r\n")[0]).toMatch(new RegExp(`^HTTP/1.1 ${status} `));
      expect(head).toContain("egress refused:");
      expect(echoConnections).toBe(before);
      expect(events.at(-1)).toMatchObject({ event: "egress_refused", fields: { sandboxId: "sandbox-1", reason } });
      expect(proxy.counts.refused[reason as "not_allowed"]).toBeGreaterThan(0);
      socket.destroy();
    });
  }

  it("refuses a request head longer than 8 KiB", async () => {
    const { head, socket } = await ask(path, `CONNECT echo.test:${echoPort} HTTP/1.1\r\nX: ${"a".repeat(9000)}`);
    expect(head).toMatch(/^HTTP\/1.1 400 /);
    socket.destroy();
  });

  it("serves pods on TCP only with a granted credential, until it is revoked", async () => {
    const tcp = await proxy.listenTcp("127.0.0.1", 0);
    const connect = (auth?: string) =>
      new Promise<string>((resolve) => {
        const socket = createConnection({ host: "127.0.0.1", port: tcp.port }, () => {
          const header = auth ? `Proxy-Authorization: Basic ${Buffer.from(auth).toString("base64")}\r\n` : "";
          socket.write(`CONNECT echo.test:${echoPort} HTTP/1.1\r\n${header}\r\n`);
        });
        socket.once("data", (chunk) => {
          resolve(chunk.toString().split("\r\n")[0]!);
          socket.destroy();
        });
      });
    const credential = proxy.grant("pod-1");
    expect(await connect()).toBe("HTTP/1.1 407 Proxy Authentication Required");
    expect(await connect("sandbox:wrong")).toBe("HTTP/1.1 407 Proxy Authentication Required");
    expect(events.at(-1)).toMatchObject({ event: "egress_refused", fields: { reason: "unauthenticated" } });
    expect(await connect(`sandbox:${credential}`)).toBe("HTTP/1.1 200 Connection Established");
    expect(events.filter((e) => e.event === "egress_refused").at(-1)?.fields.sandboxId).not.toBe("pod-1");
    proxy.revoke("pod-1");
    expect(await connect(`sandbox:${credential}`)).toBe("HTTP/1.1 407 Proxy Authentication Required");
    await tcp.close();
  });
});
