/**
 * Certificate and key for a TLS listener, read and checked once before either
 * transport uses them, so that a bad file is a clear start-up error and not
 * uWS's "cannot listen" or a handshake failure in a client.
 *
 * The CA bundle (SSL_CA_CERTS) completes the certificate's chain: the
 * intermediates it holds for this certificate are sent after it. Nothing else
 * from the bundle is sent, and no client certificate is asked for (uWS's own
 * `ca_file_name` would do both: ask every client for a certificate and still
 * not send the chain).
 */
import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { createSecureContext } from "node:tls";
import type { TlsOptions } from "./types.ts";

/** A certificate, key or CA file that cannot be used; the message names the file and the fix. */
export class TlsFileError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TlsFileError";
  }
}

export interface TlsMaterial {
  /** PEM: the certificate, then its intermediates (from the certificate file, then from the CA bundle). */
  cert: Buffer;
  key: Buffer;
  /** Intermediates taken from the CA bundle (0 when the certificate file was used as it is). */
  fromBundle: number;
  subject: string;
  validTo: Date;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
/** Longer chains than this do not occur in practice; the bound stops a loop of cross-signed certificates. */
const MAX_CHAIN = 8;

function read(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new TlsFileError(`HTTPS: cannot read the ${what} ${file} (${code})`, { cause: error });
  }
}

/** Every PEM certificate in a file, parsed. */
export function parseCertificates(pem: string, file: string, what: string): X509Certificate[] {
  const blocks = pem.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new TlsFileError(`HTTPS: the ${what} ${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  return blocks.map((block, index) => {
    try {
      return new X509Certificate(block);
    } catch (error) {
      throw new TlsFileError(`HTTPS: certificate #${index + 1} in the ${what} ${file} cannot be parsed: ${(error as Error).message}`, { cause: error });
    }
  });
}

function selfSigned(cert: X509Certificate): boolean {
  return cert.checkIssued(cert) && cert.verify(cert.publicKey);
}

/**
 * The intermediates from `bundle` that complete the chain ending with `chain`'s last
 * certificate, in order. Stops at a self-signed certificate (a root is not sent: the
 * client must already trust it) or when the bundle has no issuer.
 */
export function completeChain(chain: readonly X509Certificate[], bundle: readonly X509Certificate[]): X509Certificate[] {
  const added: X509Certificate[] = [];
  const seen = new Set(chain.map((c) => c.fingerprint256));
  let last = chain[chain.length - 1];
  while (last && !selfSigned(last) && chain.length + added.length < MAX_CHAIN) {
    const current: X509Certificate = last;
    const issuer = bundle.find((c) => !seen.has(c.fingerprint256) && current.checkIssued(c) && current.verify(c.publicKey));
    if (!issuer || selfSigned(issuer)) break;
    added.push(issuer);
    seen.add(issuer.fingerprint256);
    last = issuer;
  }
  return added;
}

/** Read, parse and cross-check the files of one TLS listener; throws TlsFileError with a clear message. */
export function loadTlsMaterial(tls: TlsOptions): TlsMaterial {
  const certPem = read(tls.certFile, "certificate file").toString("utf8");
  const certs = parseCertificates(certPem, tls.certFile, "certificate file");
  const leaf = certs[0]!;
  const key = read(tls.keyFile, "key file");
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (error) {
    throw new TlsFileError(
      `HTTPS: the key file ${tls.keyFile} is not a usable PEM private key (encrypted keys are not supported): ${(error as Error).message}`,
      { cause: error },
    );
  }
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new TlsFileError(`HTTPS: the key ${tls.keyFile} does not belong to the certificate ${tls.certFile} (${leaf.subject.replace(/\n/g, ", ")})`);
  }
  const added = tls.caFile ? completeChain(certs, parseCertificates(read(tls.caFile, "CA bundle").toString("utf8"), tls.caFile, "CA bundle")) : [];
  const cert = added.length === 0 ? Buffer.from(certPem) : Buffer.from(`${[...certs, ...added].map((c) => c.toString().trim()).join("\n")}\n`);
  try {
    // Whatever OpenSSL itself refuses (a weak key, an unsupported algorithm) fails here, not at the first handshake.
    createSecureContext({ cert, key });
  } catch (error) {
    throw new TlsFileError(`HTTPS: ${tls.certFile} with ${tls.keyFile} cannot be used: ${(error as Error).message}`, { cause: error });
  }
  return { cert, key, fromBundle: added.length, subject: leaf.subject.replace(/\n/g, ", "), validTo: new Date(leaf.validTo) };
}
