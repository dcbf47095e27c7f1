/**
 * Tokens as the LibreChat host mints them for the Code API (its
 * mintCodeApiToken): header {alg, typ: "JWT", kid}, claims iss, aud, sub, iat,
 * nbf, exp (at most 300 s after iat), jti, tenant_id, role, principal_source
 * and auth_context_hash. Tests sign with real keys through jose.
 */
import { createHash, randomUUID } from "node:crypto";
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";

export type TestSigner = { kid: string; alg: "EdDSA" | "RS256"; privateKey: CryptoKey; publicJwk: JWK };

export async function newSigner(alg: "EdDSA" | "RS256", kid: string): Promise<TestSigner> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...(alg === "EdDSA" ? { crv: "Ed25519" } : {}) });
  return { kid, alg, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg } };
}

/** The JWKS of these signers (CODEAPI_JWT_JWKS_JSON). */
export function jwksOf(...signers: TestSigner[]): string {
  return JSON.stringify({ keys: signers.map((signer) => signer.publicJwk) });
}

export interface MintOptions {
  sub?: string;
  tenantId?: string | null;
  iss?: string;
  aud?: string | string[];
  /** Seconds from now (default 0). */
  iatOffset?: number;
  /** Seconds after iat (default 300). */
  ttl?: number;
  /** Seconds from now (default = iatOffset). */
  nbfOffset?: number;
  /** Claims left out. */
  omit?: string[];
  /** Header fields to replace (kid, alg, typ). */
  header?: Record<string, unknown>;
  extra?: Record<string, unknown>;
}

export async function mintToken(signer: TestSigner, options: MintOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const iat = now + (options.iatOffset ?? 0);
  const sub = options.sub ?? "user-1";
  const tenant = options.tenantId === undefined ? "legacy" : options.tenantId;
  const claims: Record<string, unknown> = {
    iss: options.iss ?? "librechat",
    aud: options.aud ?? "codeapi",
    sub,
    iat,
    nbf: now + (options.nbfOffset ?? options.iatOffset ?? 0),
    exp: iat + (options.ttl ?? 300),
    jti: randomUUID(),
    ...(tenant !== null ? { tenant_id: tenant } : {}),
    role: "USER",
    principal_source: "librechat_jwt",
    auth_context_hash: createHash("sha256").update(`${tenant}:${sub}`).digest("hex"),
    ...options.extra,
  };
  for (const name of options.omit ?? []) delete claims[name];
  return new SignJWT(claims).setProtectedHeader({ alg: signer.alg, typ: "JWT", kid: signer.kid, ...options.header } as never).sign(signer.privateKey);
}
