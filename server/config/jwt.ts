/**
 * Whether user routes take LibreChat-minted tokens, and how they are checked,
 * from codeapi's variables (CODEAPI_AUTH_PROVIDER, CODEAPI_JWT_*): the keys
 * are loaded here, so that a start with unusable or missing key material is
 * refused with the variable named, not at the first request.
 */
import { type JwtAlgorithm, JwtKeyError, loadVerificationKeys } from "../auth/jwt-keys.ts";
import type { LibreChatJwtOptions } from "../auth/librechat-jwt.ts";
import { type RawValue, splitList } from "./schema.ts";

/** api-key: API keys only (the default); librechat-jwt: tokens only (and the master key); both: either. */
export type AuthProvider = "api-key" | "librechat-jwt" | "both";

export interface JwtConfig {
  provider: AuthProvider;
  /** Set unless the provider is api-key. */
  verifier?: LibreChatJwtOptions;
}

export function resolveJwt(raw: Record<string, RawValue>, explicit: ReadonlySet<string>, errors: string[], warnings: string[]): JwtConfig {
  const provider: AuthProvider = explicit.has("CODEAPI_AUTH_PROVIDER")
    ? (raw.CODEAPI_AUTH_PROVIDER as AuthProvider)
    : raw.CODEAPI_JWT_ENABLED === true
      ? "both"
      : "api-key";
  const text = (name: string) => (typeof raw[name] === "string" && raw[name] !== "" ? (raw[name] as string) : undefined);
  const hasKeyMaterial = ["CODEAPI_JWT_JWKS_JSON", "CODEAPI_JWT_PUBLIC_KEY", "CODEAPI_JWT_PUBLIC_KEYS_DIR", "CODEAPI_JWT_HS256_SECRET"].some(text);
  if (provider === "api-key") {
    if (hasKeyMaterial) warnings.push("CODEAPI_JWT_* keys are set but tokens are not accepted: set CODEAPI_AUTH_PROVIDER=librechat-jwt or both");
    return { provider };
  }
  let keys: ReturnType<typeof loadVerificationKeys>;
  try {
    keys = loadVerificationKeys({
      jwksJson: text("CODEAPI_JWT_JWKS_JSON"),
      publicKey: text("CODEAPI_JWT_PUBLIC_KEY"),
      kid: text("CODEAPI_JWT_KID"),
      publicKeysDir: text("CODEAPI_JWT_PUBLIC_KEYS_DIR"),
      hs256Secret: text("CODEAPI_JWT_HS256_SECRET"),
      hs256Kid: text("CODEAPI_JWT_HS256_KID") ?? "hs256-dev",
    });
  } catch (error) {
    if (!(error instanceof JwtKeyError)) throw error;
    errors.push(error.message);
    return { provider };
  }
  const allowedAlgs = splitList(raw.CODEAPI_JWT_ALLOWED_ALGS) as JwtAlgorithm[];
  if (keys.size === 0) {
    errors.push(
      `CODEAPI_AUTH_PROVIDER=${provider} needs verification keys: set CODEAPI_JWT_JWKS_JSON, CODEAPI_JWT_PUBLIC_KEY with CODEAPI_JWT_KID, CODEAPI_JWT_PUBLIC_KEYS_DIR, or (development only) CODEAPI_JWT_HS256_SECRET`,
    );
  }
  const unusable = [...keys.values()].filter((key) => !allowedAlgs.includes(key.alg));
  if (unusable.length > 0) {
    warnings.push(
      `CODEAPI_JWT_ALLOWED_ALGS (${allowedAlgs.join(",")}) leaves out the alg of kid ${unusable.map((k) => `${k.kid} (${k.alg})`).join(", ")}: its tokens are refused`,
    );
  }
  if ([...keys.values()].some((key) => key.alg === "HS256")) warnings.push("CODEAPI_JWT_HS256_SECRET is for development: anyone holding it can mint tokens");
  return {
    provider,
    verifier: {
      keys,
      allowedAlgs,
      issuer: text("CODEAPI_JWT_ISSUER") ?? "librechat",
      audience: text("CODEAPI_JWT_AUDIENCE") ?? "codeapi",
      clockSkewSeconds: raw.CODEAPI_JWT_CLOCK_SKEW_SECONDS as number,
      maxTtlSeconds: raw.CODEAPI_JWT_MAX_TTL_SECONDS as number,
      singleTenantId: text("CODEAPI_JWT_SINGLE_TENANT_ID") ?? "legacy",
      strictTenants: raw.CODEAPI_TENANT_ISOLATION_STRICT === true,
    },
  };
}
