import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { LANGUAGE_CODES, LANGUAGES, TS_TYPE_ROOTS } from "../../protocol/index.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const SETUP = join(ROOT, "scripts/setup.sh");

function runSetup(args: string[], env: Record<string, string> = {}) {
  return spawnSync("bash", [SETUP, ...args], { cwd: ROOT, encoding: "utf8", env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env }, timeout: 10_000 });
}

/** scripts/setup.sh keeps its own copy of the table's Debian packages (it runs before anything is built): they must agree. */
describe("scripts/setup.sh and the language table", () => {
  it("installs exactly the table's Debian packages for every language", () => {
    const result = runSetup(["--language-packages"]);
    expect(result.status).toBe(0);
    const fromSetup = new Map(
      result.stdout
        .trim()
        .split("\n")
        .map((line) => {
          const [code = "", packages = ""] = line.split(":");
          return [code.trim(), packages.trim().split(/\s+/).filter(Boolean)] as const;
        }),
    );
    expect([...fromSetup.keys()].sort()).toEqual([...LANGUAGE_CODES].sort());
    for (const spec of LANGUAGES.values())
      expect({ code: spec.code, packages: fromSetup.get(spec.code) }).toEqual({ code: spec.code, packages: [...spec.debianPackages] });
  });

  it("installs TypeScript's @types/node where the ts compile command looks for it", () => {
    const match = /^TS_NODE_TYPES_DIR=(\S+)$/m.exec(readFileSync(SETUP, "utf8"));
    expect(match).not.toBeNull();
    expect(TS_TYPE_ROOTS).toContain(`${match![1]}/node_modules/@types`);
    expect(LANGUAGES.get("ts")!.compile!.join(" ")).toContain(TS_TYPE_ROOTS.join(","));
  });

  it("refuses an unknown language in SETUP_LANGUAGES before installing anything", () => {
    const result = runSetup([], { SETUP_LANGUAGES: "py,cobol" });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain("unknown language 'cobol'");
    expect(result.stdout).not.toContain("installing");
  });
});
