import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { maskConfig } from "../../../server/config/cli.ts";
import { loadConfig } from "../../../server/config/load.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "config-s3-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function load(env: Record<string, string> = {}, envFile: string | false = false) {
  return loadConfig({ env, envFile, cwd: dir });
}

const KEYS = { S3_ACCESS_KEY: "access-key-0123", S3_SECRET_KEY: "secret-key-0123456789" };

describe("S3 on or off", () => {
  it("is off with nothing set: files stay in FILE_STORAGE_PATH", () => {
    const { config, errors, warnings } = load();
    expect(errors).toEqual([]);
    expect(config.storage.backend).toBe("local");
    expect(config.storage.s3).toMatchObject({ enabled: false, endPoint: "localhost", port: 9000, bucket: "code-interpreter-files", orphanCleanup: true });
    expect(warnings.join("\n")).not.toMatch(/S3/);
  });

  it("is on with S3_ENDPOINT, and the endpoint gives host and port", () => {
    const { config, errors } = load({ S3_ENDPOINT: "minio.internal:9100", ...KEYS });
    expect(errors).toEqual([]);
    expect(config.storage.backend).toBe("s3");
    expect(config.storage.s3).toMatchObject({
      enabled: true,
      endPoint: "minio.internal",
      port: 9100,
      useSSL: false,
      accessKey: KEYS.S3_ACCESS_KEY,
      secretKey: KEYS.S3_SECRET_KEY,
      useIam: false,
      bucket: "code-interpreter-files",
      region: "us-east-1",
      requestTimeoutMs: 10_000,
    });
  });

  it("is on with only a bucket (the default endpoint), and through the MINIO_* names of the older guides, from .env too", () => {
    const bucketOnly = load({ S3_BUCKET: "my-files", ...KEYS });
    expect(bucketOnly.config.storage.s3).toMatchObject({ enabled: true, endPoint: "localhost", port: 9000, bucket: "my-files" });

    writeFileSync(
      join(dir, ".env"),
      "MINIO_ENDPOINT=s3.example.com\nMINIO_ACCESS_KEY=ak\nMINIO_SECRET_KEY=sk\nMINIO_SECURE=true\nMINIO_BUCKET=kubecoderun-files\nMINIO_REGION=eu-west-1\n",
    );
    const minio = load({}, ".env");
    expect(minio.errors).toEqual([]);
    expect(minio.config.storage.s3).toMatchObject({
      enabled: true,
      endPoint: "s3.example.com",
      port: 443,
      useSSL: true,
      accessKey: "ak",
      secretKey: "sk",
      bucket: "kubecoderun-files",
      region: "eu-west-1",
    });
    expect(minio.sources.S3_ENDPOINT).toBe("MINIO_ENDPOINT");
  });

  it("stays off when only keys, IAM, region or S3_SECURE are set, and says why for credentials", () => {
    const { config, errors, warnings } = load({ ...KEYS, S3_REGION: "garage", S3_SECURE: "true" });
    expect(errors).toEqual([]);
    expect(config.storage.backend).toBe("local");
    expect(warnings).toContain("S3_ACCESS_KEY, S3_SECRET_KEY are set but neither S3_ENDPOINT nor S3_BUCKET is: files stay in FILE_STORAGE_PATH");
    expect(load({ MINIO_USE_IAM: "true" }).warnings).toContain("S3_USE_IAM is set but neither S3_ENDPOINT nor S3_BUCKET is: files stay in FILE_STORAGE_PATH");
    expect(load({ S3_REGION: "garage" }).warnings.join("\n")).not.toMatch(/S3/);
  });

  it("warns when on without keys or IAM (requests go unsigned), and takes IAM instead of keys", () => {
    const anonymous =
      "S3 is on (S3_ENDPOINT or S3_BUCKET is set) but S3_ACCESS_KEY and S3_SECRET_KEY are not both set, nor S3_USE_IAM: requests to S3 go unsigned (anonymous)";
    const bare = load({ S3_ENDPOINT: "localhost:9000" });
    expect(bare.errors).toEqual([]);
    expect(bare.config.storage.backend).toBe("s3");
    expect(bare.warnings).toContain(anonymous);
    expect(load({ S3_ENDPOINT: "localhost:9000", S3_ACCESS_KEY: "only-one" }).warnings).toContain(anonymous);
    expect(load({ S3_ENDPOINT: "localhost:9000", ...KEYS }).warnings).not.toContain(anonymous);
    const iam = load({ S3_ENDPOINT: "s3.amazonaws.com", S3_SECURE: "true", MINIO_USE_IAM: "true" });
    expect(iam.errors).toEqual([]);
    expect(iam.config.storage.s3).toMatchObject({ enabled: true, useIam: true, port: 443 });
    expect(iam.config.storage.s3.accessKey).toBeUndefined();
    expect(load({ S3_ENDPOINT: "s3.amazonaws.com", S3_USE_IAM: "true", ...KEYS }).warnings).toContain(
      "S3_USE_IAM is true: S3_ACCESS_KEY and S3_SECRET_KEY are not used",
    );
  });

  it("reads the request timeout and the orphan sweep switch, refuses a bad port, and masks the keys in exports", () => {
    const { config } = load({ S3_BUCKET: "b-1", ...KEYS, S3_REQUEST_TIMEOUT: "2.5", ENABLE_ORPHAN_S3_CLEANUP: "false" });
    expect(config.storage.s3).toMatchObject({ requestTimeoutMs: 2500, orphanCleanup: false });
    expect(load({ S3_ENDPOINT: "host:70000", ...KEYS }).errors).toEqual(["S3_ENDPOINT=host:70000: the port must be between 1 and 65535"]);
    expect(load({ S3_ENDPOINT: "http://host:9000", ...KEYS }).errors.join("\n")).toMatch(/S3_ENDPOINT/);
    const masked = maskConfig(config).storage.s3;
    expect(masked.secretKey).not.toBe(KEYS.S3_SECRET_KEY);
    expect(masked.accessKey).not.toBe(KEYS.S3_ACCESS_KEY);
  });
});
