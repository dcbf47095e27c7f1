/**
 * The sandbox's end of the egress proxy (ENABLE_SANDBOX_NETWORK): programs
 * see an HTTP proxy on 127.0.0.1:<port> of the sandbox's own network
 * namespace (HTTPS_PROXY points there), and every connection to it is carried
 * byte for byte to the server's proxy over the unix socket bound into the
 * sandbox. The relay decides nothing: the server's proxy checks each request.
 */
import { createConnection, createServer, type Server } from "node:net";

export interface EgressRelay {
  close(): Promise<void>;
}

export async function startEgressRelay(port: number, proxySocket: string): Promise<EgressRelay> {
  const server: Server = createServer((client) => {
    const upstream = createConnection(proxySocket);
    client.on("error", () => {});
    upstream.on("error", () => {});
    client.once("close", () => upstream.destroy());
    upstream.once("close", () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  return { close: () => new Promise<void>((done) => server.close(() => done())) };
}
