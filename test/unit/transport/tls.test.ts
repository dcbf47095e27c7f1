import { X509Certificate } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { completeChain, loadTlsMaterial, parseCertificates, TlsFileError } from "../../../server/transport/tls.ts";
import { makeTestPki, type TestPki } from "../../fixtures/transport/certs.ts";

let pki: TestPki;
const cert = (file: string) => new X509Certificate(readFileSync(file));
const pemCount = (pem: Buffer) => pem.toString().match(/-----BEGIN CERTIFICATE-----/g)?.length ?? 0;

beforeAll(() => {
  pki = makeTestPki();
});
afterAll(() => pki?.remove());

describe("completeChain", () => {
  it("adds the intermediate from the bundle and stops before the root", () => {
    const added = completeChain([cert(pki.leafCert)], [cert(pki.selfCert), cert(pki.rootCert), cert(pki.interCert)]);
    expect(added.map((c) => c.subject)).toEqual(["CN=Test Intermediate CA"]);
  });

  it("adds nothing when the bundle holds no issuer, or the certificate is self-signed", () => {
    expect(completeChain([cert(pki.leafCert)], [cert(pki.selfCert), cert(pki.rootCert)])).toEqual([]);
    expect(completeChain([cert(pki.selfCert)], [cert(pki.interCert), cert(pki.rootCert)])).toEqual([]);
  });

  it("continues from the last certificate the file already has, without repeating it", () => {
    const fileChain = [cert(pki.leafCert), cert(pki.interCert)];
    expect(completeChain(fileChain, [cert(pki.interCert), cert(pki.rootCert)])).toEqual([]);
  });
});

describe("loadTlsMaterial", () => {
  it("uses a self-signed certificate as it is", () => {
    const material = loadTlsMaterial({ certFile: pki.selfCert, keyFile: pki.selfKey });
    expect(material.fromBundle).toBe(0);
    expect(material.cert.equals(readFileSync(pki.selfCert))).toBe(true);
    expect(material.subject).toBe("CN=localhost");
    expect(material.validTo.getTime()).toBeGreaterThan(Date.now());
  });

  it("completes the chain from SSL_CA_CERTS: leaf, then the intermediate, never the root", () => {
    const bundle = join(pki.dir, "bundle.pem");
    writeFileSync(bundle, Buffer.concat([readFileSync(pki.selfCert), readFileSync(pki.rootCert), readFileSync(pki.interCert)]));
    const material = loadTlsMaterial({ certFile: pki.leafCert, keyFile: pki.leafKey, caFile: bundle });
    expect(material.fromBundle).toBe(1);
    expect(pemCount(material.cert)).toBe(2);
    const [leaf, inter] = parseCertificates(material.cert.toString(), "chain", "chain");
    expect(leaf!.subject).toBe("CN=localhost");
    expect(inter!.subject).toBe("CN=Test Intermediate CA");
  });

  it("says when the key does not belong to the certificate", () => {
    expect(() => loadTlsMaterial({ certFile: pki.leafCert, keyFile: pki.otherKey })).toThrow(
      new TlsFileError(`HTTPS: the key ${pki.otherKey} does not belong to the certificate ${pki.leafCert} (CN=localhost)`),
    );
  });

  it("says which file is missing, is not a certificate, or is not a key", () => {
    const missing = join(pki.dir, "missing.pem");
    expect(() => loadTlsMaterial({ certFile: missing, keyFile: pki.leafKey })).toThrow(`HTTPS: cannot read the certificate file ${missing} (ENOENT)`);
    expect(() => loadTlsMaterial({ certFile: pki.leafKey, keyFile: pki.leafKey })).toThrow(
      `HTTPS: the certificate file ${pki.leafKey} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`,
    );
    expect(() => loadTlsMaterial({ certFile: pki.leafCert, keyFile: pki.leafCert })).toThrow(
      `HTTPS: the key file ${pki.leafCert} is not a usable PEM private key`,
    );
    expect(() => loadTlsMaterial({ certFile: pki.leafCert, keyFile: pki.leafKey, caFile: missing })).toThrow(
      `HTTPS: cannot read the CA bundle ${missing} (ENOENT)`,
    );
  });

  it("says when a certificate block cannot be parsed", () => {
    const broken = join(pki.dir, "broken.pem");
    writeFileSync(broken, "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n");
    expect(() => loadTlsMaterial({ certFile: broken, keyFile: pki.leafKey })).toThrow(
      `HTTPS: certificate #1 in the certificate file ${broken} cannot be parsed`,
    );
  });
});
