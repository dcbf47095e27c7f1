import { ANONYMOUS, type ApiKeyVerifier, type AuthFailure, hashKey, type Principal } from "./api-keys.ts";
import type { KeyRecord, KeyStore } from "./key-store.ts";

export interface KeyVerifierOptions {
  /** API_KEY_CACHE_TTL: how long a lookup (found or not) is trusted; 0: every lookup goes to the store. */
  cacheTtlMs: number;
  /** Lookups kept at most (random wrong keys must not grow the cache without bound). */
  maxEntries?: number;
  now?: () => number;
}

/** `record` is set for a managed key (its rate limits). */
export type KeyAuthResult = { ok: true; principal: Principal; record?: Readonly<KeyRecord> } | { ok: false; reason: AuthFailure };

/** What `checkMaster` says about a key on an admin route. */
export type MasterCheck = "ok" | "missing" | "wrong" | "unconfigured";

const DEFAULT_MAX_ENTRIES = 10_000;

/**
 * Authenticates keys: the configured ones (API_KEY, API_KEYS, MASTER_API_KEY)
 * through ApiKeyVerifier, then the managed ones of the key store. Store
 * lookups are cached per replica for API_KEY_CACHE_TTL, so the hot path does
 * not reach Redis on every request; a change made through this replica's admin
 * API is seen at once (invalidate), one made elsewhere within the TTL.
 */
export class KeyVerifier {
  readonly #base: ApiKeyVerifier;
  readonly #store: KeyStore;
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  readonly #cache = new Map<string, { record: Readonly<KeyRecord> | undefined; expiresAt: number }>();
  /** Lookups in flight, shared by concurrent requests with the same key. */
  readonly #inflight = new Map<string, Promise<Readonly<KeyRecord> | undefined>>();
  readonly #masterHash: string | undefined;
  /** Bumped by invalidate(): a lookup that started before it is not cached. */
  #generation = 0;

  constructor(base: ApiKeyVerifier, store: KeyStore, masterKey: string | undefined, options: KeyVerifierOptions) {
    this.#base = base;
    this.#store = store;
    this.#ttlMs = options.cacheTtlMs;
    this.#maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
    this.#now = options.now ?? Date.now;
    this.#masterHash = masterKey ? hashKey(masterKey) : undefined;
  }

  get authEnabled(): boolean {
    return this.#base.authEnabled;
  }

  get masterConfigured(): boolean {
    return this.#masterHash !== undefined;
  }

  /** Authenticate a user route. Throws when the key store does not answer. */
  async authenticate(key: string | undefined): Promise<KeyAuthResult> {
    const base = this.#base.verify(key);
    if (!key) return base;
    const keyHash = hashKey(key);
    // A configured key or the master key: no store lookup.
    if (base.ok && base.principal.keyHash === keyHash) return base;
    const record = await this.lookup(keyHash);
    if (!record) return base;
    if (!record.enabled) return this.authEnabled ? { ok: false, reason: "disabled" } : { ok: true, principal: ANONYMOUS };
    return { ok: true, principal: { keyHash, isMaster: false, managed: true }, record };
  }

  /** Whether `key` is the master key (admin routes, whatever AUTH_ENABLED says). */
  checkMaster(key: string | undefined): MasterCheck {
    if (this.#masterHash === undefined) return "unconfigured";
    if (!key) return "missing";
    return hashKey(key) === this.#masterHash ? "ok" : "wrong";
  }

  /** The store's record of a key hash, through the cache. */
  async lookup(keyHash: string): Promise<Readonly<KeyRecord> | undefined> {
    const now = this.#now();
    const cached = this.#cache.get(keyHash);
    if (cached && cached.expiresAt > now) return cached.record;
    const inflight = this.#inflight.get(keyHash);
    if (inflight) return inflight;
    const generation = this.#generation;
    const lookup: Promise<Readonly<KeyRecord> | undefined> = this.#store
      .get(keyHash)
      .then((record) => {
        if (this.#ttlMs > 0 && generation === this.#generation) this.#remember(keyHash, record ? Object.freeze(record) : undefined);
        return record;
      })
      .finally(() => {
        if (this.#inflight.get(keyHash) === lookup) this.#inflight.delete(keyHash);
      });
    this.#inflight.set(keyHash, lookup);
    return lookup;
  }

  /** Forget cached lookups (one key, or all): after a change made through this replica. */
  invalidate(keyHash?: string): void {
    this.#generation++;
    if (keyHash === undefined) {
      this.#cache.clear();
      this.#inflight.clear();
    } else {
      this.#cache.delete(keyHash);
      this.#inflight.delete(keyHash);
    }
  }

  /** Cached lookups (tests). */
  get cacheSize(): number {
    return this.#cache.size;
  }

  #remember(keyHash: string, record: Readonly<KeyRecord> | undefined): void {
    this.#cache.delete(keyHash);
    if (this.#cache.size >= this.#maxEntries) {
      // Map order is insertion order: the first entry is the oldest.
      const oldest = this.#cache.keys().next().value;
      if (oldest !== undefined) this.#cache.delete(oldest);
    }
    this.#cache.set(keyHash, { record, expiresAt: this.#now() + this.#ttlMs });
  }
}
