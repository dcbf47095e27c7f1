import * as v from "valibot";
import { ExecRequestSchema } from "../../../protocol/http-bodies.ts";
import { type FileRef, findLanguage, ToolDefSchema, type ToolResult, ToolResultSchema } from "../../../protocol/index.ts";
import { randomId } from "../../ids.ts";
import type { ExecPermit } from "../../sessions/admission.ts";
import { type ContinuationStore, LocalContinuationStore, MAX_TOOL_ROUNDS, ProgrammaticRun } from "../../sessions/continuations.ts";
import type { ExitFrameBody } from "../../sessions/session.ts";
import { programTools } from "../../sessions/tool-names.ts";
import { sendError, sendJson } from "../errors.ts";
import { admitExecSession } from "../exec-session.ts";
import { readJsonBody } from "../json-body.ts";
import type { RouteContext, Router } from "../router.ts";
import { type ExecRouteDeps, withKeepAlive } from "./exec.ts";

/**
 * POST /exec/programmatic (issue 8, programmatic tool calling): Python runs in
 * the session's persistent interpreter with each declared tool as an async
 * function; bash gets each tool as a function taking JSON and printing the
 * result (sidecar-agent/bash-tools.ts). A round of tool calls pauses it and answers
 * `tool_call_required` with a continuation token; the follow-up with the token
 * and the results resumes the same exec, on whichever replica it reaches (the
 * token names the session and exec; the replica holding the session resumes
 * it). See docs/LIBRECHAT-CLIENTS.md.
 */
const { entries } = ExecRequestSchema;
export const ProgrammaticRequestSchema = v.object({
  code: v.optional(v.nullable(v.string())),
  lang: v.optional(v.nullable(v.string())),
  tools: v.optional(v.nullable(v.pipe(v.array(ToolDefSchema), v.maxLength(500)))),
  session_id: entries.session_id,
  user_id: entries.user_id,
  entity_id: entries.entity_id,
  files: entries.files,
  timeout: entries.timeout,
  continuation_token: v.optional(v.nullable(v.pipe(v.string(), v.maxLength(200)))),
  tool_results: v.optional(v.nullable(v.pipe(v.array(ToolResultSchema), v.maxLength(1000)))),
});

interface ProgrammaticBody {
  status: "tool_call_required" | "completed" | "error";
  session_id: string;
  continuation_token?: string;
  tool_calls?: Array<{ id: string; name: string; input: unknown }>;
  stdout: string;
  stderr: string;
  files: FileRef[];
  error?: string;
}

export function addProgrammaticRoute(router: Router, deps: ExecRouteDeps, store: ContinuationStore = new LocalContinuationStore(300_000)): ContinuationStore {
  router.add(
    "POST",
    "/exec/programmatic",
    deps.authenticated(async (ctx) => {
      const slot: { permit?: ExecPermit } = {};
      try {
        await handle(ctx, deps, store, slot);
      } finally {
        slot.permit?.release();
      }
    }),
  );
  router.add(
    "POST",
    "/exec/programmatic/cancel",
    deps.authenticated(async (ctx) => {
      const parsed = await readJsonBody(ctx.req, v.object({ request_id: v.pipe(v.string(), v.minLength(1), v.maxLength(200)) }), 64 * 1024);
      if (!parsed.ok) {
        sendError(ctx.res, ctx.requestId, parsed.status, "validation", parsed.message, parsed.details);
        return;
      }
      // Any replica: the request id names the session and exec; the session (local or through its holder) interrupts it.
      const named = await store.findRun(parsed.value.request_id);
      const session = named ? await deps.sessions.get(named.sessionId, ctx.principal!) : undefined;
      // SIGINT, not SIGKILL: the program stops (a paused one after its calls fail), the interpreter and its variables stay.
      // Answered once the holder has taken it: a follow-up sent after this answer finds the run no longer paused.
      if (session && named) await session.signal(named.execId, "SIGINT");
      sendJson(ctx.res, 200, { cancelled: session !== undefined });
    }),
  );
  return store;
}

