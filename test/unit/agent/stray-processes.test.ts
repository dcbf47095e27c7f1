import { describe, expect, it } from "vitest";
import { inOwnPidNamespace, killStrayProcesses } from "../../../sidecar-agent/stray-processes.ts";

describe("ending what an exec left running", () => {
  it("kills only as the sandbox's own agent: pid 1 or 2 of its namespace, never as root", () => {
    expect(inOwnPidNamespace(1001, 2)).toBe(true);
    expect(inOwnPidNamespace(10001, 1)).toBe(true);
    // On a host (these tests): every process of the uid is someone else's.
    expect(inOwnPidNamespace(1001, 4242)).toBe(false);
    expect(inOwnPidNamespace(0, 2)).toBe(false);
  });

  it("does nothing when the agent runs on a host, as here", () => {
    expect(inOwnPidNamespace(process.getuid!(), process.pid)).toBe(false);
    expect(killStrayProcesses(new Set([process.pid]))).toBe(0);
  });
});
