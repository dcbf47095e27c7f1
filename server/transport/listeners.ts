/**
 * Which ports the server listens on, and starting them on one transport.
 *
 *   HTTPS off                         API_PORT, plain: the API.
 *   HTTPS on                          HTTPS_PORT, TLS: the API; and API_PORT, plain: the API too,
 *                                     or with SSL_REDIRECT a 307 to HTTPS (see redirect.ts).
 *   HTTPS on, HTTPS_PORT = API_PORT   that one port, TLS only (the nsjail guide's PORT=443 ENABLE_HTTPS=true).
 *
 * Port 0 asks for a free port, so two zeros are two listeners.
 */
import type { AppConfig } from "../config/types.ts";
import { createRedirectHandlers } from "./redirect.ts";
import { loadTlsMaterial } from "./tls.ts";
import type { ListenOptions, TlsOptions, Transport } from "./types.ts";

export type ListenerRole = "api" | "redirect";

export interface PlannedListener {
  port: number;
  tls: boolean;
  role: ListenerRole;
}

export interface StartedListener extends PlannedListener {
  host: string;
}

/** The part of a pino logger the listeners need. */
export interface ListenersLogger {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}

type ServerConfig = Pick<AppConfig["server"], "host" | "port" | "https">;

/** The listeners for a configuration, plain first (the order of the "listening" lines). */
export function planListeners(server: Pick<ServerConfig, "port" | "https">): PlannedListener[] {
  const { https } = server;
  if (!https.enabled) return [{ port: server.port, tls: false, role: "api" }];
  const secure: PlannedListener = { port: https.port, tls: true, role: "api" };
  if (https.port !== 0 && https.port === server.port) return [secure];
  return [{ port: server.port, tls: false, role: https.redirect ? "redirect" : "api" }, secure];
}

/**
 * Start every listener of the configuration on `transport` and log one "listening" line
 * per listener (plain first); resolves with the first line's port. The TLS files are
 * checked before anything listens; on any failure the started listeners are closed and
 * the error names the listener.
 */
export async function startListeners(
  transport: Transport,
  server: ServerConfig,
  logger: ListenersLogger,
  fields: Record<string, unknown> = {},
): Promise<{ port: number; listeners: StartedListener[] }> {
  const plan = planListeners(server);
  const { https } = server;
  const tls: TlsOptions = { certFile: https.certFile, keyFile: https.keyFile, ...(https.caFile ? { caFile: https.caFile } : {}) };
  const certificate = plan.some((l) => l.tls) ? loadTlsMaterial(tls) : undefined;
  if (certificate && certificate.validTo.getTime() < Date.now()) {
    logger.warn({ certFile: tls.certFile, validTo: certificate.validTo.toISOString() }, "the HTTPS certificate has expired: clients will refuse it");
  }

  const bound = new Map<PlannedListener, number>();
  const start = async (listener: PlannedListener, extra: Partial<ListenOptions> = {}) => {
    try {
      const { port } = await transport.listen({ host: server.host, port: listener.port, ...(listener.tls ? { tls } : {}), ...extra });
      bound.set(listener, port);
    } catch (error) {
      await transport.close();
      const what = listener.tls ? "HTTPS" : "HTTP";
      throw new Error(`cannot start the ${what} listener on ${server.host}:${listener.port}: ${(error as Error).message}`, { cause: error });
    }
  };
  // TLS first: the redirect needs the port it actually got.
  for (const listener of plan.filter((l) => l.tls)) await start(listener);
  const httpsPort = [...bound.values()][0];
  for (const listener of plan.filter((l) => !l.tls)) {
    await start(listener, listener.role === "redirect" && httpsPort !== undefined ? { handlers: (own) => createRedirectHandlers(own, httpsPort) } : {});
  }

  const listeners = plan.map((l) => ({ ...l, host: server.host, port: bound.get(l)! }));
  for (const l of listeners) {
    const tlsFields =
      l.tls && certificate ? { certificate: certificate.subject, validTo: certificate.validTo.toISOString(), chainFromBundle: certificate.fromBundle } : {};
    // `listeners` lets a reader of the log know how many of these lines to wait for.
    logger.info(
      { host: l.host, port: l.port, transport: transport.name, ...fields, tls: l.tls, role: l.role, listeners: listeners.length, ...tlsFields },
      "listening",
    );
  }
  return { port: listeners[0]!.port, listeners };
}
