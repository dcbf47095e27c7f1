/**
 * The keys that verify LibreChat-minted tokens, from the variables codeapi
 * reads (CODEAPI_JWT_JWKS_JSON, CODEAPI_JWT_PUBLIC_KEY + CODEAPI_JWT_KID,
 * CODEAPI_JWT_PUBLIC_KEYS_DIR, CODEAPI_JWT_HS256_SECRET), by kid. Each key
 * fixes its algorithm by its type (Ed25519: EdDSA, RSA: RS256, a secret:
 * HS256), so a token can never choose how its signature is checked: no RS/HS
 * confusion, no `none`.
 */
import { createPublicKey, createSecretKey, type JsonWebKey, type KeyObject } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, parse } from "node:path";

export type JwtAlgorithm = "EdDSA" | "RS256" | "HS256";

export interface VerificationKey {
  kid: string;
  key: KeyObject;
  alg: JwtAlgorithm;
}

export interface JwtKeySources {
  jwksJson?: string;
  publicKey?: string;
  kid?: string;
  publicKeysDir?: string;
  hs256Secret?: string;
  hs256Kid: string;
}

/** Key material that cannot be used: the message names the variable and what is wrong. */
export class JwtKeyError extends Error {
  override name = "JwtKeyError";
}

/** The algorithm a key's type allows, or why it allows none. */
function algorithmOf(key: KeyObject): JwtAlgorithm {
  if (key.type === "secret") return "HS256";
  if (key.asymmetricKeyType === "ed25519") return "EdDSA";
  if (key.asymmetricKeyType === "rsa") return "RS256";
  throw new JwtKeyError(`a ${key.asymmetricKeyType} key: only Ed25519 (EdDSA) and RSA (RS256) keys verify tokens`);
}

/** A PEM (with literal \n as line breaks), a JWK, or base64 DER (SPKI). */
function publicKeyFrom(text: string): KeyObject {
  const value = text.replace(/\\n/g, "\n").trim();
  if (value.startsWith("{")) return createPublicKey({ key: JSON.parse(value) as JsonWebKey, format: "jwk" });
  if (value.startsWith("-----BEGIN")) return createPublicKey(value);
  return createPublicKey({ key: Buffer.from(value, "base64"), format: "der", type: "spki" });
}

function add(keys: Map<string, VerificationKey>, kid: string, key: KeyObject, declared: string | undefined, where: string): void {
  let alg: JwtAlgorithm;
  try {
    alg = algorithmOf(key);
  } catch (error) {
    throw new JwtKeyError(`${where}: kid ${kid} is ${(error as Error).message}`);
  }
  if (declared !== undefined && declared !== alg) throw new JwtKeyError(`${where}: kid ${kid} says alg ${declared} but is a key for ${alg}`);
  if (keys.has(kid)) throw new JwtKeyError(`${where}: kid ${kid} is configured twice`);
  keys.set(kid, { kid, key, alg });
}

function loadJwks(keys: Map<string, VerificationKey>, text: string): void {
  const where = "CODEAPI_JWT_JWKS_JSON";
  const parsed = JSON.parse(text) as { keys?: unknown };
  if (!Array.isArray(parsed.keys)) throw new JwtKeyError(`${where} must be a JWKS: {"keys": [...]}`);
  for (const jwk of parsed.keys as Array<JsonWebKey & { kid?: unknown; alg?: unknown }>) {
    if (typeof jwk.kid !== "string" || jwk.kid === "") throw new JwtKeyError(`${where}: every key needs a kid`);
    let key: KeyObject;
    try {
      key = createPublicKey({ key: jwk, format: "jwk" });
    } catch (error) {
      throw new JwtKeyError(`${where}: kid ${jwk.kid} is not a public key (${(error as Error).message})`);
    }
    add(keys, jwk.kid, key, typeof jwk.alg === "string" ? jwk.alg : undefined, where);
  }
}

function loadDir(keys: Map<string, VerificationKey>, dir: string): void {
  const where = "CODEAPI_JWT_PUBLIC_KEYS_DIR";
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch (error) {
    throw new JwtKeyError(`${where} ${dir} cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  for (const name of names) {
    const file = join(dir, name);
    if (name.startsWith(".") || !statSync(file).isFile()) continue;
    const kid = parse(name).name;
    try {
      add(keys, kid, publicKeyFrom(readFileSync(file, "utf8")), undefined, where);
    } catch (error) {
      if (error instanceof JwtKeyError) throw error;
      throw new JwtKeyError(`${where}: ${name} is not a public key (${(error as Error).message})`);
    }
  }
}

/** Every configured key by kid; throws JwtKeyError when some key material is unusable. */
export function loadVerificationKeys(sources: JwtKeySources): Map<string, VerificationKey> {
  const keys = new Map<string, VerificationKey>();
  if (sources.jwksJson) loadJwks(keys, sources.jwksJson);
  if (sources.publicKeysDir) loadDir(keys, sources.publicKeysDir);
  if (sources.publicKey) {
    if (!sources.kid) throw new JwtKeyError("CODEAPI_JWT_PUBLIC_KEY needs CODEAPI_JWT_KID (the signer's kid)");
    let key: KeyObject;
    try {
      key = publicKeyFrom(sources.publicKey);
    } catch (error) {
      throw new JwtKeyError(`CODEAPI_JWT_PUBLIC_KEY is not a public key (${(error as Error).message})`);
    }
    add(keys, sources.kid, key, undefined, "CODEAPI_JWT_PUBLIC_KEY");
  }
  if (sources.hs256Secret) add(keys, sources.hs256Kid, createSecretKey(Buffer.from(sources.hs256Secret, "utf8")), undefined, "CODEAPI_JWT_HS256_SECRET");
  return keys;
}
