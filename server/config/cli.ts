/**
 * `code-interpreter config <command>`: summary | validate | security | template | export | docs.
 * Returns the exit code; writes only to the given streams.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { type LoadConfigOptions, type LoadedConfig, loadConfig } from "./load.ts";
import { maskSecret, maskValue } from "./mask.ts";
import { renderTemplate, renderVariableTables, spliceVariableTables } from "./render.ts";
import { renderSecurityReport, securityChecks } from "./security.ts";
import type { AppConfig } from "./types.ts";
import { SECTIONS, VARIABLES } from "./variables.ts";

export interface ConfigCommandIO {
  stdout: { write(chunk: string): unknown };
  stderr: { write(chunk: string): unknown };
}

export const CONFIG_USAGE = `usage: code-interpreter config <command>
  summary     the effective configuration, grouped, secrets masked
  validate    every error and warning; exit 1 when there are errors
  security    the production checklist, PASS or WARN per item
  template    a complete .env.example (every variable at its default)
  export      the effective configuration as JSON, secrets masked
  docs [FILE] the variable tables of docs/CONFIGURATION.md (with FILE: rewrite its generated region)`;

export function runConfigCommand(args: string[], io: ConfigCommandIO, options: LoadConfigOptions = {}): number {
  const [command, ...rest] = args;
  switch (command) {
    case "summary": {
      const loaded = loadConfig(options);
      io.stdout.write(renderSummary(loaded));
      return loaded.errors.length > 0 ? 1 : 0;
    }
    case "validate": {
      const loaded = loadConfig(options);
      io.stdout.write(renderValidation(loaded));
      return loaded.errors.length > 0 ? 1 : 0;
    }
    case "security": {
      const loaded = loadConfig(options);
      for (const error of loaded.errors) io.stderr.write(`error: ${error}\n`);
      io.stdout.write(renderSecurityReport(securityChecks(loaded)));
      return loaded.errors.length > 0 ? 1 : 0;
    }
    case "template":
      io.stdout.write(renderTemplate());
      return 0;
    case "export": {
      const loaded = loadConfig(options);
      io.stdout.write(`${JSON.stringify(exportConfig(loaded), null, 2)}\n`);
      return loaded.errors.length > 0 ? 1 : 0;
    }
    case "docs": {
      const file = rest[0];
      if (!file) {
        io.stdout.write(renderVariableTables());
        return 0;
      }
      try {
        writeFileSync(file, spliceVariableTables(readFileSync(file, "utf8")));
      } catch (error) {
        io.stderr.write(`config docs: ${error instanceof Error ? error.message : String(error)}\n`);
        return 1;
      }
      io.stdout.write(`updated ${file}\n`);
      return 0;
    }
    case "help":
    case "--help":
    case "-h":
      io.stdout.write(`${CONFIG_USAGE}\n`);
      return 0;
    default:
      io.stderr.write(`${command ? `unknown config command: ${command}\n` : ""}${CONFIG_USAGE}\n`);
      return 2;
  }
}

/** One value as shown to people: secrets masked, unset as "-". */
export function displayValue(name: string, value: unknown, secret: boolean): string {
  if (value === undefined || value === "") return "-";
  const text = String(value);
  return secret ? maskValue(name, text) : text;
}

export function renderSummary({ config, errors, warnings, sources }: LoadedConfig): string {
  const out: string[] = [
    "code-interpreter configuration",
    "(source: env = environment, .env = the .env file, default = built-in, or the older name it was read under)",
    "",
    `listening  ${config.server.host}:${config.server.port} (${config.server.transport})${config.server.https.enabled ? `, HTTPS on ${config.server.https.port}` : ", HTTPS off"}`,
    `auth       ${config.auth.enabled ? `${config.auth.apiKeys.length} API key(s) in header ${config.auth.header} or HTTP Basic` : "OFF"}${config.auth.masterKey ? ", master key set" : ""}`,
    `sandboxes  ${config.sandbox.backend}, ${config.sandbox.baseDir}, uid ${config.sandbox.uid}`,
    `logging    ${config.logging.level}, ${config.logging.format}, ${config.logging.file ?? "stdout"}`,
  ];
  const width = Math.max(...VARIABLES.map((spec) => spec.name.length)) + 2;
  for (const section of SECTIONS) {
    const specs = VARIABLES.filter((spec) => spec.section === section.id);
    if (specs.length === 0) continue;
    out.push("", section.title);
    for (const spec of specs) {
      const names = spec.pattern ? Object.keys(sources).filter((name) => spec.pattern?.test(name)) : [spec.name];
      for (const name of names) {
        const value = displayValue(name, config.raw[name], spec.secret);
        const tag = spec.status === "active" ? "" : `  [${spec.status}]`;
        out.push(`  ${name.padEnd(width)}${value.padEnd(28)} ${sources[name] ?? "default"}${tag}`);
      }
    }
  }
  out.push("", `${errors.length} error(s), ${warnings.length} warning(s)${errors.length + warnings.length > 0 ? ": run `config validate` for details" : ""}`);
  return `${out.join("\n")}\n`;
}

export function renderValidation({ errors, warnings }: LoadedConfig): string {
  const out: string[] = [];
  for (const error of errors) out.push(`error: ${error}`);
  for (const warning of warnings) out.push(`warning: ${warning}`);
  if (errors.length > 0) out.push(`configuration is invalid: ${errors.length} error(s), ${warnings.length} warning(s)`);
  else out.push(`configuration is valid${warnings.length > 0 ? ` (${warnings.length} warning(s))` : ""}`);
  return `${out.join("\n")}\n`;
}

/** The effective configuration with every secret masked. */
export function maskConfig(config: AppConfig): AppConfig {
  const raw: Record<string, string | number | boolean | undefined> = {};
  for (const [name, value] of Object.entries(config.raw)) {
    const spec = VARIABLES.find((candidate) => candidate.name === name || candidate.pattern?.test(name));
    raw[name] = spec?.secret && typeof value === "string" ? maskValue(name, value) : value;
  }
  const auth: AppConfig["auth"] = { ...config.auth, apiKeys: config.auth.apiKeys.map(maskSecret) };
  if (config.auth.masterKey !== undefined) auth.masterKey = maskSecret(config.auth.masterKey);
  const redis: AppConfig["redis"] = { ...config.redis, sentinel: { ...config.redis.sentinel } };
  if (redis.password !== undefined) redis.password = maskSecret(redis.password);
  if (redis.sentinel.password !== undefined) redis.sentinel.password = maskSecret(redis.sentinel.password);
  const s3: AppConfig["storage"]["s3"] = { ...config.storage.s3 };
  if (s3.accessKey !== undefined) s3.accessKey = maskSecret(s3.accessKey);
  if (s3.secretKey !== undefined) s3.secretKey = maskSecret(s3.secretKey);
  return { ...config, auth, redis, storage: { ...config.storage, s3 }, raw };
}

export function exportConfig(loaded: LoadedConfig): { config: AppConfig; sources: Record<string, string>; errors: string[]; warnings: string[] } {
  return { config: maskConfig(loaded.config), sources: loaded.sources, errors: loaded.errors, warnings: loaded.warnings };
}
