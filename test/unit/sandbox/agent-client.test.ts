import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { AGENT_DISPLAY_SLACK, AGENT_MIN_BYTES_PER_MS, AGENT_OUTPUT_SLACK_BYTES, AgentClient } from "../../../server/sandbox/agent-client.ts";

/**
 * The server does not trust the agent to keep an exec's output cap (a program
 * shares the agent's uid and could take it over): a fake agent that sends
 * past the cap loses its connection, and `closed` says why.
 */
describe("AgentClient against a rogue agent", () => {
  let server: WebSocketServer | undefined;
  afterEach(() => server?.close());

  /** A fake agent: `ready`, then for each exec `chunks` out frames of `chunkBytes` bytes (or display frames of a figure that size), and an exit if it gets there. */
  async function fakeAgent(chunks: number, chunkBytes: number, encoding?: "base64" | "display"): Promise<AgentClient> {
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
          if (encoding === "display") socket.send(JSON.stringify({ type: "display", id: frame.id, mime: "image/png", data }));
          else socket.send(JSON.stringify({ type: "out", id: frame.id, stream: "stdout", data, bytes: 1, ...(encoding ? { encoding } : {}) }));
        }
        socket.send(JSON.stringify({ type: "exit", id: frame.id, code: 0, signal: null, reason: "exited", wallMs: 1, truncated: false, files: [] }));
      });
    });
    const { port } = server.address() as AddressInfo;
    return AgentClient.connect({ endpoint: { kind: "tcp", host: "127.0.0.1", port }, token: "t" });
  }

  function run(client: AgentClient, maxOutputBytes: number, figures: { maxDisplays?: number; maxDisplayBytes?: number } = {}) {
    let received = 0;
    let displays = 0;
    let dropped: number | undefined;
    const exited = new Promise<string>((resolve) => {
      client.startExec(
        { id: "e1", lang: "bash", code: "", stdin: false, timeoutMs: 1000, maxOutputBytes, ...figures },
        {
          stage() {},
          out: (frame) => {
            received += Buffer.byteLength(frame.data);
          },
          display: () => {
            displays++;
          },
          exit: (frame) => {
            dropped = frame.displaysDropped;
            resolve("exit");
          },
          error: () => resolve("error"),
        },
      );
    });
    return { exited, received: () => received, displays: () => displays, dropped: () => dropped };
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
      // base64: whole 1 KiB chunks, each counted by its decoded size, arrive as their encoded text
      expect(exec.received()).toBeLessThanOrEqual(encoding ? Math.floor(limit / 1024) * Buffer.alloc(1024).toString("base64").length : limit);
      server!.close();
    }
  });

  it("passes figures up to the cap and size, drops and counts the rest, and drops an agent far past the cap", async () => {
    const figures = { maxDisplays: 3, maxDisplayBytes: 2000 };
    let client = await fakeAgent(3, 2000, "display");
    let exec = run(client, 1000, figures);
    expect(await exec.exited).toBe("exit");
    expect([exec.displays(), exec.dropped()]).toEqual([3, undefined]);
    client.close();
    server!.close();

    // An agent that does not keep the limits (an older one): the extra figures are dropped here and counted.
    client = await fakeAgent(5, 2000, "display");
    exec = run(client, 1000, figures);
    expect(await exec.exited).toBe("exit");
    expect([exec.displays(), exec.dropped()]).toEqual([3, 2]);
    client.close();
    server!.close();

    client = await fakeAgent(1, 2001, "display");
    exec = run(client, 1000, figures);
    expect(await exec.exited).toBe("exit");
    expect([exec.displays(), exec.dropped()]).toEqual([0, 1]);
    client.close();
    server!.close();

    client = await fakeAgent(3 + AGENT_DISPLAY_SLACK + 1, 10, "display");
    exec = run(client, 1000, figures);
    expect(await client.closed).toBe(`the agent sent ${AGENT_DISPLAY_SLACK} figures more than exec e1 allows`);
    expect(exec.displays()).toBe(3);
  });
});

/**
 * A program can stop its own agent (SIGSTOP: same uid): every request to the
 * agent has a deadline, past which the connection is dropped (the session then
 * counts the sandbox as lost) instead of waiting for ever.
 */
describe("AgentClient against an agent that stopped answering", () => {
  let server: WebSocketServer | undefined;
  afterEach(() => server?.close());

  /** A fake agent that sends `ready` and answers nothing else. */
  async function silentAgent(requestBaseMs: number): Promise<AgentClient> {
    server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
    await new Promise((resolve) => server!.once("listening", resolve));
    server.on("connection", (socket) => socket.send(JSON.stringify({ type: "ready", version: "fake", pid: 1 })));
    const { port } = server.address() as AddressInfo;
    return AgentClient.connect({ endpoint: { kind: "tcp", host: "127.0.0.1", port }, token: "t" }, 10_000, { requestBaseMs });
  }

  it("gives each file request a deadline proportional to its data, then drops the connection", async () => {
    const client = await silentAgent(200);
    expect(client.deadlineMs()).toBe(200);
    expect(client.deadlineMs(AGENT_MIN_BYTES_PER_MS * 1000)).toBe(1200);
    const started = performance.now();
    await expect(client.putFile("a.txt", Buffer.from("x"))).rejects.toThrow(/file\.put got no answer within 201 ms/);
    expect(performance.now() - started).toBeGreaterThanOrEqual(190);
    expect(client.isClosed).toBe(true);
    expect(await client.closed).toMatch(/^the agent stopped answering: file\.put got no answer/);
    await expect(client.listFiles()).rejects.toThrow(/closed/);
  });

  it("fails every other waiting request when one passes its deadline", async () => {
    const client = await silentAgent(200);
    const list = client.listFiles();
    const state = client.saveState(1024, 60_000);
    await expect(list).rejects.toThrow(/file\.list got no answer within 200 ms/);
    await expect(state).rejects.toThrow(/the agent stopped answering/);
    for (const request of [client.getFile("a.txt", 10), client.deleteFile("a.txt")]) await expect(request).rejects.toThrow(/closed/);
  });

  it("drops the connection when a state request passes its deadline", async () => {
    const client = await silentAgent(200);
    await expect(client.restoreState("AAAA", 150)).rejects.toThrow(/state\.restore got no answer within 150 ms/);
    expect(await client.closed).toMatch(/^the agent stopped answering: state\.restore/);
  });
});
