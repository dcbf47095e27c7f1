import { request } from "node:http";
import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServerProcess, startServer } from "../helpers/server-process.ts";

/**
 * Slow-header clients (slow-loris) must not hold the server's sockets: one
 * address may hold MAX_CONNECTIONS_PER_ADDRESS connections, and request headers
 * must arrive within 10 s. Other addresses are served meanwhile. (The node
 * transport; uWebSockets.js has its own 10 s timeout and no per-address cap.)
 */
const CAP = 20;
const ATTACKER = "127.0.0.2";
const VICTIM = "127.0.0.3";

/** A socket from `localAddress` that sends half a request's headers and then nothing. */
function slowHeaders(port: number, localAddress: string): Promise<{ socket: Socket; closedAt: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port, localAddress });
    const closedAt = new Promise<number>((done) => socket.once("close", () => done(performance.now())));
    socket.once("error", () => {});
    // Read what the server answers (a 408), so its end reaches us and the socket closes.
    socket.resume();
    socket.once("connect", () => {
      socket.write("GET /health HTTP/1.1\r\nHost: x\r\n");
      resolve({ socket, closedAt });
    });
    socket.once("error", reject);
  });
}

function health(port: number, localAddress: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path: "/health", localAddress, agent: false }, (res) => {
      res.resume();
      res.once("end", () => resolve(res.statusCode ?? 0));
    });
    req.once("error", reject);
    req.end();
  });
}

describe("connections per address and slow request headers (node transport)", () => {
  let server: ServerProcess;

  beforeAll(async () => {
    server = await startServer({ transport: "node", env: { SANDBOX_POOL_ENABLED: "false", MAX_CONNECTIONS_PER_ADDRESS: String(CAP) } });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it(`holds at most ${CAP} connections of one address, drops slow headers within seconds, and serves other addresses meanwhile`, async () => {
    const started = performance.now();
    const held = await Promise.all(Array.from({ length: 3 * CAP }, () => slowHeaders(server.port, ATTACKER)));
    // Past the cap, the connections are closed at once.
    const closedSoon = await Promise.all(
      held.map(({ closedAt }) => Promise.race([closedAt.then(() => true), new Promise((r) => setTimeout(() => r(false), 1_000))])),
    );
    expect(closedSoon.filter(Boolean).length).toBeGreaterThanOrEqual(2 * CAP);
    expect(await health(server.port, VICTIM)).toBe(200);
    // The ones within the cap go once the header timeout passes, not after node's 60 s.
    const lastClosed = Math.max(...(await Promise.all(held.map(({ closedAt }) => closedAt))));
    expect(lastClosed - started).toBeLessThan(20_000);
    // The address is free again afterwards.
    expect(await health(server.port, ATTACKER)).toBe(200);
  }, 40_000);
});
