import { describe, expect, it } from "vitest";
import { bashToolName, programTools, pythonToolName } from "../../../server/sessions/tool-names.ts";

describe("tool names in programs (as the LibreChat client writes them)", () => {
  it("makes Python function names", () => {
    expect(pythonToolName("get-weather")).toBe("get_weather");
    expect(pythonToolName("web search")).toBe("web_search");
    expect(pythonToolName("2fail")).toBe("_2fail");
    expect(pythonToolName("lambda")).toBe("lambda_tool");
    expect(pythonToolName("a.b")).toBe("ab");
    expect(pythonToolName("***")).toBeNull();
    expect(pythonToolName("__")).toBeNull();
  });

  it("makes bash function names, keeping the bridge's own names out of reach", () => {
    expect(bashToolName("get-weather")).toBe("get_weather");
    expect(bashToolName("a.b")).toBe("a_b");
    expect(bashToolName("9lives")).toBe("_9lives");
    expect(bashToolName("select")).toBe("select_tool");
    expect(bashToolName("__ci_tool")).toBe("tool__ci_tool");
    expect(bashToolName("!!!")).toBeNull();
  });

  it("refuses names that cannot be functions, or that two tools would share", () => {
    expect(programTools([{ name: "get-weather" }, { name: "ok" }])).toEqual({
      ok: true,
      tools: [
        { name: "get-weather", py: "get_weather" },
        { name: "ok", py: "ok" },
      ],
    });
    expect(programTools([{ name: "a-b" }, { name: "a b" }])).toMatchObject({
      ok: false,
      index: 1,
      message: expect.stringContaining("both become the Python function a_b"),
    });
    expect(programTools([{ name: "x" }, { name: "!!" }], "bash")).toMatchObject({
      ok: false,
      index: 1,
      message: expect.stringContaining("bash function name"),
    });
    expect(programTools([{ name: "a.b" }, { name: "a-b" }], "bash")).toMatchObject({ ok: false, index: 1 });
  });
});
