import { execFileSync } from "node:child_process";
import { chmodSync, closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SkillDeps } from "../../server/sandbox/egress/skill-deps.ts";
import { mountsUnder } from "../helpers/mounts.ts";

/** Size-limited package caches (SKILL_DEPS_MAX_MB): real ext4 images, real loop mounts. */

const UID = 1001;
const TENANT = "0123456789abcdef0123456789abcdef";
const OTHER = "fedcba9876543210fedcba9876543210";
const THIRD = "00112233445566778899aabbccddeeff";
const MAX_BYTES = 16 * 1024 * 1024;
const DAY = 86_400_000;

let work: string;
let root: string;
let logged: string[];
let deps: SkillDeps;

beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), "tenant-volumes-"));
  chmodSync(work, 0o711);
  root = join(work, "skill-deps");
  logged = [];
  deps = new SkillDeps({ root, uid: UID, gid: UID, maxBytes: MAX_BYTES, maxAgeMs: DAY, log: (message) => logged.push(message) });
});

afterEach(async () => {
  await deps.close();
  expect(mountsUnder(root)).toEqual([]);
  rmSync(work, { recursive: true, force: true });
});

describe("tenant cache volumes", () => {
  it("mounts one volume per tenant, counted by sandbox, unmounted with the last", async () => {
    const [a, b, other] = await Promise.all([deps.acquire(TENANT), deps.acquire(TENANT), deps.acquire(OTHER)]);
    expect(a.dir).toBe(join(root, TENANT));
    expect(mountsUnder(root).sort()).toEqual([join(root, TENANT), join(root, OTHER)].sort());
    expect(deps.inUse).toBe(2);
    // The volume's root: the sandbox uid's, 0700, nothing of the file system's own in it.
    const stat = statSync(a.dir);
    expect([stat.uid, stat.mode & 0o777]).toEqual([UID, 0o700]);
    expect(readdirSync(a.dir)).toEqual([]);
    const df = execFileSync("df", ["--output=size", "-B1M", a.dir], { encoding: "utf8" });
    expect(Number(df.trim().split("\n")[1])).toBeLessThanOrEqual(16);

    await a.release();
    await a.release(); // a second release of the same one counts once
    expect(mountsUnder(root)).toContain(join(root, TENANT));
    await b.release();
    expect(mountsUnder(root)).toEqual([join(root, OTHER)]);
    await other.release();
    expect(mountsUnder(root)).toEqual([]);
    expect(deps.inUse).toBe(0);
    // Under the volume, the mount point is root's: no sandbox could write to the host disk there.
    const under = statSync(join(root, TENANT));
    expect([under.uid, under.mode & 0o777]).toEqual([0, 0o700]);
  });

  it("keeps what was written across mounts; an image that no longer mounts is made anew", async () => {
    const first = await deps.acquire(TENANT);
    execFileSync("sh", ["-c", `echo kept > ${first.dir}/file`]);
    await first.release();
    const again = await deps.acquire(TENANT);
    expect(readFileSync(join(again.dir, "file"), "utf8")).toBe("kept\n");
    await again.release();

    // Zero the superblock (1 KiB in): mount refuses the image.
    const image = join(root, ".images", `${TENANT}.ext4`);
    const fd = openSync(image, "r+");
    writeSync(fd, Buffer.alloc(4096), 0, 4096, 0);
    closeSync(fd);
    const fresh = await deps.acquire(TENANT);
    expect(logged).toEqual(["package cache image did not mount: made anew"]);
    expect(existsSync(join(fresh.dir, "file"))).toBe(false);
    await fresh.release();
  });

  it("unmounts what an earlier server left mounted under the root", async () => {
    await deps.acquire(TENANT); // never released: as if the server was killed
    const next = new SkillDeps({ root, uid: UID, gid: UID, maxBytes: MAX_BYTES, maxAgeMs: DAY, log: () => {} });
    expect(await next.start(60_000)).toBe(1);
    await next.close();
    expect(mountsUnder(root)).toEqual([]);
  });

  it("without a size limit: plain folders, nothing mounted", async () => {
    const plain = new SkillDeps({ root, uid: UID, gid: UID, maxBytes: 0, maxAgeMs: DAY, log: () => {} });
    const cache = await plain.acquire(TENANT);
    expect(mountsUnder(root)).toEqual([]);
    expect(existsSync(join(root, ".images"))).toBe(false);
    expect(statSync(cache.dir).uid).toBe(UID);
    await cache.release();
  });

  it("removes caches unused for maxAgeMs, never one in use, and keeps the recent ones", async () => {
    const old = await deps.acquire(TENANT);
    execFileSync("sh", ["-c", `echo x > ${old.dir}/installed`]);
    await old.release();
    const recent = await deps.acquire(OTHER);
    await recent.release();
    const busy = await deps.acquire(THIRD);
    const image = (tenant: string) => join(root, ".images", `${tenant}.ext4`);
    // Last used two days ago: the old one and the busy one (whose sandbox still runs).
    const twoDaysAgo = new Date(Date.now() - 2 * DAY);
    utimesSync(image(TENANT), twoDaysAgo, twoDaysAgo);
    utimesSync(image(THIRD), twoDaysAgo, twoDaysAgo);

    expect(await deps.sweep()).toBe(1);
    expect(existsSync(image(TENANT))).toBe(false);
    expect(existsSync(join(root, TENANT))).toBe(false);
    expect(existsSync(image(OTHER))).toBe(true);
    expect(existsSync(image(THIRD))).toBe(true);
    expect(logged).toContain("removed package caches unused for SKILL_DEPS_TTL_DAYS");
    // Its next use starts afresh.
    const again = await deps.acquire(TENANT);
    expect(readdirSync(again.dir)).toEqual([]);
    await again.release();
    // Released now: the busy one's last use is now, not two days ago.
    await busy.release();
    expect(await deps.sweep()).toBe(0);
    expect(await deps.sweep(Date.now() + 2 * DAY)).toBe(3);
  });

  it("removes unused plain folders the same way, and nothing with maxAgeMs 0", async () => {
    const plain = new SkillDeps({ root, uid: UID, gid: UID, maxBytes: 0, maxAgeMs: DAY, log: () => {} });
    const cache = await plain.acquire(TENANT);
    execFileSync("sh", ["-c", `mkdir -p ${cache.dir}/python/lib && echo x > ${cache.dir}/python/lib/module.py`]);
    await cache.release();
    expect(await plain.sweep(Date.now() + DAY / 2)).toBe(0);
    const forever = new SkillDeps({ root, uid: UID, gid: UID, maxBytes: 0, maxAgeMs: 0, log: () => {} });
    expect(await forever.sweep(Date.now() + 1000 * DAY)).toBe(0);
    expect(await plain.sweep(Date.now() + 2 * DAY)).toBe(1);
    expect(existsSync(join(root, TENANT))).toBe(false);
  });
});
