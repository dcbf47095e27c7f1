/**
 * Pick the transport: uWebSockets.js where its native module loads, `ws` on
 * node:http otherwise (or when asked for).
 */
import { createNodeTransport, type NodeTransportOptions } from "./node.ts";
import type { Transport, TransportHandlers } from "./types.ts";
import { createUwsTransport, type UwsTransportOptions, UwsUnavailableError } from "./uws.ts";

export type TransportKind = "auto" | "uws" | "node";

/** The part of a pino logger the selection needs. */
export interface TransportLogger {
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

export type CreateTransportOptions = UwsTransportOptions & NodeTransportOptions;

/**
 * "node": the node transport. "uws": uWebSockets.js or a clear error. "auto": uWebSockets.js,
 * falling back to node with a warning that names the reason.
 * Handler failures are logged at error level unless `options.onError` is given.
 */
export function createTransport(kind: TransportKind, handlers: TransportHandlers, logger: TransportLogger, options: CreateTransportOptions = {}): Transport {
  const opts: CreateTransportOptions = {
    ...options,
    onError:
      options.onError ??
      ((error, context) => {
        logger.error({ err: error, ...context }, "request handler failed");
      }),
  };
  if (kind === "node") return createNodeTransport(handlers, opts);
  try {
    return createUwsTransport(handlers, opts);
  } catch (error) {
    if (!(error instanceof UwsUnavailableError)) throw error;
    if (kind === "uws") {
      throw new Error(
        `SERVER_TRANSPORT=uws but uWebSockets.js cannot be loaded on this machine: ${error.reason}. ` +
          "Use SERVER_TRANSPORT=auto or node, or run node under a glibc >= 2.38 loader (scripts/uws-glibc.sh prints the command prefix).",
        { cause: error },
      );
    }
    logger.warn({ reason: error.reason }, "uWebSockets.js unavailable, using the node transport");
    return createNodeTransport(handlers, opts);
  }
}
