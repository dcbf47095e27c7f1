import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { runConfigCommand } from "../../../server/config/cli.ts";
import { parseDotEnv } from "../../../server/config/dotenv.ts";
import { DOCS_BEGIN, DOCS_END, renderTemplate, renderVariableTables, spliceVariableTables } from "../../../server/config/render.ts";
import { VARIABLES } from "../../../server/config/variables.ts";

const ROOT = resolve(import.meta.dirname, "../../..");
const API_KEY = "user-key-0123456789-WXYZ";
const MASTER = "master-key-0123456789-MSTR";
const REDIS_PASSWORD = "redis-password-0123456789-RDSP";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "config-cli-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function run(args: string[], env: Record<string, string> = {}) {
  let stdout = "";
  let stderr = "";
  const io = { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) } };
  const code = runConfigCommand(args, io, { env, envFile: false, cwd: dir });
  return { code, stdout, stderr };
}

const SECRET_ENV = {
  API_KEY,
  API_KEYS: "second-key-0123456789-SCND",
  MASTER_API_KEY: MASTER,
  REDIS_PASSWORD,
  REDIS_URL: `redis://:${REDIS_PASSWORD}@redis:6379/0`,
  S3_SECRET_KEY: "s3-secret-0123456789-S3SK",
};

function expectNoSecret(text: string) {
  for (const secret of [API_KEY, MASTER, REDIS_PASSWORD, "second-key-0123456789", "s3-secret-0123456789"]) expect(text).not.toContain(secret);
}

describe("config summary", () => {
  it("groups values by section with their sources and masks secrets", () => {
    const { code, stdout } = run(["summary"], { ...SECRET_ENV, PORT: "9000" });
    expect(code).toBe(0);
    expect(stdout).toContain("API server\n");
    expect(stdout).toContain("Authentication\n");
    expect(stdout).toMatch(/API_PORT\s+9000\s+PORT/);
    expect(stdout).toMatch(/API_HOST\s+0\.0\.0\.0\s+default/);
    expect(stdout).toMatch(/API_KEY\s+\*\*\*\*WXYZ\s+env/);
    expect(stdout).toMatch(/MASTER_API_KEY\s+\*\*\*\*MSTR\s+env/);
    expect(stdout).toContain("redis://:****@redis:6379/0");
    expect(stdout).toMatch(/REDIS_HOST\s+localhost\s+default\n/);
    expect(stdout).toMatch(/SANDBOX_POOL_PY\s+2\s+default/);
    expectNoSecret(stdout);
  });

  it("lists members of families that are set", () => {
    const { stdout } = run(["summary"], { LANG_IMAGE_PY: "python:3.12-slim", LANG_PYTHON_IMAGE: "python:3.12-slim" });
    expect(stdout).toMatch(/LANG_IMAGE_PY\s+python:3\.12-slim\s+env\n/);
    expect(stdout).toMatch(/LANG_PYTHON_IMAGE\s+python:3\.12-slim\s+env\s+\[ignored\]/);
  });
});

describe("config export", () => {
  it("prints the effective configuration as JSON with secrets masked", () => {
    const { code, stdout } = run(["export"], SECRET_ENV);
    expect(code).toBe(0);
    const parsed = JSON.parse(stdout);
    expect(parsed.config.server.port).toBe(8000);
    expect(parsed.config.auth.apiKeys).toEqual(["****WXYZ", "****SCND"]);
    expect(parsed.config.auth.masterKey).toBe("****MSTR");
    expect(parsed.config.raw.API_KEY).toBe("****WXYZ");
    expect(parsed.config.raw.REDIS_PASSWORD).toBe("****RDSP");
    expect(parsed.config.raw.REDIS_URL).toBe("redis://:****@redis:6379/0");
    expect(parsed.config.raw.S3_SECRET_KEY).toBe("****S3SK");
    expect(parsed.sources.API_KEY).toBe("env");
    expect(parsed.errors).toEqual([]);
    expectNoSecret(stdout);
  });
});

describe("config validate", () => {
  it("exits 0 on a valid configuration and prints its warnings", () => {
    const { code, stdout } = run(["validate"], { NSJAIL_BINARY: "nsjail" });
    expect(code).toBe(0);
    expect(stdout).toContain("warning: NSJAIL_BINARY is set but ignored");
    expect(stdout).toContain('warning: API_KEY is the default "test-api-key"');
    expect(stdout).toMatch(/configuration is valid \(2 warning\(s\)\)\n$/);
  });

  it("exits 0 with no warnings at all", () => {
    const { code, stdout } = run(["validate"], { API_KEY, MASTER_API_KEY: MASTER });
    expect(code).toBe(0);
    expect(stdout).toBe("configuration is valid\n");
  });

  it("exits 1 and prints every error", () => {
    const { code, stdout } = run(["validate"], { API_PORT: "80a", LOG_LEVEL: "loud" });
    expect(code).toBe(1);
    expect(stdout).toContain('error: API_PORT: "80a" is not an integer between 1 and 65535 (or 0 for a free port)\n');
    expect(stdout).toContain('error: LOG_LEVEL: "loud" is not a log level (DEBUG, INFO, WARNING, ERROR, CRITICAL)\n');
    expect(stdout).toContain("configuration is invalid: 2 error(s)");
  });
});

