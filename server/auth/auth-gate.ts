import type { Logger } from "pino";
import type { AuthFailure, Principal } from "./api-keys.ts";
import type { AuthFailureLimiter } from "./auth-failure-limiter.ts";
import type { KeyRecord, RateLimits } from "./key-store.ts";
import type { KeyAuthResult, KeyVerifier } from "./key-verifier.ts";
import { type LibreChatJwtVerifier, looksLikeJwt } from "./librechat-jwt.ts";
import type { RateDecision, RateLimiter, RateState } from "./rate-limiter.ts";
import type { UsageRecorder } from "./usage-recorder.ts";

/**
 * The auth path shared by HTTP and WebSocket, with no transport in it: the
 * auth-failure limiter, key verification, per-key rate limits and usage
 * counting. Callers turn the outcomes into status codes or close codes.
 *
 * With AUTH_ENABLED=false both limiters are bypassed on user routes (the
 * guides: the network boundary is responsible for abuse protection then);
 * admin routes always authenticate, so the auth-failure limiter stays on there.
 */

export type Refusal =
  /** 401: no key, a wrong key, or a disabled key. */
  | { ok: false; kind: "unauthenticated"; reason: AuthFailure }
  /** 429: the key is over one of its limits, or its address is blocked after repeated auth failures. */
  | { ok: false; kind: "rate_limited"; scope: "key"; rate: RateDecision }
  | { ok: false; kind: "rate_limited"; scope: "address"; rate: RateState }
  /** 503: the key store does not answer. */
  | { ok: false; kind: "unavailable" };

export type AuthOutcome = { ok: true; principal: Principal; record?: Readonly<KeyRecord> } | Refusal;
export type AdmitOutcome = { ok: true; rate?: RateDecision } | Refusal;
export type MasterOutcome =
  | { ok: true; principal: Principal }
  /** 403: a key that is not the master key. */
  | { ok: false; kind: "forbidden" }
  /** The admin API is off: no MASTER_API_KEY is configured. */
  | { ok: false; kind: "unconfigured" }
  | Refusal;

export interface AuthGateDeps {
  verifier: KeyVerifier;
  /**
   * LibreChat-minted tokens (CODEAPI_AUTH_PROVIDER librechat-jwt or both);
   * `tokensOnly`: API keys other than the master key are refused.
   */
  tokens?: {
    verifier: LibreChatJwtVerifier;
    tokensOnly: boolean;
    /** RATE_LIMIT_DEFAULT_PER_*: what each token principal (tenant and user) may do, as a new managed key may. */
    rateLimits: RateLimits;
  };
  /** Per-key limits; absent when RATE_LIMIT_ENABLED=false. */
  limiter?: RateLimiter;
  /** Auth failures per address; absent when RATE_LIMIT_ENABLED=false. */
  failures?: AuthFailureLimiter;
  usage: UsageRecorder;
  logger: Logger;
  securityLog: (event: string, fields: Record<string, unknown>) => void;
}

/** A Redis outage fails every request: say so once in a while, not on every one. */
const WARN_EVERY_MS = 10_000;

export class AuthGate {
  readonly #deps: AuthGateDeps;
  /** Key hash -> end of the window whose refusals were already logged (one security line per key and window). */
  readonly #loggedRefusals = new Map<string, number>();
  #lastWarnAt = 0;

  constructor(deps: AuthGateDeps) {
    this.#deps = deps;
  }

  get authEnabled(): boolean {
    return this.#deps.verifier.authEnabled;
  }

  /** Who the caller of a user route is (HTTP request, WebSocket upgrade or `auth` frame). */
  async authenticate(key: string | undefined, address: string): Promise<AuthOutcome> {
    const { verifier, failures } = this.#deps;
    const limited = this.authEnabled ? this.#blocked(address) : undefined;
    if (limited) return limited;
    const tokens = this.#deps.tokens;
    if (tokens && key && looksLikeJwt(key)) return this.#authenticateToken(tokens.verifier, key, address);
    let result: KeyAuthResult;
    try {
      result = await verifier.authenticate(key);
    } catch (error) {
      this.#warn(error, "the key store does not answer: requests with managed keys get 503");
      return { ok: false, kind: "unavailable" };
    }
    // Tokens only: a key that is not the master key is a wrong credential, however valid it would be as a key.
    if (result.ok && tokens?.tokensOnly && !result.principal.isMaster && verifier.authEnabled) result = { ok: false, reason: key ? "invalid" : "missing" };
    if (result.ok) return result;
    this.#deps.securityLog("auth_failed", { reason: result.reason, remoteAddress: address });
    // Only wrong keys count: a missing key guesses nothing, and a disabled one is a known key.
    if (result.reason === "invalid" && failures) await this.#countFailure(address);
    return { ok: false, kind: "unauthenticated", reason: result.reason };
  }

