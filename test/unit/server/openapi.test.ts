import { describe, expect, it } from "vitest";
import {
  buildOpenApi,
  DOCUMENTED_ROUTES,
  type JsonSchema,
  type OpenApiDocument,
  type OperationObject,
  type ParameterObject,
  type Reference,
  type ResponseObject,
  routeKey,
} from "../../../server/http/openapi.ts";
import { Router } from "../../../server/http/router.ts";
import { addDocsRoutes } from "../../../server/http/routes/docs.ts";
import { addHealthRoutes, type HealthDeps } from "../../../server/http/routes/health.ts";

const everything = new Set(DOCUMENTED_ROUTES.map((r) => routeKey(r.method, r.path)));
const doc = buildOpenApi({ version: "9.9.9", keyHeader: "x-api-key", implemented: everything });

function operation(method: string, path: string): OperationObject {
  const op = doc.paths[path]?.[method.toLowerCase() as "get"];
  if (!op) throw new Error(`${method} ${path} is not documented`);
  return op;
}

function resolve<T>(value: T | Reference): T {
  if (typeof value === "object" && value !== null && "$ref" in value) {
    const [, , group, name] = (value as Reference).$ref.split("/");
    const target = (doc.components as unknown as Record<string, Record<string, unknown>>)[group!]?.[name!];
    if (!target) throw new Error(`unresolved ${(value as Reference).$ref}`);
    return resolve(target as T);
  }
  return value as T;
}

const schemaOf = (schema: JsonSchema): JsonSchema => resolve<JsonSchema>(schema as JsonSchema | Reference);
const fields = (schema: JsonSchema | undefined): string[] => Object.keys(schemaOf(schema ?? {}).properties ?? {}).sort();
const property = (schema: JsonSchema, name: string): JsonSchema => schemaOf(schemaOf(schema).properties![name]!);
const itemsOf = (schema: JsonSchema): JsonSchema => schemaOf(schemaOf(schema).items!);

function requestSchema(method: string, path: string, contentType = "application/json"): JsonSchema {
  return schemaOf(operation(method, path).requestBody!.content[contentType]!.schema!);
}

function responseSchema(method: string, path: string, status = "200"): JsonSchema {
  const response = resolve<ResponseObject>(operation(method, path).responses[status]!);
  return schemaOf(Object.values(response.content!)[0]!.schema!);
}

const sorted = (...names: string[]) => [...names].sort();

describe("OpenAPI document: shape", () => {
  it("is OpenAPI 3.1 and survives a JSON round trip unchanged", () => {
    expect(doc.openapi).toBe("3.1.0");
    expect(doc.info.version).toBe("9.9.9");
    expect(JSON.parse(JSON.stringify(doc))).toEqual(doc);
  });

  it("resolves every $ref", () => {
    const refs: string[] = [];
    const walk = (value: unknown): void => {
      if (Array.isArray(value)) value.forEach(walk);
      else if (value && typeof value === "object") {
        for (const [key, inner] of Object.entries(value)) {
          if (key === "$ref" && typeof inner === "string") refs.push(inner);
          else walk(inner);
        }
      }
    };
    walk(doc);
    expect(refs.length).toBeGreaterThan(20);
    for (const ref of refs) expect(() => resolve({ $ref: ref }), ref).not.toThrow();
  });

  it("declares each path parameter of each template, has unique operation ids, known tags and security schemes", () => {
    const ids = new Set<string>();
    const tags = new Set(doc.tags.map((t) => t.name));
    const schemes = new Set(Object.keys(doc.components.securitySchemes));
    for (const [path, item] of Object.entries(doc.paths)) {
      const templated = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]).sort();
      for (const op of Object.values(item) as OperationObject[]) {
        const declared = (op.parameters ?? [])
          .map((p) => resolve<ParameterObject>(p))
          .filter((p) => p.in === "path")
          .map((p) => p.name)
          .sort();
        expect(declared, `${path} ${op.operationId}`).toEqual(templated);
        expect(ids.has(op.operationId)).toBe(false);
        ids.add(op.operationId);
        for (const tag of op.tags) expect(tags.has(tag)).toBe(true);
        expect(Object.keys(op.responses).length).toBeGreaterThan(0);
        for (const requirement of op.security ?? doc.security) for (const name of Object.keys(requirement)) expect(schemes.has(name)).toBe(true);
      }
    }
  });

  it("lists in DOCUMENTED_ROUTES exactly the operations of the document", () => {
    const inDocument = Object.entries(doc.paths).flatMap(([path, item]) => Object.keys(item).map((method) => routeKey(method, path)));
    expect(inDocument.sort()).toEqual([...everything].sort());
  });
});

