import { describe, expect, it } from "vitest";
import {
  AgentToServerSchema,
  ClientFrameSchema,
  DataPathSchema,
  findLanguage,
  javaMainClass,
  LANGUAGE_CODES,
  LANGUAGES,
  parseJsonFrame,
  parseWith,
  ServerToAgentSchema,
} from "../../protocol/index.ts";

describe("client frames", () => {
  it("accept every frame type of PROTOCOL.md and drop unknown fields", () => {
    const frames = [
      { type: "auth", apiKey: "k" },
      { type: "session.open" },
      { type: "session.open", sessionId: "abc", lastSeq: 3, entityId: "e-1", userId: "u" },
      { type: "exec", id: "1", lang: "py", code: "print(1)", args: ["a"], timeoutMs: 1000, stdin: true },
      { type: "stdin", id: "1", data: "x", eof: true },
      { type: "signal", id: "1", signal: "SIGINT" },
      { type: "subscribe", topic: "pool" },
      { type: "ping", extra: 1 },
      { type: "session.close" },
      { type: "exec", id: "t", lang: "py", code: "await f()", tools: [{ name: "get-weather", description: "d", parameters: {} }] },
      {
        type: "tool_result",
        id: "t",
        results: [
          { call_id: "c1", result: { a: 1 } },
          { call_id: "c2", is_error: true, error_message: "no" },
        ],
      },
    ];
    for (const frame of frames) expect(parseWith(ClientFrameSchema, frame)).toMatchObject({ ok: true });
    expect(parseWith(ClientFrameSchema, { type: "ping", extra: 1 })).toEqual({ ok: true, value: { type: "ping" } });
  });

  it("refuse bad frames with a message that names the field", () => {
    const bad = parseJsonFrame(ClientFrameSchema, JSON.stringify({ type: "exec", id: "1", lang: "py" }));
    expect(bad).toMatchObject({ ok: false });
    expect(!bad.ok && bad.message).toContain("code");
    expect(parseJsonFrame(ClientFrameSchema, "{")).toEqual({ ok: false, message: "frame is not valid JSON" });
    expect(parseWith(ClientFrameSchema, { type: "signal", id: "1", signal: "SIGSTOP" })).toMatchObject({ ok: false });
    expect(parseWith(ClientFrameSchema, { type: "session.open", lastSeq: -1 })).toMatchObject({ ok: false });
    expect(parseWith(ClientFrameSchema, { type: "session.open", sessionId: "../x" })).toMatchObject({ ok: false });
    expect(parseWith(ClientFrameSchema, { type: "exec", id: "has space", lang: "py", code: "x" })).toMatchObject({ ok: false });
    expect(parseWith(ClientFrameSchema, { type: "nope" })).toMatchObject({ ok: false });
    expect(parseWith(ClientFrameSchema, { type: "tool_result", id: "t", results: [{ result: 1 }] })).toMatchObject({ ok: false });
    expect(parseWith(ClientFrameSchema, { type: "exec", id: "t", lang: "py", code: "x", tools: [{ name: "" }] })).toMatchObject({ ok: false });
    const manyTools = Array.from({ length: 501 }, (_, i) => ({ name: `t${i}` }));
    expect(parseWith(ClientFrameSchema, { type: "exec", id: "t", lang: "py", code: "x", tools: manyTools })).toMatchObject({ ok: false });
    expect(parseWith(ClientFrameSchema, [])).toMatchObject({ ok: false });
  });
});

describe("agent frames", () => {
  it("round-trip the server and agent directions", () => {
    expect(parseWith(ServerToAgentSchema, { type: "ack", id: "1", bytes: 10 })).toMatchObject({ ok: true });
    expect(parseWith(ServerToAgentSchema, { type: "file.put", reqId: "r", path: "a/b.txt", data: "" })).toMatchObject({ ok: true });
    expect(
      parseWith(AgentToServerSchema, {
        type: "exit",
        id: "1",
        code: 0,
        signal: null,
        reason: "exited",
        wallMs: 3,
        truncated: false,
        files: [{ path: "a", size: 1, mtimeMs: 1, change: "created" }],
      }),
    ).toMatchObject({ ok: true });
  });

  it("only admit relative paths inside /mnt/data", () => {
    for (const path of ["/etc/passwd", "../x", "a/../../b", "a/./b", "x\0y", ""]) {
      expect(parseWith(DataPathSchema, path), path).toMatchObject({ ok: false });
    }
    expect(parseWith(DataPathSchema, "dir/file.csv")).toMatchObject({ ok: true });
  });
});

describe("language table", () => {
  it("has all 13 languages of HTTP-API.md with run commands", () => {
    expect([...LANGUAGES.keys()].sort()).toEqual([...LANGUAGE_CODES].sort());
    expect(LANGUAGES.size).toBe(13);
    for (const spec of LANGUAGES.values()) {
      expect(spec.run.length).toBeGreaterThan(0);
      expect(spec.version.length).toBeGreaterThan(0);
    }
  });

  it("finds languages by code and alias, case-insensitively", () => {
    expect(findLanguage("PY")?.code).toBe("py");
    expect(findLanguage("python")?.code).toBe("py");
    expect(findLanguage("c++")?.code).toBe("cpp");
    expect(findLanguage("cobol")).toBeUndefined();
  });

  it("runs Java's public class, else Code", () => {
    expect(javaMainClass("public class Main { }")).toBe("Main");
    expect(javaMainClass("class Helper {}\npublic final class App {}")).toBe("App");
    expect(javaMainClass("class Code { }")).toBe("Code");
  });
});
