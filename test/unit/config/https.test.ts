import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { findCertPair, resolveHttps } from "../../../server/config/https.ts";
import type { RawValue } from "../../../server/config/schema.ts";

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "config-https-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function files(folder: string, names: string[]): void {
  mkdirSync(folder, { recursive: true });
  for (const name of names) writeFileSync(join(folder, name), "-----BEGIN CERTIFICATE-----\n");
}

/** resolveHttps over the parsed defaults plus `set` (the names in `set` count as explicitly set). */
function resolve(set: Record<string, RawValue> = {}) {
  const raw: Record<string, RawValue> = { SSL_CERTS_PATH: "./ssl", HTTPS_PORT: 443, API_PORT: 8000, SSL_REDIRECT: false, ...set };
  const errors: string[] = [];
  const warnings: string[] = [];
  const sources: Record<string, string> = {};
  const https = resolveHttps(raw, new Set(Object.keys(set)), sources, dir, errors, warnings);
  return { https, errors, warnings, raw, sources };
}

describe("findCertPair", () => {
  it("takes cert.pem/key.pem, the Docker guides' names", () => {
    files(dir, ["cert.pem", "key.pem"]);
    expect(findCertPair(dir)).toEqual({ certFile: join(dir, "cert.pem"), keyFile: join(dir, "key.pem") });
  });

  it("takes fullchain.pem/privkey.pem, the nsjail guide's (Let's Encrypt) names", () => {
    files(dir, ["fullchain.pem", "privkey.pem"]);
    expect(findCertPair(dir)).toEqual({ certFile: join(dir, "fullchain.pem"), keyFile: join(dir, "privkey.pem") });
  });

  it("never mixes the pairs: a certbot folder (cert.pem without key.pem) gives fullchain.pem with privkey.pem", () => {
    // cert.pem there is the leaf alone: serving it would leave clients without the intermediate.
    files(dir, ["cert.pem", "chain.pem", "fullchain.pem", "privkey.pem"]);
    expect(findCertPair(dir)).toEqual({ certFile: join(dir, "fullchain.pem"), keyFile: join(dir, "privkey.pem") });
  });

  it("names the half-present pair when none is complete, else the first pair", () => {
    files(dir, ["privkey.pem"]);
    expect(findCertPair(dir).keyFile).toBe(join(dir, "privkey.pem"));
    expect(findCertPair(join(dir, "empty"))).toEqual({ certFile: join(dir, "empty", "cert.pem"), keyFile: join(dir, "empty", "key.pem") });
  });
});

describe("resolveHttps", () => {
  it("ENABLE_HTTPS unset: on when both files exist, off when they do not", () => {
    expect(resolve().https.enabled).toBe(false);
    files(join(dir, "ssl"), ["cert.pem", "key.pem"]);
    const { https, raw, errors } = resolve();
    expect(errors).toEqual([]);
    expect(https).toEqual({ enabled: true, port: 443, certFile: join(dir, "ssl/cert.pem"), keyFile: join(dir, "ssl/key.pem"), redirect: false });
    expect(raw.ENABLE_HTTPS).toBe(true);
  });

  it("ENABLE_HTTPS unset with one file: off, with a warning naming both", () => {
    files(join(dir, "ssl"), ["key.pem"]);
    const { https, warnings } = resolve();
    expect(https.enabled).toBe(false);
    expect(warnings).toEqual([
      `HTTPS stays off: found ${join(dir, "ssl/key.pem")} but not ${join(dir, "ssl/cert.pem")} (set ENABLE_HTTPS to decide explicitly)`,
    ]);
  });

  it("ENABLE_HTTPS=true without the files is an error for each missing file", () => {
    files(join(dir, "ssl"), ["cert.pem"]);
    const { https, errors } = resolve({ ENABLE_HTTPS: true });
    expect(https.enabled).toBe(true);
    expect(errors).toEqual([`ENABLE_HTTPS is true but the key file ${join(dir, "ssl/key.pem")} does not exist (set SSL_KEY_FILE or SSL_CERTS_PATH)`]);
  });

  it("ENABLE_HTTPS=false stays off with the files there, and checks nothing", () => {
    files(join(dir, "ssl"), ["cert.pem", "key.pem"]);
    const { https, errors } = resolve({ ENABLE_HTTPS: false, SSL_CA_CERTS: "missing-ca.pem" });
    expect(https.enabled).toBe(false);
    expect(errors).toEqual([]);
  });

  it("SSL_CERT_FILE/SSL_KEY_FILE as a pair win over SSL_CERTS_PATH; relative paths resolve against cwd", () => {
    files(join(dir, "ssl"), ["cert.pem", "key.pem"]);
    files(join(dir, "own"), ["a.crt", "a.key", "ca.pem"]);
    const { https, raw } = resolve({ SSL_CERT_FILE: "own/a.crt", SSL_KEY_FILE: join(dir, "own/a.key"), SSL_CA_CERTS: "own/ca.pem" });
    expect(https).toMatchObject({ enabled: true, certFile: join(dir, "own/a.crt"), keyFile: join(dir, "own/a.key"), caFile: join(dir, "own/ca.pem") });
    expect(raw).toMatchObject({ SSL_CERT_FILE: join(dir, "own/a.crt"), SSL_CA_CERTS: join(dir, "own/ca.pem") });
  });

  it("a missing SSL_CA_CERTS is an error once HTTPS is on", () => {
    files(join(dir, "ssl"), ["cert.pem", "key.pem"]);
    expect(resolve({ SSL_CA_CERTS: "nope.pem" }).errors).toEqual([`SSL_CA_CERTS: the CA file ${join(dir, "nope.pem")} does not exist`]);
  });

  it("HTTPS_PORT 0 is kept (a free port)", () => {
    files(join(dir, "ssl"), ["cert.pem", "key.pem"]);
    expect(resolve({ HTTPS_PORT: 0 }).https.port).toBe(0);
  });

  it("warns about SSL_REDIRECT with nothing to redirect: HTTPS off, or HTTPS on API_PORT itself", () => {
    expect(resolve({ SSL_REDIRECT: true }).warnings).toEqual(["SSL_REDIRECT is true but HTTPS is off: there is nothing to redirect to"]);
    files(join(dir, "ssl"), ["cert.pem", "key.pem"]);
    expect(resolve({ SSL_REDIRECT: true, HTTPS_PORT: 443, API_PORT: 443 }).warnings).toEqual([
      "SSL_REDIRECT is true but HTTPS_PORT is API_PORT (443): that one port serves HTTPS only, there is no plain listener to redirect from",
    ]);
    expect(resolve({ SSL_REDIRECT: true, HTTPS_PORT: 0, API_PORT: 0 }).warnings).toEqual([]);
    expect(resolve({ SSL_REDIRECT: true }).warnings).toEqual([]);
  });

  it("warns, as the guides advise SSL_REDIRECT, when HTTPS is on and the plain port still serves the API", () => {
    files(join(dir, "ssl"), ["cert.pem", "key.pem"]);
    expect(resolve().warnings).toEqual([
      "HTTPS is on but API_PORT (8000) still serves the API over plain HTTP, API keys included: set SSL_REDIRECT=true to send clients to HTTPS",
    ]);
    expect(resolve({ HTTPS_PORT: 8000 }).warnings).toEqual([]);
    expect(resolve({ ENABLE_HTTPS: false }).warnings).toEqual([]);
  });
});
