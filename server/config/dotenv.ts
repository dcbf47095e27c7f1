/**
 * A small `.env` parser: KEY=VALUE lines, an optional `export ` prefix, `#`
 * comments (whole lines, or after whitespace on unquoted values), single quotes
 * (literal) and double quotes (with \n \r \t \\ \" escapes), both of which may
 * span lines. No variable interpolation. A later duplicate wins.
 */

export interface DotEnvResult {
  values: Record<string, string>;
  /** Lines that could not be read, with their line number; they are skipped. */
  errors: string[];
}

const KEY = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const ESCAPES: Record<string, string> = { n: "\n", r: "\r", t: "\t", "\\": "\\", '"': '"', $: "$" };

export function parseDotEnv(text: string): DotEnvResult {
  const values: Record<string, string> = {};
  const errors: string[] = [];
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  let index = 0;
  while (index < lines.length) {
    const lineNumber = index + 1;
    let line = lines[index] ?? "";
    index += 1;
    const trimmed = line.trim();
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    line = trimmed.replace(/^export\s+/, "");
    const eq = line.indexOf("=");
    if (eq < 0) {
      errors.push(`line ${lineNumber}: expected KEY=VALUE`);
      continue;
    }
    const key = line.slice(0, eq).trim();
    if (!KEY.test(key)) {
      errors.push(`line ${lineNumber}: "${key}" is not a valid variable name`);
      continue;
    }
    let rest = line.slice(eq + 1).trimStart();
    const quote = rest[0];
    if (quote === '"' || quote === "'") {
      // Read up to the closing quote, across lines when needed.
      let body = rest.slice(1);
      let value = "";
      let closed = false;
      for (;;) {
        let i = 0;
        while (i < body.length) {
          const ch = body[i]!;
          if (quote === '"' && ch === "\\" && i + 1 < body.length) {
            const next = body[i + 1]!;
            value += ESCAPES[next] ?? `\\${next}`;
            i += 2;
            continue;
          }
          if (ch === quote) {
            closed = true;
            break;
          }
          value += ch;
          i += 1;
        }
        if (closed) {
          rest = body.slice(i + 1).trim();
          break;
        }
        if (index >= lines.length) break;
        value += "\n";
        body = lines[index] ?? "";
        index += 1;
      }
      if (!closed) {
        errors.push(`line ${lineNumber}: ${key} has an unterminated ${quote === '"' ? "double" : "single"} quote`);
        continue;
      }
      if (rest !== "" && !rest.startsWith("#")) {
        errors.push(`line ${lineNumber}: unexpected text after the closing quote of ${key}`);
        continue;
      }
      values[key] = value;
      continue;
    }
    // Unquoted: an inline comment starts at whitespace followed by #.
    const comment = rest.search(/\s#/);
    if (comment >= 0) rest = rest.slice(0, comment);
    values[key] = rest.trim();
  }
  return { values, errors };
}
