/**
 * LOG_FORMAT=text: pino still produces one JSON object a line; this stream turns
 * each into a compact human line before it reaches the destination:
 *
 *   2025-05-01T12:00:00.123Z INFO  listening host=0.0.0.0 port=8000 transport=uws
 *
 * Values with spaces, quotes or `=` are JSON-quoted, objects are compact JSON,
 * and an error's stack follows on indented lines.
 */

export interface LogDestination {
  write(chunk: string): unknown;
}

const OMIT = new Set(["time", "level", "msg", "pid", "hostname"]);

function formatValue(value: unknown): string {
  if (typeof value === "string") return value === "" || /[\s"=]/.test(value) ? JSON.stringify(value) : value;
  if (value === null || typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value);
}

function isErrorLike(value: unknown): value is { type?: string; message?: string; stack: string } {
  return typeof value === "object" && value !== null && typeof (value as { stack?: unknown }).stack === "string";
}

/** Format one pino JSON record as a text line (with a trailing newline). */
export function formatTextLine(record: Record<string, unknown>): string {
  const time = typeof record.time === "number" ? new Date(record.time).toISOString() : String(record.time ?? new Date().toISOString());
  const level = String(record.level ?? "info").toUpperCase();
  let line = `${time} ${level.padEnd(5)} ${record.msg === undefined ? "" : String(record.msg)}`;
  const stacks: string[] = [];
  for (const [key, value] of Object.entries(record)) {
    if (OMIT.has(key) || value === undefined) continue;
    if (isErrorLike(value)) {
      line += ` ${key}=${formatValue(`${value.type ?? "Error"}: ${value.message ?? ""}`)}`;
      stacks.push(...value.stack.split("\n").slice(1));
      continue;
    }
    line += ` ${key}=${formatValue(value)}`;
  }
  line = line.replace(/ +$/, "");
  for (const frame of stacks) line += `\n    ${frame.trim()}`;
  return `${line}\n`;
}

/** A destination that reformats pino's JSON lines as text lines for `inner`. */
export class TextFormatStream implements LogDestination {
  readonly #inner: LogDestination;

  constructor(inner: LogDestination) {
    this.#inner = inner;
  }

  write(chunk: string): boolean {
    let out = "";
    for (const line of chunk.split("\n")) {
      if (line === "") continue;
      try {
        out += formatTextLine(JSON.parse(line) as Record<string, unknown>);
      } catch {
        out += `${line}\n`;
      }
    }
    if (out !== "") this.#inner.write(out);
    return true;
  }

  flushSync(): void {
    (this.#inner as { flushSync?: () => void }).flushSync?.();
  }
}
