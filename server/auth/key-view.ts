import { type KeyRecord, RATE_WINDOWS, type RateLimits, type RateWindow, type UsageDelta } from "./key-store.ts";

/**
 * A managed key as the admin API and `keys list --json` show it: snake_case,
 * ISO times, every window present (null: no limit).
 */
export interface KeyView {
  key_hash: string;
  name: string;
  created_at: string;
  enabled: boolean;
  rate_limits: Record<`per_${RateWindow}`, number | null>;
  usage: { requests: number; last_used_at: string | null };
}

/** `pending`: usage this process counted and has not flushed to the store yet. */
export function keyView(record: KeyRecord, pending?: UsageDelta): KeyView {
  const lastUsedAt = Math.max(record.usage.lastUsedAt ?? 0, pending?.lastUsedAt ?? 0);
  return {
    key_hash: record.keyHash,
    name: record.name,
    created_at: new Date(record.createdAt).toISOString(),
    enabled: record.enabled,
    rate_limits: Object.fromEntries(RATE_WINDOWS.map((window) => [`per_${window}`, record.rateLimits[window] ?? null])) as KeyView["rate_limits"],
    usage: { requests: record.usage.requests + (pending?.requests ?? 0), last_used_at: lastUsedAt > 0 ? new Date(lastUsedAt).toISOString() : null },
  };
}

/** The limits of a new key: what its creator gave (null: explicitly none), else the configured default of that window. */
export function limitsWithDefaults(given: Partial<Record<RateWindow, number | null>>, defaults: RateLimits): RateLimits {
  const limits: RateLimits = {};
  for (const window of RATE_WINDOWS) {
    const value = given[window] === undefined ? defaults[window] : given[window];
    if (typeof value === "number") limits[window] = value;
  }
  return limits;
}
