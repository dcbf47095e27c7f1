/**
 * One valibot schema over the raw environment strings, built from the catalog:
 * every canonical name and every alias is an optional string field that is
 * parsed (booleans, integers with ranges, enums, lists, log levels, JSON) with
 * one clear message per bad value: `API_PORT: "80a" is not an integer between 1 and 65535`.
 */
import { isAbsolute } from "node:path";
import * as v from "valibot";
import { maskValue } from "./mask.ts";
import type { LogLevel } from "./types.ts";
import { VARIABLES, type VariableSpec } from "./variables.ts";

/** A parsed value: lists are kept as normalized comma-joined strings, JSON as its compact text. */
export type RawValue = string | number | boolean | undefined;

export type ParseResult = { ok: true; value: string | number | boolean } | { ok: false; message: string };

const TRUE = new Set(["true", "1", "yes", "on"]);
const FALSE = new Set(["false", "0", "no", "off"]);

const LOG_LEVELS: Record<string, LogLevel> = {
  trace: "trace",
  debug: "debug",
  info: "info",
  warning: "warn",
  warn: "warn",
  error: "error",
  critical: "fatal",
  fatal: "fatal",
  silent: "silent",
};

/** Map a Python-style log level name (any case) to a pino level. */
export function toPinoLevel(value: string): LogLevel | undefined {
  return LOG_LEVELS[value.trim().toLowerCase()];
}

/** Parse a boolean the way the guides' users write them: true/false, 1/0, yes/no, on/off, any case. */
export function parseBoolean(value: string): boolean | undefined {
  const lower = value.trim().toLowerCase();
  if (TRUE.has(lower)) return true;
  if (FALSE.has(lower)) return false;
  return undefined;
}

/** Split a comma-separated list, trimming items and dropping empty ones. */
export function splitList(value: string | number | boolean | undefined): string[] {
  if (typeof value !== "string") return [];
  return value
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
}

/** Parse one raw string of `spec` (read under `name`, which may be an alias). */
export function parseValue(spec: VariableSpec, name: string, raw: string): ParseResult {
  const shown = JSON.stringify(spec.secret ? maskValue(name, raw) : raw);
  const fail = (expected: string): ParseResult => ({ ok: false, message: `${name}: ${shown} is not ${expected}` });
  const value = raw.trim();
  const kind = spec.kind;
  switch (kind.type) {
    case "string": {
      if (kind.pattern && !kind.pattern.test(value)) return fail(kind.expected ?? "valid");
      return { ok: true, value };
    }
    case "path": {
      if (kind.absolute && !isAbsolute(value)) return fail("an absolute path");
      return { ok: true, value };
    }
    case "int": {
      const range = kind.expected ?? `an integer between ${kind.min} and ${kind.max}`;
      if (!/^[+-]?\d+$/.test(value)) return fail(range);
      const n = Number(value);
      if (!Number.isSafeInteger(n) || n < kind.min || n > kind.max) return fail(range);
      return { ok: true, value: n };
    }
    case "number": {
      const range = `a number between ${kind.min} and ${kind.max}`;
      if (!/^[+-]?(\d+(\.\d*)?|\.\d+)$/.test(value)) return fail(range);
      const n = Number(value);
      if (!Number.isFinite(n) || n < kind.min || n > kind.max) return fail(range);
      return { ok: true, value: n };
    }
    case "bool": {
      const b = parseBoolean(value);
      if (b === undefined) return fail("a boolean (true/false, yes/no, on/off, 1/0)");
      return { ok: true, value: b };
    }
    case "enum": {
      const found = kind.values.find((candidate) => candidate.toLowerCase() === value.toLowerCase());
      if (found === undefined) return fail(`one of: ${kind.values.join(", ")}`);
      return { ok: true, value: found };
    }
    case "list": {
      const items = splitList(value);
      if (kind.itemPattern) {
        const pattern = kind.itemPattern;
        if (items.some((item) => !pattern.test(item))) return fail(kind.expected ?? "a valid comma-separated list");
      }
      return { ok: true, value: items.join(",") };
    }
    case "loglevel": {
      const level = toPinoLevel(value);
      if (level === undefined) return fail("a log level (DEBUG, INFO, WARNING, ERROR, CRITICAL)");
      return { ok: true, value: level };
    }
    case "json": {
      let parsed: unknown;
      try {
        parsed = JSON.parse(value);
      } catch {
        return fail(`a JSON ${kind.shape}`);
      }
      const isArray = Array.isArray(parsed);
      const isObject = typeof parsed === "object" && parsed !== null && !isArray;
      if ((kind.shape === "array" && !isArray) || (kind.shape === "object" && !isObject)) return fail(`a JSON ${kind.shape}`);
      return { ok: true, value: JSON.stringify(parsed) };
    }
  }
}

/** The valibot schema of one variable read under `name`. */
export function fieldSchema(spec: VariableSpec, name: string = spec.name) {
  return v.pipe(
    v.string(`${name}: expected a string`),
    v.rawTransform<string, string | number | boolean>(({ dataset, addIssue, NEVER }) => {
      const result = parseValue(spec, name, dataset.value);
      if (!result.ok) {
        addIssue({ message: result.message });
        return NEVER;
      }
      return result.value;
    }),
  );
}

type FieldSchema = ReturnType<typeof fieldSchema>;

/** The schema over every literal name of the catalog (canonical names and aliases), all optional. */
export function buildEnvSchema(specs: readonly VariableSpec[] = VARIABLES) {
  const entries: Record<string, v.OptionalSchema<FieldSchema, undefined>> = {};
  for (const spec of specs) {
    if (spec.pattern) continue;
    for (const name of [spec.name, ...spec.aliases]) entries[name] = v.optional(fieldSchema(spec, name));
  }
  return v.object(entries);
}

export const envSchema = buildEnvSchema();

/**
 * Validate the raw strings of the catalog's names (unknown keys are dropped).
 * Returns the parsed value of every valid name and one message per bad one.
 */
export function parseEnvStrings(input: Readonly<Record<string, string>>): { values: Record<string, string | number | boolean>; errors: string[] } {
  const result = v.safeParse(envSchema, input);
  if (result.success) {
    const values: Record<string, string | number | boolean> = {};
    for (const [key, value] of Object.entries(result.output)) if (value !== undefined) values[key] = value;
    return { values, errors: [] };
  }
  const bad = new Set<string>();
  const errors: string[] = [];
  for (const issue of result.issues) {
    const key = issue.path?.[0]?.key;
    if (typeof key === "string") bad.add(key);
    errors.push(issue.message);
  }
  const values: Record<string, string | number | boolean> = {};
  const output = result.output as Record<string, unknown>;
  for (const [key, value] of Object.entries(output)) {
    if (bad.has(key) || value === undefined) continue;
    if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") values[key] = value;
  }
  return { values, errors };
}
