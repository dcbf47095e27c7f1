import { describe, expect, it } from "vitest";
import { CreateKeyBodySchema, RateLimitsBodySchema, UpdateKeyBodySchema } from "../../../protocol/admin-bodies.ts";
import { newKey } from "../../../server/auth/key-store.ts";
import { keyView } from "../../../server/auth/key-view.ts";
import { buildOpenApi, DOCUMENTED_ROUTES, type JsonSchema, routeKey } from "../../../server/http/openapi.ts";
import { Router } from "../../../server/http/router.ts";
import { addAdminRoutes } from "../../../server/http/routes/admin.ts";

/** The admin part of the OpenAPI document follows what the code validates and answers. */

const doc = buildOpenApi({ version: "1", keyHeader: "x-api-key", implemented: new Set(DOCUMENTED_ROUTES.map((r) => routeKey(r.method, r.path))) });
const schema = (name: string): JsonSchema => doc.components.schemas[name]!;
const fields = (value: JsonSchema | undefined) => Object.keys(value?.properties ?? {}).sort();

describe("OpenAPI: admin API", () => {
  it("documents the request bodies field for field as protocol/admin-bodies.ts validates them", () => {
    expect(fields(schema("AdminKeyCreate"))).toEqual(Object.keys(CreateKeyBodySchema.entries).sort());
    expect(fields(schema("AdminKeyUpdate"))).toEqual(Object.keys(UpdateKeyBodySchema.entries).sort());
    expect(fields(schema("AdminKeyCreate").properties?.rate_limits)).toEqual(Object.keys(RateLimitsBodySchema.entries).sort());
  });

  it("documents the key as the admin API shows it, and the created key with the key itself", () => {
    const { key, record } = newKey({ name: "n", rateLimits: { minute: 5 } });
    const view = keyView(record);
    expect(fields(schema("AdminKey"))).toEqual(Object.keys(view).sort());
    expect(schema("AdminKey").required?.sort()).toEqual(Object.keys(view).sort());
    expect(fields(schema("AdminKey").properties?.rate_limits)).toEqual(Object.keys(view.rate_limits).sort());
    expect(fields(schema("AdminKeyCreated"))).toEqual(["key", ...Object.keys(view)].sort());
    expect(new RegExp(schema("AdminKeyCreated").properties!.key!.pattern!).test(key)).toBe(true);
  });

  it("says 201 for a created key, and the master-key answers on every admin operation", () => {
    expect(Object.keys(doc.paths["/api/v1/admin/keys"]!.post!.responses)).toEqual(expect.arrayContaining(["201", "401", "403", "422", "429"]));
    for (const [path, item] of Object.entries(doc.paths).filter(([p]) => p.startsWith("/api/v1/admin"))) {
      for (const operation of Object.values(item)) expect(Object.keys(operation.responses), path).toEqual(expect.arrayContaining(["401", "403", "429"]));
    }
  });

  it("lists exactly the routes addAdminRoutes registers", () => {
    const router = new Router();
    addAdminRoutes(router, {
      store: {} as never,
      verifier: {} as never,
      usage: {} as never,
      defaultRateLimits: {},
      rateLimitEnabled: true,
      master: (handler) => handler,
      securityLog: () => {},
    });
    const registered = router.routes().map((r) => routeKey(r.method, r.pattern));
    const documented = DOCUMENTED_ROUTES.filter((r) => r.path.startsWith("/api/v1/admin")).map((r) => routeKey(r.method, r.path));
    expect(registered.sort()).toEqual(documented.sort());
  });
});
