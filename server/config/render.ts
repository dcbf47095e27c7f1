/**
 * Renderings of the catalog that never depend on the current environment:
 * the `.env.example` template and the variable tables of docs/CONFIGURATION.md.
 */
import { SECTIONS, VARIABLES, type VariableSpec } from "./variables.ts";

const UNIT_WORDS: Record<string, string> = { s: "seconds", min: "minutes", h: "hours", days: "days", MB: "MiB", bytes: "bytes", µs: "microseconds" };

export const STATUS_TEXT: Record<VariableSpec["status"], string> = {
  active: "active",
  reserved: "reserved (not yet active)",
  ignored: "ignored",
};

/** The default as shown to people: the value, the derived rule, or "-". */
export function defaultText(spec: VariableSpec): string {
  if (spec.defaultText !== undefined) return spec.defaultText;
  if (spec.default === undefined) return "-";
  return spec.default === "" ? '""' : spec.default;
}

function wrap(text: string, width: number, prefix: string): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/)) {
    if (word === "") continue;
    if (line !== "" && prefix.length + line.length + 1 + word.length > width) {
      // A line must not start with NAME=..., which would read as a setting once uncommented.
      const space = line.lastIndexOf(" ");
      if (/^[A-Z][A-Z0-9_]*=/.test(word) && space > 0) {
        lines.push(prefix + line.slice(0, space));
        line = `${line.slice(space + 1)} ${word}`;
      } else {
        lines.push(prefix + line);
        line = word;
      }
    } else {
      line = line === "" ? word : `${line} ${word}`;
    }
  }
  if (line !== "") lines.push(prefix + line);
  return lines;
}

function sentence(text: string): string {
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

/** The comment text of one variable in the template. */
function templateComment(spec: VariableSpec): string {
  const parts = [sentence(spec.description)];
  if (spec.unit) parts.push(`Unit: ${UNIT_WORDS[spec.unit] ?? spec.unit}.`);
  if (spec.defaultText !== undefined) parts.push(`Default: ${spec.defaultText}.`);
  if (spec.aliases.length > 0) parts.push(`Alias${spec.aliases.length > 1 ? "es" : ""}: ${spec.aliases.join(", ")}.`);
  if (spec.example !== undefined) parts.push(`Example: ${spec.example}`);
  if (spec.status !== "active") parts.push(`[${spec.status}]`);
  if (spec.note) parts.push(sentence(spec.note));
  return parts.join(" ");
}

/** A complete `.env.example`: every variable, grouped by section, commented out at its default. */
export function renderTemplate(): string {
  const out: string[] = [
    "# code-interpreter configuration",
    "#",
    "# Generated from server/config/variables.ts by `npm run config -- template`",
    "# (node dist/server.mjs config template); docs/CONFIGURATION.md explains every variable.",
    "# Copy this file to .env and uncomment what you change: each line shows the default.",
    "# Variables of the real environment win over .env; an empty value counts as unset.",
    "# Booleans: true/false, yes/no, on/off, 1/0. Sizes in MB are MiB (1048576 bytes).",
    "# [reserved]: accepted and validated, used by features that are not built yet.",
    "# [ignored]: belongs to a backend we do not have; accepted, reported, no effect.",
  ];
  for (const section of SECTIONS) {
    const specs = VARIABLES.filter((spec) => spec.section === section.id);
    if (specs.length === 0) continue;
    const rule = `# ${"=".repeat(78)}`;
    out.push("", rule, ...wrap(`${section.title}: ${section.description}`, 80, "# "), rule);
    for (const spec of specs) {
      out.push("", ...wrap(templateComment(spec), 80, "# "));
      out.push(`# ${spec.name}=${spec.default ?? ""}`);
    }
  }
  return `${out.join("\n")}\n`;
}

function cell(text: string): string {
  return text.replace(/\|/g, "\\|").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function code(text: string): string {
  return text === "-" ? "-" : `\`${text}\``;
}

/** A markdown table with padded columns, as the repository's formatter (biome) writes them. */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((title, column) => Math.max(3, title.length, ...rows.map((row) => (row[column] ?? "").length)));
  const line = (cells: readonly string[]) => `| ${widths.map((width, column) => (cells[column] ?? "").padEnd(width)).join(" | ")} |`;
  return [line(header), line(widths.map((width) => "-".repeat(width))), ...rows.map(line)];
}

/** The variable tables of docs/CONFIGURATION.md, one per section, plus the list of disagreements. */
export function renderVariableTables(): string {
  const out: string[] = [];
  for (const section of SECTIONS) {
    const specs = VARIABLES.filter((spec) => spec.section === section.id);
    if (specs.length === 0) continue;
    out.push(`### ${section.title}`, "", section.description, "");
    const rows: string[][] = [];
    for (const spec of specs) {
      const shownDefault = spec.defaultText !== undefined ? spec.defaultText : code(defaultText(spec));
      const unit = spec.unit ? ` In ${UNIT_WORDS[spec.unit] ?? spec.unit}.` : "";
      const secret = spec.secret ? " Secret: masked in summaries and exports." : "";
      const note = spec.note ? ` ${sentence(spec.note)}` : "";
      const what = `${sentence(spec.description)}${unit}${secret}${note}`;
      const aliases = spec.aliases.map((alias) => `\`${alias}\``).join(", ") || "-";
      rows.push([`\`${spec.name}\``, cell(shownDefault), aliases, STATUS_TEXT[spec.status], cell(what)]);
    }
    out.push(...markdownTable(["Variable", "Default", "Aliases", "Status", "What it does here"], rows), "");
  }
  const disputed = VARIABLES.filter((spec) => spec.note && /^Guides/.test(spec.note));
  out.push("### Where the guides disagree", "", "The default we chose, and why:", "");
  for (const spec of disputed) out.push(`- \`${spec.name}\` = ${code(defaultText(spec))}: ${cell(sentence(spec.note ?? ""))}`);
  out.push("");
  return out.join("\n");
}

export const DOCS_BEGIN = "<!-- BEGIN GENERATED VARIABLES: npm run config -- docs docs/CONFIGURATION.md -->";
export const DOCS_END = "<!-- END GENERATED VARIABLES -->";

/** Replace the generated region of a markdown document with fresh tables. */
export function spliceVariableTables(markdown: string): string {
  const begin = markdown.indexOf(DOCS_BEGIN);
  const end = markdown.indexOf(DOCS_END);
  if (begin < 0 || end < begin) throw new Error(`the document has no ${DOCS_BEGIN} ... ${DOCS_END} region`);
  return `${markdown.slice(0, begin + DOCS_BEGIN.length)}\n\n${renderVariableTables()}\n${markdown.slice(end)}`;
}
