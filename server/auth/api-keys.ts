import { createHash } from "node:crypto";

/** Who is calling: the SHA-256 of their key (never the key itself) and whether it is the master key. */
export interface Principal {
  keyHash: string;
  isMaster: boolean;
  /** A key of the key store (admin API or `keys` CLI), which may have rate limits; absent for API_KEY/API_KEYS and the master key. */
  managed?: true;
  /**
   * A LibreChat-minted token's `sub`: the end user, authoritative (a `user_id`
   * a request names never replaces it). Its `keyHash` is then its tenant's.
   */
  userId?: string;
  /** A token's tenant (its `tenant_id`, or CODEAPI_JWT_SINGLE_TENANT_ID). */
  tenantId?: string;
}

export type AuthFailure = "missing" | "invalid" | "disabled";
export type AuthResult = { ok: true; principal: Principal } | { ok: false; reason: AuthFailure };

export function hashKey(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

/** The end user a request acts for: a token's `sub` when the caller has one, else the user the request names. */
export function callerUserId(principal: Principal, named: string | null | undefined): string | undefined {
  return principal.userId ?? (named || undefined);
}

/** Anonymous callers when AUTH_ENABLED=false all share this owner. */
export const ANONYMOUS: Principal = { keyHash: "anonymous", isMaster: false };

/**
 * Checks keys against the configured set. Keys are compared by their SHA-256,
 * looked up in a map, so the comparison time does not depend on how much of a
 * guess matches.
 */
export class ApiKeyVerifier {
  readonly #userKeys: Set<string>;
  readonly #masterHash: string | undefined;

  constructor(
    apiKeys: readonly string[],
    masterKey: string | undefined,
    readonly authEnabled: boolean,
  ) {
    this.#userKeys = new Set(apiKeys.map(hashKey));
    this.#masterHash = masterKey ? hashKey(masterKey) : undefined;
  }

  /** Authenticate a user route: with auth disabled, anyone is accepted (a master key still counts as master). */
  verify(key: string | undefined): AuthResult {
    if (key) {
      const keyHash = hashKey(key);
      if (keyHash === this.#masterHash) return { ok: true, principal: { keyHash, isMaster: true } };
      if (this.#userKeys.has(keyHash)) return { ok: true, principal: { keyHash, isMaster: false } };
      if (!this.authEnabled) return { ok: true, principal: ANONYMOUS };
      return { ok: false, reason: "invalid" };
    }
    if (!this.authEnabled) return { ok: true, principal: ANONYMOUS };
    return { ok: false, reason: "missing" };
  }
}
