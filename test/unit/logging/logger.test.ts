import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { AppConfig } from "../../../server/config/types.ts";
import { createLogger, createRedactor, formatTextLine, REDACTED, RotatingFileStream, securityLog } from "../../../server/logging/logger.ts";

type Logging = AppConfig["logging"];
const base: Logging = { level: "info", format: "json", maxSizeBytes: 100 * 1024 * 1024, backupCount: 5, accessLogs: false, securityLogs: true };

function capture(logging: Partial<Logging> = {}, redactKeys?: string[]) {
  const lines: string[] = [];
  const destination = { write: (chunk: string) => lines.push(...chunk.split("\n").filter((line) => line !== "")) };
  const logger = createLogger({ ...base, ...logging }, { destination, ...(redactKeys ? { redactKeys } : {}) });
  return { logger, lines };
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "logging-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("json format", () => {
  it("writes one object a line with a level name and an ISO time", () => {
    const { logger, lines } = capture();
    logger.info({ port: 8000 }, "listening");
    expect(lines).toHaveLength(1);
    const record = JSON.parse(lines[0]!);
    expect(record).toMatchObject({ level: "info", msg: "listening", port: 8000 });
    expect(record.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it("honours the configured level", () => {
    const { logger, lines } = capture({ level: "warn" });
    logger.info("hidden");
    logger.warn("shown");
    expect(lines.map((line) => JSON.parse(line).msg)).toEqual(["shown"]);
  });
});

describe("redaction", () => {
  it("hides API keys in nested headers and other secret fields", () => {
    const { logger, lines } = capture();
    logger.info(
      {
        req: { method: "GET", headers: { "x-api-key": "sk-live-123456", authorization: "Basic c2stbGl2ZQ==", host: "example.com" } },
        headers: { "x-api-key": "top-level-headers-key", cookie: "session=abc" },
        apiKey: "direct-api-key",
        auth: { password: "hunter2", token: "tok-1", deep: { secret: "s3cr3t" } },
      },
      "request",
    );
    const line = lines[0]!;
    for (const secret of ["sk-live-123456", "c2stbGl2ZQ==", "top-level-headers-key", "session=abc", "direct-api-key", "hunter2", "tok-1", "s3cr3t"]) {
      expect(line).not.toContain(secret);
    }
    const record = JSON.parse(line);
    expect(record.req.headers).toEqual({ "x-api-key": REDACTED, authorization: REDACTED, host: "example.com" });
    expect(record.headers["x-api-key"]).toBe(REDACTED);
    expect(record.apiKey).toBe(REDACTED);
    expect(record.auth).toEqual({ password: REDACTED, token: REDACTED, deep: { secret: REDACTED } });
    expect(record.req.method).toBe("GET");
  });

  it("matches names in any case, at any depth, in arrays and child bindings", () => {
    const { logger, lines } = capture();
    logger
      .child({ auth: { Authorization: "Bearer from-binding" } })
      .info({ a: { b: { c: { d: { e: { "X-API-KEY": "deep-key" } } } } }, list: [{ Password: "in-array" }], Token: "upper" }, "deep");
    const line = lines[0]!;
    for (const secret of ["from-binding", "deep-key", "in-array", "upper"]) expect(line).not.toContain(secret);
    expect(JSON.parse(line).a.b.c.d.e["X-API-KEY"]).toBe(REDACTED);
  });

  it("never changes the logged object and leaves errors alone", () => {
    const redact = createRedactor();
    const input = { headers: { authorization: "Basic abc", host: "h" }, keep: { n: 1 } };
    const output = redact(input);
    expect(input.headers.authorization).toBe("Basic abc");
    expect(output.headers).toEqual({ authorization: REDACTED, host: "h" });
    expect(output.keep).toBe(input.keep);
    const error = new Error("x");
    const untouched = { err: error };
    expect(redact(untouched)).toBe(untouched);
  });

  it("hides a custom API key header too", () => {
    const { logger, lines } = capture({}, ["x-custom-key"]);
    logger.info({ req: { headers: { "x-custom-key": "custom-secret" } } }, "request");
    expect(lines[0]).not.toContain("custom-secret");
  });

  it("applies in text format as well", () => {
    const { logger, lines } = capture({ format: "text" });
    logger.info({ req: { headers: { authorization: "Bearer abc.def" } } }, "request");
    expect(lines[0]).not.toContain("abc.def");
    expect(lines[0]).toContain(REDACTED);
  });
});

describe("text format", () => {
  it("prints time, level, message and key=value pairs", () => {
    const { logger, lines } = capture({ format: "text" });
    logger.info({ host: "0.0.0.0", port: 8000, ok: true, note: "two words", empty: "", tags: ["a", "b"], nested: { x: 1 } }, "listening");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO {2}listening host=0\.0\.0\.0 port=8000 ok=true note="two words" empty="" tags=\["a","b"\] nested=\{"x":1\}$/,
    );
  });

  it("pads the level and includes child bindings", () => {
    const { logger, lines } = capture({ format: "text", level: "debug" });
    logger.child({ component: "ws" }).debug("hello");
    logger.error("boom");
    expect(lines[0]).toMatch(/Z DEBUG hello component=ws$/);
    expect(lines[1]).toMatch(/Z ERROR boom$/);
  });

  it("puts an error's stack on indented lines", () => {
    const { logger, lines } = capture({ format: "text" });
    logger.error({ err: new Error("it broke") }, "failed");
    expect(lines[0]).toMatch(/Z ERROR failed err="Error: it broke"$/);
    expect(lines[1]).toMatch(/^ {4}at /);
  });

  it("formats a record directly", () => {
    expect(formatTextLine({ time: "2025-01-01T00:00:00.000Z", level: "warn", msg: "careful", a: "x=y" })).toBe(
      '2025-01-01T00:00:00.000Z WARN  careful a="x=y"\n',
    );
    expect(formatTextLine({ time: 0, level: "info", msg: "epoch" })).toBe("1970-01-01T00:00:00.000Z INFO  epoch\n");
  });
});

describe("rotation", () => {
  const line = (n: number) => `${String(n).padStart(3, "0")} ${"x".repeat(25)}\n`; // 30 bytes

  it("rolls the file at the size limit and keeps backupCount backups", () => {
    const file = join(dir, "server.log");
    const stream = new RotatingFileStream(file, 100, 2);
    for (let n = 0; n < 20; n += 1) stream.write(line(n));
    stream.end();
    expect(readdirSync(dir).sort()).toEqual(["server.log", "server.log.1", "server.log.2"]);
    for (const name of readdirSync(dir)) expect(statSync(join(dir, name)).size).toBeLessThanOrEqual(100);
    // Three lines a file: 18-19 current, 15-17 in .1, 12-14 in .2; older ones are gone.
    expect(readFileSync(file, "utf8")).toBe(line(18) + line(19));
    expect(readFileSync(`${file}.1`, "utf8")).toBe(line(15) + line(16) + line(17));
    expect(readFileSync(`${file}.2`, "utf8")).toBe(line(12) + line(13) + line(14));
  });

  it("counts what the file already holds and writes an oversized line whole", () => {
    const file = join(dir, "app.log");
    writeFileSync(file, "x".repeat(90));
    const stream = new RotatingFileStream(file, 100, 1);
    stream.write(line(1));
    expect(readFileSync(`${file}.1`, "utf8")).toBe("x".repeat(90));
    stream.write(`${"y".repeat(150)}\n`);
    stream.end();
    expect(readFileSync(file, "utf8")).toBe(`${"y".repeat(150)}\n`);
    expect(readFileSync(`${file}.1`, "utf8")).toBe(line(1));
  });

  it("restarts the file when backupCount is 0", () => {
    const file = join(dir, "only.log");
    const stream = new RotatingFileStream(file, 60, 0);
    for (let n = 0; n < 5; n += 1) stream.write(line(n));
    stream.end();
    expect(readdirSync(dir)).toEqual(["only.log"]);
    expect(readFileSync(file, "utf8")).toBe(line(4));
  });

  it("drops backups beyond a lowered backupCount", () => {
    const file = join(dir, "old.log");
    for (const n of [1, 2, 3, 4]) writeFileSync(`${file}.${n}`, `backup ${n}\n`);
    const stream = new RotatingFileStream(file, 40, 2);
    stream.write(line(1));
    stream.write(line(2));
    stream.end();
    expect(readdirSync(dir).sort()).toEqual(["old.log", "old.log.1", "old.log.2"]);
    expect(readFileSync(`${file}.2`, "utf8")).toBe("backup 1\n");
  });

  it("is what createLogger uses for LOG_FILE", () => {
    const file = join(dir, "nested/dir/server.log");
    const logger = createLogger({ ...base, file, maxSizeBytes: 400, backupCount: 3 });
    for (let n = 0; n < 40; n += 1) logger.info({ n }, "a line of some length to fill the file");
    expect(existsSync(file)).toBe(true);
    expect(existsSync(`${file}.3`)).toBe(true);
    expect(existsSync(`${file}.4`)).toBe(false);
    const last = readFileSync(file, "utf8").trim().split("\n").pop()!;
    expect(JSON.parse(last).n).toBe(39);
  });
});

describe("securityLog", () => {
  it("logs the event with security: true", () => {
    const { logger, lines } = capture();
    securityLog(logger, "auth_failed", { reason: "invalid", remoteAddress: "10.0.0.1" });
    const record = JSON.parse(lines[0]!);
    expect(record).toMatchObject({ level: "warn", security: true, event: "auth_failed", reason: "invalid", remoteAddress: "10.0.0.1" });
  });

  it("cannot be spoofed by the fields and still redacts them", () => {
    const { logger, lines } = capture();
    securityLog(logger, "key_rejected", { event: "other", security: false, apiKey: "leaked-key" }, "info");
    const record = JSON.parse(lines[0]!);
    expect(record).toMatchObject({ level: "info", security: true, event: "key_rejected", apiKey: REDACTED });
  });

  it("does nothing with ENABLE_SECURITY_LOGS=false, on children too", () => {
    const { logger, lines } = capture({ securityLogs: false });
    securityLog(logger, "auth_failed");
    securityLog(logger.child({ component: "ws" }), "auth_failed");
    expect(lines).toEqual([]);
  });
});
