/**
 * Loopback HTTPS servers standing in for hosts on the internet (the egress
 * tests and bench): a self-signed certificate for the names they play, and a
 * server that records what reached it.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";

export interface TestCertificate {
  key: string;
  cert: string;
}

/** A self-signed certificate (its own CA) for `names`, made with openssl in `dir`. */
export function makeCertificate(dir: string, names: readonly string[]): TestCertificate {
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      "2",
      "-subj",
      "/CN=code-interpreter test",
      "-addext",
      `subjectAltName=${names.map((name) => `DNS:${name}`).join(",")}`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-keyout",
      "key.pem",
      "-out",
      "cert.pem",
    ],
    { cwd: dir, stdio: ["ignore", "ignore", "pipe"], timeout: 30_000 },
  );
  return { key: readFileSync(join(dir, "key.pem"), "utf8"), cert: readFileSync(join(dir, "cert.pem"), "utf8") };
}

export interface HttpsStandIn {
  server: Server;
  port: number;
  /** Requests seen, as "<TLS server name> <Host header> <path>". */
  requests: string[];
  /** TCP connections accepted. */
  connections: number;
  close(): Promise<void>;
}

export type StandInAnswer = { status: number; type: string; body: Buffer | string };

export async function startHttpsStandIn(tls: TestCertificate, answer: (path: string) => StandInAnswer): Promise<HttpsStandIn> {
  const requests: string[] = [];
  const server = createServer(tls, (req, res) => {
    requests.push(`${(req.socket as TLSSocket).servername} ${req.headers.host} ${req.url}`);
    const { status, type, body } = answer(req.url ?? "/");
    res.writeHead(status, { "content-type": type }).end(body);
  });
  const standIn: HttpsStandIn = {
    server,
    port: 0,
    requests,
    connections: 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  server.on("connection", () => standIn.connections++);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  standIn.port = (server.address() as { port: number }).port;
  return standIn;
}
