/**
 * A tiny HTTP server that records every request it receives and answers with
 * whatever the test's responder says. Loopback only, OS-chosen port. Used to see
 * exactly what the LibreChat client packages put on the wire (method, path,
 * query, headers, JSON or multipart body) without any real server in the way.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import busboy from "busboy";

export interface RecordedFile {
  field: string;
  filename: string;
  contentType: string;
  data: Buffer;
}

export interface RecordedRequest {
  method: string;
  /** Path without the query string. */
  path: string;
  query: Record<string, string>;
  /** Header names in lower case, as node gives them. */
  headers: IncomingHttpHeaders;
  /** Header names exactly as the client wrote them, in order. */
  rawHeaderNames: string[];
  body: Buffer;
  /** The parsed body when it was JSON. */
  json?: unknown;
  /** The parsed body when it was multipart/form-data. */
  multipart?: { fields: Record<string, string[]>; files: RecordedFile[] };
}

export interface CannedResponse {
  status?: number;
  headers?: Record<string, string>;
  /** Sent as JSON (content-type application/json). */
  json?: unknown;
  /** Sent as is, when json is not given. */
  body?: Buffer | string;
}

export type Responder = (request: RecordedRequest) => CannedResponse | Promise<CannedResponse>;

export interface RecordingServer {
  url: string;
  requests: RecordedRequest[];
  /** Replace the responder (the recorded requests stay). */
  respondWith(responder: Responder): void;
  close(): Promise<void>;
}

function parseMultipart(headers: IncomingHttpHeaders, body: Buffer): Promise<{ fields: Record<string, string[]>; files: RecordedFile[] }> {
  return new Promise((resolve, reject) => {
    const fields: Record<string, string[]> = {};
    const files: RecordedFile[] = [];
    const parser = busboy({ headers, preservePath: true });
    parser.on("field", (name, value) => {
      fields[name] ??= [];
      fields[name].push(value);
    });
    parser.on("file", (field, stream, info) => {
      const chunks: Buffer[] = [];
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("end", () => files.push({ field, filename: info.filename ?? "", contentType: info.mimeType, data: Buffer.concat(chunks) }));
    });
    parser.on("close", () => resolve({ fields, files }));
    parser.on("error", reject);
    parser.end(body);
  });
}

async function record(req: IncomingMessage): Promise<RecordedRequest> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const body = Buffer.concat(chunks);
  const url = new URL(req.url ?? "/", "http://recorder.invalid");
  const rawHeaderNames = req.rawHeaders.filter((_, i) => i % 2 === 0);
  const recorded: RecordedRequest = {
    method: req.method ?? "GET",
    path: url.pathname,
    query: Object.fromEntries(url.searchParams),
    headers: req.headers,
    rawHeaderNames,
    body,
  };
  const type = req.headers["content-type"] ?? "";
  if (type.startsWith("application/json") && body.length > 0) recorded.json = JSON.parse(body.toString("utf8"));
  if (type.startsWith("multipart/form-data")) recorded.multipart = await parseMultipart(req.headers, body);
  return recorded;
}

function send(res: ServerResponse, answer: CannedResponse): void {
  const headers: Record<string, string> = { ...answer.headers };
  let body: Buffer | string = answer.body ?? "";
  if (answer.json !== undefined) {
    body = JSON.stringify(answer.json);
    headers["content-type"] ??= "application/json";
  }
  res.writeHead(answer.status ?? 200, headers);
  res.end(body);
}

/** Start a recording server on 127.0.0.1 and a free port. */
export async function startRecordingServer(responder: Responder = () => ({ status: 404, json: { error: "no canned answer" } })): Promise<RecordingServer> {
  const requests: RecordedRequest[] = [];
  let current = responder;
  const server = createServer((req, res) => {
    record(req)
      .then(async (recorded) => {
        requests.push(recorded);
        send(res, await current(recorded));
      })
      .catch((error: unknown) => send(res, { status: 500, json: { error: String(error) } }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    respondWith(next) {
      current = next;
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