describe("OpenAPI document: the HTTP-API.md contract", () => {
  it("documents every route", () => {
    const routes = [
      "POST /exec",
      "POST /exec/programmatic",
      "POST /exec/programmatic/cancel",
      "POST /upload",
      "POST /upload/batch",
      "GET /files/{session_id}",
      "GET /download/{session_id}/{fileId}",
      "DELETE /files/{session_id}/{fileId}",
      "GET /sessions/{session_id}/objects/{fileId}",
      "GET /health",
      "GET /ready",
      "GET /health/detailed",
      "GET /languages",
      "GET /metrics",
      "GET /api/v1/admin/keys",
      "POST /api/v1/admin/keys",
      "PATCH /api/v1/admin/keys/{key_hash}",
      "DELETE /api/v1/admin/keys/{key_hash}",
      "GET /api/v1/admin/stats",
      "GET /ws",
    ];
    for (const route of routes) {
      const [method, path] = route.split(" ") as [string, string];
      expect(() => operation(method, path), route).not.toThrow();
    }
  });

  it("has the error body and every error_type", () => {
    const error = schemaOf({ $ref: "#/components/schemas/ErrorBody" });
    expect(fields(error)).toEqual(sorted("error", "error_type", "details", "request_id", "timestamp"));
    expect(fields(itemsOf(property(error, "details")))).toEqual(sorted("field", "message", "code"));
    expect([...(property(error, "error_type").enum ?? [])].sort()).toEqual(
      sorted(
        "authentication",
        "authorization",
        "validation",
        "resource_not_found",
        "resource_conflict",
        "resource_exhausted",
        "execution_failed",
        "timeout",
        "rate_limited",
        "internal_server",
        "service_unavailable",
      ),
    );
    const limited = responseSchema("POST", "/exec", "429");
    expect(fields(limited)).toEqual(expect.arrayContaining(["error", "retry_after_seconds"]));
    const headers = Object.keys(resolve<ResponseObject>(operation("POST", "/exec").responses["429"]!).headers ?? {});
    expect(headers).toEqual(expect.arrayContaining(["Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"]));
  });

  it("POST /exec: request, input files, response and FileRef", () => {
    const request = requestSchema("POST", "/exec");
    expect(fields(request)).toEqual(sorted("code", "lang", "args", "session_id", "user_id", "entity_id", "files", "timeout"));
    expect(request.required).toEqual(["code", "lang"]);
    expect(property(request, "entity_id").pattern).toBe("^[A-Za-z0-9_-]{1,40}$");
    expect(property(request, "timeout")).toMatchObject({ minimum: 1000, maximum: 300000 });
    expect(fields(itemsOf(property(request, "files")))).toEqual(
      sorted("id", "name", "session_id", "storage_session_id", "resource_id", "kind", "version", "entity_id"),
    );
    const response = responseSchema("POST", "/exec");
    expect(fields(response)).toEqual(sorted("session_id", "stdout", "stderr", "files"));
    const fileRef = itemsOf(property(response, "files"));
    expect(fields(fileRef)).toEqual(
      sorted("id", "name", "path", "session_id", "storage_session_id", "inherited", "modified_from", "kind", "resource_id", "version"),
    );
    expect(fields(property(fileRef, "modified_from"))).toEqual(sorted("id", "storage_session_id"));
    expect(Object.keys(operation("POST", "/exec").responses)).toEqual(expect.arrayContaining(["200", "400", "401", "422", "429"]));
  });

  it("POST /exec/programmatic and its cancel", () => {
    const request = requestSchema("POST", "/exec/programmatic");
    expect(fields(request)).toEqual(
      sorted("code", "lang", "tools", "session_id", "user_id", "entity_id", "timeout", "files", "continuation_token", "tool_results"),
    );
    expect(property(request, "lang")).toMatchObject({ enum: ["py", "bash"], default: "py" });
    expect(fields(itemsOf(property(request, "tools")))).toEqual(sorted("name", "description", "parameters"));
    expect(fields(itemsOf(property(request, "tool_results")))).toEqual(sorted("call_id", "result", "is_error", "error_message"));
    const response = responseSchema("POST", "/exec/programmatic");
    expect(fields(response)).toEqual(sorted("status", "session_id", "continuation_token", "tool_calls", "stdout", "stderr", "files", "error"));
    expect(property(response, "status").enum).toEqual(["tool_call_required", "completed", "error"]);
    expect(fields(itemsOf(property(response, "tool_calls")))).toEqual(sorted("id", "name", "input"));
    const header = (operation("POST", "/exec/programmatic").parameters ?? []).map((p) => resolve<ParameterObject>(p).name);
    expect(header).toContain("X-LibreChat-Code-Request-ID");
    expect(fields(requestSchema("POST", "/exec/programmatic/cancel"))).toEqual(["request_id"]);
  });

  it("POST /upload and /upload/batch (multipart)", () => {
    const upload = requestSchema("POST", "/upload", "multipart/form-data");
    expect(fields(upload)).toEqual(sorted("file", "files", "entity_id", "kind", "id", "version", "filepath"));
    const uploaded = responseSchema("POST", "/upload");
    expect(fields(uploaded)).toEqual(sorted("message", "session_id", "storage_session_id", "files"));
    expect(fields(itemsOf(property(uploaded, "files")))).toEqual(sorted("fileId", "filename"));
    expect(Object.keys(operation("POST", "/upload").responses)).toEqual(expect.arrayContaining(["413", "422"]));

    const batch = requestSchema("POST", "/upload/batch", "multipart/form-data");
    expect(fields(batch)).toEqual(sorted("file", "entity_id", "kind", "read_only"));
    expect(property(batch, "kind").enum).toEqual(["skill", "agent", "user"]);
    expect(property(batch, "read_only").enum).toEqual(["1", "true", "yes"]);
    const batched = responseSchema("POST", "/upload/batch");
    expect(fields(batched)).toEqual(sorted("message", "session_id", "storage_session_id", "files", "succeeded", "failed"));
    expect(property(batched, "message").enum).toEqual(["success", "partial", "error"]);
    const outcomes = itemsOf(property(batched, "files")).oneOf!.map((o) => fields(o));
    expect(outcomes).toEqual([sorted("status", "fileId", "filename"), sorted("status", "filename", "error")]);
  });

  it("GET /files/{session_id}: query parameters and the three listings", () => {
    const op = operation("GET", "/files/{session_id}");
    const query = (op.parameters ?? []).map((p) => resolve<ParameterObject>(p)).filter((p) => p.in === "query");
    expect(query.map((p) => p.name).sort()).toEqual(sorted("detail", "kind", "id", "version"));
    expect(query.find((p) => p.name === "detail")!.schema.enum).toEqual(["summary", "simple", "full"]);
    const [full, simple, summary] = responseSchema("GET", "/files/{session_id}").oneOf!.map((o) => itemsOf(o));
    expect(fields(summary)).toEqual(sorted("name", "lastModified"));
    expect(fields(simple)).toEqual(sorted("id", "name", "path"));
    expect(fields(full)).toEqual(
      sorted("name", "id", "session_id", "storage_session_id", "content", "size", "lastModified", "etag", "metadata", "contentType"),
    );
    expect(fields(property(full!, "metadata"))).toEqual(sorted("content-type", "original-filename"));
  });

  it("download, delete and object info", () => {
    const download = resolve<ResponseObject>(operation("GET", "/download/{session_id}/{fileId}").responses["200"]!);
    expect(Object.keys(download.headers ?? {})).toContain("Content-Disposition");
    expect(Object.keys(operation("GET", "/download/{session_id}/{fileId}").responses)).toContain("404");
    expect(Object.keys(operation("DELETE", "/files/{session_id}/{fileId}").responses)).toEqual(expect.arrayContaining(["200", "404"]));
    expect(fields(responseSchema("GET", "/sessions/{session_id}/objects/{fileId}"))).toEqual(["lastModified"]);
  });

  it("health routes: bodies and which need no auth", () => {
    expect(fields(responseSchema("GET", "/health"))).toEqual(sorted("status", "version", "service"));
    expect(property(responseSchema("GET", "/ready"), "status").const).toBe("ready");
    expect(Object.keys(operation("GET", "/ready").responses)).toContain("503");
    expect(Object.keys(operation("GET", "/health/detailed").responses)).toContain("503");
    expect(operation("GET", "/health").security).toEqual([]);
    expect(operation("GET", "/ready").security).toEqual([]);
    expect(operation("GET", "/openapi.json").security).toEqual([]);
    expect(operation("GET", "/docs").security).toEqual([]);
    expect(operation("GET", "/health/detailed").security).toBeUndefined();
    expect(Object.keys(resolve<ResponseObject>(operation("GET", "/metrics").responses["200"]!).content ?? {})[0]).toMatch(/^text\/plain/);
  });

  it("describes the WebSocket endpoint with its subprotocol and frames", () => {
    const ws = operation("GET", "/ws");
    expect(ws.responses["101"]).toBeDefined();
    expect(ws["x-websocket"]?.subprotocol).toBe("code-interpreter.v1");
    expect(ws["x-websocket"]?.clientFrames.map((f) => f.type)).toEqual([
      "auth",
      "session.open",
      "exec",
      "stdin",
      "signal",
      "subscribe",
      "ping",
      "session.close",
    ]);
    expect(ws["x-websocket"]?.serverFrames.map((f) => f.type)).toEqual(expect.arrayContaining(["session.ready", "out", "exit", "error", "pong"]));
  });

  it("uses the configured key header and offers Basic and Bearer", () => {
    const custom = buildOpenApi({ version: "1", keyHeader: "x-custom-key", implemented: everything });
    expect(custom.components.securitySchemes).toMatchObject({
      ApiKeyHeader: { type: "apiKey", in: "header", name: "x-custom-key" },
      BasicAuth: { type: "http", scheme: "basic" },
      BearerAuth: { type: "http", scheme: "bearer" },
    });
    expect(custom.security).toEqual([{ ApiKeyHeader: [] }, { BasicAuth: [] }, { BearerAuth: [] }]);
  });
});

