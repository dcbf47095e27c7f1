/** Masking of secret values for summaries, exports and error messages. */

/** `****` plus the last four characters, only when the secret is long enough for that to reveal little. */
export function maskSecret(value: string): string {
  if (value.length === 0) return "";
  return value.length >= 12 ? `****${value.slice(-4)}` : "****";
}

/** A URL with its password (or lone user-info token) masked: redis://:****@host:6379/0. */
export function maskUrl(value: string): string {
  const match = /^([a-z][a-z0-9+.-]*:\/\/)([^@/]*)@(.*)$/i.exec(value);
  if (!match) return value;
  const [, scheme, userInfo = "", rest] = match;
  const colon = userInfo.indexOf(":");
  const masked = colon >= 0 ? `${userInfo.slice(0, colon)}:****` : "****";
  return `${scheme}${masked}@${rest}`;
}

/** Mask one value of a secret variable: URLs keep their shape, lists are masked item by item. */
export function maskValue(name: string, value: string): string {
  if (/_URL$/.test(name) && /:\/\//.test(value)) return maskUrl(value);
  if (value.includes(",")) {
    return value
      .split(",")
      .map((item) => maskSecret(item.trim()))
      .join(",");
  }
  return maskSecret(value);
}