async function handle(ctx: RouteContext, deps: ExecRouteDeps, store: ContinuationStore, slot: { permit?: ExecPermit }): Promise<void> {
  const { req, res, requestId } = ctx;
  const { sessions } = deps;
  const limits = sessions.limits;
  const parsed = await readJsonBody(req, ProgrammaticRequestSchema, limits.codeBytes * 2 + 4 * 1024 * 1024);
  if (!parsed.ok) {
    if (parsed.status === 413) deps.onRefused("body_too_large", req.remoteAddress);
    sendError(res, requestId, parsed.status, parsed.status === 413 ? "resource_exhausted" : "validation", parsed.message, parsed.details);
    return;
  }
  const body = parsed.value;

  // ---- a follow-up: results for the round the run is paused on
  if (body.continuation_token) {
    const token = body.continuation_token;
    const gone = (message: string) =>
      sendError(res, requestId, 404, "resource_not_found", message, [
        { field: "continuation_token", message: "unknown, expired or used", code: "continuation_not_found" },
      ]);
    const entry = await store.get(token);
    // Another key's token is as unknown as a made-up one (ids do not leak).
    const session = entry ? await sessions.get(entry.sessionId, ctx.principal!) : undefined;
    if (!entry || !session) {
      gone(`Unknown or expired continuation token: the paused run ended or waited more than ${store.pauseMs / 1000} s`);
      return;
    }
    const results: ToolResult[] = body.tool_results ?? [];
    const made = new Set(entry.callIds);
    const unknown = results.find((result) => !made.has(result.call_id));
    if (unknown) {
      sendError(res, requestId, 400, "validation", `Result for a tool call that was not made: ${unknown.call_id}`, [
        { field: "tool_results", message: `expected call ids: ${entry.callIds.join(", ")}`, code: "unknown_call_id" },
      ]);
      return;
    }
    // Checked here, before the token is used up; calls left unanswered get an error result in Session.toolResults.
    if (!(await store.take(token))) {
      gone("This continuation token was used already (one follow-up per token)");
      return;
    }
    const run = new ProgrammaticRun(session, entry.execId, entry.timeoutMs, { stdout: entry.stdout, stderr: entry.stderr });
    // Follow the exec from here first, so that nothing it prints after the results is missed.
    if (!(await session.observe(entry.execId, run)) || (await session.toolResults(entry.execId, results)) !== "resumed") {
      gone("The paused run has ended (expired or stopped); start it again");
      return;
    }
    await answerRound(ctx, deps, store, run, entry.round);
    return;
  }

  // ---- a new run
  const lang = body.lang ?? "py";
  const spec = findLanguage(lang);
  if (spec?.code !== "py" && spec?.code !== "bash") {
    sendError(res, requestId, 400, "validation", `Programmatic tool calling supports lang "py" and "bash" (got "${lang}")`, [
      { field: "lang", message: "supported: py, bash", code: "unsupported_language" },
    ]);
    return;
  }
  if (!deps.availableLanguages().includes(spec.code)) {
    sendError(res, requestId, 400, "validation", `The ${spec.name} toolchain is not installed on this server`, [
      { field: "lang", message: "see GET /languages", code: "language_unavailable" },
    ]);
    return;
  }
  const code = body.code ?? "";
  if (code.trim() === "") {
    sendError(res, requestId, 400, "validation", "Code must not be empty", [{ field: "code", message: "code is empty", code: "empty_code" }]);
    return;
  }
  if (Buffer.byteLength(code) > limits.codeBytes) {
    deps.onRefused("code_too_large", req.remoteAddress);
    sendError(res, requestId, 413, "resource_exhausted", `Code is over the limit of ${limits.codeBytes} bytes`, [
      { field: "code", message: "too large", code: "code_too_large" },
    ]);
    return;
  }
  const declared = programTools(body.tools ?? [], spec.code);
  if (!declared.ok) {
    sendError(res, requestId, 400, "validation", declared.message, [
      { field: `tools[${declared.index}].name`, message: declared.message, code: "invalid_tool_name" },
    ]);
    return;
  }
  const { tools } = declared;

  const admitted = await admitExecSession(ctx, deps, body, slot);
  if (!admitted) return;
  const { session, inputs } = admitted;
  const execId = `ptc-${randomId(12)}`;
  const run = new ProgrammaticRun(session, execId, body.timeout ?? undefined);
  const request = {
    id: execId,
    lang: spec.code,
    code,
    tools,
    ...(body.timeout ? { timeoutMs: body.timeout } : {}),
    inputs,
  };
  const librechatRequestId = req.headers["x-librechat-code-request-id"];
  if (typeof librechatRequestId === "string" && librechatRequestId !== "" && librechatRequestId.length <= 200) {
    await store.nameRun(librechatRequestId, { sessionId: session.id, execId });
  }
  const queueDeadline = Date.now() + 3 * (limits.wallTimeMs + sessions.compileTimeoutMs);
  for (;;) {
    const refusal = await session.startExec(request, run);
    if (!refusal) break;
    if (refusal.code !== "busy" || Date.now() > queueDeadline || res.aborted) {
      const status = refusal.code === "busy" ? 409 : 400;
      sendError(res, requestId, status, status === 409 ? "resource_conflict" : "validation", refusal.message, [
        { field: "session_id", message: refusal.message, code: refusal.code },
      ]);
      return;
    }
    await session.whenIdle();
  }
  await answerRound(ctx, deps, store, run, 0);
}

