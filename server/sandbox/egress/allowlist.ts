/**
 * Which destinations the egress proxy lets a sandbox reach: host names (never
 * addresses), each on one port. The package registries of the languages we
 * run are always listed; SANDBOX_EGRESS_ALLOWLIST adds more.
 *
 * Entry forms: `pypi.org` (that name, port 443), `*.example.com` (names under
 * example.com, not example.com itself), `mirror.example.com:8443` (another
 * port). Names compare case-insensitively, without a trailing dot.
 */

/** The registries pip, npm, cargo, go, maven, gem, composer and R install from. */
export const PACKAGE_REGISTRIES: readonly string[] = [
  "pypi.org",
  "files.pythonhosted.org",
  "registry.npmjs.org",
  "registry.yarnpkg.com",
  "crates.io",
  "index.crates.io",
  "static.crates.io",
  "proxy.golang.org",
  "sum.golang.org",
  "repo.maven.apache.org",
  "repo1.maven.org",
  "rubygems.org",
  "index.rubygems.org",
  "repo.packagist.org",
  "packagist.org",
  "cloud.r-project.org",
  "cran.r-project.org",
];

export const DEFAULT_EGRESS_PORT = 443;

export interface AllowlistEntry {
  /** Lower-case name, or for a wildcard the suffix after `*.`. */
  name: string;
  wildcard: boolean;
  port: number;
}

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** A host name (not an address literal) as DNS allows it, normalized; undefined when it is not one. */
export function normalizeHostName(text: string): string | undefined {
  const name = text.toLowerCase().replace(/\.$/, "");
  if (name.length === 0 || name.length > 253) return undefined;
  const labels = name.split(".");
  if (!labels.every((label) => LABEL.test(label))) return undefined;
  // An all-numeric last label is an IPv4 literal in some form (1.2.3.4, 0x7f.1, 2130706433), never a name.
  if (/^(0x[0-9a-f]*|\d+)$/.test(labels[labels.length - 1]!)) return undefined;
  return name;
}

export function parseAllowlistEntry(text: string): AllowlistEntry {
  const match = /^(\*\.)?([^:]+)(?::(\d{1,5}))?$/.exec(text.trim());
  const name = match ? normalizeHostName(match[2]!) : undefined;
  const port = match?.[3] === undefined ? DEFAULT_EGRESS_PORT : Number(match[3]);
  if (!match || !name || port < 1 || port > 65535) {
    throw new Error(`egress allowlist entry "${text}" is not a host name, *.name or name:port`);
  }
  return { name, wildcard: match[1] !== undefined, port };
}

export class EgressAllowlist {
  readonly entries: readonly AllowlistEntry[];

  constructor(extra: readonly string[] = [], options: { registries?: boolean } = {}) {
    const texts = [...(options.registries === false ? [] : PACKAGE_REGISTRIES), ...extra];
    this.entries = texts.map(parseAllowlistEntry);
  }

  /** Whether `name` (already normalized) may be reached on `port`. */
  allows(name: string, port: number): boolean {
    return this.entries.some((entry) => entry.port === port && (entry.wildcard ? name.endsWith(`.${entry.name}`) : name === entry.name));
  }

  /** The entries as an operator wrote them, for health details. */
  describe(): string[] {
    return this.entries.map((entry) => `${entry.wildcard ? "*." : ""}${entry.name}${entry.port === DEFAULT_EGRESS_PORT ? "" : `:${entry.port}`}`);
  }
}
