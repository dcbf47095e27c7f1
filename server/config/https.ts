/**
 * Whether HTTPS is on and which files it uses, from ENABLE_HTTPS, SSL_CERT_FILE,
 * SSL_KEY_FILE, SSL_CERTS_PATH and SSL_CA_CERTS (see docs/CONFIGURATION.md).
 *
 * - ENABLE_HTTPS unset: on only when both files exist (the nsjail guide's "auto");
 *   true: the files must exist (an error otherwise); false: off.
 * - SSL_CERT_FILE and SSL_KEY_FILE are used as a pair; otherwise the files are looked
 *   for in SSL_CERTS_PATH as cert.pem/key.pem (Docker guides), then
 *   fullchain.pem/privkey.pem (nsjail guide, Let's Encrypt's names).
 *
 * Only existence is checked here; tls.ts reads and cross-checks the contents when the
 * listener starts.
 */
import { statSync } from "node:fs";
import { join, resolve } from "node:path";
import type { RawValue } from "./schema.ts";
import type { AppConfig } from "./types.ts";

/** The file pairs looked for in SSL_CERTS_PATH, in order. */
export const CERT_PAIRS: readonly (readonly [cert: string, key: string])[] = [
  ["cert.pem", "key.pem"],
  ["fullchain.pem", "privkey.pem"],
];

export type HttpsConfig = AppConfig["server"]["https"];

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * The first complete pair in the folder; else the pair one of whose files exists (so that
 * the "found X but not Y" warning names it); else the first pair.
 */
export function findCertPair(folder: string): { certFile: string; keyFile: string } {
  const pairs = CERT_PAIRS.map(([cert, key]) => ({ certFile: join(folder, cert), keyFile: join(folder, key) }));
  const complete = pairs.find((p) => isFile(p.certFile) && isFile(p.keyFile));
  const partial = pairs.find((p) => isFile(p.certFile) || isFile(p.keyFile));
  return complete ?? partial ?? pairs[0]!;
}

/**
 * Resolve the HTTPS settings. Reads the parsed values in `raw` and writes back the
 * resolved paths and ENABLE_HTTPS; `explicit` holds the names that were set, `sources`
 * is corrected for a lone SSL_CERT_FILE/SSL_KEY_FILE. Relative paths are resolved against `cwd`.
 */
export function resolveHttps(
  raw: Record<string, RawValue>,
  explicit: ReadonlySet<string>,
  sources: Record<string, string>,
  cwd: string,
  errors: string[],
  warnings: string[],
): HttpsConfig {
  const certsPath = resolve(cwd, raw.SSL_CERTS_PATH as string);
  // SSL_CERT_FILE and SSL_KEY_FILE count only as a pair: SSL_CERT_FILE alone is
  // also OpenSSL's variable for the system CA bundle, which base images often set.
  const givenCert = typeof raw.SSL_CERT_FILE === "string";
  const givenKey = typeof raw.SSL_KEY_FILE === "string";
  const pair = givenCert && givenKey;
  if (givenCert !== givenKey) {
    const [lone, missing] = givenCert ? ["SSL_CERT_FILE", "SSL_KEY_FILE"] : ["SSL_KEY_FILE", "SSL_CERT_FILE"];
    if (givenKey || raw.ENABLE_HTTPS === true) {
      warnings.push(`${lone} is set without ${missing}: ignored, both files come from SSL_CERTS_PATH (${certsPath}); set both to use your own paths`);
    }
    sources[lone] = "default";
  }
  const { certFile, keyFile } = pair
    ? { certFile: resolve(cwd, raw.SSL_CERT_FILE as string), keyFile: resolve(cwd, raw.SSL_KEY_FILE as string) }
    : findCertPair(certsPath);
  const caFile = typeof raw.SSL_CA_CERTS === "string" ? resolve(cwd, raw.SSL_CA_CERTS) : undefined;
  raw.SSL_CERT_FILE = certFile;
  raw.SSL_KEY_FILE = keyFile;
  if (caFile) raw.SSL_CA_CERTS = caFile;

  let enabled: boolean;
  if (explicit.has("ENABLE_HTTPS")) {
    enabled = raw.ENABLE_HTTPS as boolean;
    if (enabled) {
      if (!isFile(certFile)) errors.push(`ENABLE_HTTPS is true but the certificate file ${certFile} does not exist (set SSL_CERT_FILE or SSL_CERTS_PATH)`);
      if (!isFile(keyFile)) errors.push(`ENABLE_HTTPS is true but the key file ${keyFile} does not exist (set SSL_KEY_FILE or SSL_CERTS_PATH)`);
    }
  } else {
    const hasCert = isFile(certFile);
    const hasKey = isFile(keyFile);
    enabled = hasCert && hasKey;
    if (hasCert !== hasKey) {
      warnings.push(`HTTPS stays off: found ${hasCert ? certFile : keyFile} but not ${hasCert ? keyFile : certFile} (set ENABLE_HTTPS to decide explicitly)`);
    }
  }
  if (enabled && caFile && !isFile(caFile)) errors.push(`SSL_CA_CERTS: the CA file ${caFile} does not exist`);
  const port = raw.HTTPS_PORT as number;
  const redirect = raw.SSL_REDIRECT as boolean;
  if (!enabled && redirect) warnings.push("SSL_REDIRECT is true but HTTPS is off: there is nothing to redirect to");
  const samePort = port !== 0 && port === raw.API_PORT;
  if (enabled && redirect && samePort) {
    warnings.push(`SSL_REDIRECT is true but HTTPS_PORT is API_PORT (${port}): that one port serves HTTPS only, there is no plain listener to redirect from`);
  }
  // The guides' security note: "Enable SSL_REDIRECT to automatically redirect HTTP to HTTPS".
  if (enabled && !redirect && !samePort) {
    warnings.push(
      `HTTPS is on but API_PORT (${raw.API_PORT}) still serves the API over plain HTTP, API keys included: set SSL_REDIRECT=true to send clients to HTTPS`,
    );
  }
  raw.ENABLE_HTTPS = enabled;
  return { enabled, port, certFile, keyFile, ...(caFile ? { caFile } : {}), redirect };
}
