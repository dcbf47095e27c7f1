import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LANGUAGE_CODES } from "../../protocol/index.ts";
import { type ServerProcess, startServer, TEST_API_KEY } from "../helpers/server-process.ts";
import { TestClient } from "../helpers/ws-client.ts";

/**
 * Every language of the table end to end: the real server, real bubblewrap
 * sandboxes (default memory, pids and CPU limits), and the Debian toolchains
 * scripts/setup.sh installs.
 */

/** The obvious ten-line program, in each language: it prints sum(1..10)=55. */
const SUM_PROGRAMS: Record<(typeof LANGUAGE_CODES)[number], string> = {
  py: ["total = 0", "for i in range(1, 11):", "    total += i", 'print(f"sum(1..10)={total}")'].join("\n"),
  js: ["let total = 0;", "for (let i = 1; i <= 10; i++) total += i;", 'console.log("sum(1..10)=" + total);'].join("\n"),
  ts: ["let total: number = 0;", "for (let i = 1; i <= 10; i++) total += i;", 'console.log("sum(1..10)=" + total);'].join("\n"),
  go: [
    "package main",
    "",
    'import "fmt"',
    "",
    "func main() {",
    "\ttotal := 0",
    "\tfor i := 1; i <= 10; i++ {",
    "\t\ttotal += i",
    "\t}",
    '\tfmt.Printf("sum(1..10)=%d\\n", total)',
    "}",
  ].join("\n"),
  java: [
    "public class Main {",
    "    public static void main(String[] args) {",
    "        int total = 0;",
    "        for (int i = 1; i <= 10; i++) total += i;",
    '        System.out.println("sum(1..10)=" + total);',
    "    }",
    "}",
  ].join("\n"),
  c: [
    "#include <stdio.h>",
    "int main(void) {",
    "    int total = 0;",
    "    for (int i = 1; i <= 10; i++) total += i;",
    '    printf("sum(1..10)=%d\\n", total);',
    "    return 0;",
    "}",
  ].join("\n"),
  cpp: [
    "#include <iostream>",
    "int main() {",
    "    int total = 0;",
    "    for (int i = 1; i <= 10; i++) total += i;",
    '    std::cout << "sum(1..10)=" << total << std::endl;',
    "}",
  ].join("\n"),
  php: ["<?php", "$total = 0;", "for ($i = 1; $i <= 10; $i++) $total += $i;", 'echo "sum(1..10)=$total\\n";'].join("\n"),
  rs: ["fn main() {", "    let mut total = 0;", "    for i in 1..=10 {", "        total += i;", "    }", '    println!("sum(1..10)={}", total);', "}"].join(
    "\n",
  ),
  r: ["total <- 0", "for (i in 1:10) total <- total + i", 'cat(sprintf("sum(1..10)=%d\\n", as.integer(total)))'].join("\n"),
  f90: [
    "program sum",
    "  implicit none",
    "  integer :: i, total",
    "  total = 0",
    "  do i = 1, 10",
    "    total = total + i",
    "  end do",
    "  write(*, '(A,I0)') 'sum(1..10)=', total",
    "end program sum",
  ].join("\n"),
  d: [
    "import std.stdio;",
    "",
    "void main() {",
    "    int total = 0;",
    "    foreach (i; 1 .. 11) total += i;",
    '    writefln("sum(1..10)=%d", total);',
    "}",
  ].join("\n"),
  bash: ["total=0", "for i in $(seq 1 10); do total=$((total + i)); done", 'echo "sum(1..10)=$total"'].join("\n"),
};

/** A program each compiler refuses, and a piece of the message it must print on stderr. */
const COMPILE_ERRORS: Array<[lang: string, code: string, message: RegExp]> = [
  ["ts", 'let total: number = "ten";\nconsole.log(total);\n', /main\.ts\(1,5\): error TS2322/],
  ["go", "package main\n\nfunc main() {\n\tundefinedThing()\n}\n", /main\.go:4:2: undefined: undefinedThing/],
  ["java", "public class Main {\n  public static void main(String[] a) { int x = undefinedThing; }\n}\n", /Main\.java:2: error: cannot find symbol/],
  ["c", "int main(void) { return undefined_thing; }\n", /main\.c:1:25: error: .undefined_thing. undeclared/],
  ["cpp", "int main() { return undefined_thing; }\n", /main\.cpp:1:21: error: .undefined_thing. was not declared/],
  ["rs", "fn main() {\n    let x: i32 = undefined_thing;\n}\n", /error\[E0425\]: cannot find value `undefined_thing`/],
  ["f90", "program bad\n  implicit none\n  x = 1\nend program bad\n", /main\.f90:3:3:[\s\S]*Error: Symbol .x. at \(1\) has no IMPLICIT type/],
  ["d", "void main() {\n    int x = undefinedThing;\n}\n", /main\.d\(2\): Error: undefined identifier `undefinedThing`/],
];

const stagesOf = (frames: Array<Record<string, unknown>>) => frames.filter((f) => f.type === "exec.stage").map((f) => f.stage);

