import { describe, expect, it } from "vitest";
import { clientAddress, TrustedProxies } from "../../../server/transport/client-address.ts";

describe("the client address behind TRUSTED_PROXIES", () => {
  const trusted = new TrustedProxies(["127.0.0.1", "10.0.0.0/8", "fd00::/8"]);

  it("believes X-Forwarded-For only from a trusted peer, taking the rightmost hop that is not a proxy", () => {
    expect(clientAddress("127.0.0.1", "203.0.113.7", trusted)).toBe("203.0.113.7");
    // A client's own forged hop on the left does not win over what the proxies saw.
    expect(clientAddress("127.0.0.1", "198.51.100.1, 203.0.113.7, 10.1.2.3", trusted)).toBe("203.0.113.7");
    expect(clientAddress("fd00::1", "2001:db8::5", trusted)).toBe("2001:db8::5");
    expect(clientAddress("127.0.0.1", "::ffff:203.0.113.9", trusted)).toBe("203.0.113.9");
  });

  it("ignores the header from anyone else, without it, and without TRUSTED_PROXIES", () => {
    expect(clientAddress("192.0.2.10", "203.0.113.7", trusted)).toBe("192.0.2.10");
    expect(clientAddress("127.0.0.1", undefined, trusted)).toBe("127.0.0.1");
    expect(clientAddress("127.0.0.1", "203.0.113.7", undefined)).toBe("127.0.0.1");
  });

  it("stops at a hop that is not an address, and takes the first hop when every one is a proxy", () => {
    expect(clientAddress("127.0.0.1", "unknown", trusted)).toBe("127.0.0.1");
    expect(clientAddress("127.0.0.1", "garbage, 203.0.113.7", trusted)).toBe("203.0.113.7");
    expect(clientAddress("127.0.0.1", "10.0.0.5, 10.0.0.6", trusted)).toBe("10.0.0.5");
  });

  it("refuses entries that are not addresses or CIDRs", () => {
    expect(() => new TrustedProxies(["300.1.1.1"])).toThrow(/TRUSTED_PROXIES: "300.1.1.1"/);
    expect(() => new TrustedProxies(["10.0.0.0/33"])).toThrow(/prefix length/);
  });
});
