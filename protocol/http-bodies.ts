import * as v from "valibot";
import { EntityIdSchema, FileInputSchema, SessionIdSchema, UserIdSchema } from "./common.ts";

/**
 * JSON bodies of the HTTP compatibility layer (HTTP-API.md). Unknown fields are
 * ignored, never rejected (valibot's `object` drops them).
 */

/** `args` may be any JSON: a string becomes [s], an array its items as strings, anything else [String(x)]. */
export function normalizeArgs(args: unknown): string[] | undefined {
  if (args === undefined || args === null) return undefined;
  if (typeof args === "string") return [args];
  if (Array.isArray(args)) return args.map((item) => (typeof item === "string" ? item : JSON.stringify(item)));
  return [typeof args === "object" ? JSON.stringify(args) : String(args)];
}

export const MIN_HTTP_TIMEOUT_MS = 1000;
export const MAX_HTTP_TIMEOUT_MS = 300_000;

export const ExecRequestSchema = v.object({
  code: v.string(),
  lang: v.pipe(v.string(), v.minLength(1), v.maxLength(16)),
  args: v.optional(v.unknown()),
  session_id: v.optional(v.nullable(SessionIdSchema)),
  user_id: v.optional(v.nullable(UserIdSchema)),
  entity_id: v.optional(v.nullable(EntityIdSchema)),
  files: v.optional(v.nullable(v.pipe(v.array(FileInputSchema), v.maxLength(1000)))),
  timeout: v.optional(v.nullable(v.pipe(v.number(), v.integer(), v.minValue(MIN_HTTP_TIMEOUT_MS), v.maxValue(MAX_HTTP_TIMEOUT_MS)))),
});
export type ExecRequestBody = v.InferOutput<typeof ExecRequestSchema>;

/** One validation problem, as the `details` of the error body carry it. */
export interface FieldIssue {
  field: string;
  message: string;
  code: string;
}

/** valibot issues as `details` entries: `code` is "missing" for an absent field, else the failed check ("type", "min_value", "regex"...). */
export function fieldIssues(issues: readonly v.BaseIssue<unknown>[]): FieldIssue[] {
  return issues.slice(0, 20).map((issue) => ({
    field: v.getDotPath(issue) ?? "(body)",
    message: issue.message,
    code: issue.input === undefined && issue.kind === "schema" ? "missing" : issue.type,
  }));
}
