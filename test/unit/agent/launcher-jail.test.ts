import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { setUpLauncher } from "../../../sidecar-agent/program-jail.ts";
import { buildLauncher } from "./helpers.ts";

/**
 * launcher --jail: the program runs as pid 2 of a pid namespace whose init is
 * the launcher's reaper, with a /proc of its own and an empty read-only /run;
 * what it leaves behind ends with it; signals to the group still reach it;
 * the report keeps its figures. --seccomp refuses a file that is no filter.
 */
let launcher: string;
let scratch: string;
beforeAll(() => {
  launcher = buildLauncher();
  scratch = mkdtempSync(join(tmpdir(), "launcher-jail-"));
});
afterAll(() => {
  rmSync(dirname(launcher), { recursive: true, force: true });
  rmSync(scratch, { recursive: true, force: true });
});

/** Run the launcher to its end: exit status, stdout, stderr and the report line. */
function launch(options: string[], program: string[]): { status: number | null; stdout: string; stderr: string; report: Record<string, unknown> | null } {
  const result = spawnSync(launcher, [...options, "3", "--", ...program], { stdio: ["ignore", "pipe", "pipe", "pipe"], encoding: "utf8", timeout: 20_000 });
  const reportText = String((result.output as Array<string | null>)[3] ?? "").trim();
  return {
    status: result.status,
    stdout: result.stdout,
    stderr: result.stderr,
    report: reportText ? (JSON.parse(reportText) as Record<string, unknown>) : null,
  };
}

describe("launcher --jail", () => {
  it("runs the program as pid 2 under its own init, sees only its namespace, and reports its end", () => {
    const run = launch(
      ["--jail"],
      ["/bin/sh", "-c", 'echo "$$"; ls /proc | grep -cE "^[0-9]+$"; ls -A /run | wc -l; touch /run/x 2>/dev/null || echo ro; exit 3'],
    );
    // sh (2), ls and grep, the jail's init (1): four at most while the pipeline runs.
    expect(run.stdout).toMatch(/^2\n[34]\n0\nro\n$/);
    expect(run.status).toBe(3);
    expect(run.report).toMatchObject({ exited: true, code: 3 });
    expect(run.report?.maxrss_kb).toBeGreaterThan(0);
  });

  it("ends what the program left running, even outside its group, when it exits", () => {
    const marker = `${4_000_000 + Math.floor(Math.random() * 1_000_000)}`;
    const run = launch(["--jail"], ["/bin/sh", "-c", `setsid sleep ${marker} >/dev/null 2>&1 < /dev/null & echo started`]);
    expect(run.stdout).toBe("started\n");
    const left = spawnSync("pgrep", ["-f", `sleep ${marker}`], { encoding: "utf8" });
    expect(left.stdout).toBe("");
  });

  it("delivers a signal sent to the group to the program", async () => {
    const child = spawn(launcher, ["--jail", "3", "--", "/bin/sh", "-c", 'trap "echo got-int; exit 9" INT; while :; do sleep 0.05; done'], {
      stdio: ["ignore", "pipe", "pipe", "pipe"],
      detached: true,
    });
    let stdout = "";
    let report = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    (child.stdio[3] as Readable).on("data", (chunk: Buffer) => {
      report += chunk.toString();
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    process.kill(-child.pid!, "SIGINT");
    const code = await new Promise<number | null>((resolve) => child.on("close", (status) => resolve(status)));
    expect(stdout).toBe("got-int\n");
    expect(code).toBe(9);
    expect(JSON.parse(report)).toMatchObject({ exited: true, code: 9 });
  });

  it("does not lose a signal sent right behind the start, before the program exists", async () => {
    for (let round = 0; round < 5; round++) {
      const child = spawn(launcher, ["--jail", "3", "--", "/bin/sleep", "5"], { stdio: ["ignore", "ignore", "ignore", "pipe"], detached: true });
      let report = "";
      (child.stdio[3] as Readable).on("data", (chunk: Buffer) => {
        report += chunk.toString();
      });
      process.kill(-child.pid!, "SIGINT");
      const started = performance.now();
      await new Promise((resolve) => child.on("close", resolve));
      expect(performance.now() - started).toBeLessThan(4_000);
      // Sent before the launcher had even started it ends the launcher itself (no report), later the program.
      if (report) expect(JSON.parse(report)).toMatchObject({ signaled: true, signal: 2 });
    }
  });

  it("refuses a --seccomp file that is not a BPF program, before running anything", () => {
    const bad = join(scratch, "bad.bpf");
    writeFileSync(bad, "not a filter");
    const run = launch(["--seccomp", bad, "--jail"], ["/bin/echo", "ran"]);
    expect(run.status).toBe(125);
    expect(run.stdout).toBe("");
    expect(run.stderr).toMatch(/launcher: cannot read the syscall filter .*bad\.bpf: Invalid argument/);
  });

  it("setUpLauncher keeps the jail when a trial launch works, and says why and drops it when not", () => {
    const logs: string[] = [];
    expect(setUpLauncher({ launcher, jail: true, log: (line) => logs.push(line) })).toEqual({ options: ["--jail"], jailed: true });
    const bad = join(scratch, "bad2.bpf");
    writeFileSync(bad, "x");
    expect(setUpLauncher({ launcher, programFilter: bad, jail: true, log: (line) => logs.push(line) })).toEqual({ options: ["--seccomp", bad], jailed: false });
    expect(logs).toEqual([expect.stringMatching(/^programs run without a jail .*cannot read the syscall filter/)]);
    expect(setUpLauncher({ launcher: null, jail: true, log: () => {} })).toEqual({ options: [], jailed: false });
  });
});
