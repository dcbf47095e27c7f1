import { readFileSync } from "node:fs";

/** The mount points under `root` in this host's mount table (the tests' paths need no unescaping). */
export function mountsUnder(root: string): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((line) => line.split(" ")[4] ?? "")
    .filter((point) => point.startsWith(`${root}/`));
}
