/**
 * Whether session files go to S3 and how to reach it, from the S3_* variables
 * (MINIO_* are their aliases; see docs/CONFIGURATION.md).
 *
 * The rule: S3 is on when S3_ENDPOINT or S3_BUCKET (or MINIO_ENDPOINT /
 * MINIO_BUCKET) is set, in the environment or .env, non-empty. The guides'
 * product always has object storage, so their defaults (localhost:9000,
 * code-interpreter-files) say where it is once you have one, not a request to
 * use it: with neither set, files stay in the embedded folder
 * (FILE_STORAGE_PATH). Keys or S3_USE_IAM alone do not say where S3 is, so
 * they leave it off, with a warning. Once on, S3 wants both keys or
 * S3_USE_IAM=true; without them requests go unsigned (a warning: most servers
 * refuse them, and the store's start-up check then fails with AccessDenied).
 */
import type { RawValue } from "./schema.ts";
import type { S3Config } from "./types.ts";

/** The variables that say where the files go: either set turns S3 on. */
export const S3_LOCATION_VARIABLES = ["S3_ENDPOINT", "S3_BUCKET"] as const;

/** Settings that show an intent to use S3 (region and S3_SECURE have harmless defaults). */
const S3_CREDENTIALS = ["S3_ACCESS_KEY", "S3_SECRET_KEY", "S3_USE_IAM"] as const;

export function resolveS3(raw: Record<string, RawValue>, explicit: ReadonlySet<string>, errors: string[], warnings: string[]): S3Config {
  // errors: only a bad port in S3_ENDPOINT (the schema checked everything else).
  const enabled = S3_LOCATION_VARIABLES.some((name) => explicit.has(name));
  const useSSL = raw.S3_SECURE === true;
  const endpoint = String(raw.S3_ENDPOINT ?? "localhost:9000");
  const colon = endpoint.lastIndexOf(":");
  const endPoint = colon >= 0 ? endpoint.slice(0, colon) : endpoint;
  let port = colon >= 0 ? Number(endpoint.slice(colon + 1)) : useSSL ? 443 : 80;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    errors.push(`S3_ENDPOINT=${endpoint}: the port must be between 1 and 65535`);
    port = useSSL ? 443 : 80;
  }
  const accessKey = typeof raw.S3_ACCESS_KEY === "string" ? raw.S3_ACCESS_KEY : undefined;
  const secretKey = typeof raw.S3_SECRET_KEY === "string" ? raw.S3_SECRET_KEY : undefined;
  const useIam = raw.S3_USE_IAM === true;

  if (enabled) {
    if (!useIam && (accessKey === undefined || secretKey === undefined)) {
      warnings.push(
        "S3 is on (S3_ENDPOINT or S3_BUCKET is set) but S3_ACCESS_KEY and S3_SECRET_KEY are not both set, nor S3_USE_IAM: requests to S3 go unsigned (anonymous)",
      );
    }
    if (useIam && (accessKey !== undefined || secretKey !== undefined)) warnings.push("S3_USE_IAM is true: S3_ACCESS_KEY and S3_SECRET_KEY are not used");
  } else {
    const stray = S3_CREDENTIALS.filter((name) => explicit.has(name));
    if (stray.length > 0) {
      warnings.push(`${stray.join(", ")} ${stray.length === 1 ? "is" : "are"} set but neither S3_ENDPOINT nor S3_BUCKET is: files stay in FILE_STORAGE_PATH`);
    }
  }

  return {
    enabled,
    endPoint,
    port,
    useSSL,
    ...(accessKey !== undefined ? { accessKey } : {}),
    ...(secretKey !== undefined ? { secretKey } : {}),
    useIam,
    bucket: String(raw.S3_BUCKET),
    region: String(raw.S3_REGION),
    orphanCleanup: raw.ENABLE_ORPHAN_S3_CLEANUP === true,
    requestTimeoutMs: Math.round(Number(raw.S3_REQUEST_TIMEOUT) * 1000),
  };
}
