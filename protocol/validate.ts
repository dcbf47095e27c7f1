import * as v from "valibot";

export type Parsed<T> = { ok: true; value: T } | { ok: false; message: string };

/** Validate `input` against `schema`, turning valibot issues into one readable message. */
export function parseWith<S extends v.GenericSchema>(schema: S, input: unknown): Parsed<v.InferOutput<S>> {
  const result = v.safeParse(schema, input);
  if (result.success) return { ok: true, value: result.output };
  return { ok: false, message: describeIssues(result.issues) };
}

export function describeIssues(issues: readonly v.BaseIssue<unknown>[]): string {
  return issues
    .slice(0, 5)
    .map((issue) => {
      const path = v.getDotPath(issue);
      return path ? `${path}: ${issue.message}` : issue.message;
    })
    .join("; ");
}

/** Parse a JSON text frame and validate it; never throws. */
export function parseJsonFrame<S extends v.GenericSchema>(schema: S, text: string): Parsed<v.InferOutput<S>> {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return { ok: false, message: "frame is not valid JSON" };
  }
  return parseWith(schema, data);
}
