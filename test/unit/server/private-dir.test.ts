import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { LocalKeyStore } from "../../../server/auth/local-key-store.ts";
import { LocalFileStore } from "../../../server/files/local-file-store.ts";
import { makeDir, makePrivateDir } from "../../../server/private-dir.ts";
import { LocalSessionStore } from "../../../server/sessions/local-session-store.ts";

const modeOf = (path: string) => `0${(statSync(path).mode & 0o777).toString(8)}`;

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "private-dir-"));
  chmodSync(root, 0o755);
});
afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

/** The mode of each folder from root down to `path`, by path under root. */
function modesDown(path: string): Record<string, string> {
  const modes: Record<string, string> = {};
  let dir = root;
  for (const name of relative(root, path).split("/")) {
    dir = join(dir, name);
    modes[relative(root, dir)] = modeOf(dir);
  }
  return modes;
}

describe("makePrivateDir", () => {
  it("makes the folder 0700 and every parent it makes 0755, under a strict umask too", async () => {
    const previous = process.umask(0o077);
    try {
      await makePrivateDir(join(root, "var/lib/code-interpreter/files"));
    } finally {
      process.umask(previous);
    }
    expect(modesDown(join(root, "var/lib/code-interpreter/files"))).toEqual({
      var: "0755",
      "var/lib": "0755",
      "var/lib/code-interpreter": "0755",
      "var/lib/code-interpreter/files": "0700",
    });
  });

  it("leaves existing parents as they are and tightens the folder itself when it was there", async () => {
    mkdirSync(join(root, "shared"), { mode: 0o750 });
    chmodSync(join(root, "shared"), 0o750);
    mkdirSync(join(root, "shared/store"), { mode: 0o755 });
    chmodSync(join(root, "shared/store"), 0o755);
    await makePrivateDir(join(root, "shared/store"));
    expect(modesDown(join(root, "shared/store"))).toEqual({ shared: "0750", "shared/store": "0700" });
    await makePrivateDir(join(root, "shared/store")); // again: nothing changes
    expect(modesDown(join(root, "shared/store"))).toEqual({ shared: "0750", "shared/store": "0700" });
  });

  it("refuses a path that is a file", async () => {
    writeFileSync(join(root, "file"), "");
    await expect(makePrivateDir(join(root, "file"))).rejects.toMatchObject({ code: "EEXIST" });
  });
});

describe("makeDir", () => {
  it("gives the folder the mode asked for and its new parents 0755", async () => {
    await makeDir(join(root, "a/b/sandboxes"), 0o711);
    expect(modesDown(join(root, "a/b/sandboxes"))).toEqual({ a: "0755", "a/b": "0755", "a/b/sandboxes": "0711" });
  });
});

describe("the embedded stores on a machine without their folders", () => {
  it("make only their own folders private: the shared parent stays open for SANDBOX_BASE_DIR beside it", async () => {
    const storage = join(root, "var/lib/code-interpreter/files");
    // As the server opens them (server/backends.ts, then server/auth/auth-services.ts).
    await LocalFileStore.open(storage);
    await LocalSessionStore.open(storage);
    await LocalKeyStore.open(storage);
    expect({ ...modesDown(join(storage, "files")), sessions: modeOf(join(storage, "sessions")) }).toEqual({
      var: "0755",
      "var/lib": "0755",
      "var/lib/code-interpreter": "0755",
      "var/lib/code-interpreter/files": "0700",
      "var/lib/code-interpreter/files/files": "0700",
      sessions: "0700",
    });
  });

  it("the file store makes each session's folder 0700", async () => {
    const store = await LocalFileStore.open(root);
    const stored = await store.put("S1", { name: "a.txt", readOnly: false, generated: false }, Buffer.from("a"), 1024);
    expect(modeOf(join(root, "files", stored.sessionId))).toBe("0700");
  });
});
