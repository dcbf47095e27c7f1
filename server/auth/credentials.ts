/**
 * Where a caller's API key comes from, in the documented order (HTTP-API.md):
 * the configured header (default x-api-key), then `Authorization: Basic`
 * (key in the user part, or the password part when the user part is empty),
 * then `Authorization: Bearer`.
 */
export function extractApiKey(headers: Readonly<Record<string, string>>, keyHeader: string): string | undefined {
  const direct = headers[keyHeader];
  if (direct) return direct.trim() || undefined;
  const authorization = headers.authorization;
  if (!authorization) return undefined;
  const space = authorization.indexOf(" ");
  if (space < 0) return undefined;
  const scheme = authorization.slice(0, space).toLowerCase();
  const value = authorization.slice(space + 1).trim();
  if (scheme === "bearer") return value || undefined;
  if (scheme === "basic") {
    const decoded = Buffer.from(value, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    const user = colon < 0 ? decoded : decoded.slice(0, colon);
    const password = colon < 0 ? "" : decoded.slice(colon + 1);
    return user || password || undefined;
  }
  return undefined;
}
