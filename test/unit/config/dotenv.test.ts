import { describe, expect, it } from "vitest";
import { parseDotEnv } from "../../../server/config/dotenv.ts";

describe("parseDotEnv", () => {
  it("reads KEY=VALUE lines, comments and blank lines", () => {
    const { values, errors } = parseDotEnv("# a comment\n\nA=1\n  B = two words  \nC=\n   # indented comment\n");
    expect(errors).toEqual([]);
    expect(values).toEqual({ A: "1", B: "two words", C: "" });
  });

  it("accepts an export prefix and CRLF line ends", () => {
    expect(parseDotEnv("export A=1\r\nexport   B=2\r\n").values).toEqual({ A: "1", B: "2" });
  });

  it("strips inline comments of unquoted values only after whitespace", () => {
    expect(parseDotEnv("A=value # comment\nB=val#ue\nC=#notacomment\n").values).toEqual({ A: "value", B: "val#ue", C: "#notacomment" });
  });

  it("keeps single-quoted values literally", () => {
    expect(parseDotEnv("A='it has # and \\n and \"quotes\"'  # comment\n").values).toEqual({ A: 'it has # and \\n and "quotes"' });
  });

  it("unescapes double-quoted values", () => {
    expect(parseDotEnv('A="line1\\nline2\\t\\"q\\" \\\\ end" # c\n').values).toEqual({ A: 'line1\nline2\t"q" \\ end' });
  });

  it("reads quoted values across lines", () => {
    const text = 'CERT="-----BEGIN-----\nabc\n-----END-----"\nNEXT=1\n';
    expect(parseDotEnv(text).values).toEqual({ CERT: "-----BEGIN-----\nabc\n-----END-----", NEXT: "1" });
  });

  it("does no interpolation", () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the literal ${A} is the point
    expect(parseDotEnv('A=1\nB=${A}\nC="$A"\n').values).toEqual({ A: "1", B: "${A}", C: "$A" });
  });

  it("lets a later duplicate win", () => {
    expect(parseDotEnv("A=1\nA=2\n").values).toEqual({ A: "2" });
  });

  it("reports bad lines with their number and keeps going", () => {
    const { values, errors } = parseDotEnv('A=1\nnot a pair\n1BAD=x\nQ="open\nB=2\n');
    expect(values).toEqual({ A: "1" });
    expect(errors).toEqual(["line 2: expected KEY=VALUE", 'line 3: "1BAD" is not a valid variable name', "line 4: Q has an unterminated double quote"]);
  });

  it("reports text after a closing quote", () => {
    const { values, errors } = parseDotEnv("A='x' y\nB=ok\n");
    expect(values).toEqual({ B: "ok" });
    expect(errors).toEqual(["line 1: unexpected text after the closing quote of A"]);
  });

  it("ignores a byte order mark", () => {
    expect(parseDotEnv("\uFEFFA=1\n").values).toEqual({ A: "1" });
  });
});
