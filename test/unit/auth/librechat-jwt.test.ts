import { createHmac, createPublicKey, generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JwtKeyError, loadVerificationKeys } from "../../../server/auth/jwt-keys.ts";
import { type LibreChatJwtOptions, LibreChatJwtVerifier, looksLikeJwt, tenantOwnerHash } from "../../../server/auth/librechat-jwt.ts";
import { loadConfig } from "../../../server/config/load.ts";
import { jwksOf, mintToken, newSigner, type TestSigner } from "../../helpers/librechat-tokens.ts";

let ed: TestSigner;
let rsa: TestSigner;
let verifier: LibreChatJwtVerifier;
let options: LibreChatJwtOptions;
let dir: string;

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
const claimsOf = (token: string) => JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()) as Record<string, unknown>;

beforeAll(async () => {
  ed = await newSigner("EdDSA", "lc-codeapi-2026-05");
  rsa = await newSigner("RS256", "lc-rsa");
  options = {
    keys: loadVerificationKeys({ jwksJson: jwksOf(ed, rsa), hs256Kid: "hs256-dev" }),
    allowedAlgs: ["EdDSA", "RS256"],
    issuer: "librechat",
    audience: "codeapi",
    clockSkewSeconds: 30,
    maxTtlSeconds: 300,
    singleTenantId: "legacy",
    strictTenants: false,
  };
  verifier = new LibreChatJwtVerifier(options);
  dir = mkdtempSync(join(tmpdir(), "jwt-keys-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("LibreChat tokens", () => {
  it("accepts the host's EdDSA and RS256 tokens: the principal is (tenant_id, sub)", async () => {
    for (const signer of [ed, rsa]) {
      const outcome = await verifier.verify(await mintToken(signer, { sub: "u-42", tenantId: "acme" }));
      expect(outcome).toEqual({ ok: true, principal: { keyHash: tenantOwnerHash("acme"), isMaster: false, userId: "u-42", tenantId: "acme" } });
    }
    // No tenant_id: the single tenant.
    const legacy = await verifier.verify(await mintToken(ed, { tenantId: null }));
    expect(legacy).toMatchObject({ ok: true, principal: { tenantId: "legacy", keyHash: tenantOwnerHash("legacy") } });
    expect(tenantOwnerHash("acme")).not.toBe(tenantOwnerHash("legacy"));
  });

  it.each([
    ["expired", { iatOffset: -400, ttl: 300 }, "expired"],
    ["nbf in the future", { nbfOffset: 120 }, "not_yet_valid"],
    ["iat in the future", { iatOffset: 120, nbfOffset: 0 }, "future_iat"],
    ["a wrong issuer", { iss: "someone-else" }, "wrong_issuer"],
    ["a wrong audience", { aud: "other-api" }, "wrong_audience"],
    ["a lifetime over the maximum", { ttl: 301 }, "ttl_too_long"],
    ["no jti", { omit: ["jti"] }, "missing_claims"],
    ["no sub", { omit: ["sub"] }, "missing_claims"],
    ["no nbf", { omit: ["nbf"] }, "missing_claims"],
    ["no principal_source", { omit: ["principal_source"] }, "missing_claims"],
    ["an unknown principal_source", { extra: { principal_source: "self_signed" } }, "missing_claims"],
    ["no auth_context_hash", { omit: ["auth_context_hash"] }, "missing_claims"],
    ["an unknown kid", { header: { kid: "rotated-away" } }, "unknown_kid"],
    ["typ other than JWT", { header: { typ: "at+jwt" } }, "malformed"],
  ] as const)("refuses a token with %s", async (_name, mint, reason) => {
    const outcome = await verifier.verify(await mintToken(ed, mint as never));
    expect(outcome).toMatchObject({ ok: false, reason });
  });

  it("accepts clock skew within CODEAPI_JWT_CLOCK_SKEW_SECONDS, and an aud list naming the audience", async () => {
    expect(await verifier.verify(await mintToken(ed, { iatOffset: 20 }))).toMatchObject({ ok: true });
    expect(await verifier.verify(await mintToken(ed, { iatOffset: -320, ttl: 300 }))).toMatchObject({ ok: true }); // expired 20 s ago
    expect(await verifier.verify(await mintToken(ed, { aud: ["files", "codeapi"] }))).toMatchObject({ ok: true });
  });

  it("refuses a tampered token, alg none, an HS256 token made with an RSA public key, and a token signed by another key under a known kid", async () => {
    const good = await mintToken(ed, { sub: "alice" });
    const [header, , signature] = good.split(".");
    const tampered = `${header}.${b64({ ...claimsOf(good), sub: "bob" })}.${signature}`;
    expect(await verifier.verify(tampered)).toMatchObject({ ok: false, reason: "bad_signature" });

    const none = `${b64({ alg: "none", typ: "JWT", kid: ed.kid })}.${b64(claimsOf(good))}.`;
    expect(await verifier.verify(none)).toMatchObject({ ok: false, reason: "wrong_alg" });

    // The classic confusion: HMAC keyed with the RSA public key, under the RSA key's kid.
    const pem = createPublicKey({ key: rsa.publicJwk as never, format: "jwk" }).export({ type: "spki", format: "pem" }) as string;
    const input = `${b64({ alg: "HS256", typ: "JWT", kid: rsa.kid })}.${b64(claimsOf(good))}`;
    const confused = `${input}.${createHmac("sha256", pem).update(input).digest("base64url")}`;
    expect(await verifier.verify(confused)).toMatchObject({ ok: false, reason: "wrong_alg" });

    const impostor = await newSigner("EdDSA", ed.kid);
    expect(await verifier.verify(await mintToken(impostor))).toMatchObject({ ok: false, reason: "bad_signature" });
    expect(await verifier.verify("eyJhbGciOi.not-a-token.x")).toMatchObject({ ok: false, reason: "malformed" });
  });

  it("CODEAPI_TENANT_ISOLATION_STRICT refuses a token without tenant_id; an alg left out of CODEAPI_JWT_ALLOWED_ALGS is refused", async () => {
    const strict = new LibreChatJwtVerifier({ ...options, strictTenants: true });
    expect(await strict.verify(await mintToken(ed, { tenantId: null }))).toMatchObject({ ok: false, reason: "missing_claims" });
    expect(await strict.verify(await mintToken(ed, { tenantId: "acme" }))).toMatchObject({ ok: true });
    const edOnly = new LibreChatJwtVerifier({ ...options, allowedAlgs: ["EdDSA"] });
    expect(await edOnly.verify(await mintToken(rsa))).toMatchObject({ ok: false, reason: "wrong_alg" });
  });

  it("tells a JWT from an API key", async () => {
    expect(looksLikeJwt(await mintToken(ed))).toBe(true);
    expect(looksLikeJwt("test-api-key")).toBe(false);
    expect(looksLikeJwt("sk.live.0123")).toBe(false);
  });
});

describe("verification keys", () => {
  it("reads a PEM (with \\n escapes), base64 DER and a JWK for CODEAPI_JWT_PUBLIC_KEY, a folder of keys by file name, and an HS256 secret", () => {
    const { publicKey } = generateKeyPairSync("ed25519");
    const pem = publicKey.export({ type: "spki", format: "pem" }) as string;
    const der = (publicKey.export({ type: "spki", format: "der" }) as Buffer).toString("base64");
    const jwk = JSON.stringify(publicKey.export({ format: "jwk" }));
    for (const value of [pem.replace(/\n/g, "\\n"), der, jwk]) {
      const keys = loadVerificationKeys({ publicKey: value, kid: "one", hs256Kid: "hs256-dev" });
      expect(keys.get("one")?.alg).toBe("EdDSA");
    }
    const rsaKey = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey;
    writeFileSync(join(dir, "lc-a.pem"), pem);
    writeFileSync(join(dir, "lc-b.pem"), rsaKey.export({ type: "spki", format: "pem" }) as string);
    const fromDir = loadVerificationKeys({ publicKeysDir: dir, hs256Secret: "dev-secret", hs256Kid: "hs256-dev" });
    expect([...fromDir.values()].map((key) => [key.kid, key.alg])).toEqual([
      ["lc-a", "EdDSA"],
      ["lc-b", "RS256"],
      ["hs256-dev", "HS256"],
    ]);
  });

  it("names what is wrong: a kid missing, a key of the wrong type, an alg the key cannot have, a folder that is not there", () => {
    const { publicKey } = generateKeyPairSync("ed25519");
    const pem = publicKey.export({ type: "spki", format: "pem" }) as string;
    expect(() => loadVerificationKeys({ publicKey: pem, hs256Kid: "h" })).toThrow(/CODEAPI_JWT_PUBLIC_KEY needs CODEAPI_JWT_KID/);
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ type: "spki", format: "pem" }) as string;
    expect(() => loadVerificationKeys({ publicKey: ec, kid: "ec", hs256Kid: "h" })).toThrow(/kid ec is a ec key: only Ed25519 \(EdDSA\) and RSA \(RS256\)/);
    const jwks = JSON.stringify({ keys: [{ ...(publicKey.export({ format: "jwk" }) as object), kid: "x", alg: "RS256" }] });
    expect(() => loadVerificationKeys({ jwksJson: jwks, hs256Kid: "h" })).toThrow(/kid x says alg RS256 but is a key for EdDSA/);
    expect(() => loadVerificationKeys({ publicKeysDir: join(dir, "missing"), hs256Kid: "h" })).toThrow(JwtKeyError);
  });

  it("a start with CODEAPI_AUTH_PROVIDER=librechat-jwt and no key material is refused, naming the variables; CODEAPI_JWT_ENABLED means both", () => {
    const none = loadConfig({ env: { CODEAPI_AUTH_PROVIDER: "librechat-jwt" }, envFile: false });
    expect(none.errors).toContainEqual(expect.stringMatching(/CODEAPI_AUTH_PROVIDER=librechat-jwt needs verification keys: set CODEAPI_JWT_JWKS_JSON/));
    const both = loadConfig({ env: { CODEAPI_JWT_ENABLED: "true", CODEAPI_JWT_JWKS_JSON: jwksOf(ed) }, envFile: false });
    expect(both.errors).toEqual([]);
    expect(both.config.auth.jwt.provider).toBe("both");
    expect([...both.config.auth.jwt.verifier!.keys.keys()]).toEqual([ed.kid]);
    const skew = loadConfig({
      env: { CODEAPI_AUTH_PROVIDER: "both", CODEAPI_JWT_JWKS_JSON: jwksOf(ed), CODEAPI_JWT_CLOCK_SKEW_SECONDS: "60" },
      envFile: false,
    });
    expect(skew.errors.join("\n")).toMatch(/CODEAPI_JWT_CLOCK_SKEW_SECONDS/);
    expect(loadConfig({ env: {}, envFile: false }).config.auth.jwt).toEqual({ provider: "api-key" });
  });
});
