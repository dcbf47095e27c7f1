/**
 * GET /openapi.json, and GET /docs (and /redoc, the reference servers' path): the
 * OpenAPI document as a self-contained HTML page. Rendered here, with no CDN
 * script or stylesheet, because the machine may have no internet access.
 */
import {
  buildOpenApi,
  type HeaderObject,
  type JsonSchema,
  type MediaTypeObject,
  type OpenApiDocument,
  type OperationObject,
  type ParameterObject,
  type Reference,
  type ResponseObject,
  routeKey,
} from "../openapi.ts";
import type { RouteHandler, Router } from "../router.ts";

export interface DocsDeps {
  /** ENABLE_DOCS: when false the routes are not registered at all (404). */
  enabled: boolean;
  version: string;
  /** API_KEY_HEADER, as configured. */
  keyHeader: string;
  /** Paths the transport upgrades to WebSocket before routing (documented as implemented). */
  websocketPaths: readonly string[];
}

/** No auth on these: HTTP-API.md exempts the API docs. */
export function addDocsRoutes(router: Router, deps: DocsDeps): void {
  if (!deps.enabled) return;
  // Built per request from the router's routes, so routes added after this call count too.
  const document = () => {
    const implemented = new Set([...router.routes().map((r) => routeKey(r.method, r.pattern)), ...deps.websocketPaths.map((p) => routeKey("GET", p))]);
    return buildOpenApi({ version: deps.version, keyHeader: deps.keyHeader, implemented });
  };
  router.add("GET", "/openapi.json", ({ res }) => {
    res.status(200).header("content-type", "application/json").header("cache-control", "no-cache").end(JSON.stringify(document()));
  });
  const page: RouteHandler = ({ res }) => {
    res.status(200).header("content-type", "text/html; charset=utf-8").header("cache-control", "no-cache").end(renderDocsPage(document()));
  };
  router.add("GET", "/docs", page);
  router.add("GET", "/redoc", page);
}

// --- Rendering -----------------------------------------------------------------------

const METHODS = ["get", "post", "patch", "delete"] as const;
/** Deep enough for the nested objects of this API; deeper ones show as links. */
const MAX_DEPTH = 4;

const escapeHtml = (value: string): string => value.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

