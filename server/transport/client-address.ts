/**
 * The client's address behind trusted proxies (TRUSTED_PROXIES). From a peer
 * that is a trusted proxy, the client is the rightmost hop of X-Forwarded-For
 * that is not itself trusted; from anyone else the header is ignored, so a
 * client cannot pick the address the auth limiter, rate limits and logs see.
 */
import { BlockList, isIP } from "node:net";
import { StartRefusal } from "../start-refusal.ts";
import { normalizeAddress } from "./common.ts";

export class TrustedProxies {
  readonly #list = new BlockList();
  readonly entries: readonly string[];

  /** `entries`: addresses and CIDRs (IPv4 or IPv6); refuses (StartRefusal) one that is neither. */
  constructor(entries: readonly string[]) {
    this.entries = entries;
    for (const entry of entries) {
      const [address = "", bits] = entry.split("/");
      const family = isIP(address);
      if (family === 0) throw new StartRefusal(`TRUSTED_PROXIES: "${entry}" is not an IP address or CIDR`);
      const type = family === 4 ? "ipv4" : "ipv6";
      if (bits === undefined) {
        this.#list.addAddress(address, type);
        continue;
      }
      const prefix = Number(bits);
      if (!/^\d+$/.test(bits) || prefix > (family === 4 ? 32 : 128)) throw new StartRefusal(`TRUSTED_PROXIES: "${entry}" has no valid prefix length`);
      this.#list.addSubnet(address, prefix, type);
    }
  }

  has(address: string): boolean {
    const family = isIP(address);
    return family !== 0 && this.#list.check(address, family === 4 ? "ipv4" : "ipv6");
  }
}

/** The address to account a request to: `peer` itself unless it is a trusted proxy that forwarded for someone. */
export function clientAddress(peer: string, forwardedFor: string | undefined, trusted: TrustedProxies | undefined): string {
  if (!trusted || !forwardedFor || !trusted.has(peer)) return peer;
  const hops = forwardedFor
    .split(",")
    .map((hop) => normalizeAddress(hop.trim()))
    .filter((hop) => hop.length > 0);
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i]!;
    // A hop that is not an address (a proxy's "unknown", garbage): nothing left of it can be believed.
    if (isIP(hop) === 0) return i === hops.length - 1 ? peer : hops[i + 1]!;
    if (!trusted.has(hop)) return hop;
  }
  // Every hop is a trusted proxy: the first one is as far as the chain goes.
  return hops[0] ?? peer;
}
