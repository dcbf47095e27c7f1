import { describe, expect, it } from "vitest";
import { LANGUAGES, type LanguageSpec } from "../../../protocol/index.ts";
import { memoryLimitEnv } from "../../../server/languages/memory-env.ts";
import { detectToolchains, parseVersion } from "../../../server/languages/toolchains.ts";

describe("parseVersion", () => {
  it.each([
    ["Python 3.11.2", "3.11.2"],
    ["v20.20.2", "20.20.2"],
    ["Version 4.8.4", "4.8.4"],
    ["go version go1.19.8 linux/amd64", "1.19.8"],
    ["javac 17.0.15", "17.0.15"],
    ["gcc (Debian 12.2.0-14+deb12u1) 12.2.0", "12.2.0"],
    ["PHP 8.2.36 (cli) (built: Nov 18 2026 20:02:04) (NTS)", "8.2.36"],
    ["rustc 1.63.0", "1.63.0"],
    ["Rscript (R) version 4.2.2 Patched (2022-11-10 r83330)", "4.2.2"],
    ["LDC - the LLVM D compiler (1.30.0):", "1.30.0"],
    ["GNU bash, version 5.2.15(1)-release (x86_64-pc-linux-gnu)", "5.2.15"],
  ])("%s -> %s", (line, version) => {
    expect(parseVersion(line)).toBe(version);
  });

  it("gives undefined for a line without a version", () => {
    expect(parseVersion("no numbers here")).toBeUndefined();
  });
});

describe("detectToolchains", () => {
  const fake = (code: "py" | "bash", version: string[]): LanguageSpec => ({ ...LANGUAGES.get(code)!, version });

  it("reports a missing or failing toolchain as unavailable instead of throwing", async () => {
    const [missing, failing] = await detectToolchains([
      fake("py", ["no-such-compiler-x9", "--version"]),
      fake("bash", ["sh", "-c", "echo broken >&2; exit 3"]),
    ]);
    expect(missing).toEqual({ code: "py", name: "Python", available: false });
    expect(failing).toEqual({ code: "bash", name: "Bash", available: false });
  });

  it("reports the version number and the line it came from", async () => {
    const [info] = await detectToolchains([fake("bash", ["sh", "-c", "echo; echo 'Tool 1.2.3 (build 7)'"])]);
    expect(info).toEqual({ code: "bash", name: "Bash", available: true, version: "1.2.3", versionText: "Tool 1.2.3 (build 7)" });
  });
});

describe("memoryLimitEnv", () => {
  it("passes the limit to the JVM (SANDBOX_MEMORY_BYTES) and a share of it to Go", () => {
    expect(memoryLimitEnv(512 * 1024 * 1024)).toEqual({ SANDBOX_MEMORY_BYTES: "536870912", GOMEMLIMIT: "402653184B" });
  });

  it("is what the java commands read", () => {
    const java = LANGUAGES.get("java")!;
    expect(java.run.join(" ")).toContain("-XX:MaxRAM=$SANDBOX_MEMORY_BYTES");
    expect(java.compile!.join(" ")).toContain("-J-XX:MaxRAM=$SANDBOX_MEMORY_BYTES");
  });
});

describe("compile commands", () => {
  it("name their language's source file (they run in the build folder)", () => {
    const compiled = [...LANGUAGES.values()].filter((spec) => spec.compile);
    expect(compiled.map((spec) => spec.code).sort()).toEqual(["c", "cpp", "d", "f90", "go", "java", "rs", "ts"]);
    for (const spec of compiled) expect({ code: spec.code, names: spec.compile!.includes(spec.sourceFile) }).toEqual({ code: spec.code, names: true });
  });
});
