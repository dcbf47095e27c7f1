import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { AGENT_OUTPUT_SLACK_BYTES, AgentClient } from "../../../server/sandbox/agent-client.ts";

/**
 * The server does not trust the agent to keep an exec's output cap (a program
 * shares the agent's uid and could take it over): a fake agent that sends
 * past the cap loses its connection, and `closed` says why.
 */
describe("AgentClient against a rogue agent", () => {
  let server: WebSocketServer | undefined;
  afterEach(() => server?.close());

  /** A fake agent: `ready`, then for each exec `chunks` out frames of `chunkBytes` bytes (and an exit if it gets there). */
  async function fakeAgent(chunks: number, chunkBytes: number, encoding?: "base64"): Promise<AgentClient> {
    server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
    await new Promise((resolve) => server!.once("listening", resolve));
    server.on("connection", (socket) => {
      socket.send(JSON.stringify({ type: "ready", version: "fake", pid: 1 }));
      socket.on("message", (text) => {
        const frame = JSON.parse(text.toString());
        if (frame.type !== "exec") return;
        const raw = Buffer.alloc(chunkBytes, "x");
        const data = encoding ? raw.toString("base64") : raw.toString();
        for (let i = 0; i < chunks && socket.readyState === socket.OPEN; i++) {
          socket.send(JSON.stringify({ type: "out", id: frame.id, stream: "stdout", data, bytes: 1, ...(encoding ? { encoding } : {}) }));
        }
        socket.send(JSON.stringify({ type: "exit", id: frame.id, code: 0, signal: null, reason: "exited", wallMs: 1, truncated: false, files: [] }));
      });
    });
    const { port } = server.address() as AddressInfo;
    return AgentClient.connect({ endpoint: { kind: "tcp", host: "127.0.0.1", port }, token: "t" });
  }

  function run(client: AgentClient, maxOutputBytes: number) {
    let received = 0;
    const exited = new Promise<string>((resolve) => {
      client.startExec(
        { id: "e1", lang: "bash", code: "", stdin: false, timeoutMs: 1000, maxOutputBytes },
        {
          stage() {},
          out: (frame) => {
            received += Buffer.byteLength(frame.data);
          },
          display() {},
          exit: () => resolve("exit"),
          error: () => resolve("error"),
        },
      );
    });
    return { exited, received: () => received };
  }

  it("passes output up to the cap and its slack", async () => {
    const client = await fakeAgent(10, 1000);
    const exec = run(client, 10_000);
    expect(await exec.exited).toBe("exit");
    expect(exec.received()).toBe(10_000);
    expect(client.isClosed).toBe(false);
    client.close();
  });

  it("drops an agent that sends more than the cap plus the slack, text or base64", async () => {
    for (const encoding of [undefined, "base64"] as const) {
      const client = await fakeAgent(200, 1024, encoding);
      const exec = run(client, 100 * 1024);
      expect(await client.closed).toBe("the agent sent more output than exec e1's cap");
      expect(client.isClosed).toBe(true);
      // What arrived before the cut: at most the cap plus the slack, and nothing after.
      const limit = 100 * 1024 + AGENT_OUTPUT_SLACK_BYTES;
      expect(exec.received()).toBeLessThanOrEqual(encoding ? Math.ceil((limit * 4) / 3) : limit);
      server!.close();
    }
  });
});
