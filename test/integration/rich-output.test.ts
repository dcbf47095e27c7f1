import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServerProcess, startServer, TEST_API_KEY } from "../helpers/server-process.ts";
import { TestClient } from "../helpers/ws-client.ts";

const PNG_MAGIC = "89504e470d0a1a0a";
const SHOW = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [4, 1, 9])\nplt.title('t')\nplt.show()\nprint('shown')";

/** `plt.show()`: a `display` frame with the PNG over WebSocket, a generated file over HTTP; figures closed after each exec. */
describe("rich output", () => {
  let server: ServerProcess;
  let client: TestClient | undefined;

  beforeAll(async () => {
    server = await startServer({ transport: "node" });
  });

  afterAll(async () => {
    client?.terminate();
    await server?.stop();
  });

  it("sends a display frame with the PNG of a matplotlib figure over WebSocket, and closes figures after the exec", async () => {
    client = await TestClient.connect(server.wsUrl, { apiKey: TEST_API_KEY });
    await client.openSession();
    const shown = await client.run("show", "py", SHOW);
    expect(shown.stdout).toBe("shown\n");
    const displays = shown.frames.filter((f) => f.type === "display");
    expect(displays).toHaveLength(1);
    expect(displays[0]).toMatchObject({ mime: "image/png" });
    expect(
      Buffer.from(displays[0]!.data as string, "base64")
        .subarray(0, 8)
        .toString("hex"),
    ).toBe(PNG_MAGIC);
    const after = await client.run("count", "py", "print(len(plt.get_fignums()))");
    expect(after.stdout).toBe("0\n");
  });

  it("returns the figure as a generated, downloadable file over HTTP", async () => {
    const res = await fetch(`${server.httpUrl}/exec`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": TEST_API_KEY },
      body: JSON.stringify({ lang: "py", code: SHOW }),
    });
    const body = (await res.json()) as { session_id: string; stdout: string; files: { id: string; name: string }[] };
    expect(body.stdout).toBe("shown\n");
    const figure = body.files.find((file) => file.name.endsWith(".png"));
    expect(figure).toBeDefined();
    const download = await fetch(`${server.httpUrl}/download/${body.session_id}/${figure!.id}`, { headers: { "x-api-key": TEST_API_KEY } });
    expect(download.headers.get("content-type")).toBe("image/png");
    expect(
      Buffer.from(await download.arrayBuffer())
        .subarray(0, 8)
        .toString("hex"),
    ).toBe(PNG_MAGIC);
  });
});
