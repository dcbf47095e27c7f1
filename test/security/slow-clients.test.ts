import { readdirSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServerProcess, startServer, TEST_API_KEY } from "../helpers/server-process.ts";

/**
 * Slow-loris: a client that stalls in the middle of a body, or trickles it
 * under REQUEST_BODY_MIN_RATE, gets 408 and its connection closed, within the
 * configured time, and leaves nothing behind; a normal client is untouched.
 */

/** Send `head`, then `body` in `pieces` pieces `gapMs` apart (or stop after the first piece when `stall`); resolve with what came back once the server closes. */
function slowRequest(
  port: number,
  head: string,
  body: string,
  options: { pieces: number; gapMs: number; stall?: boolean },
): Promise<{ text: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket: Socket = connect({ host: "127.0.0.1", port });
    let text = "";
    let timer: NodeJS.Timeout | undefined;
    socket.setEncoding("utf8");
    socket.on("data", (chunk) => {
      text += chunk;
    });
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ text, ms: performance.now() - started });
    });
    socket.on("error", () => {});
    socket.once("connect", () => {
      socket.write(head);
      const size = Math.ceil(body.length / options.pieces);
      let sent = 0;
      const sendNext = () => {
        if (socket.destroyed || sent >= body.length) return;
        socket.write(body.slice(sent, sent + size));
        sent += size;
        if (!options.stall) timer = setTimeout(sendNext, options.gapMs);
      };
      sendNext();
    });
    setTimeout(() => reject(new Error(`no close after 20 s; got: ${text.slice(0, 200)}`)), 20_000).unref();
  });
}

describe.each(["node", "uws"] as const)("slow request bodies (%s transport)", (transport) => {
  let server: ServerProcess;

  beforeAll(async () => {
    server = await startServer({ transport, env: { REQUEST_BODY_TIMEOUT: "1", REQUEST_BODY_MIN_RATE: "1024", SANDBOX_POOL_ENABLED: "false" } });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("drops an upload whose body stalls: 408 after REQUEST_BODY_TIMEOUT, connection closed, no session left", async () => {
    const boundary = "----slowloris";
    const body = `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="slow.txt"\r\nContent-Type: text/plain\r\n\r\n${"x".repeat(50_000)}\r\n--${boundary}--\r\n`;
    const head = `POST /upload HTTP/1.1\r\nHost: x\r\nX-API-Key: ${TEST_API_KEY}\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${body.length}\r\n\r\n`;
    const stored = () => readdirSync(server.storageDir, { recursive: true }).length;
    const before = stored();
    const reply = await slowRequest(server.port, head, body, { pieces: 100, gapMs: 0, stall: true });
    expect(reply.text).toMatch(/^HTTP\/1\.1 408/);
    expect(reply.text).toContain('"error_type":"timeout"');
    expect(reply.ms).toBeGreaterThan(900);
    expect(reply.ms).toBeLessThan(6_000);
    // The upload's session and partial file were removed with the request.
    expect(stored()).toBe(before);
  });

  it("drops a JSON body that trickles under REQUEST_BODY_MIN_RATE", async () => {
    const body = JSON.stringify({ lang: "py", code: `print(1)  # ${"y".repeat(3_000)}` });
    const head = `POST /exec HTTP/1.1\r\nHost: x\r\nX-API-Key: ${TEST_API_KEY}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
    // About 60 bytes every 200 ms: 300 bytes/s, each gap under the stall limit.
    const reply = await slowRequest(server.port, head, body, { pieces: 50, gapMs: 200 });
    expect(reply.text).toMatch(/^HTTP\/1\.1 408/);
    expect(reply.text).toMatch(/under the minimum of 1024/);
    expect(reply.ms).toBeLessThan(8_000);
  });

  it("serves a client that sends at a normal pace", async () => {
    const body = JSON.stringify({ lang: "py", code: "print('paced')" });
    const head = `POST /exec HTTP/1.1\r\nHost: x\r\nX-API-Key: ${TEST_API_KEY}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
    const reply = await slowRequest(server.port, head, body, { pieces: 3, gapMs: 100 });
    expect(reply.text).toMatch(/^HTTP\/1\.1 200/);
    expect(reply.text).toContain('"stdout":"paced\\n"');
  });
});
