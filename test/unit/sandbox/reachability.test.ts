import { chmodSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { blockedFolder, explainUnreachable } from "../../../server/sandbox/local/reachability.ts";

const UID = 1000;
const GID = 1000;

describe("why the sandbox uid cannot reach SANDBOX_BASE_DIR", () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), "reach-"));
    mkdirSync(join(root, "lib/sandboxes"), { recursive: true });
  });
  afterEach(() => {
    chmodSync(root, 0o700);
    rmSync(root, { recursive: true, force: true });
  });

  it("names the first folder on the way that keeps it out, with its mode", () => {
    chmodSync(root, 0o755);
    chmodSync(join(root, "lib"), 0o700);
    expect(blockedFolder(join(root, "lib/sandboxes"), UID, GID)).toEqual({ folder: join(root, "lib"), mode: "0700", owner: process.getuid!() });
    expect(explainUnreachable(join(root, "lib/sandboxes"), UID, GID)).toContain(`${join(root, "lib")} is mode 0700`);
  });

  it("says nothing when every folder lets it through (x for others is enough)", () => {
    chmodSync(root, 0o711);
    chmodSync(join(root, "lib"), 0o711);
    expect(blockedFolder(join(root, "lib/sandboxes"), UID, GID)).toBeUndefined();
    expect(explainUnreachable(join(root, "lib/sandboxes"), UID, GID)).toBe("");
  });
});
