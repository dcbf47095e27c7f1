import { randomId } from "../ids.ts";
import { hashKey } from "./api-keys.ts";

/**
 * Managed API keys (created through the admin API or the `keys` CLI). Only the
 * SHA-256 of a key is stored: the key itself is shown once, at creation.
 */

/** The rate-limit windows, shortest first. */
export const RATE_WINDOWS = ["second", "minute", "hour", "day", "month"] as const;
export type RateWindow = (typeof RATE_WINDOWS)[number];

/** Requests allowed per window; a window that is absent is not limited. */
export type RateLimits = Partial<Record<RateWindow, number>>;

export interface KeyUsage {
  /** Requests admitted with this key (HTTP requests, WebSocket session.open and exec frames). */
  requests: number;
  /** Epoch ms of the last admitted request. */
  lastUsedAt?: number;
}

export interface KeyRecord {
  /** SHA-256 of the key, lowercase hex: the only form of the key that is stored. */
  keyHash: string;
  name: string;
  /** Epoch ms. */
  createdAt: number;
  enabled: boolean;
  rateLimits: RateLimits;
  usage: KeyUsage;
}

/** What an update may change; a window set to null loses its limit. */
export interface KeyPatch {
  name?: string;
  enabled?: boolean;
  rateLimits?: Partial<Record<RateWindow, number | null>>;
}

/** Requests counted since the last flush, per key (see usage-recorder.ts). */
export interface UsageDelta {
  keyHash: string;
  requests: number;
  lastUsedAt: number;
}

export interface KeyStore {
  /** "local" (a JSON file under FILE_STORAGE_PATH) or "redis". */
  readonly kind: "local" | "redis";
  get(keyHash: string): Promise<KeyRecord | undefined>;
  list(): Promise<KeyRecord[]>;
  create(record: KeyRecord): Promise<void>;
  /** The updated record, or undefined when there is no such key. */
  update(keyHash: string, patch: KeyPatch): Promise<KeyRecord | undefined>;
  /** False when there was no such key. */
  delete(keyHash: string): Promise<boolean>;
  /** Add counted requests to the usage of keys that still exist (deleted keys are skipped, not revived). */
  addUsage(deltas: readonly UsageDelta[]): Promise<void>;
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

export const KEY_HASH = /^[0-9a-f]{64}$/;
const KEY_PREFIX = "sk-";
/** 48 base62 characters: about 285 bits. */
const KEY_RANDOM_LENGTH = 48;

/** A new key and the record that stores only its hash. */
export function newKey(options: { name?: string; rateLimits?: RateLimits; enabled?: boolean; now?: number }): { key: string; record: KeyRecord } {
  const key = `${KEY_PREFIX}${randomId(KEY_RANDOM_LENGTH)}`;
  const record: KeyRecord = {
    keyHash: hashKey(key),
    name: options.name ?? "",
    createdAt: options.now ?? Date.now(),
    enabled: options.enabled ?? true,
    rateLimits: { ...options.rateLimits },
    usage: { requests: 0 },
  };
  return { key, record };
}

/** A record with `patch` applied (shared by the stores so that they agree on the rules). */
export function applyPatch(record: KeyRecord, patch: KeyPatch): KeyRecord {
  const rateLimits: RateLimits = { ...record.rateLimits };
  for (const window of RATE_WINDOWS) {
    const value = patch.rateLimits?.[window];
    if (value === null) delete rateLimits[window];
    else if (value !== undefined) rateLimits[window] = value;
  }
  return {
    ...record,
    ...(patch.name !== undefined ? { name: patch.name } : {}),
    ...(patch.enabled !== undefined ? { enabled: patch.enabled } : {}),
    rateLimits,
  };
}

/** Only the windows with a positive whole limit (what a store or an old file may hold is not trusted blindly). */
export function cleanLimits(value: unknown): RateLimits {
  const limits: RateLimits = {};
  if (typeof value !== "object" || value === null) return limits;
  for (const window of RATE_WINDOWS) {
    const limit = (value as Record<string, unknown>)[window];
    if (typeof limit === "number" && Number.isInteger(limit) && limit > 0) limits[window] = limit;
  }
  return limits;
}

export function hasLimits(limits: RateLimits): boolean {
  return RATE_WINDOWS.some((window) => limits[window] !== undefined);
}