  /** A token: its principal, or a failed login like a wrong key's (logged with why). */
  async #authenticateToken(tokens: LibreChatJwtVerifier, token: string, address: string): Promise<AuthOutcome> {
    const outcome = await tokens.verify(token);
    if (outcome.ok) return { ok: true, principal: outcome.principal };
    this.#deps.securityLog("auth_failed", { reason: "invalid", token: outcome.reason, detail: outcome.detail, remoteAddress: address });
    if (this.#deps.failures) await this.#countFailure(address);
    return { ok: false, kind: "unauthenticated", reason: "invalid" };
  }

  /**
   * Admit one request of an authenticated caller (an HTTP request, a WebSocket
   * session.open or exec): the key's rate limits, then its usage count. Without
   * `record` (a WebSocket frame long after the upgrade), the key is looked up
   * again, so a key disabled since then stops working within the cache TTL.
   */
  async admit(principal: Principal, address: string, record?: Readonly<KeyRecord>): Promise<AdmitOutcome> {
    if (principal.userId !== undefined && this.#deps.tokens) return this.#admitToken(principal, address, this.#deps.tokens.rateLimits);
    if (!principal.managed) return { ok: true };
    let current = record;
    if (!current) {
      try {
        current = await this.#deps.verifier.lookup(principal.keyHash);
      } catch (error) {
        this.#warn(error, "the key store does not answer: requests with managed keys get 503");
        return { ok: false, kind: "unavailable" };
      }
      if (!current?.enabled) return { ok: false, kind: "unauthenticated", reason: current ? "disabled" : "invalid" };
    }
    let rate: RateDecision | undefined;
    if (this.#deps.limiter && this.authEnabled) {
      try {
        rate = await this.#deps.limiter.hit(principal.keyHash, current.rateLimits);
      } catch (error) {
        // Limits protect the service; an outage of their counters must not take every request down with it.
        this.#warn(error, "rate-limit counters do not answer: requests are admitted without limits");
      }
    }
    if (rate && !rate.allowed) {
      this.#logRefusal(principal.keyHash, address, rate);
      return { ok: false, kind: "rate_limited", scope: "key", rate };
    }
    this.#deps.usage.record(principal.keyHash);
    return rate ? { ok: true, rate } : { ok: true };
  }

  /** A token principal: the default limits, counted per tenant and user (it has no key record of its own). */
  async #admitToken(principal: Principal, address: string, limits: RateLimits): Promise<AdmitOutcome> {
    const scope = `token:${principal.keyHash}:${principal.userId}`;
    let rate: RateDecision | undefined;
    if (this.#deps.limiter && this.authEnabled) {
      try {
        rate = await this.#deps.limiter.hit(scope, limits);
      } catch (error) {
        this.#warn(error, "rate-limit counters do not answer: requests are admitted without limits");
      }
    }
    if (rate && !rate.allowed) {
      this.#logRefusal(scope, address, rate);
      return { ok: false, kind: "rate_limited", scope: "key", rate };
    }
    return rate ? { ok: true, rate } : { ok: true };
  }

  /** Admin routes: the master key only, whatever AUTH_ENABLED says. */
  async authorizeMaster(key: string | undefined, address: string): Promise<MasterOutcome> {
    const limited = this.#blocked(address);
    if (limited) return limited;
    const check = this.#deps.verifier.checkMaster(key);
    if (check === "ok") return { ok: true, principal: { keyHash: "master", isMaster: true } };
    if (check === "unconfigured") return { ok: false, kind: "unconfigured" };
    this.#deps.securityLog("admin_auth_failed", { reason: check, remoteAddress: address });
    if (check === "missing") return { ok: false, kind: "unauthenticated", reason: "missing" };
    if (this.#deps.failures) await this.#countFailure(address);
    return { ok: false, kind: "forbidden" };
  }

  #blocked(address: string): Refusal | undefined {
    const rate = this.#deps.failures?.blocked(address);
    return rate ? { ok: false, kind: "rate_limited", scope: "address", rate } : undefined;
  }

  async #countFailure(address: string): Promise<void> {
    try {
      const outcome = await this.#deps.failures!.fail(address);
      // Once per block and replica: a blocked address is refused before its key is checked, so no failure counts after this one.
      if (outcome.blocked) {
        this.#deps.securityLog("auth_failures_blocked", {
          remoteAddress: address,
          failures: outcome.failures,
          retryAfterSeconds: outcome.retryAfterSeconds,
        });
      }
    } catch (error) {
      this.#warn(error, "auth-failure counters do not answer: failures are not counted");
    }
  }

  #logRefusal(keyHash: string, address: string, rate: RateDecision): void {
    if (this.#loggedRefusals.get(keyHash) === rate.resetAt) return;
    if (this.#loggedRefusals.size > 10_000) this.#loggedRefusals.clear();
    this.#loggedRefusals.set(keyHash, rate.resetAt);
    this.#deps.securityLog("rate_limited", {
      keyHash: keyHash.slice(0, 12),
      window: rate.window,
      limit: rate.limit,
      retryAfterSeconds: rate.retryAfterSeconds,
      remoteAddress: address,
    });
  }

  #warn(error: unknown, message: string): void {
    const now = Date.now();
    if (now - this.#lastWarnAt < WARN_EVERY_MS) return;
    this.#lastWarnAt = now;
    this.#deps.logger.warn({ err: error }, message);
  }
}
