/**
 * Addresses the egress proxy never connects to on behalf of a sandbox, even
 * for an allowed name: loopback, private, link-local (cloud metadata at
 * 169.254.169.254), shared, multicast and reserved ranges. A name that
 * resolves there (DNS rebinding, an allowed domain pointed inward) is
 * refused; an operator who means an internal mirror pins its address with
 * SANDBOX_EGRESS_RESOLVE, the one way past this check.
 */
import { BlockList, isIP } from "node:net";

const BLOCKED_V4: readonly [string, number][] = [
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16],
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.0.2.0", 24],
  ["192.88.99.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["198.51.100.0", 24],
  ["203.0.113.0", 24],
  ["224.0.0.0", 4],
  ["240.0.0.0", 4],
];

const BLOCKED_V6: readonly [string, number][] = [
  ["::", 127], // :: and ::1
  ["100::", 64],
  ["2001:db8::", 32],
  ["fc00::", 7],
  ["fe80::", 10],
  ["ff00::", 8],
];

const blocked = new BlockList();
for (const [net, prefix] of BLOCKED_V4) blocked.addSubnet(net, prefix, "ipv4");
for (const [net, prefix] of BLOCKED_V6) blocked.addSubnet(net, prefix, "ipv6");

/** The IPv4 address an IPv6 one carries (IPv4-mapped ::ffff:a.b.c.d, NAT64 64:ff9b::/96), if any. */
function embeddedV4(address: string): string | undefined {
  const match = /^(?:::ffff:|64:ff9b::)(?:(\d+\.\d+\.\d+\.\d+)|([0-9a-f]{1,4}):([0-9a-f]{1,4}))$/i.exec(address);
  if (!match) return undefined;
  if (match[1]) return match[1];
  const high = Number.parseInt(match[2]!, 16);
  const low = Number.parseInt(match[3]!, 16);
  return [high >> 8, high & 255, low >> 8, low & 255].join(".");
}

/** Whether a sandbox may be connected to `address` (an IP literal) without the operator pinning it. */
export function isPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return !blocked.check(address, "ipv4");
  if (family !== 6) return false;
  const v4 = embeddedV4(address);
  if (v4 !== undefined) return isPublicAddress(v4);
  return !blocked.check(address, "ipv6");
}

/** Parse SANDBOX_EGRESS_RESOLVE entries (`name=address`) into a map of pinned addresses. */
export function parsePinnedAddresses(entries: readonly string[], normalize: (name: string) => string | undefined): Map<string, string> {
  const pinned = new Map<string, string>();
  for (const entry of entries) {
    const at = entry.indexOf("=");
    const name = at > 0 ? normalize(entry.slice(0, at).trim()) : undefined;
    const address = at > 0 ? entry.slice(at + 1).trim() : "";
    if (!name || isIP(address) === 0) throw new Error(`SANDBOX_EGRESS_RESOLVE entry "${entry}" is not name=address`);
    pinned.set(name, address);
  }
  return pinned;
}
