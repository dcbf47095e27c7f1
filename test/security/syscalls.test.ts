import { arch } from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServerProcess, startServer, TEST_API_KEY } from "../helpers/server-process.ts";

/**
 * The syscall filter of local sandboxes (server/sandbox/local/seccomp.ts),
 * from inside: what it denies fails with the documented errno, for the
 * program and for its children, and ordinary programs are untouched (the
 * languages suite runs every language under it).
 */

/** x86_64 and aarch64 numbers of the calls probed here (generic table on aarch64). */
const NUMBERS: Record<string, Record<string, number>> = {
  x64: { ptrace: 101, perf_event_open: 298, io_uring_setup: 425, keyctl: 250, bpf: 321, userfaultfd: 323, unshare: 272, mount: 165, kexec_load: 246 },
  arm64: { ptrace: 117, perf_event_open: 241, io_uring_setup: 425, keyctl: 219, bpf: 280, userfaultfd: 282, unshare: 97, mount: 40, kexec_load: 104 },
};

describe.each(["node", "uws"] as const)("syscall filter of local sandboxes (%s transport)", (transport) => {
  let server: ServerProcess;

  beforeAll(async () => {
    server = await startServer({ transport, env: { SANDBOX_POOL_ENABLED: "false" } });
  });
  afterAll(async () => {
    await server?.stop();
  });

  const exec = async (lang: string, code: string) => {
    const res = await fetch(`${server.httpUrl}/exec`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": TEST_API_KEY },
      body: JSON.stringify({ lang, code }),
    });
    return (await res.json()) as { stdout: string; stderr: string };
  };

  it("reports the filter in /health/detailed", async () => {
    const health = (await (await fetch(`${server.httpUrl}/health/detailed`, { headers: { "x-api-key": TEST_API_KEY } })).json()) as {
      checks: { sandbox: { seccomp: string; warnings: string[] } };
    };
    expect(health.checks.sandbox.seccomp).toMatch(/^\d+ syscalls denied$/);
    expect(health.checks.sandbox.warnings.join(" ")).not.toMatch(/syscall filter/);
  });

  it("denies ptrace, perf, keyrings, eBPF, userfaultfd, namespaces, mounts and kexec with EPERM, io_uring with ENOSYS", async () => {
    const numbers = NUMBERS[arch()];
    expect(numbers, `no syscall numbers for ${arch()}`).toBeDefined();
    const code = [
      "import ctypes, errno, json",
      "libc = ctypes.CDLL(None, use_errno=True)",
      `calls = ${JSON.stringify(numbers)}`,
      "out = {}",
      "for name, nr in calls.items():",
      "    ctypes.set_errno(0)",
      "    r = libc.syscall(nr, 0, 0, 0, 0, 0)",
      "    out[name] = errno.errorcode.get(ctypes.get_errno(), 'OK') if r == -1 else 'OK'",
      "print(json.dumps(out, sort_keys=True))",
    ].join("\n");
    const result = await exec("py", code);
    const seen = JSON.parse(result.stdout) as Record<string, string>;
    const expected = Object.fromEntries(Object.keys(numbers!).map((name) => [name, name === "io_uring_setup" ? "ENOSYS" : "EPERM"]));
    expect(seen).toEqual(expected);
  });

  it("holds for children too: unshare(1) and a ptrace by a child process fail", async () => {
    const result = await exec(
      "bash",
      'unshare -U true; echo "unshare=$?"; python3 -c \'import ctypes; print("child ptrace", ctypes.CDLL(None).syscall(101 if __import__("platform").machine()=="x86_64" else 117, 0, 0, 0, 0))\'',
    );
    expect(result.stdout).toContain("unshare=1");
    expect(result.stderr).toMatch(/unshare failed: Operation not permitted/);
    expect(result.stdout).toContain("child ptrace -1");
  });
});
