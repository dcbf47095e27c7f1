import * as v from "valibot";
import { type FieldIssue, fieldIssues } from "../../protocol/http-bodies.ts";
import { BodyTooLargeError, type HttpRequest } from "../transport/types.ts";

export type BodyResult<T> = { ok: true; value: T } | { ok: false; status: 413 | 422; message: string; details: FieldIssue[] | null };

/** Read a JSON body of at most `limitBytes` and validate it: 413 past the limit, 422 for bad JSON or a body that does not validate. */
export async function readJsonBody<S extends v.GenericSchema>(req: HttpRequest, schema: S, limitBytes: number): Promise<BodyResult<v.InferOutput<S>>> {
  let raw: Buffer;
  try {
    raw = await req.body(limitBytes);
  } catch (error) {
    if (error instanceof BodyTooLargeError) return { ok: false, status: 413, message: `request body exceeds ${limitBytes} bytes`, details: null };
    throw error;
  }
  let data: unknown;
  try {
    data = JSON.parse(raw.toString("utf8"));
  } catch {
    return {
      ok: false,
      status: 422,
      message: "request body is not valid JSON",
      details: [{ field: "(body)", message: "not valid JSON", code: "invalid_json" }],
    };
  }
  const result = v.safeParse(schema, data);
  if (result.success) return { ok: true, value: result.output };
  const details = fieldIssues(result.issues);
  return { ok: false, status: 422, message: `invalid request: ${details.map((d) => `${d.field}: ${d.message}`).join("; ")}`, details };
}