describe("the 13 languages in real sandboxes", () => {
  let server: ServerProcess;
  let client: TestClient;
  let execs = 0;
  const run = (lang: string, code: string, extra: Record<string, unknown> = {}) => client.run(`${lang}-${++execs}`, lang, code, extra);

  beforeAll(async () => {
    server = await startServer({ transport: "node" });
    client = await TestClient.connect(server.wsUrl, { apiKey: TEST_API_KEY });
    expect((await client.openSession()).type).toBe("session.ready");
  });

  afterAll(async () => {
    client?.terminate();
    await server?.stop();
  });

  it("lists every language as available, with a version number", async () => {
    const languages = (await (await fetch(`${server.httpUrl}/languages`, { headers: { "x-api-key": TEST_API_KEY } })).json()) as Array<{
      code: string;
      available: boolean;
      version: string | null;
    }>;
    expect(languages.map((l) => l.code).sort()).toEqual([...LANGUAGE_CODES].sort());
    for (const language of languages) expect(language).toMatchObject({ available: true, version: expect.stringMatching(/^\d+\.\d+(\.\d+)?$/) });
  });

  it.each(LANGUAGE_CODES.map((lang) => [lang]))("%s prints sum(1..10)=55", async (lang) => {
    const { exit, frames, stdout, stderr } = await run(lang, SUM_PROGRAMS[lang]);
    expect({ stdout, stderr }).toEqual({ stdout: "sum(1..10)=55\n", stderr: "" });
    expect(exit).toMatchObject({ type: "exit", reason: "exited", code: 0 });
    // Compiled languages report both stages; the others only run.
    expect(stagesOf(frames)).toEqual(["c", "cpp", "d", "f90", "go", "java", "rs", "ts"].includes(lang) ? ["compile", "run"] : []);
  });

  it.each(COMPILE_ERRORS)("%s: a compile error ends the exec with the compiler's message on stderr", async (lang, code, message) => {
    const { exit, frames, stdout, stderr } = await run(lang, code);
    expect(stderr).toMatch(message);
    expect(stdout).toBe("");
    expect(exit.reason).toBe("exited");
    expect(exit.code).not.toBe(0);
    expect(stagesOf(frames)).toEqual(["compile"]);
  });

  it("python has numpy, pandas, scipy, scikit-learn and matplotlib (Agg), and the chart it saves comes back in exit.files", async () => {
    const code = [
      "import matplotlib",
      "import matplotlib.pyplot as plt",
      "import numpy as np",
      "import pandas as pd",
      "from scipy import stats",
      "from sklearn.linear_model import LinearRegression",
      "x = np.arange(1, 11)",
      'frame = pd.DataFrame({"x": x, "y": 3 * x + 2})',
      'model = LinearRegression().fit(frame[["x"]], frame["y"])',
      'print("backend", matplotlib.get_backend())',
      'print("sum", int(frame["x"].sum()), "mean", stats.tmean(x), "slope", round(float(model.coef_[0]), 6))',
      "figure, axes = plt.subplots()",
      'axes.plot(frame["x"], frame["y"])',
      'figure.savefig("chart.png")',
      'print("png", open("chart.png", "rb").read(8) == b"\\x89PNG\\r\\n\\x1a\\n")',
    ].join("\n");
    const { exit, stdout, stderr } = await run("py", code);
    expect(stderr).toBe("");
    expect(stdout).toBe("backend agg\nsum 55 mean 5.5 slope 3.0\npng True\n");
    expect(exit).toMatchObject({ reason: "exited", code: 0 });
    const files = exit.files as Array<{ name: string; size?: number }>;
    expect(files.map((f) => f.name)).toEqual(["chart.png"]);
    expect(files[0]!.size).toBeGreaterThan(1000);
  });

  it("the run limit (timeoutMs) is the run stage's alone: a compile longer than it finishes, then the run is cut", async () => {
    const code = 'console.log("started");\nsetTimeout(() => console.log("never"), 30_000);\n';
    const { exit, frames, stdout } = await run("ts", code, { timeoutMs: 500 });
    const stageAt = (stage: string) => (frames.find((f) => f.type === "exec.stage" && f.stage === stage) as { at: number }).at;
    // tsc takes seconds in a sandbox of half a CPU: far more than the 500 ms the run may take.
    expect(stageAt("run") - stageAt("compile")).toBeGreaterThan(500);
    expect(stdout).toBe("started\n");
    expect(exit).toMatchObject({ reason: "timeout", signal: "SIGKILL" });
    expect(exit.wallMs as number).toBeGreaterThanOrEqual(500);
    expect(exit.wallMs as number).toBeLessThan(3000);
  });
});

describe("the compile stage's own limit (COMPILE_TIMEOUT)", () => {
  let server: ServerProcess;
  let client: TestClient;

  beforeAll(async () => {
    server = await startServer({ transport: "node", env: { COMPILE_TIMEOUT: "1" } });
    client = await TestClient.connect(server.wsUrl, { apiKey: TEST_API_KEY });
    expect((await client.openSession()).type).toBe("session.ready");
  });

  afterAll(async () => {
    client?.terminate();
    await server?.stop();
  });

  it("ends a compile that runs past it with reason timeout, whatever the run limit", async () => {
    // 2^30 distinct template instantiations: g++ would work for hours.
    const code = [
      "template <int N, unsigned K> struct Tree { static const unsigned value = Tree<N - 1, K * 2>::value + Tree<N - 1, K * 2 + 1>::value; };",
      "template <unsigned K> struct Tree<0, K> { static const unsigned value = 1; };",
      "int main() { return Tree<30, 0>::value == 0; }",
    ].join("\n");
    const started = performance.now();
    const { exit, frames } = await client.run("endless-compile", "cpp", code, { timeoutMs: 20_000 });
    const elapsed = performance.now() - started;
    expect(exit).toMatchObject({ reason: "timeout", signal: "SIGKILL" });
    expect(stagesOf(frames)).toEqual(["compile"]);
    expect(exit.wallMs as number).toBeGreaterThanOrEqual(1000);
    expect(elapsed).toBeLessThan(5000);
    // The sandbox is still usable: the next compile and run work.
    const next = await client.run("after", "c", SUM_PROGRAMS.c);
    expect(next.stdout).toBe("sum(1..10)=55\n");
  });
});
