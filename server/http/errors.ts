import type { HttpResponse } from "../transport/types.ts";

export type ErrorType =
  | "authentication"
  | "authorization"
  | "validation"
  | "resource_not_found"
  | "resource_conflict"
  | "resource_exhausted"
  | "execution_failed"
  | "timeout"
  | "rate_limited"
  | "internal_server"
  | "service_unavailable";

export interface ErrorDetail {
  field: string;
  message: string;
  code: string;
}

/** Send the error body of HTTP-API.md. */
export function sendError(
  res: HttpResponse,
  requestId: string,
  status: number,
  errorType: ErrorType,
  message: string,
  details: ErrorDetail[] | null = null,
): void {
  sendJson(res, status, { error: message, error_type: errorType, details, request_id: requestId, timestamp: new Date().toISOString() });
}

export function sendJson(res: HttpResponse, status: number, body: unknown): void {
  if (res.aborted) return;
  res.status(status).header("content-type", "application/json").end(JSON.stringify(body));
}
