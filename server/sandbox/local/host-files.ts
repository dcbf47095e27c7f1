/**
 * What a local sandbox needs on the host: the base folder, one folder per
 * sandbox (its synthetic /etc files and the run/ folder where the agent puts its
 * socket), and a description of the host root that bwrap mirrors.
 */
import { randomBytes } from "node:crypto";
import { lstatSync, readdirSync, readlinkSync } from "node:fs";
import { chmod, chown, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { randomId } from "../../ids.ts";
import { makeDir } from "../../private-dir.ts";
import type { RootEntry } from "./bwrap-args.ts";

const ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";
export const SANDBOX_ID_LENGTH = 20;

/** A random sandbox id: 20 characters of [a-z0-9] (about 103 bits); lower case because it names cgroups and folders. */
export function newSandboxId(): string {
  return randomId(SANDBOX_ID_LENGTH, ID_ALPHABET);
}

export const SANDBOX_ID_PATTERN = /^[a-z0-9]{20}$/;

/** The per-sandbox token the agent requires on its upgrade request. */
export function newToken(): string {
  return randomBytes(32).toString("hex");
}

/** The base folder: root's, traversable but not listable by the sandbox uid. */
export async function prepareBaseDir(baseDir: string): Promise<void> {
  await makeDir(baseDir, 0o711); // missing parents 0755: the sandbox uid goes through them
  await chown(baseDir, 0, 0);
  await chmod(baseDir, 0o711);
}

export interface SandboxHostDir {
  dir: string;
  runDir: string;
  /** Host files of the synthetic /etc, by their path inside the sandbox. */
  etcFiles: Record<string, string>;
}

/** Make `<baseDir>/<id>/` (uid-owned, 0700) with `run/` (uid-owned, 0700) and `etc/` (root's, read-only to the sandbox). */
export async function makeSandboxDir(baseDir: string, id: string, uid: number, gid: number): Promise<SandboxHostDir> {
  const dir = join(baseDir, id);
  const runDir = join(dir, "run");
  const etcDir = join(dir, "etc");
  await mkdir(dir, { mode: 0o700 });
  await chown(dir, uid, gid);
  await chmod(dir, 0o700);
  await mkdir(runDir, { mode: 0o700 });
  await chown(runDir, uid, gid);
  await chmod(runDir, 0o700);
  await mkdir(etcDir, { mode: 0o755 });
  const files: Record<string, string> = {
    passwd: [
      "root:x:0:0:root:/root:/usr/sbin/nologin",
      `sandbox:x:${uid}:${gid}:sandbox:/tmp:/bin/bash`,
      "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
      "",
    ].join("\n"),
    group: ["root:x:0:", `sandbox:x:${gid}:`, "nogroup:x:65534:", ""].join("\n"),
    hosts: "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    "nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files\nnetworks: files\n",
  };
  const etcFiles: Record<string, string> = {};
  for (const [name, content] of Object.entries(files)) {
    const host = join(etcDir, name);
    await writeFile(host, content, { mode: 0o644 });
    etcFiles[`/etc/${name}`] = host;
  }
  return { dir, runDir, etcFiles };
}

/**
 * The agent's token as a file in the run folder (0400, the sandbox uid's): the
 * agent reads it and deletes it before any program runs, so it is in no
 * process's environment (/proc/<pid>/environ keeps what a process started with).
 */
export async function writeTokenFile(runDir: string, token: string, uid: number, gid: number): Promise<void> {
  const path = join(runDir, "token");
  await writeFile(path, token, { mode: 0o400, flag: "wx" });
  await chown(path, uid, gid);
}

/** /bin, /sbin, /lib* of the host: merged-usr symlinks are recreated, real folders (older layouts) bound read-only. */
export function hostRootEntries(): RootEntry[] {
  const entries: RootEntry[] = [];
  for (const name of ["bin", "sbin", "lib", "lib32", "lib64", "libx32"]) {
    const path = `/${name}`;
    try {
      const stat = lstatSync(path);
      if (stat.isSymbolicLink()) entries.push({ kind: "symlink", path, target: readlinkSync(path) });
      else if (stat.isDirectory()) entries.push({ kind: "dir", path });
    } catch {
      // not on this machine
    }
  }
  return entries;
}

/** Toolchain folders of /etc whose names carry a version, so they are found by prefix rather than listed. */
export const VERSIONED_ETC_PREFIXES: readonly string[] = [
  // python3, python3.11: Debian's site configuration (sitecustomize and the like)
  "python3",
  // java-17-openjdk (Debian 12), java-21-openjdk (Debian 13): the JDK's security and jvm.cfg
  "java-",
];

/** The host's `/etc/<prefix>*` entries, for each of VERSIONED_ETC_PREFIXES. */
export function hostVersionedEtc(prefixes: readonly string[] = VERSIONED_ETC_PREFIXES, etcDir = "/etc"): string[] {
  try {
    return readdirSync(etcDir)
      .filter((name) => prefixes.some((prefix) => name.startsWith(prefix)))
      .sort()
      .map((name) => join(etcDir, name));
  } catch {
    return [];
  }
}
