import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { hostVersionedEtc } from "../../../server/sandbox/local/host-files.ts";

describe("hostVersionedEtc", () => {
  const etc = mkdtempSync(join(tmpdir(), "etc-"));
  for (const name of ["python3", "python3.11", "java-17-openjdk", "java-21-openjdk", "javascript-common", "passwd", "R"]) mkdirSync(join(etc, name));
  afterAll(() => rmSync(etc, { recursive: true, force: true }));

  it("finds Python's and the JDK's folders whatever their version, and nothing else", () => {
    expect(hostVersionedEtc(undefined, etc)).toEqual(["java-17-openjdk", "java-21-openjdk", "python3", "python3.11"].map((name) => join(etc, name)));
  });

  it("gives nothing for a folder that does not exist", () => {
    expect(hostVersionedEtc(undefined, join(etc, "missing"))).toEqual([]);
  });
});
