import type { FileRef } from "../../protocol/index.ts";
import type { AdmissionError } from "../sessions/admission.ts";
import type { ExecObserver, ExitFrameBody } from "../sessions/session.ts";

/** The body of a 200 from POST /exec. */
export interface ExecResponseBody {
  session_id: string;
  stdout: string;
  stderr: string;
  files: FileRef[];
}

/** What the caller reads on stderr when the run did not end by itself. */
function reasonNote(exit: ExitFrameBody, limits: { wallTimeMs: number; memoryBytes: number; outputBytes: number }): string | undefined {
  switch (exit.reason) {
    case "timeout":
      return `Execution timed out after ${Math.round(exit.wallMs / 100) / 10} s (limit ${limits.wallTimeMs / 1000} s)`;
    case "memory":
      return `Execution was killed: out of memory (limit ${Math.round(limits.memoryBytes / 1048576)} MB)`;
    case "output_limit":
      return `Output truncated: more than ${limits.outputBytes} bytes`;
    case "signaled":
      return `Execution was killed by ${exit.signal ?? "a signal"}`;
    case "killed":
      return "Execution was stopped";
    case "sandbox_lost":
      return "Execution failed: the sandbox was lost";
    case "server_restart":
      return "Execution was stopped: the server is restarting; run it again";
    case "internal":
      return "Execution failed: internal error";
    default:
      return undefined;
  }
}

/**
 * Collects one exec's output for an HTTP response: stdout and stderr as text
 * (bytes that are not UTF-8 become U+FFFD), and the exit, with a note on
 * stderr when the run was cut short.
 */
export class ExecCollector implements ExecObserver {
  readonly #stdout: string[] = [];
  readonly #stderr: string[] = [];
  readonly done: Promise<ExitFrameBody>;
  /** Set when the exec could not start for lack of capacity: the route answers 429/503 instead of a result. */
  refusal: AdmissionError | undefined;
  #resolve!: (exit: ExitFrameBody) => void;

  constructor() {
    this.done = new Promise((resolve) => {
      this.#resolve = resolve;
    });
  }

  out(stream: "stdout" | "stderr", data: string, encoding?: "base64"): void {
    const text = encoding === "base64" ? Buffer.from(data, "base64").toString("utf8") : data;
    (stream === "stdout" ? this.#stdout : this.#stderr).push(text);
  }

  exit(frame: ExitFrameBody): void {
    this.#resolve(frame);
  }

  refused(error: AdmissionError): void {
    this.refusal = error;
  }

  body(sessionId: string, exit: ExitFrameBody, limits: { wallTimeMs: number; memoryBytes: number; outputBytes: number }): ExecResponseBody {
    let stdout = this.#stdout.join("");
    if (stdout !== "" && !stdout.endsWith("\n")) stdout += "\n";
    let stderr = this.#stderr.join("");
    const note = reasonNote(exit, limits);
    if (note) stderr += `${stderr === "" || stderr.endsWith("\n") ? "" : "\n"}${note}\n`;
    return { session_id: sessionId, stdout, stderr, files: exit.files };
  }
}
