/**
 * A bound on the connections one address may hold open (MAX_CONNECTIONS_PER_ADDRESS):
 * a client trickling request headers, or opening sockets and sending nothing,
 * cannot take every file descriptor the server has. Trusted proxies carry
 * many clients and are not capped.
 */
import type { TrustedProxies } from "./client-address.ts";

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

  /**
   * Count a new connection from `address` (normalized): a function to call
   * once it closes, or undefined past the cap (the caller closes it at once).
   */
  admit(address: string): (() => void) | undefined {
    if (this.#max <= 0 || this.#trusted?.has(address)) return () => {};
    const open = this.#open.get(address) ?? 0;
    if (open >= this.#max) {
      this.refused++;
      return undefined;
    }
    this.#open.set(address, open + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.#open.get(address) ?? 1) - 1;
      if (left <= 0) this.#open.delete(address);
      else this.#open.set(address, left);
    };
  }
}
