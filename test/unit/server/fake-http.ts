/** In-memory HttpRequest/HttpResponse for unit tests of handlers and routes. */
import type { HttpRequest, HttpResponse } from "../../../server/transport/types.ts";

export function fakeRequest(method: string, path: string, headers: Record<string, string> = {}, body = ""): HttpRequest {
  const [pathname = "/", search = ""] = path.split("?");
  const lowered = Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]));
  return {
    method,
    path: pathname,
    query: new URLSearchParams(search),
    headers: lowered,
    remoteAddress: "127.0.0.1",
    secure: false,
    body: async () => Buffer.from(body),
    bodyStream: async function* () {
      yield Buffer.from(body);
    },
  };
}

export interface FakeResponse extends HttpResponse {
  readonly statusCode: number;
  /** Header names lower-cased. */
  readonly headers: Record<string, string>;
  readonly ended: boolean;
  text(): string;
  json(): unknown;
}

export function fakeResponse(): FakeResponse {
  const chunks: Buffer[] = [];
  const headers: Record<string, string> = {};
  let statusCode = 200;
  let started = false;
  let ended = false;
  const response: FakeResponse = {
    status(code) {
      if (!started) statusCode = code;
      return this;
    },
    header(name, value) {
      if (!started) headers[name.toLowerCase()] = value;
      return this;
    },
    write(chunk) {
      started = true;
      chunks.push(Buffer.from(chunk));
      return true;
    },
    drained: async () => {},
    end(chunk) {
      if (chunk !== undefined) chunks.push(Buffer.from(chunk));
      started = true;
      ended = true;
    },
    onAborted: () => {},
    aborted: false,
    get headersSent() {
      return started;
    },
    get statusCode() {
      return statusCode;
    },
    headers,
    get ended() {
      return ended;
    },
    text: () => Buffer.concat(chunks).toString("utf8"),
    json: () => JSON.parse(Buffer.concat(chunks).toString("utf8")),
  };
  return response;
}
