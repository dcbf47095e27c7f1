import { describe, expect, it } from "vitest";
import { ApiKeyVerifier, hashKey } from "../../../server/auth/api-keys.ts";
import { extractApiKey } from "../../../server/auth/credentials.ts";

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

describe("extractApiKey", () => {
  it("takes the configured header first, then Basic, then Bearer", () => {
    expect(extractApiKey({ "x-api-key": "k1", authorization: "Bearer k2" }, "x-api-key")).toBe("k1");
    expect(extractApiKey({ authorization: "Bearer k2" }, "x-api-key")).toBe("k2");
    expect(extractApiKey({ "x-custom": "k3" }, "x-custom")).toBe("k3");
  });

  it("reads Basic credentials from the user part, or the password part when the user is empty", () => {
    expect(extractApiKey({ authorization: basic("key-in-user", "") }, "x-api-key")).toBe("key-in-user");
    expect(extractApiKey({ authorization: basic("", "key-in-password") }, "x-api-key")).toBe("key-in-password");
    expect(extractApiKey({ authorization: "basic a2V5Og==" }, "x-api-key")).toBe("key");
  });

  it("finds nothing in empty or unknown schemes", () => {
    expect(extractApiKey({}, "x-api-key")).toBeUndefined();
    expect(extractApiKey({ authorization: "Digest abc" }, "x-api-key")).toBeUndefined();
    expect(extractApiKey({ authorization: "Bearer " }, "x-api-key")).toBeUndefined();
    expect(extractApiKey({ "x-api-key": "  " }, "x-api-key")).toBeUndefined();
  });
});

describe("ApiKeyVerifier", () => {
  const verifier = new ApiKeyVerifier(["user-key"], "master-key", true);

  it("accepts configured keys by hash and marks the master key", () => {
    expect(verifier.verify("user-key")).toEqual({ ok: true, principal: { keyHash: hashKey("user-key"), isMaster: false } });
    expect(verifier.verify("master-key")).toEqual({ ok: true, principal: { keyHash: hashKey("master-key"), isMaster: true } });
  });

  it("refuses missing and wrong keys", () => {
    expect(verifier.verify(undefined)).toEqual({ ok: false, reason: "missing" });
    expect(verifier.verify("user-kez")).toEqual({ ok: false, reason: "invalid" });
  });

  it("lets everyone in when auth is disabled, as one anonymous owner", () => {
    const open = new ApiKeyVerifier(["user-key"], undefined, false);
    expect(open.verify(undefined)).toMatchObject({ ok: true, principal: { keyHash: "anonymous" } });
    expect(open.verify("whatever")).toMatchObject({ ok: true, principal: { keyHash: "anonymous" } });
    expect(open.verify("user-key")).toMatchObject({ ok: true, principal: { keyHash: hashKey("user-key") } });
  });
});
