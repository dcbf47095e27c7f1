/**
 * Streaming an upload of unknown length into one S3 object, with a size limit.
 *
 * S3 wants a length with every PUT, and minio's putObject reads a stream whole
 * into memory when its size is unknown or under 64 MiB. So bodies are cut here:
 * up to one part they go as a single PUT; past that as a multipart upload, one
 * part sent while the next one fills (at most two parts in memory). Past the
 * limit the multipart upload is aborted: S3 then holds nothing of it, and no
 * object ever appeared under the key (parts are invisible until completed).
 */
import { createHash } from "node:crypto";
import type { Client } from "minio";
import { FileTooLargeError } from "./file-store.ts";

/** S3's smallest part (but the last). */
export const MIN_PART_BYTES = 5 * 1024 * 1024;
export const DEFAULT_PART_BYTES = 8 * 1024 * 1024;

export interface UploadTarget {
  client: Client;
  bucket: string;
  key: string;
  contentType: string;
  partBytes: number;
  /** An abort that failed (S3 went away): its parts stay until a bucket lifecycle rule removes them. */
  onAbortFailed?: (error: unknown, uploadId: string) => void;
}

export interface UploadResult {
  size: number;
  /** Hex MD5 of the content (S3's ETag is not one for multipart objects). */
  md5: string;
}

export async function uploadBody(target: UploadTarget, body: AsyncIterable<Uint8Array> | Uint8Array, limitBytes: number): Promise<UploadResult> {
  if (body instanceof Uint8Array && body.length > limitBytes) throw new FileTooLargeError(limitBytes);
  // A whole buffer is cut into parts by reference; a stream's chunks are copied (its producer may reuse them).
  const chunks = body instanceof Uint8Array ? slices(body, target.partBytes) : copies(body);
  const hash = createHash("md5");
  let size = 0;
  let filling: Buffer[] = [];
  let filled = 0;
  let multipart: MultipartUpload | undefined;
  try {
    for await (const chunk of chunks) {
      size += chunk.length;
      if (size > limitBytes) throw new FileTooLargeError(limitBytes);
      hash.update(chunk);
      filling.push(chunk);
      filled += chunk.length;
      // Strictly more than a part: the last part then always has bytes, even at an exact multiple.
      while (filled > target.partBytes) {
        const joined = filling.length === 1 ? filling[0]! : Buffer.concat(filling, filled);
        filling = [joined.subarray(target.partBytes)];
        filled = joined.length - target.partBytes;
        multipart ??= await MultipartUpload.start(target);
        await multipart.send(joined.subarray(0, target.partBytes));
      }
    }
    const rest = filling.length === 1 ? filling[0]! : Buffer.concat(filling, filled);
    if (multipart) {
      await multipart.send(rest);
      await multipart.complete();
    } else {
      await putSingle(target, rest);
    }
  } catch (error) {
    await multipart?.abort();
    throw error;
  }
  return { size, md5: hash.digest("hex") };
}

function* slices(body: Uint8Array, partBytes: number): Generator<Buffer> {
  const buffer = Buffer.from(body.buffer, body.byteOffset, body.length);
  if (buffer.length === 0) yield buffer;
  for (let offset = 0; offset < buffer.length; offset += partBytes) yield buffer.subarray(offset, offset + partBytes);
}

async function* copies(body: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of body) yield Buffer.from(chunk);
  } catch (error) {
    if (typeof error === "object" && error !== null) bodyErrors.add(error);
    throw error;
  }
}

/** Errors of the caller's body (a client that went away...), which must reach the caller as they are, not as S3 trouble. */
const bodyErrors = new WeakSet<object>();

export function isBodyError(error: unknown): boolean {
  return typeof error === "object" && error !== null && bodyErrors.has(error);
}

async function putSingle(target: UploadTarget, buffer: Buffer): Promise<void> {
  await target.client.putObject(target.bucket, target.key, buffer, buffer.length, { "Content-Type": target.contentType });
}

class MultipartUpload {
  readonly #target: UploadTarget;
  readonly #uploadId: string;
  readonly #parts: { part: number; etag: string }[] = [];
  #inFlight: Promise<void> | undefined;

  private constructor(target: UploadTarget, uploadId: string) {
    this.#target = target;
    this.#uploadId = uploadId;
  }

  static async start(target: UploadTarget): Promise<MultipartUpload> {
    const uploadId = await target.client.initiateNewMultipartUpload(target.bucket, target.key, { "Content-Type": target.contentType });
    return new MultipartUpload(target, uploadId);
  }

  /** Waits for the previous part, then starts this one without waiting for it (reading goes on meanwhile). */
  async send(part: Buffer): Promise<void> {
    await this.#inFlight;
    const number = this.#parts.length + 1;
    const sending = this.#target.client
      .uploadPart(
        {
          bucketName: this.#target.bucket,
          objectName: this.#target.key,
          uploadID: this.#uploadId,
          partNumber: number,
          headers: { "Content-MD5": md5Base64(part) },
        },
        part,
      )
      .then(({ etag }) => {
        this.#parts[number - 1] = { part: number, etag };
      });
    // Handled here so that a part failing while the next one fills is not an unhandled rejection; awaited below.
    sending.catch(() => {});
    this.#inFlight = sending;
  }

  async complete(): Promise<void> {
    await this.#inFlight;
    await this.#target.client.completeMultipartUpload(this.#target.bucket, this.#target.key, this.#uploadId, this.#parts);
  }

  async abort(): Promise<void> {
    await this.#inFlight?.catch(() => {});
    try {
      await this.#target.client.abortMultipartUpload(this.#target.bucket, this.#target.key, this.#uploadId);
    } catch (error) {
      this.#target.onAbortFailed?.(error, this.#uploadId);
    }
  }
}

function md5Base64(data: Buffer): string {
  return createHash("md5").update(data).digest("base64");
}
