/**
 * Tokens the LibreChat host mints for the Code API (its mintCodeApiToken):
 * `Authorization: Bearer <JWT>`, verified with jose against the configured
 * keys, and turned into a principal of (tenant_id, sub). Every check a
 * refusal names is one of codeapi's: the alg fixed by the key (by kid), the
 * signature, iss, aud, exp, nbf and iat within the clock skew, a lifetime of
 * at most CODEAPI_JWT_MAX_TTL_SECONDS, and the claims the host always sends.
 */
import { createHash } from "node:crypto";
import { decodeProtectedHeader, errors, jwtVerify } from "jose";
import type { Principal } from "./api-keys.ts";
import type { JwtAlgorithm, VerificationKey } from "./jwt-keys.ts";

export interface LibreChatJwtOptions {
  keys: ReadonlyMap<string, VerificationKey>;
  allowedAlgs: readonly JwtAlgorithm[];
  issuer: string;
  audience: string;
  clockSkewSeconds: number;
  maxTtlSeconds: number;
  /** The tenant of a token without tenant_id (CODEAPI_JWT_SINGLE_TENANT_ID), unless strict. */
  singleTenantId: string;
  /** CODEAPI_TENANT_ISOLATION_STRICT: tenant_id is required. */
  strictTenants: boolean;
  now?: () => number;
}

/** Why a token was refused (logged; the caller only hears 401). */
export type JwtRefusal =
  | "malformed"
  | "wrong_alg"
  | "unknown_kid"
  | "bad_signature"
  | "wrong_issuer"
  | "wrong_audience"
  | "expired"
  | "not_yet_valid"
  | "future_iat"
  | "ttl_too_long"
  | "missing_claims";

export type JwtOutcome = { ok: true; principal: Principal } | { ok: false; reason: JwtRefusal; detail: string };

/** The host's principal_source values. */
const PRINCIPAL_SOURCES = new Set(["librechat_jwt", "openid_reuse"]);
/** Longest sub, tenant_id and jti taken (they become parts of stored records). */
const MAX_ID_LENGTH = 256;
const THREE_SEGMENTS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** Whether a credential is shaped like a JWT (an API key never has two dots between base64url runs). */
export function looksLikeJwt(credential: string): boolean {
  return THREE_SEGMENTS.test(credential) && credential.startsWith("eyJ");
}

/** The owner hash of a tenant's sessions and files, as an API key's hash is for a key's. */
export function tenantOwnerHash(tenantId: string): string {
  return createHash("sha256").update(`librechat-tenant\0${tenantId}`).digest("hex");
}

export class LibreChatJwtVerifier {
  readonly #options: LibreChatJwtOptions;

  constructor(options: LibreChatJwtOptions) {
    this.#options = options;
  }

  get keyCount(): number {
    return this.#options.keys.size;
  }

  async verify(token: string): Promise<JwtOutcome> {
    const o = this.#options;
    const refuse = (reason: JwtRefusal, detail: string): JwtOutcome => ({ ok: false, reason, detail });
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      return refuse("malformed", "the header is not a JWS header");
    }
    if (header.typ !== undefined && header.typ !== "JWT") return refuse("malformed", `typ ${String(header.typ)}`);
    if (typeof header.kid !== "string" || header.kid === "") return refuse("unknown_kid", "no kid");
    const key = o.keys.get(header.kid);
    if (!key) return refuse("unknown_kid", `kid ${header.kid.slice(0, 64)}`);
    if (header.alg !== key.alg || !o.allowedAlgs.includes(key.alg)) return refuse("wrong_alg", `alg ${String(header.alg)} for a ${key.alg} key`);
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, key.key, {
        algorithms: [key.alg],
        issuer: o.issuer,
        audience: o.audience,
        clockTolerance: o.clockSkewSeconds,
        requiredClaims: ["iss", "aud", "sub", "iat", "nbf", "exp", "jti"],
        ...(o.now ? { currentDate: new Date(o.now()) } : {}),
      }));
    } catch (error) {
      return refuse(...refusalOf(error));
    }
    const now = Math.floor((o.now?.() ?? Date.now()) / 1000);
    const { sub, jti, iat, exp, tenant_id: tenantClaim, principal_source: source, auth_context_hash: contextHash } = payload;
    if (typeof iat !== "number" || typeof exp !== "number") return refuse("missing_claims", "iat and exp must be numbers");
    if (iat > now + o.clockSkewSeconds) return refuse("future_iat", `iat ${iat} is ahead of now ${now}`);
    if (exp <= iat) return refuse("malformed", "exp is not after iat");
    if (exp - iat > o.maxTtlSeconds) return refuse("ttl_too_long", `lifetime ${exp - iat} s over ${o.maxTtlSeconds} s`);
    if (!isId(sub) || !isId(jti)) return refuse("missing_claims", "sub and jti must be non-empty strings");
    if (typeof source !== "string" || !PRINCIPAL_SOURCES.has(source)) return refuse("missing_claims", "principal_source must be librechat_jwt or openid_reuse");
    if (typeof contextHash !== "string" || contextHash === "") return refuse("missing_claims", "auth_context_hash is required");
    if (tenantClaim !== undefined && !isId(tenantClaim)) return refuse("missing_claims", "tenant_id must be a non-empty string");
    if (tenantClaim === undefined && o.strictTenants) return refuse("missing_claims", "tenant_id is required (CODEAPI_TENANT_ISOLATION_STRICT)");
    const tenantId = (tenantClaim as string | undefined) ?? o.singleTenantId;
    return { ok: true, principal: { keyHash: tenantOwnerHash(tenantId), isMaster: false, userId: sub, tenantId } };
  }
}

function isId(value: unknown): value is string {
  return typeof value === "string" && value.length > 0 && value.length <= MAX_ID_LENGTH;
}

function refusalOf(error: unknown): [JwtRefusal, string] {
  if (error instanceof errors.JWTExpired) return ["expired", "exp has passed"];
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.reason === "missing") return ["missing_claims", `no ${error.claim}`];
    if (error.claim === "iss") return ["wrong_issuer", "iss is not the configured issuer"];
    if (error.claim === "aud") return ["wrong_audience", "aud does not name the configured audience"];
    if (error.claim === "nbf") return ["not_yet_valid", "nbf is ahead"];
    return ["missing_claims", `${error.claim} ${error.reason}`];
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return ["bad_signature", "the signature does not verify"];
  if (error instanceof errors.JOSEAlgNotAllowed) return ["wrong_alg", "alg not allowed"];
  return ["malformed", (error as Error).message.slice(0, 200)];
}
