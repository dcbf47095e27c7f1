import * as v from "valibot";

/**
 * JSON bodies of the admin API (`/api/v1/admin/keys`, master key only).
 * Unknown fields are ignored, as everywhere in the HTTP API.
 */

export const MAX_RATE_LIMIT = 1_000_000_000;
export const MAX_KEY_NAME_LENGTH = 100;

/** Requests per window; null: no limit in that window (PATCH: remove it). */
const Limit = v.nullable(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(MAX_RATE_LIMIT)));

export const RateLimitsBodySchema = v.object({
  per_second: v.optional(Limit),
  per_minute: v.optional(Limit),
  per_hour: v.optional(Limit),
  per_day: v.optional(Limit),
  per_month: v.optional(Limit),
});
export type RateLimitsBody = v.InferOutput<typeof RateLimitsBodySchema>;

const KeyName = v.pipe(v.string(), v.trim(), v.maxLength(MAX_KEY_NAME_LENGTH));

/** POST /api/v1/admin/keys: every field optional; a window left out gets the server's default (RATE_LIMIT_DEFAULT_PER_*). */
export const CreateKeyBodySchema = v.object({
  name: v.optional(KeyName),
  enabled: v.optional(v.boolean()),
  rate_limits: v.optional(RateLimitsBodySchema),
});
export type CreateKeyBody = v.InferOutput<typeof CreateKeyBodySchema>;

/** PATCH /api/v1/admin/keys/{key_hash}: what is absent stays as it is; rate_limits are merged window by window. */
export const UpdateKeyBodySchema = v.object({
  name: v.optional(KeyName),
  enabled: v.optional(v.boolean()),
  rate_limits: v.optional(RateLimitsBodySchema),
});
export type UpdateKeyBody = v.InferOutput<typeof UpdateKeyBodySchema>;

/** The SHA-256 of a key, lowercase hex, as listed by GET /api/v1/admin/keys. */
export const KeyHashSchema = v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/, "a key_hash is 64 lowercase hex characters (the SHA-256 of the key)"));
