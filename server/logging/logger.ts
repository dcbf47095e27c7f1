/**
 * The server's pino logger, built from `config.logging`: level, json or text
 * format, stdout or a size-rotated LOG_FILE, and redaction of secrets wherever
 * they appear in a log record (top level or nested, e.g. `req.headers.authorization`).
 */
import { type Logger, type LoggerOptions, pino } from "pino";
import type { AppConfig } from "../config/types.ts";
import { RotatingFileStream } from "./rotating-file.ts";
import { type LogDestination, TextFormatStream } from "./text-format.ts";

export { RotatingFileStream } from "./rotating-file.ts";
export type { LogDestination } from "./text-format.ts";
export { formatTextLine, TextFormatStream } from "./text-format.ts";

export const REDACTED = "[redacted]";

/** Field names whose values never reach a log line (compared case-insensitively). */
export const SECRET_KEYS: readonly string[] = [
  "apiKey",
  "api_key",
  "apiKeys",
  "masterKey",
  "authorization",
  "proxy-authorization",
  "x-api-key",
  "password",
  "passwd",
  "token",
  "accessToken",
  "refreshToken",
  "secret",
  "secretKey",
  "clientSecret",
  "cookie",
  "set-cookie",
];

/** How deep into a record secret fields are looked for. */
const REDACT_DEPTH = 8;

/**
 * A function that returns `value` with the value of every field named like one
 * of `keys` (case-insensitive, at any depth up to REDACT_DEPTH) replaced by
 * REDACTED. Objects are copied only where something is replaced; class
 * instances (errors, buffers...) are left as they are. This costs a fraction of
 * pino's own wildcard `redact` paths, which are slow for nested wildcards.
 */
export function createRedactor(keys: readonly string[] = SECRET_KEYS): <T>(value: T) => T {
  const secret = new Set(keys.map((key) => key.toLowerCase()));
  const walk = (value: unknown, depth: number): unknown => {
    if (value === null || typeof value !== "object" || depth > REDACT_DEPTH) return value;
    if (Array.isArray(value)) {
      let copy: unknown[] | undefined;
      for (let i = 0; i < value.length; i += 1) {
        const item = value[i];
        const next = walk(item, depth + 1);
        if (next !== item) {
          copy ??= value.slice();
          copy[i] = next;
        }
      }
      return copy ?? value;
    }
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) return value;
    const record = value as Record<string, unknown>;
    let copy: Record<string, unknown> | undefined;
    for (const key of Object.keys(record)) {
      const field = record[key];
      if (secret.has(key.toLowerCase())) {
        if (field !== undefined && field !== REDACTED) {
          copy ??= { ...record };
          copy[key] = REDACTED;
        }
        continue;
      }
      if (field !== null && typeof field === "object") {
        const next = walk(field, depth + 1);
        if (next !== field) {
          copy ??= { ...record };
          copy[key] = next;
        }
      }
    }
    return copy ?? value;
  };
  return <T>(value: T): T => walk(value, 0) as T;
}

const SECURITY_LOGS = Symbol.for("code-interpreter.logging.securityLogs");

export interface CreateLoggerOptions {
  /** Write here instead of stdout or LOG_FILE (tests). Text formatting still applies. */
  destination?: LogDestination;
  /** Extra field names to redact (for example a custom API_KEY_HEADER). */
  redactKeys?: readonly string[];
}

/** Build the logger of `config.logging`. */
export function createLogger(logging: AppConfig["logging"], options: CreateLoggerOptions = {}): Logger {
  let destination: LogDestination =
    options.destination ??
    (logging.file ? new RotatingFileStream(logging.file, logging.maxSizeBytes, logging.backupCount) : pino.destination({ dest: 1, sync: true }));
  if (logging.format === "text") destination = new TextFormatStream(destination);
  const redact = createRedactor([...SECRET_KEYS, ...(options.redactKeys ?? [])]);
  const pinoOptions: LoggerOptions = {
    level: logging.level,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: {
      level: (label) => ({ level: label }),
      bindings: (bindings) => redact(bindings),
      log: (record) => redact(record),
    },
  };
  const logger = pino(pinoOptions, destination as pino.DestinationStream);
  // pino applies formatters.bindings to the root only: redact the bindings of children here
  // (children inherit this method through their prototype chain).
  const child = logger.child as unknown as (this: Logger, bindings: pino.Bindings, options?: pino.ChildLoggerOptions) => Logger;
  logger.child = function (this: Logger, bindings: pino.Bindings, childOptions?: pino.ChildLoggerOptions) {
    return child.call(this, redact(bindings), childOptions);
  } as unknown as Logger["child"];
  // Children are created from their parent's prototype chain, so they see this flag too.
  (logger as unknown as Record<symbol, boolean>)[SECURITY_LOGS] = logging.securityLogs;
  return logger;
}

/**
 * Log a security event (failed authentication, admin action...) as
 * `{security: true, event, ...fields}`. Does nothing when the logger was
 * created with ENABLE_SECURITY_LOGS=false.
 */
export function securityLog(logger: Logger, event: string, fields: Record<string, unknown> = {}, level: "info" | "warn" | "error" = "warn"): void {
  if ((logger as unknown as Record<symbol, boolean | undefined>)[SECURITY_LOGS] === false) return;
  logger[level]({ ...fields, security: true, event }, `security event: ${event}`);
}
