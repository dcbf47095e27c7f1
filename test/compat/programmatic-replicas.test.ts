import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CodeTool, type CurrentClient, invokeTool, loadCurrentClient } from "../helpers/librechat-clients.ts";
import { type RedisServers, startRedis } from "../helpers/redis-servers.ts";
import { type S3Server, startS3 } from "../helpers/s3-server.ts";
import { type ServerProcess, startServer, TEST_API_KEY } from "../helpers/server-process.ts";

/**
 * Issue 8's acceptance across replicas: the real LibreChat 3.9 programmatic
 * tools (Python, and the bash variant), behind a round-robin proxy over two
 * replicas sharing Redis and S3, so that each follow-up (`continuation_token`
 * + `tool_results`) reaches the other replica than the request before it.
 */

interface RoundRobin {
  url: string;
  /** Which upstream served each request, in order ("a" or "b"), with its path. */
  served: string[];
  close(): Promise<void>;
}

/** A loopback HTTP proxy that sends each request to the next upstream in turn. */
async function roundRobin(upstreams: Record<string, string>): Promise<RoundRobin> {
  const names = Object.keys(upstreams);
  const served: string[] = [];
  let next = 0;
  const server: Server = createServer((req, res) => {
    const name = names[next++ % names.length]!;
    served.push(`${name} ${req.method} ${req.url}`);
    const target = new URL(req.url ?? "/", upstreams[name]);
    const upstream = request(target, { method: req.method, headers: { ...req.headers, host: target.host } }, (reply) => {
      res.writeHead(reply.statusCode ?? 502, reply.headers);
      reply.pipe(res);
    });
    upstream.on("error", (error) => {
      res.writeHead(502, { "content-type": "text/plain" });
      res.end(error.message);
    });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    served,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe("programmatic tool calling across replicas (LibreChat client behind a round-robin proxy)", () => {
  let redis: RedisServers;
  let s3: S3Server;
  let a: ServerProcess;
  let b: ServerProcess;
  let proxy: RoundRobin;
  let client: CurrentClient;

  beforeAll(async () => {
    [redis, s3] = await Promise.all([startRedis("standalone"), startS3()]);
    const env = { ...redis.env, ...s3.env, API_KEY: TEST_API_KEY };
    [a, b] = await Promise.all([startServer({ transport: "node", env }), startServer({ transport: "uws", env })]);
    proxy = await roundRobin({ a: a.httpUrl, b: b.httpUrl });
    client = await loadCurrentClient();
  });

  afterAll(async () => {
    await proxy?.close();
    await Promise.all([a?.stop(), b?.stop()]);
    await Promise.all([redis?.stop(), s3?.destroy()]);
  });

  it("runs rounds of concurrent calls and a tool error, each follow-up on the other replica", async () => {
    const calls: unknown[] = [];
    const weather: CodeTool = {
      name: "get-weather",
      invoke: async (input) => {
        calls.push(input);
        const city = (input as { city?: string }).city;
        if (city === "Atlantis") throw new Error("no such city");
        return { city, celsius: city === "Paris" ? 21 : 4 };
      },
    };
    const toolDefs = [
      {
        name: "get-weather",
        description: "Current weather of a city",
        parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
        allowed_callers: ["code_execution"],
      },
    ];
    const tool = client.createProgrammaticToolCallingTool({ baseUrl: proxy.url, authHeaders: { "X-API-Key": TEST_API_KEY } });
    const code = [
      "import asyncio",
      'p, o = await asyncio.gather(get_weather(city="Paris"), get_weather(city="Oslo"))',
      "print(p['celsius'] + o['celsius'])",
      "try:",
      '    await get_weather(city="Atlantis")',
      "except Exception as e:",
      '    print("failed:", type(e).__name__)',
      'last = await get_weather(city="Paris")',
      "print(last['city'])",
    ].join("\n");
    const result = await invokeTool(tool, { code }, { toolMap: new Map([["get-weather", weather]]), toolDefs });
    // The final response carries everything the program printed, from every round.
    expect(result.content, result.content).toContain("stdout:\n25\nfailed: ToolError\nParis");
    expect(calls).toEqual([{ city: "Paris" }, { city: "Oslo" }, { city: "Atlantis" }, { city: "Paris" }]);
    // Four requests (the run and three follow-ups), alternating between the replicas.
    const programmatic = proxy.served.filter((line) => line.includes("/exec/programmatic"));
    expect(programmatic.map((line) => line.split(" ")[0])).toEqual(["a", "b", "a", "b"]);
  });

  it("runs the bash variant (run_tools_with_bash): tools as commands taking JSON, background calls in one round, a failing tool", async () => {
    const calls: unknown[] = [];
    const lookup: CodeTool = {
      name: "lookup-user",
      invoke: async (input) => {
        calls.push(input);
        const id = (input as { id?: number }).id;
        if (id === 0) throw new Error("no user 0");
        return { id, name: id === 1 ? "ada" : "grace" };
      },
    };
    const toolDefs = [
      {
        name: "lookup-user",
        description: "A user by id",
        parameters: { type: "object", properties: { id: { type: "number" } }, required: ["id"] },
        allowed_callers: ["code_execution"],
      },
    ];
    const tool = client.createBashProgrammaticToolCallingTool({ baseUrl: proxy.url, authHeaders: { "X-API-Key": TEST_API_KEY } });
    const code = [
      "{ a=$(lookup_user '{\"id\": 1}'); printf '%s\n' \"$a\" > /mnt/data/a.json; } &",
      "{ b=$(lookup_user '{\"id\": 2}'); printf '%s\n' \"$b\" > /mnt/data/b.json; } &",
      "wait",
      'echo "$(cat /mnt/data/a.json) $(cat /mnt/data/b.json)"',
      'lookup_user \'{"id": 0}\' 2>/dev/null || echo "lookup 0 failed"',
    ].join("\n");
    const before = proxy.served.length;
    const result = await invokeTool(tool, { code }, { toolMap: new Map([["lookup-user", lookup]]), toolDefs });
    expect(result.content, result.content).toContain('stdout:\n{"id":1,"name":"ada"} {"id":2,"name":"grace"}\nlookup 0 failed');
    expect(calls.slice(0, 2).sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y)))).toEqual([{ id: 1 }, { id: 2 }]);
    expect(calls[2]).toEqual({ id: 0 });
    // The run and two follow-ups, each on the other replica than the one before.
    const served = proxy.served.slice(before).filter((line) => line.includes("/exec/programmatic"));
    expect(served).toHaveLength(3);
    expect(new Set([served[0]!.split(" ")[0], served[1]!.split(" ")[0]]).size).toBe(2);
  });
});
