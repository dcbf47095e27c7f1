import * as v from "valibot";
import { CreateKeyBodySchema, KeyHashSchema, type RateLimitsBody, UpdateKeyBodySchema } from "../../../protocol/admin-bodies.ts";
import { fieldIssues } from "../../../protocol/http-bodies.ts";
import { type KeyPatch, type KeyRecord, type KeyStore, newKey, RATE_WINDOWS, type RateLimits, type RateWindow } from "../../auth/key-store.ts";
import type { KeyVerifier } from "../../auth/key-verifier.ts";
import { type KeyView, keyView, limitsWithDefaults } from "../../auth/key-view.ts";
import type { UsageRecorder } from "../../auth/usage-recorder.ts";
import { sendError, sendJson } from "../errors.ts";
import { readJsonBody } from "../json-body.ts";
import type { RouteContext, RouteHandler, Router } from "../router.ts";

/** Admin bodies are a name and five numbers. */
const BODY_LIMIT_BYTES = 64 * 1024;

export interface AdminDeps {
  store: KeyStore;
  /** Its cache is dropped for a key changed here, so this replica sees the change at once. */
  verifier: KeyVerifier;
  /** Counts not flushed to the store yet, added to what is shown. */
  usage: UsageRecorder;
  /** RATE_LIMIT_DEFAULT_PER_*: for the windows a new key's creator leaves out. */
  defaultRateLimits: RateLimits;
  rateLimitEnabled: boolean;
  /** Live sessions on this replica. */
  sessionsCount?: () => number;
  /** Wraps a handler so it requires MASTER_API_KEY (requireMaster). */
  master: (handler: RouteHandler) => RouteHandler;
  securityLog: (event: string, fields: Record<string, unknown>) => void;
}

/** GET/POST /api/v1/admin/keys, PATCH/DELETE /api/v1/admin/keys/{key_hash}, GET /api/v1/admin/stats. */
export function addAdminRoutes(router: Router, deps: AdminDeps): void {
  router.add(
    "GET",
    "/api/v1/admin/keys",
    deps.master(async ({ res }) => {
      const records = await deps.store.list();
      sendJson(
        res,
        200,
        records.map((record) => viewOf(record, deps.usage)),
      );
    }),
  );

  router.add(
    "POST",
    "/api/v1/admin/keys",
    deps.master(async (ctx) => {
      const body = await readBody(ctx, CreateKeyBodySchema);
      if (!body) return;
      const rateLimits = limitsWithDefaults(limitsOf(body.rate_limits), deps.defaultRateLimits);
      const { key, record } = newKey({ name: body.name ?? "", rateLimits, ...(body.enabled !== undefined ? { enabled: body.enabled } : {}) });
      await deps.store.create(record);
      deps.securityLog("admin_key_created", { keyHash: record.keyHash, name: record.name, remoteAddress: ctx.req.remoteAddress });
      // The key itself is in this response only: the store keeps its SHA-256.
      sendJson(ctx.res, 201, { key, ...viewOf(record, deps.usage) });
    }),
  );

  router.add(
    "PATCH",
    "/api/v1/admin/keys/:keyHash",
    deps.master(async (ctx) => {
      const keyHash = checkHash(ctx);
      if (!keyHash) return;
      const body = await readBody(ctx, UpdateKeyBodySchema);
      if (!body) return;
      const patch: KeyPatch = {
        ...(body.name !== undefined ? { name: body.name } : {}),
        ...(body.enabled !== undefined ? { enabled: body.enabled } : {}),
        ...(body.rate_limits !== undefined ? { rateLimits: limitsOf(body.rate_limits) } : {}),
      };
      const updated = await deps.store.update(keyHash, patch);
      deps.verifier.invalidate(keyHash);
      if (!updated) return notFound(ctx, keyHash);
      deps.securityLog("admin_key_updated", { keyHash, changes: Object.keys(patch), enabled: updated.enabled, remoteAddress: ctx.req.remoteAddress });
      sendJson(ctx.res, 200, viewOf(updated, deps.usage));
    }),
  );

  router.add(
    "DELETE",
    "/api/v1/admin/keys/:keyHash",
    deps.master(async (ctx) => {
      const keyHash = checkHash(ctx);
      if (!keyHash) return;
      const deleted = await deps.store.delete(keyHash);
      deps.verifier.invalidate(keyHash);
      if (!deleted) return notFound(ctx, keyHash);
      deps.securityLog("admin_key_deleted", { keyHash, remoteAddress: ctx.req.remoteAddress });
      sendJson(ctx.res, 200, { deleted: true, key_hash: keyHash });
    }),
  );

  router.add(
    "GET",
    "/api/v1/admin/stats",
    deps.master(async ({ res }) => {
      const keys = (await deps.store.list()).map((record) => viewOf(record, deps.usage));
      const lastUsed = keys.map((key) => key.usage.last_used_at).filter((at): at is string => at !== null);
      sendJson(res, 200, {
        keys: { total: keys.length, enabled: keys.filter((k) => k.enabled).length, disabled: keys.filter((k) => !k.enabled).length },
        usage: {
          requests: keys.reduce((sum, key) => sum + key.usage.requests, 0),
          last_used_at: lastUsed.length > 0 ? lastUsed.sort().at(-1)! : null,
          by_key: keys.map((key) => ({ key_hash: key.key_hash, name: key.name, requests: key.usage.requests, last_used_at: key.usage.last_used_at })),
        },
        sessions: deps.sessionsCount ? { active: deps.sessionsCount() } : null,
        key_store: deps.store.kind,
        rate_limit_enabled: deps.rateLimitEnabled,
        timestamp: new Date().toISOString(),
      });
    }),
  );
}