/** Wait for the run's next round of tool calls (answer tool_call_required) or its end (completed / error). */
async function answerRound(ctx: RouteContext, deps: ExecRouteDeps, store: ContinuationStore, run: ProgrammaticRun, round: number): Promise<void> {
  const { res } = ctx;
  // Nobody will read what comes: stop the run rather than leave it paused or running for nothing.
  res.onAborted(() => {
    if (!run.exited) run.session.signal(run.execId, "SIGINT");
  });
  const event = await withKeepAlive(ctx, run.next(), deps);
  if (res.aborted) return;
  const output = run.output();
  let body: ProgrammaticBody;
  if (event.kind === "calls") {
    if (round + 1 > MAX_TOOL_ROUNDS) {
      run.session.signal(run.execId, "SIGINT");
      body = { status: "error", session_id: run.session.id, ...output, files: [], error: `Too many tool call rounds (limit ${MAX_TOOL_ROUNDS})` };
    } else {
      const continuation = await store.add({
        sessionId: run.session.id,
        execId: run.execId,
        callIds: event.calls.map((call) => call.id),
        round: round + 1,
        ...(run.timeoutMs !== undefined ? { timeoutMs: run.timeoutMs } : {}),
        ...output,
      });
      body = {
        status: "tool_call_required",
        session_id: run.session.id,
        continuation_token: continuation.token,
        tool_calls: event.calls,
        ...output,
        files: [],
      };
    }
  } else if (run.refusal && !res.headersSent) {
    res.header("retry-after", String(run.refusal.retryAfterSeconds));
    sendError(res, ctx.requestId, run.refusal.status, run.refusal.status === 429 ? "rate_limited" : "service_unavailable", run.refusal.message);
    return;
  } else {
    body = finalBody(run, event.exit, output, deps.sessions.limits.wallTimeMs);
  }
  ctx.log.debug({ sessionId: run.session.id, execId: run.execId, status: body.status, round }, "programmatic round");
  if (res.headersSent) res.end(JSON.stringify(body));
  else sendJson(res, 200, body);
}

/** The end of the run: its last output and files; a run cut short is an error with the text the client recognises. */
function finalBody(run: ProgrammaticRun, exit: ExitFrameBody, output: { stdout: string; stderr: string }, wallTimeMs: number): ProgrammaticBody {
  let { stdout, stderr } = output;
  if (stdout !== "" && !stdout.endsWith("\n")) stdout += "\n";
  const base = { session_id: run.session.id, stdout, files: exit.files };
  const error = errorText(exit, Math.min(run.timeoutMs ?? wallTimeMs, wallTimeMs));
  if (!error) return { status: "completed", ...base, stderr };
  if (stderr !== "" && !stderr.endsWith("\n")) stderr += "\n";
  return { status: "error", ...base, stderr: stderr + (exit.reason === "timeout" && stderr.includes("paused run expired") ? "" : `${error}\n`), error };
}

function errorText(exit: ExitFrameBody, limitMs: number): string | undefined {
  switch (exit.reason) {
    case "exited":
      return undefined;
    case "timeout":
      return `Time limit exceeded (${limitMs / 1000} s)`;
    case "memory":
      return "Out of memory";
    case "output_limit":
      return "stdout length exceeded";
    case "signaled":
      return `Sandbox exited with code ${exit.code ?? 1}`;
    default:
      return "Execution failed or timed out";
  }
}
