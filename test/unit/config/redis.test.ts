/** When Redis is on, and how REDIS_URL and the individual REDIS_* settings combine. */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../../server/config/load.ts";
import { describeRedis, parseRedisUrl } from "../../../server/config/redis.ts";
import { clusterOptions, redisOptions } from "../../../server/redis/connection.ts";

const dir = mkdtempSync(join(tmpdir(), "redis-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const load = (env: Record<string, string>) => loadConfig({ env, envFile: false, cwd: dir });

describe("the Redis enable rule", () => {
  it("keeps the embedded stores when nothing says where Redis is", () => {
    const { config, warnings } = load({});
    expect(config.redis.enabled).toBe(false);
    expect(warnings.join("\n")).not.toContain("REDIS");
  });

  it.each(["REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_MODE", "REDIS_CLUSTER_NODES", "REDIS_SENTINEL_NODES"])("turns Redis on when %s is set", (name) => {
    const value = { REDIS_URL: "redis://r:6379", REDIS_HOST: "r", REDIS_PORT: "6380", REDIS_MODE: "standalone" }[name] ?? "r1:6379,r2:6379";
    const { config } = load({ [name]: value });
    expect(config.redis.enabled).toBe(true);
    expect(config.redis.enabledBy).toBe(name);
  });

  it("leaves Redis off for settings that do not say where it is, with a warning", () => {
    const { config, warnings } = load({ REDIS_PASSWORD: "secret-password", REDIS_KEY_PREFIX: "p:" });
    expect(config.redis.enabled).toBe(false);
    expect(warnings).toContain("REDIS_PASSWORD, REDIS_KEY_PREFIX are set but Redis is off: set REDIS_URL or REDIS_HOST (or REDIS_MODE) to use Redis");
  });

  it("ignores empty values, as for every variable", () => {
    expect(load({ REDIS_URL: "", REDIS_HOST: " " }).config.redis.enabled).toBe(false);
  });
});

describe("REDIS_URL", () => {
  it("parses every part, and reads a lone user part as the password (the guides' example)", () => {
    expect(parseRedisUrl("redis://password@localhost:6379/0")).toEqual({ tls: false, host: "localhost", port: 6379, password: "password", db: 0 });
    expect(parseRedisUrl("rediss://:p%40ss@r.example.com/3")).toEqual({ tls: true, host: "r.example.com", password: "p@ss", db: 3 });
    expect(parseRedisUrl("redis://app:pw@[::1]:7000?db=2")).toEqual({ tls: false, host: "::1", port: 7000, username: "app", password: "pw", db: 2 });
    expect(parseRedisUrl("unix:///run/redis.sock?db=1")).toEqual({ tls: false, path: "/run/redis.sock", db: 1 });
    expect(() => parseRedisUrl("redis://r/x")).toThrow("database that is not a number");
    expect(parseRedisUrl("unix://:pw@/run/redis.sock")).toEqual({ tls: false, path: "/run/redis.sock", password: "pw" });
    expect(() => parseRedisUrl("unix://host/sock")).toThrow("absolute path");
  });

  it("overrides the individual settings, which fill in what it leaves out", () => {
    const { config, warnings } = load({ REDIS_URL: "redis://r1", REDIS_HOST: "r2", REDIS_PORT: "7000", REDIS_PASSWORD: "pw-0123456789", REDIS_DB: "4" });
    expect(config.redis).toMatchObject({ host: "r1", port: 6379, password: "pw-0123456789", db: 4 });
    expect(warnings).toContain("REDIS_HOST is ignored: REDIS_URL is set and overrides it");
    expect(load({ REDIS_URL: "redis://:url-pw@r1/1", REDIS_PASSWORD: "env-pw", REDIS_DB: "4" }).config.redis).toMatchObject({ password: "url-pw", db: 1 });
  });

  it("turns TLS on with rediss://", () => {
    expect(load({ REDIS_URL: "rediss://r1" }).config.redis.tls.enabled).toBe(true);
    expect(load({ REDIS_URL: "redis://r1" }).config.redis.tls.enabled).toBe(false);
    expect(load({ REDIS_HOST: "r1", REDIS_TLS_ENABLED: "true" }).config.redis.tls.enabled).toBe(true);
  });

  it("reports a URL it cannot use without showing its secret", () => {
    const { errors } = load({ REDIS_URL: "redis://:hunter2-secret@r1/abc" });
    expect(errors).toEqual(["REDIS_URL has a database that is not a number"]);
  });
});

describe("modes", () => {
  it("infers cluster or sentinel from the node lists, and says what is missing", () => {
    expect(load({ REDIS_CLUSTER_NODES: "a:1,b:2" }).config.redis).toMatchObject({
      mode: "cluster",
      clusterNodes: [
        { host: "a", port: 1 },
        { host: "b", port: 2 },
      ],
    });
    expect(load({ REDIS_SENTINEL_NODES: "s:26379" }).config.redis.mode).toBe("sentinel");
    expect(load({ REDIS_MODE: "sentinel" }).errors).toContain("REDIS_MODE is sentinel but REDIS_SENTINEL_NODES is not set (host:port of each sentinel)");
    expect(load({ REDIS_CLUSTER_NODES: "a:1", REDIS_SENTINEL_NODES: "s:1" }).errors[0]).toContain("set REDIS_MODE");
  });

  it("uses the host as the cluster seed without a node list, and database 0 in a cluster", () => {
    const { config, warnings } = load({ REDIS_MODE: "cluster", REDIS_HOST: "seed", REDIS_DB: "3" });
    expect(config.redis.clusterNodes).toEqual([{ host: "seed", port: 6379 }]);
    expect(config.redis.db).toBe(0);
    expect(warnings).toContain("REDIS_DB is ignored in cluster mode (Redis Cluster only has database 0)");
  });

  it("describes where Redis is without secrets", () => {
    const describe = (env: Record<string, string>) => describeRedis(load(env).config.redis);
    expect(describe({ REDIS_URL: "rediss://:pw@r1:7000/2" })).toBe("standalone r1:7000 db 2 (TLS)");
    expect(describe({ REDIS_SENTINEL_NODES: "s1:1,s2:2", REDIS_SENTINEL_MASTER: "m" })).toBe('sentinel master "m" via s1:1,s2:2');
    expect(describe({ REDIS_CLUSTER_NODES: "a:1,b:2" })).toBe("cluster a:1,b:2");
  });
});

describe("TLS files and client options", () => {
  it("requires the files it is given to exist, and the certificate with its key", () => {
    const { errors } = load({ REDIS_HOST: "r", REDIS_TLS_ENABLED: "true", REDIS_TLS_CA_CERT_FILE: "ca.pem", REDIS_TLS_CERT_FILE: "c.pem" });
    expect(errors).toContain(`REDIS_TLS_CA_CERT_FILE: the file ${join(dir, "ca.pem")} does not exist`);
    expect(errors).toContain("REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together (the client certificate and its key, for mutual TLS)");
  });

  it("passes the settings to ioredis: timeouts, no offline queue, prefix, TLS without the name check by default", () => {
    writeFileSync(join(dir, "ca.pem"), "CA");
    const { config } = load({ REDIS_URL: "rediss://r:1", REDIS_TLS_CA_CERT_FILE: "ca.pem", REDIS_SOCKET_TIMEOUT: "2", REDIS_KEY_PREFIX: "p:" });
    const options = redisOptions(config.redis);
    expect(options).toMatchObject({ host: "r", port: 1, commandTimeout: 2000, socketTimeout: 2000, enableOfflineQueue: false, keyPrefix: "p:" });
    expect(options.tls?.ca?.toString()).toBe("CA");
    expect(options.tls?.checkServerIdentity?.("r", {} as never)).toBeUndefined();
    const strict = redisOptions(load({ REDIS_URL: "rediss://r:1", REDIS_TLS_CHECK_HOSTNAME: "true" }).config.redis);
    expect(strict.tls?.checkServerIdentity).toBeUndefined();
    expect(redisOptions(load({ REDIS_URL: "rediss://r:1", REDIS_TLS_INSECURE: "true" }).config.redis).tls?.rejectUnauthorized).toBe(false);
    const cluster = clusterOptions(load({ REDIS_CLUSTER_NODES: "a:1", REDIS_KEY_PREFIX: "p:" }).config.redis);
    expect(cluster).toMatchObject({ keyPrefix: "p:", enableOfflineQueue: false, redisOptions: { commandTimeout: 5000 } });
  });

  it("masks the passwords in `config export`", async () => {
    const { exportConfig } = await import("../../../server/config/cli.ts");
    const loaded = load({ REDIS_URL: "redis://:url-password-0123456789@r", REDIS_SENTINEL_PASSWORD: "sentinel-password-0123456789" });
    const text = JSON.stringify(exportConfig(loaded));
    expect(text).not.toContain("url-password-0123456789");
    expect(text).not.toContain("sentinel-password-0123456789");
  });
});
