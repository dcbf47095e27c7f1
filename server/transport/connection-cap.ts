/**
 * A bound on the connections one address may hold open (MAX_CONNECTIONS_PER_ADDRESS):
 * a client trickling request headers, or opening sockets and sending nothing,
 * cannot take every file descriptor the server has. Trusted proxies carry
 * many clients and are not capped.
 */
import type { Socket } from "node:net";
import type { TrustedProxies } from "./client-address.ts";
import { normalizeAddress } from "./common.ts";

export class ConnectionCap {
  readonly #open = new Map<string, number>();
  readonly #max: number;
  readonly #trusted: TrustedProxies | undefined;
  refused = 0;

  /** `max` 0: no cap. */
  constructor(max: number, trusted?: TrustedProxies) {
    this.#max = max;
    this.#trusted = trusted;
  }

  /** Count a new connection; past the cap it is destroyed at once and false is returned. */
  admit(socket: Socket): boolean {
    if (this.#max <= 0) return true;
    const address = normalizeAddress(socket.remoteAddress);
    if (this.#trusted?.has(address)) return true;
    const open = this.#open.get(address) ?? 0;
    if (open >= this.#max) {
      this.refused++;
      socket.destroy();
      return false;
    }
    this.#open.set(address, open + 1);
    socket.once("close", () => {
      const left = (this.#open.get(address) ?? 1) - 1;
      if (left <= 0) this.#open.delete(address);
      else this.#open.set(address, left);
    });
    return true;
  }
}
