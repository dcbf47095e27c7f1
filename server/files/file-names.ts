/**
 * File names as they travel between callers and /mnt/data: sanitising,
 * content types and the Content-Disposition of downloads.
 */

export type NameCheck = { ok: true; name: string } | { ok: false; reason: string };

/**
 * A caller's file name or relative path, made safe to place under /mnt/data:
 * backslashes become slashes, a leading `/` or `./` is dropped (absolute paths
 * become relative), repeated slashes collapse. Refused: NUL and other control
 * characters, `..` segments, an empty name, and names longer than `maxLength`.
 */
export function sanitizeFileName(raw: string, maxLength: number): NameCheck {
  if (/[\u0000-\u001f\u007f]/.test(raw)) return { ok: false, reason: "file names must not contain NUL or control characters" };
  const segments = raw
    .replaceAll("\\", "/")
    .split("/")
    .filter((segment) => segment !== "" && segment !== ".");
  if (segments.some((segment) => segment === "..")) return { ok: false, reason: "file names must not contain '..' segments" };
  const name = segments.join("/");
  if (name === "") return { ok: false, reason: "file name is empty" };
  if (name.length > maxLength) return { ok: false, reason: `file name is longer than ${maxLength} characters` };
  return { ok: true, name };
}

/** The last segment of a relative path. */
export function baseName(name: string): string {
  return name.slice(name.lastIndexOf("/") + 1);
}

const CONTENT_TYPES: Record<string, string> = {
  txt: "text/plain",
  log: "text/plain",
  md: "text/markdown",
  csv: "text/csv",
  tsv: "text/tab-separated-values",
  json: "application/json",
  jsonl: "application/jsonl",
  xml: "application/xml",
  yaml: "application/yaml",
  yml: "application/yaml",
  html: "text/html",
  htm: "text/html",
  css: "text/css",
  js: "text/javascript",
  ts: "text/plain",
  py: "text/x-python",
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  gif: "image/gif",
  webp: "image/webp",
  svg: "image/svg+xml",
  bmp: "image/bmp",
  pdf: "application/pdf",
  zip: "application/zip",
  gz: "application/gzip",
  tar: "application/x-tar",
  xlsx: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
  xls: "application/vnd.ms-excel",
  docx: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  pptx: "application/vnd.openxmlformats-officedocument.presentationml.presentation",
  parquet: "application/vnd.apache.parquet",
  mp3: "audio/mpeg",
  wav: "audio/wav",
  mp4: "video/mp4",
};

/** A content type guessed from the name's extension. */
export function contentTypeFor(name: string): string {
  const base = baseName(name);
  const dot = base.lastIndexOf(".");
  const ext = dot > 0 ? base.slice(dot + 1).toLowerCase() : "";
  return CONTENT_TYPES[ext] ?? "application/octet-stream";
}

/** `attachment; filename="<ascii>"; filename*=UTF-8''<pct-encoded>` (RFC 6266), from the last segment of the name. */
export function contentDisposition(name: string): string {
  const base = baseName(name);
  const ascii = base.replace(/[^\x20-\x7e]/g, "_").replace(/["\\]/g, "_");
  const encoded = encodeURIComponent(base).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}
