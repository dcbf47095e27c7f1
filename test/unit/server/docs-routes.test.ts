import pino from "pino";
import { describe, expect, it } from "vitest";
import { createHttpHandler } from "../../../server/http/http-handler.ts";
import { buildOpenApi, DOCUMENTED_ROUTES, type OpenApiDocument, routeKey } from "../../../server/http/openapi.ts";
import { Router } from "../../../server/http/router.ts";
import { addDocsRoutes, renderDocsPage } from "../../../server/http/routes/docs.ts";
import { fakeRequest, fakeResponse } from "./fake-http.ts";

const logger = pino({ level: "silent" });

async function serve(enabled: boolean, method: string, path: string, setup: (router: Router) => void = () => {}) {
  const router = new Router();
  addDocsRoutes(router, { enabled, version: "1.2.3", keyHeader: "x-api-key", websocketPaths: ["/ws"] });
  setup(router);
  const res = fakeResponse();
  await createHttpHandler({ router, logger, accessLogs: false })(fakeRequest(method, path), res);
  return res;
}

describe("docs routes with ENABLE_DOCS=true", () => {
  it("serves /openapi.json without any credentials", async () => {
    const res = await serve(true, "GET", "/openapi.json");
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toBe("application/json");
    const doc = res.json() as OpenApiDocument;
    expect(doc.openapi).toBe("3.1.0");
    expect(doc.info.version).toBe("1.2.3");
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/exec", "/exec/programmatic", "/files/{session_id}", "/ws"]));
  });

  it("marks only the routes the router lacks as not implemented, whenever they were added", async () => {
    const res = await serve(true, "GET", "/openapi.json", (router) => router.add("POST", "/exec", () => {}));
    const doc = res.json() as OpenApiDocument;
    expect(doc.paths["/exec"]?.post?.["x-implemented"]).toBeUndefined();
    expect(doc.paths["/openapi.json"]?.get?.["x-implemented"]).toBeUndefined();
    expect(doc.paths["/ws"]?.get?.["x-implemented"]).toBeUndefined();
    expect(doc.paths["/upload"]?.post?.["x-implemented"]).toBe(false);
  });

  it("serves /docs and /redoc as one self-contained HTML page", async () => {
    for (const path of ["/docs", "/redoc"]) {
      const res = await serve(true, "GET", path);
      expect(res.statusCode).toBe(200);
      expect(res.headers["content-type"]).toBe("text/html; charset=utf-8");
      const html = res.text();
      expect(html).toMatch(/^<!doctype html>/);
      // No CDN: nothing loaded from elsewhere.
      expect(html).not.toMatch(/<script[^>]+src=/i);
      expect(html).not.toMatch(/<link[^>]+stylesheet/i);
      expect(html).not.toMatch(/(src|href)="(https?:)?\/\//i);
      expect(html).toContain('href="openapi.json"');
    }
  });

  it("answers 404 for all of them when ENABLE_DOCS=false", async () => {
    for (const path of ["/openapi.json", "/docs", "/redoc"]) {
      const res = await serve(false, "GET", path);
      expect(res.statusCode).toBe(404);
      expect(res.json()).toMatchObject({ error_type: "resource_not_found" });
    }
  });
});

describe("renderDocsPage", () => {
  const implemented = new Set(DOCUMENTED_ROUTES.filter((r) => r.path !== "/metrics").map((r) => routeKey(r.method, r.path)));
  const html = renderDocsPage(buildOpenApi({ version: "1.2.3", keyHeader: "x-my-key", implemented }));

  it("groups operations by tag, with parameters, bodies and responses", () => {
    for (const tag of ["Execution", "Files", "Health", "Admin", "WebSocket", "Documentation"]) expect(html).toContain(`id="tag-${tag}"`);
    expect(html).toContain('<span class="method post">POST</span> <code class="path">/exec/programmatic</code>');
    expect(html).toContain('<code class="path">/files/{session_id}</code>');
    expect(html).toContain("<h4>Parameters</h4>");
    expect(html).toContain("<h4>Request body</h4>");
    expect(html).toContain("<h4>Responses</h4>");
    for (const field of ["storage_session_id", "continuation_token", "tool_results", "original-filename", "retry_after_seconds", "read_only"]) {
      expect(html).toContain(`<code>${field}</code>`);
    }
    expect(html).toContain('id="schema-ExecRequest"');
    expect(html).toContain('href="#schema-FileRef"');
  });

  it("shows the key header, the WebSocket frames and what is not implemented", () => {
    expect(html).toContain("header x-my-key");
    expect(html).toContain("<code>code-interpreter.v1</code>");
    expect(html).toContain("<code>session.open</code>");
    expect(html.match(/not implemented yet<\/span>/g)).toHaveLength(1);
    expect(html).toMatch(/class="op pending" id="op-metrics"/);
  });

  it("escapes the text it renders", () => {
    expect(html).toContain("&lt;session_id&gt;/&lt;fileId&gt;");
    expect(html).not.toContain("<session_id>");
  });
});
