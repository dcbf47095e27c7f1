/**
 * The minio client as the S3 file store uses it: every request bounded in time,
 * connections kept alive, no silent retries, IAM credentials when asked.
 */
import * as http from "node:http";
import * as https from "node:https";
import { Client, IamAwsProvider } from "minio";
import type { S3Config } from "../config/types.ts";

/** No byte moved on a connection for this long: the request is torn down. */
export class S3TimeoutError extends Error {
  readonly code = "S3_TIMEOUT";
  constructor(timeoutMs: number) {
    super(`S3 did not answer within ${timeoutMs} ms`);
  }
}

export type S3ClientSettings = Pick<S3Config, "endPoint" | "port" | "useSSL" | "accessKey" | "secretKey" | "useIam" | "region" | "requestTimeoutMs">;

export interface S3Connection {
  client: Client;
  /** Closes the kept-alive sockets. */
  close(): void;
}

export function createS3Client(settings: S3ClientSettings): S3Connection {
  const base = settings.useSSL ? https : http;
  const timeoutMs = settings.requestTimeoutMs;
  // keepAlive: one TLS/TCP handshake per socket, not per object; the socket timeout also covers idle pooled sockets.
  const agent = new base.Agent({ keepAlive: true, maxSockets: 64, timeout: timeoutMs });
  // minio sets no timeout of its own: a stopped or black-holed S3 would hang a request forever.
  // `timeout` covers the connect and every silence on the socket (an idle timer, so a slow but
  // moving download is not cut); on expiry the request is destroyed and its response stream errors.
  const transport = {
    request(options: http.RequestOptions, callback?: (res: http.IncomingMessage) => void): http.ClientRequest {
      const request = base.request({ ...options, timeout: timeoutMs }, callback);
      request.on("timeout", () => request.destroy(new S3TimeoutError(timeoutMs)));
      return request;
    },
  } as unknown as Pick<typeof http, "request">;

  const client = new Client({
    endPoint: settings.endPoint,
    port: settings.port,
    useSSL: settings.useSSL,
    region: settings.region,
    transport,
    transportAgent: agent,
    // minio retries 5xx once after a delay and prints to the console; a failed call fails fast instead.
    retryOptions: { disableRetry: true },
    ...(settings.useIam ? { credentialsProvider: timedIamProvider(timeoutMs) } : { accessKey: settings.accessKey ?? "", secretKey: settings.secretKey ?? "" }),
  });
  return { client, close: () => agent.destroy() };
}

/** IAM credentials, whose instance-metadata / web-identity calls get the same time bound as S3 itself. */
function timedIamProvider(timeoutMs: number): IamAwsProvider {
  const provider = new IamAwsProvider({});
  const fetch = provider.getCredentials.bind(provider);
  provider.getCredentials = async () => {
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new S3TimeoutError(timeoutMs)), timeoutMs);
    });
    try {
      return await Promise.race([fetch(), expired]);
    } finally {
      clearTimeout(timer);
    }
  };
  return provider;
}

/** The S3 error code of a failed call (NoSuchKey, NotFound, NotImplemented...), if S3 answered one. */
export function s3ErrorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** The object (or bucket) is not there: S3 answered, and answered no. */
export function isNotFound(error: unknown): boolean {
  const code = s3ErrorCode(error);
  return code === "NoSuchKey" || code === "NotFound" || code === "NoSuchBucket";
}

const UNREACHABLE = new Set(["S3_TIMEOUT", "ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN"]);

/** S3 could not be reached, went away mid-call, or answered 5xx (busy or broken), as opposed to answering no. */
export function isUnreachable(error: unknown): boolean {
  const code = s3ErrorCode(error);
  if (code !== undefined && UNREACHABLE.has(code)) return true;
  // With retries off, minio reports a 5xx answer as this plain Error.
  return error instanceof Error && /^Request failed after \d+ retries: .*Retryable HTTP status: 5\d\d/.test(error.message);
}