/** The little markdown the descriptions use: paragraphs, `code` and **bold**. */
function markdown(value: string | undefined): string {
  if (!value) return "";
  return value
    .split(/\n{2,}/)
    .map(
      (paragraph) =>
        `<p>${escapeHtml(paragraph)
          .replace(/`([^`]+)`/g, "<code>$1</code>")
          .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")}</p>`,
    )
    .join("");
}

const refName = (ref: string): string => ref.slice(ref.lastIndexOf("/") + 1);
const anchor = (kind: string, name: string): string => `${kind}-${name.replace(/[^A-Za-z0-9_-]/g, "_")}`;

class PageRenderer {
  constructor(private readonly doc: OpenApiDocument) {}

  render(): string {
    const { info } = this.doc;
    const sections = this.doc.tags.map((tag) => this.tagSection(tag.name, tag.description)).join("");
    return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(info.title)} ${escapeHtml(info.version)}</title>
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>${escapeHtml(info.title)} <span class="version">${escapeHtml(info.version)}</span> <span class="oas">OpenAPI ${escapeHtml(this.doc.openapi)}</span></h1>
<div class="intro">${markdown(info.description)}</div>
<div class="toolbar">
<input id="filter" type="search" placeholder="Filter operations (path, summary, field name)" autocomplete="off">
<button type="button" id="expand">Expand all</button><button type="button" id="collapse">Collapse all</button>
<a href="openapi.json">openapi.json</a>
</div>
<nav>${this.doc.tags.map((t) => `<a href="#${anchor("tag", t.name)}">${escapeHtml(t.name)}</a>`).join("")}<a href="#auth">Authentication</a><a href="#schemas">Schemas</a></nav>
</header>
<main>
${sections}
${this.authSection()}
${this.schemasSection()}
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
  }

  private tagSection(tag: string, description: string): string {
    const operations: string[] = [];
    for (const [path, item] of Object.entries(this.doc.paths)) {
      for (const method of METHODS) {
        const operation = item[method];
        if (operation?.tags.includes(tag)) operations.push(this.operation(method, path, operation));
      }
    }
    if (operations.length === 0) return "";
    return `<section class="tag" id="${anchor("tag", tag)}"><h2>${escapeHtml(tag)}</h2>${markdown(description)}${operations.join("")}</section>`;
  }

  private operation(method: string, path: string, op: OperationObject): string {
    const pending = op["x-implemented"] === false;
    const searchable = [method, path, op.summary, op.description ?? "", ...this.fieldNames(op)].join(" ").toLowerCase();
    const parts = [
      markdown(op.description),
      `<p class="auth-line"><strong>Auth:</strong> ${escapeHtml(this.authText(op))}</p>`,
      this.parameters(op.parameters ?? []),
      op.requestBody ? `<h4>Request body${op.requestBody.required ? "" : " (optional)"}</h4>${this.content(op.requestBody.content)}` : "",
      this.responses(op.responses),
      op["x-websocket"] ? this.websocket(op["x-websocket"]) : "",
    ];
    return `<details class="op${pending ? " pending" : ""}" id="${anchor("op", op.operationId)}" data-search="${escapeHtml(searchable)}">
<summary><span class="method ${method}">${method.toUpperCase()}</span> <code class="path">${escapeHtml(path)}</code> <span class="summary">${escapeHtml(op.summary)}</span>${pending ? ' <span class="badge">not implemented yet</span>' : ""}</summary>
<div class="op-body">${parts.join("")}</div>
</details>`;
  }

  private authText(op: OperationObject): string {
    const security = op.security ?? this.doc.security;
    if (security.length === 0) return "none";
    const label = (name: string) => {
      const scheme = this.doc.components.securitySchemes[name];
      if (scheme?.type === "apiKey") return `${scheme.name} header`;
      return scheme?.scheme === "basic" ? "Basic" : scheme?.scheme === "bearer" ? "Bearer" : name;
    };
    const schemes = security.filter((s) => Object.keys(s).length > 0).map((s) => Object.keys(s).map(label).join(" + "));
    const optional = security.some((s) => Object.keys(s).length === 0);
    const master = op.tags.includes("Admin") ? " (master key)" : "";
    return `${optional ? "optional: " : ""}${schemes.join(" or ")}${master}`;
  }

  private parameters(list: (ParameterObject | Reference)[]): string {
    if (list.length === 0) return "";
    const rows = list.map((entry) => {
      const p = this.resolve<ParameterObject>(entry);
      return `<tr><td><code>${escapeHtml(p.name)}</code>${p.required ? ' <span class="req">required</span>' : ""}</td><td>${escapeHtml(p.in)}</td><td>${this.typeLabel(p.schema)}</td><td>${markdown(p.description)}${this.constraints(p.schema)}</td></tr>`;
    });
    return `<h4>Parameters</h4><table><thead><tr><th>Name</th><th>In</th><th>Type</th><th>Description</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
  }

  /** depth 0 opens a named schema into its fields; 1 shows it as a link. */
  private content(content: Record<string, MediaTypeObject>, depth = 0): string {
    return Object.entries(content)
      .map(
        ([type, media]) =>
          `<div class="media"><span class="ctype">${escapeHtml(type)}</span>${media.schema ? this.schemaBlock(media.schema, depth) : ""}</div>`,
      )
      .join("");
  }

  private responses(responses: Record<string, ResponseObject | Reference>): string {
    const rows = Object.keys(responses)
      .sort()
      .map((status) => {
        const entry = responses[status]!;
        // Shared responses (errors) repeat on every operation: link their schema instead of spelling it out again.
        const shared = "$ref" in entry;
        const response = this.resolve<ResponseObject>(entry);
        const headers = Object.entries(response.headers ?? {})
          .map(([name, header]) => {
            const h = this.resolve<HeaderObject>(header);
            return `<li><code>${escapeHtml(name)}</code>: ${this.typeLabel(h.schema)} ${escapeHtml(h.description ?? "")}</li>`;
          })
          .join("");
        return `<div class="response"><span class="status s${status[0]}">${escapeHtml(status)}</span> ${escapeHtml(response.description)}${
          headers ? `<ul class="headers">${headers}</ul>` : ""
        }${response.content ? this.content(response.content, shared ? 1 : 0) : ""}</div>`;
      });
    return `<h4>Responses</h4>${rows.join("")}`;
  }

  private websocket(ws: NonNullable<OperationObject["x-websocket"]>): string {
    const frames = (title: string, list: { type: string; fields: string; meaning: string }[]) =>
      `<h4>${title}</h4><table><thead><tr><th>type</th><th>fields</th><th>meaning</th></tr></thead><tbody>${list
        .map((f) => `<tr><td><code>${escapeHtml(f.type)}</code></td><td>${escapeHtml(f.fields)}</td><td>${escapeHtml(f.meaning)}</td></tr>`)
        .join("")}</tbody></table>`;
    const codes = Object.entries(ws.closeCodes)
      .map(([code, meaning]) => `<li><code>${escapeHtml(code)}</code> ${escapeHtml(meaning)}</li>`)
      .join("");
    return `<p>Subprotocol <code>${escapeHtml(ws.subprotocol)}</code></p>${frames("Client → server", ws.clientFrames)}${frames("Server → client", ws.serverFrames)}<h4>Close codes</h4><ul>${codes}</ul>`;
  }

  private authSection(): string {
    const rows = Object.entries(this.doc.components.securitySchemes).map(
      ([name, s]) =>
        `<tr><td><code>${escapeHtml(name)}</code></td><td>${escapeHtml(s.type === "apiKey" ? `header ${s.name ?? ""}` : `HTTP ${s.scheme ?? ""}`)}</td><td>${escapeHtml(s.description ?? "")}</td></tr>`,
    );
    return `<section id="auth"><h2>Authentication</h2><table><thead><tr><th>Scheme</th><th>Where</th><th>Description</th></tr></thead><tbody>${rows.join("")}</tbody></table></section>`;
  }

  private schemasSection(): string {
    const items = Object.entries(this.doc.components.schemas).map(
      ([name, schema]) =>
        `<details class="schema" id="${anchor("schema", name)}"><summary><code>${escapeHtml(name)}</code></summary>${markdown(schema.description)}${this.schemaBlock(schema, 1)}</details>`,
    );
    return `<section id="schemas"><h2>Schemas</h2>${items.join("")}</section>`;
  }

  /** A schema as a table of its fields (objects), or a short type line; refs at the top level are opened. */
  private schemaBlock(schema: JsonSchema, depth: number): string {
    if (schema.$ref) {
      const name = refName(schema.$ref);
      const target = this.doc.components.schemas[name];
      if (depth > 0 || !target) return `<p>${this.typeLabel(schema)}</p>`;
      return `<p class="schema-name">${this.typeLabel(schema)}</p>${this.schemaBlock(target, depth + 1)}`;
    }
    if (schema.oneOf || schema.anyOf) {
      const options = (schema.oneOf ?? schema.anyOf)!;
      return `<div class="oneof"><em>${schema.oneOf ? "One of" : "Any of"}:</em>${options.map((o) => `<div class="option">${this.schemaBlock(o, depth)}</div>`).join("")}</div>`;
    }
    if (schema.type === "array" && schema.items && !schema.items.$ref && (schema.items.properties || schema.items.oneOf)) {
      return `<p>array of:</p>${this.schemaBlock(schema.items, depth)}`;
    }
    if (!schema.properties) return `<p>${this.typeLabel(schema)}${this.constraints(schema)}</p>`;
    const required = new Set(schema.required ?? []);
    const rows = Object.entries(schema.properties).map(([name, property]) => {
      return `<tr><td><code>${escapeHtml(name)}</code>${required.has(name) ? ' <span class="req">required</span>' : ""}</td><td>${this.typeLabel(property)}</td><td>${markdown(property.description)}${this.constraints(property)}${this.nestedFields(property, depth)}</td></tr>`;
    });
    const extra = schema.additionalProperties === true ? '<p class="note">Other fields may be present.</p>' : "";
    return `<table class="fields"><thead><tr><th>Field</th><th>Type</th><th>Description</th></tr></thead><tbody>${rows.join("")}</tbody></table>${extra}`;
  }

  /**
   * The fields of a property that is an object (or an array of them): inline ones always,
   * named schemas only near the top, folded, so a request body reads without jumping around.
   */
  private nestedFields(property: JsonSchema, depth: number): string {
    const target = property.type === "array" ? property.items : property;
    if (!target || depth >= MAX_DEPTH) return "";
    if (!target.$ref) return target.properties || target.oneOf ? this.schemaBlock(target, depth + 1) : "";
    const named = this.doc.components.schemas[refName(target.$ref)];
    if (depth > 1 || !named?.properties) return "";
    return `<details class="nested"><summary>fields of ${escapeHtml(refName(target.$ref))}</summary>${this.schemaBlock(named, depth + 1)}</details>`;
  }

  private typeLabel(schema: JsonSchema): string {
    if (schema.$ref) {
      const name = refName(schema.$ref);
      return `<a href="#${anchor("schema", name)}">${escapeHtml(name)}</a>`;
    }
    const options = schema.oneOf ?? schema.anyOf;
    if (options) return options.map((o) => this.typeLabel(o)).join(" | ");
    if (schema.const !== undefined) return `<code>${escapeHtml(JSON.stringify(schema.const))}</code>`;
    const types = schema.type === undefined ? [] : Array.isArray(schema.type) ? schema.type : [schema.type];
    if (types.length === 0) return "any";
    return types
      .map((type) => {
        if (type === "array") return `array of ${schema.items ? this.itemLabel(schema.items) : "any"}`;
        if (type === "string" && schema.contentMediaType) return "binary";
        return escapeHtml(schema.format ? `${type} (${schema.format})` : type);
      })
      .join(" | ");
  }

  private itemLabel(items: JsonSchema): string {
    const label = this.typeLabel(items);
    return items.oneOf || items.anyOf ? `(${label})` : label;
  }

  private constraints(schema: JsonSchema): string {
    const notes: string[] = [];
    if (schema.enum) notes.push(`one of ${schema.enum.map((v) => `<code>${escapeHtml(JSON.stringify(v))}</code>`).join(", ")}`);
    if (schema.default !== undefined) notes.push(`default <code>${escapeHtml(JSON.stringify(schema.default))}</code>`);
    if (schema.pattern) notes.push(`pattern <code>${escapeHtml(schema.pattern)}</code>`);
    if (schema.minimum !== undefined || schema.maximum !== undefined) notes.push(`range ${schema.minimum ?? "…"}..${schema.maximum ?? "…"}`);
    if (schema.minLength !== undefined) notes.push(`at least ${schema.minLength} character(s)`);
    return notes.length > 0 ? `<div class="constraints">${notes.join("; ")}</div>` : "";
  }

  /** Field names of the operation's bodies, so the filter finds "storage_session_id" too. */
  private fieldNames(op: OperationObject): string[] {
    const names = new Set<string>();
    const seen = new Set<string>();
    const visit = (schema: JsonSchema | undefined): void => {
      if (!schema) return;
      if (schema.$ref) {
        if (seen.has(schema.$ref)) return;
        seen.add(schema.$ref);
        visit(this.doc.components.schemas[refName(schema.$ref)]);
        return;
      }
      for (const [name, property] of Object.entries(schema.properties ?? {})) {
        names.add(name);
        visit(property);
      }
      visit(schema.items);
      for (const option of [...(schema.oneOf ?? []), ...(schema.anyOf ?? [])]) visit(option);
    };
    for (const media of Object.values(op.requestBody?.content ?? {})) visit(media.schema);
    for (const response of Object.values(op.responses))
      for (const media of Object.values(this.resolve<ResponseObject>(response).content ?? {})) visit(media.schema);
    return [...names];
  }

  private resolve<T>(value: T | Reference): T {
    if (typeof value !== "object" || value === null || !("$ref" in value) || typeof value.$ref !== "string") return value as T;
    const [, , group, name] = value.$ref.split("/");
    const components = this.doc.components as unknown as Record<string, Record<string, unknown>>;
    return components[group!]![name!] as T;
  }
}

export function renderDocsPage(doc: OpenApiDocument): string {
  return new PageRenderer(doc).render();
}

const STYLE = `
:root{--fg:#1d2330;--muted:#5b6475;--line:#d9dee7;--bg:#f6f8fb;--card:#fff;--get:#1f7a4d;--post:#1f5fb4;--patch:#8a5a00;--delete:#b42318}
*{box-sizing:border-box}body{margin:0;font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{background:var(--card);border-bottom:1px solid var(--line);padding:16px 24px}
h1{margin:0 0 4px;font-size:22px}.version,.oas{font-size:13px;font-weight:500;color:var(--muted);border:1px solid var(--line);border-radius:10px;padding:1px 8px;vertical-align:middle}
.intro{max-width:1000px;color:var(--muted);font-size:14px;max-height:7.5em;overflow:auto}.intro p{margin:4px 0}
.toolbar{display:flex;gap:8px;align-items:center;margin:8px 0}.toolbar input{flex:1;max-width:420px;padding:6px 10px;border:1px solid var(--line);border-radius:6px;font:inherit}
button{font:inherit;padding:5px 10px;border:1px solid var(--line);background:var(--card);border-radius:6px;cursor:pointer}
nav a{margin-right:14px;font-size:14px}a{color:var(--post)}
main{padding:8px 24px 48px;max-width:1200px}section{margin-top:24px}h2{font-size:19px;border-bottom:1px solid var(--line);padding-bottom:4px}h4{margin:14px 0 6px}
details.op,details.schema{background:var(--card);border:1px solid var(--line);border-radius:8px;margin:8px 0}
details>summary{cursor:pointer;padding:8px 12px;list-style:none;display:flex;gap:10px;align-items:center;flex-wrap:wrap}details>summary::-webkit-details-marker{display:none}
details[open]>summary{border-bottom:1px solid var(--line)}.op-body,details.schema>:not(summary){padding:0 14px}.op-body{padding-bottom:12px}
.method{font-weight:700;font-size:12px;color:#fff;border-radius:4px;padding:2px 0;width:64px;text-align:center;background:var(--get)}
.method.post{background:var(--post)}.method.patch{background:var(--patch)}.method.delete{background:var(--delete)}
.path{font-weight:600}.summary{color:var(--muted)}.pending{opacity:.65}.badge{font-size:12px;background:#fff4d6;color:#7a5200;border:1px solid #f0d48a;border-radius:10px;padding:0 8px}
table{border-collapse:collapse;width:100%;margin:4px 0 8px;font-size:14px}th,td{border:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}th{background:var(--bg);font-weight:600}
td table{margin-top:6px}.req{color:var(--delete);font-size:12px}.constraints{color:var(--muted);font-size:13px}.note{color:var(--muted);font-size:13px;margin:0 0 6px}
code{font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#eef1f6;border-radius:4px;padding:0 3px}
.media{margin:6px 0}.ctype{font-size:12px;color:var(--muted)}.response{margin:8px 0;padding-left:8px;border-left:3px solid var(--line)}
.status{font-weight:700;font-family:ui-monospace,monospace}.s2,.s1{color:var(--get)}.s4{color:var(--patch)}.s5{color:var(--delete)}
.headers{margin:4px 0;font-size:13px}details.nested{margin:4px 0}details.nested>summary{padding:2px 0;border:0;font-size:13px;color:var(--post)}.oneof .option{border-left:2px dashed var(--line);padding-left:8px;margin:4px 0}.schema-name{margin:4px 0}.hidden{display:none}
`;

const SCRIPT = `
(function(){
  var ops=[].slice.call(document.querySelectorAll('details.op'));
  var filter=document.getElementById('filter');
  filter.addEventListener('input',function(){
    var q=filter.value.trim().toLowerCase();
    ops.forEach(function(op){op.classList.toggle('hidden',q!==''&&op.getAttribute('data-search').indexOf(q)<0)});
    document.querySelectorAll('section.tag').forEach(function(s){
      s.classList.toggle('hidden',!s.querySelector('details.op:not(.hidden)'));
    });
  });
  function all(open){document.querySelectorAll('details').forEach(function(d){if(!d.classList.contains('hidden'))d.open=open})}
  document.getElementById('expand').addEventListener('click',function(){all(true)});
  document.getElementById('collapse').addEventListener('click',function(){all(false)});
  function reveal(){var t=location.hash&&document.getElementById(location.hash.slice(1));if(t&&t.tagName==='DETAILS'){t.open=true;t.scrollIntoView()}}
  window.addEventListener('hashchange',reveal);reveal();
})();
`;