describe("OpenAPI document: what is implemented", () => {
  it("marks every operation the server does not answer with x-implemented: false", () => {
    const partial: OpenApiDocument = buildOpenApi({ version: "1", keyHeader: "x-api-key", implemented: new Set([routeKey("GET", "/files/:sessionId")]) });
    for (const [path, item] of Object.entries(partial.paths)) {
      for (const [method, op] of Object.entries(item) as [string, OperationObject][]) {
        if (method === "get" && path === "/files/{session_id}") expect(op["x-implemented"]).toBeUndefined();
        else expect(op["x-implemented"], `${method} ${path}`).toBe(false);
      }
    }
  });

  it("routeKey compares router patterns with OpenAPI paths", () => {
    expect(routeKey("get", "/files/:sessionId")).toBe("GET /files/{}");
    expect(routeKey("GET", "/files/{session_id}")).toBe("GET /files/{}");
    expect(routeKey("DELETE", "/files/:a/:b")).toBe(routeKey("delete", "/files/{session_id}/{fileId}"));
    expect(routeKey("GET", "/")).toBe("GET /");
  });

  it("documents every route the router has today", () => {
    const router = new Router();
    const unused = {} as never;
    const deps: HealthDeps = {
      version: "1",
      service: "test",
      transport: () => "none",
      provider: unused,
      sessions: unused,
      toolchains: () => [],
      authenticated: (handler) => handler,
      readiness: unused,
    };
    addHealthRoutes(router, deps);
    addDocsRoutes(router, { enabled: true, version: "1", keyHeader: "x-api-key", websocketPaths: ["/ws"] });
    const routed = router.routes().map((r) => routeKey(r.method, r.pattern));
    expect(routed.length).toBeGreaterThan(4);
    for (const key of routed) expect(everything.has(key), `${key} is routed but not documented`).toBe(true);
    const transportOnly = DOCUMENTED_ROUTES.filter((r) => r.servedBy === "transport").map((r) => routeKey(r.method, r.path));
    expect(transportOnly).toEqual(["GET /ws"]);
  });
});