function viewOf(record: KeyRecord, usage: UsageRecorder): KeyView {
  return keyView(record, usage.pending(record.keyHash));
}

/** The body's windows: a number, null (no limit), or absent (undefined). */
function limitsOf(body: RateLimitsBody | undefined): Partial<Record<RateWindow, number | null>> {
  const limits: Partial<Record<RateWindow, number | null>> = {};
  for (const window of RATE_WINDOWS) {
    const value = body?.[`per_${window}`];
    if (value !== undefined) limits[window] = value;
  }
  return limits;
}

/** An empty body is an empty object (POST with no settings). */
async function readBody<S extends v.GenericSchema>(ctx: RouteContext, schema: S): Promise<v.InferOutput<S> | undefined> {
  const empty = ctx.req.headers["content-length"] === "0" || (!ctx.req.headers["content-length"] && !ctx.req.headers["transfer-encoding"]);
  if (empty) {
    const result = v.safeParse(schema, {});
    if (result.success) return result.output;
    const details = fieldIssues(result.issues);
    sendError(ctx.res, ctx.requestId, 422, "validation", "invalid request", details);
    return undefined;
  }
  const parsed = await readJsonBody(ctx.req, schema, BODY_LIMIT_BYTES);
  if (parsed.ok) return parsed.value;
  sendError(ctx.res, ctx.requestId, parsed.status, parsed.status === 413 ? "resource_exhausted" : "validation", parsed.message, parsed.details);
  return undefined;
}

function checkHash(ctx: RouteContext): string | undefined {
  const keyHash = ctx.params.keyHash ?? "";
  if (v.safeParse(KeyHashSchema, keyHash).success) return keyHash;
  const hint = keyHash.startsWith("sk-") ? ": pass the key_hash (SHA-256) listed by GET /api/v1/admin/keys, not the key" : "";
  sendError(ctx.res, ctx.requestId, 422, "validation", `Invalid key_hash${hint}`, [
    { field: "key_hash", message: "64 lowercase hex characters (the SHA-256 of the key)", code: "invalid_key_hash" },
  ]);
  return undefined;
}

function notFound(ctx: RouteContext, keyHash: string): void {
  sendError(ctx.res, ctx.requestId, 404, "resource_not_found", `No API key with hash ${keyHash}`);
}
