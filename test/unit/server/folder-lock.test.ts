import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FolderInUseError, type LockOwner, lockFolder, processStartTime } from "../../../server/folder-lock.ts";
import { StartRefusal } from "../../../server/start-refusal.ts";

describe("folder lock (.owner)", () => {
  let dir: string;
  const children: ChildProcess[] = [];
  const lockPath = () => join(dir, ".owner");
  const writeLock = (owner: LockOwner) => writeFileSync(lockPath(), `${JSON.stringify(owner)}\n`);
  const readLock = () => JSON.parse(readFileSync(lockPath(), "utf8")) as LockOwner;
  const someone = (pid: number, startTime: number, host = hostname()): LockOwner => ({ pid, startTime, hostname: host, startedAt: "2020-01-01T00:00:00.000Z" });
  /** A live process other than this one. */
  const liveChild = () => {
    const child = spawn("sleep", ["60"], { stdio: "ignore" });
    children.push(child);
    return child.pid!;
  };
  const deadPid = async () => {
    const child = spawn("true", { stdio: "ignore" });
    await new Promise((r) => child.once("exit", r));
    return child.pid!;
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "folder-lock-"));
  });
  afterEach(() => {
    for (const child of children.splice(0)) child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  it("takes a free folder: .owner names this process, and nothing else is left", async () => {
    const lock = await lockFolder(dir, "SANDBOX_BASE_DIR");
    expect(readLock()).toEqual({ pid: process.pid, startTime: processStartTime(process.pid), hostname: hostname(), startedAt: lock.owner.startedAt });
    expect(new Date(lock.owner.startedAt).getTime()).toBeLessThanOrEqual(Date.now());
    expect(readdirSync(dir)).toEqual([".owner"]);
    await lock.release();
    expect(readdirSync(dir)).toEqual([]);
  });

  it("refuses a folder held by a live process, naming it, and leaves its lock alone", async () => {
    const pid = liveChild();
    const owner = someone(pid, processStartTime(pid)!);
    writeLock(owner);
    const error = await lockFolder(dir, "SANDBOX_BASE_DIR").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FolderInUseError);
    expect(error).toBeInstanceOf(StartRefusal);
    expect((error as FolderInUseError).owner).toEqual(owner);
    expect((error as Error).message).toBe(
      `SANDBOX_BASE_DIR ${dir} is in use by another server (pid ${pid}, started 2020-01-01T00:00:00.000Z): give each server its own SANDBOX_BASE_DIR`,
    );
    expect(readLock()).toEqual(owner);
    expect(readdirSync(dir)).toEqual([".owner"]);
  });

  it("refuses a second lock by this very process", async () => {
    const lock = await lockFolder(dir, "SKILL_DEPS_PATH");
    await expect(lockFolder(dir, "SKILL_DEPS_PATH")).rejects.toThrow(`SKILL_DEPS_PATH ${dir} is in use by another server (pid ${process.pid}, started `);
    await lock.release();
  });

  it("refuses a lock from another host, whose process it cannot check", async () => {
    writeLock(someone(await deadPid(), 1, "elsewhere.example"));
    await expect(lockFolder(dir, "SANDBOX_BASE_DIR")).rejects.toThrow(
      /in use by another server \(pid \d+ on host elsewhere\.example, started .*\): give each server its own SANDBOX_BASE_DIR; if that server is gone, remove .*\/\.owner$/,
    );
  });

  it.each([
    ["a dead pid", async () => someone(await deadPid(), 1)],
    ["a live pid with another start time (reused)", async () => someone(process.pid, processStartTime(process.pid)! + 1)],
    ["no owner at all (not JSON)", async () => null],
  ])("takes over a lock naming %s", async (_name, stale) => {
    const owner = await stale();
    if (owner) writeLock(owner);
    else writeFileSync(lockPath(), "garbage");
    const lock = await lockFolder(dir, "SANDBOX_BASE_DIR");
    expect(readLock()).toMatchObject({ pid: process.pid, startTime: processStartTime(process.pid) });
    expect(readdirSync(dir)).toEqual([".owner"]);
    await lock.release();
  });

  it("gives a stale folder to exactly one of many contenders", async () => {
    const dead = await deadPid();
    // Rounds, because a race shows only now and then.
    for (let round = 0; round < 20; round++) {
      writeLock(someone(dead, 1));
      const results = await Promise.allSettled(Array.from({ length: 8 }, () => lockFolder(dir, "SANDBOX_BASE_DIR")));
      const won = results.filter((r) => r.status === "fulfilled");
      expect(won, `round ${round}`).toHaveLength(1);
      for (const r of results) if (r.status === "rejected") expect(r.reason).toBeInstanceOf(FolderInUseError);
      expect(readdirSync(dir)).toEqual([".owner"]);
      await (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof lockFolder>>>).value.release();
    }
  });

  it("release removes only its own lock", async () => {
    const lock = await lockFolder(dir, "SANDBOX_BASE_DIR");
    // Someone removed it and another server took the folder meanwhile.
    const pid = liveChild();
    const other = someone(pid, processStartTime(pid)!);
    writeLock(other);
    await lock.release();
    expect(readLock()).toEqual(other);
    rmSync(lockPath());
    await lock.release(); // no lock at all: nothing to do
    expect(existsSync(lockPath())).toBe(false);
  });

  it("reads a process's start time, and none for a process that is gone", async () => {
    const stat = readFileSync("/proc/self/stat", "utf8");
    expect(processStartTime(process.pid)).toBe(Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]));
    expect(processStartTime(await deadPid())).toBeUndefined();
  });
});
