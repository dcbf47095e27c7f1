import { describe, expect, it } from "vitest";
import { isPublicAddress, parsePinnedAddresses } from "../../../server/sandbox/egress/address-policy.ts";
import { EgressAllowlist, normalizeHostName, PACKAGE_REGISTRIES, parseAllowlistEntry } from "../../../server/sandbox/egress/allowlist.ts";

describe("egress allowlist", () => {
  it("always lists the package registries, on port 443 only", () => {
    const list = new EgressAllowlist();
    for (const name of PACKAGE_REGISTRIES) expect(list.allows(name, 443)).toBe(true);
    expect(list.allows("pypi.org", 80)).toBe(false);
    expect(list.allows("evil.pypi.org", 443)).toBe(false);
    expect(list.allows("pypi.org.evil.com", 443)).toBe(false);
  });

  it("adds names, wildcards (subdomains only) and ports", () => {
    const list = new EgressAllowlist(["files.example.com", "*.example.org", "mirror.example.net:8443"]);
    expect(list.allows("files.example.com", 443)).toBe(true);
    expect(list.allows("a.b.example.org", 443)).toBe(true);
    expect(list.allows("example.org", 443)).toBe(false);
    expect(list.allows("badexample.org", 443)).toBe(false);
    expect(list.allows("mirror.example.net", 8443)).toBe(true);
    expect(list.allows("mirror.example.net", 443)).toBe(false);
    expect(list.describe()).toContain("mirror.example.net:8443");
    expect(new EgressAllowlist(["a.example"], { registries: false }).describe()).toEqual(["a.example"]);
  });

  it("normalizes names and refuses address literals in every disguise", () => {
    expect(normalizeHostName("PyPI.org.")).toBe("pypi.org");
    for (const literal of ["127.0.0.1", "2130706433", "0x7f.1", "0x7f000001", "1.2.3.4", "-a.com", "a..com", "a_b.com", "", `${"a".repeat(64)}.com`]) {
      expect(normalizeHostName(literal), literal).toBeUndefined();
    }
    expect(() => parseAllowlistEntry("10.0.0.1")).toThrow(/not a host name/);
    expect(() => parseAllowlistEntry("a.com:70000")).toThrow(/not a host name/);
    expect(parseAllowlistEntry("*.Example.com:8443")).toEqual({ name: "example.com", wildcard: true, port: 8443 });
  });
});

describe("egress address policy", () => {
  it("refuses loopback, private, link-local, shared, multicast and reserved addresses", () => {
    for (const address of [
      "127.0.0.1",
      "10.1.2.3",
      "172.16.0.1",
      "172.31.255.255",
      "192.168.1.1",
      "169.254.169.254",
      "100.64.0.1",
      "0.0.0.0",
      "224.0.0.1",
      "255.255.255.255",
      "::1",
      "::",
      "fe80::1",
      "fd00::1",
      "ff02::1",
      "::ffff:127.0.0.1",
      "::ffff:7f00:1",
      "64:ff9b::a9fe:a9fe",
      "not-an-address",
    ]) {
      expect(isPublicAddress(address), address).toBe(false);
    }
  });

  it("allows public addresses", () => {
    for (const address of ["151.101.0.223", "8.8.8.8", "172.32.0.1", "2a04:4e42::223", "::ffff:8.8.8.8"]) expect(isPublicAddress(address), address).toBe(true);
  });

  it("parses pinned addresses", () => {
    const pinned = parsePinnedAddresses(["Mirror.example.com=10.0.0.5", "v6.example.com=fd00::5"], normalizeHostName);
    expect([...pinned]).toEqual([
      ["mirror.example.com", "10.0.0.5"],
      ["v6.example.com", "fd00::5"],
    ]);
    expect(() => parsePinnedAddresses(["mirror.example.com=10.0.0"], normalizeHostName)).toThrow(/name=address/);
    expect(() => parsePinnedAddresses(["127.0.0.1=10.0.0.5"], normalizeHostName)).toThrow(/name=address/);
  });
});
