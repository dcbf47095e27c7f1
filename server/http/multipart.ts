import type { Readable } from "node:stream";
import busboy from "busboy";
import type { HttpRequest } from "../transport/types.ts";

export interface MultipartFile {
  field: string;
  /** As the client sent it, path kept (preservePath); sanitise before use. */
  filename: string;
  mimeType: string;
  stream: Readable & { truncated?: boolean };
}

export interface MultipartHandlers {
  /** Consume the file's stream (it must be read to the end, or the parse stalls). */
  file(file: MultipartFile): Promise<void>;
  field(name: string, value: string): void;
}

export interface MultipartLimits {
  /** Bytes per file; a longer file is cut here and its stream's `truncated` is true. */
  fileBytes: number;
  files: number;
}

/** The body is not multipart/form-data ("not_multipart"), or is malformed or cut short ("malformed"). */
export class MultipartError extends Error {
  constructor(
    readonly kind: "not_multipart" | "malformed",
    message: string,
  ) {
    super(message);
  }
}

/**
 * Parse a multipart/form-data body as a stream (busboy), feeding it from the
 * transport with backpressure: no part is ever held whole in memory. Resolves
 * once every part has been handled; `tooManyFiles` when files past
 * `limits.files` were skipped.
 */
export async function readMultipart(req: HttpRequest, handlers: MultipartHandlers, limits: MultipartLimits): Promise<{ tooManyFiles: boolean }> {
  const contentType = req.headers["content-type"] ?? "";
  if (!/^multipart\/form-data\s*;/i.test(contentType)) throw new MultipartError("not_multipart", "expected a multipart/form-data body");
  let parser: busboy.Busboy;
  try {
    parser = busboy({
      headers: { "content-type": contentType },
      preservePath: true,
      // Clients (browsers, form-data, undici) send UTF-8 file names as raw bytes; busboy's default would read them as latin1.
      defParamCharset: "utf8",
      limits: { fileSize: limits.fileBytes, files: limits.files, fields: 200, fieldSize: 64 * 1024, parts: limits.files + 200 },
    });
  } catch (error) {
    throw new MultipartError("malformed", (error as Error).message);
  }
  const tasks: Promise<void>[] = [];
  let failure: Error | undefined;
  const finished = new Promise<void>((resolve, reject) => {
    parser.on("close", resolve);
    parser.on("error", (error: Error) => reject(new MultipartError("malformed", `malformed multipart body: ${error.message}`)));
  });
  finished.catch(() => {}); // observed below; keep an early rejection from being reported as unhandled
  parser.on("file", (field, stream, info) => {
    const task = handlers.file({ field, filename: info.filename ?? "", mimeType: info.mimeType, stream }).catch((error: Error) => {
      failure ??= error;
      stream.resume(); // keep the parse going so the body is consumed
    });
    tasks.push(task);
  });
  parser.on("field", (name, value) => handlers.field(name, value));
  let tooManyFiles = false;
  parser.on("filesLimit", () => {
    tooManyFiles = true;
  });

  try {
    for await (const chunk of req.bodyStream()) {
      if (!parser.write(chunk)) {
        await Promise.race([new Promise((resolve) => parser.once("drain", resolve)), finished]);
      }
    }
    parser.end();
    await finished;
  } catch (error) {
    // The client went away or the body is malformed: end the part being read (its handler
    // then fails and cleans up) and let every handler finish before the caller cleans up.
    parser.destroy(error as Error);
    await Promise.allSettled(tasks);
    throw error;
  }
  await Promise.all(tasks);
  if (failure) throw failure;
  return { tooManyFiles };
}