describe("config security", () => {
  it("warns about the defaults", () => {
    const { code, stdout } = run(["security"]);
    expect(code).toBe(0);
    expect(stdout).toContain('WARN  Default API key replaced: API_KEY is still "test-api-key"');
    expect(stdout).toContain("WARN  HTTPS (ENABLE_HTTPS) or TLS at a proxy");
    expect(stdout).toContain("PASS  Network isolation (ENABLE_NETWORK_ISOLATION)");
    expect(stdout).toContain("PASS  Structured logging (LOG_FORMAT=json)");
    expect(stdout).toMatch(/\d+ of \d+ checks pass, \d+ to review\n$/);
  });

  it("passes every item of a hardened configuration", () => {
    mkdirSync(join(dir, "ssl"));
    writeFileSync(join(dir, "ssl/cert.pem"), "x");
    writeFileSync(join(dir, "ssl/key.pem"), "x");
    const { code, stdout } = run(["security"], { API_KEY, MASTER_API_KEY: MASTER, SSL_REDIRECT: "true", REDIS_HOST: "redis", REDIS_PASSWORD });
    expect(code).toBe(0);
    expect(stdout).not.toContain("WARN");
    expect(stdout).toContain("PASS  HTTP redirected to HTTPS (SSL_REDIRECT)");
    expect(stdout).toContain("PASS  Redis secured with authentication: password set");
    expectNoSecret(stdout);
  });

  it("reflects risky choices", () => {
    const { stdout } = run(["security"], {
      AUTH_ENABLED: "false",
      API_DEBUG: "true",
      ENABLE_NETWORK_ISOLATION: "false",
      LOG_FORMAT: "text",
      ENABLE_SECURITY_LOGS: "off",
      MAX_CPU_QUOTA: "0",
      REDIS_HOST: "redis",
      MINIO_ACCESS_KEY: "minioadmin",
      MINIO_SECRET_KEY: "minioadmin",
    });
    for (const title of [
      "Authentication required",
      "Debug mode off",
      "Network isolation",
      "Structured logging",
      "Security event logging",
      "Resource limits reviewed",
      "Redis secured",
      "S3 storage secured",
    ]) {
      expect(stdout).toContain(`WARN  ${title}`);
    }
  });

  it("exits 1 when the configuration has errors", () => {
    const { code, stderr } = run(["security"], { MAX_PIDS: "none" });
    expect(code).toBe(1);
    expect(stderr).toContain('error: MAX_PIDS: "none"');
  });
});

describe("config template", () => {
  it("contains every catalog variable, grouped, with aliases noted", () => {
    const { code, stdout } = run(["template"]);
    expect(code).toBe(0);
    for (const spec of VARIABLES) expect(stdout, spec.name).toContain(`# ${spec.name}=${spec.default ?? ""}\n`);
    expect(stdout).toContain("# API server: Where and how the API listens.");
    expect(stdout).toContain("Alias: PORT.");
    expect(stdout).toMatch(/Aliases: POD_POOL_PY,\s+(#\s+)?CONTAINER_POOL_PY_MIN\./);
    expect(stdout).toContain("[reserved]");
    expect(stdout).toContain("[ignored]");
  });

  it("gives the defaults once uncommented", () => {
    const uncommented = renderTemplate()
      .split("\n")
      .filter((line) => /^# [A-Z][A-Z0-9_]*=/.test(line))
      .map((line) => line.slice(2))
      .join("\n");
    const { values } = parseDotEnv(uncommented);
    const envFile = join(dir, "from-template.env");
    writeFileSync(
      envFile,
      `${Object.entries(values)
        .filter(([name]) => VARIABLES.find((s) => s.name === name)?.status !== "ignored")
        .map(([name, value]) => `${name}=${value}`)
        .join("\n")}\n`,
    );
    let stdout = "";
    const code = runConfigCommand(
      ["validate"],
      { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: () => 0 } },
      { env: {}, envFile, cwd: dir },
    );
    expect(stdout).not.toContain("error:");
    expect(code).toBe(0);
  });

  it("is the committed .env.example", () => {
    expect(readFileSync(join(ROOT, ".env.example"), "utf8")).toBe(renderTemplate());
  });
});

describe("config docs", () => {
  it("keeps docs/CONFIGURATION.md in step with the catalog", () => {
    const markdown = readFileSync(join(ROOT, "docs/CONFIGURATION.md"), "utf8");
    expect(markdown).toContain(DOCS_BEGIN);
    expect(markdown).toContain(DOCS_END);
    expect(spliceVariableTables(markdown)).toBe(markdown);
  });

  it("documents every variable", () => {
    const tables = renderVariableTables();
    for (const spec of VARIABLES) expect(tables).toContain(`| \`${spec.name}\` `);
    expect(tables).toContain("reserved (not yet active)");
  });

  it("rewrites the generated region of a file", () => {
    const file = join(dir, "doc.md");
    writeFileSync(file, `# Title\n\n${DOCS_BEGIN}\nstale\n${DOCS_END}\n\nafter\n`);
    const { code } = run(["docs", file]);
    expect(code).toBe(0);
    const text = readFileSync(file, "utf8");
    expect(text).not.toContain("stale");
    expect(text).toMatch(/\| `API_PORT` +\| `8000` +\| `PORT` +\| active +\|/);
    expect(text.endsWith(`${DOCS_END}\n\nafter\n`)).toBe(true);
  });
});

describe("usage", () => {
  it("exits 2 on an unknown or missing command", () => {
    expect(run(["frobnicate"]).code).toBe(2);
    expect(run([]).stderr).toContain("usage: code-interpreter config");
    expect(run(["help"]).code).toBe(0);
  });
});
