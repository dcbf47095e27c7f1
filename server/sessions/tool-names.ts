/**
 * Programmatic tool calling: the names declared tools take inside a program,
 * as the LibreChat client writes them (its normalizePythonFunctionName and
 * normalizeToBashIdentifier), so that the code the model wrote calls what we
 * define.
 */

const PYTHON_KEYWORDS = new Set(
  "False None True and as assert async await break class continue def del elif else except finally for from global if import in is lambda nonlocal not or pass raise return try while with yield match case type _".split(
    " ",
  ),
);

/** A tool name as a Python function name; null when none can be made. */
export function pythonToolName(name: string): string | null {
  let py = name.replace(/[-\s]/g, "_").replace(/[^A-Za-z0-9_]/g, "");
  if (py === "" || /^_+$/.test(py)) return null;
  if (/^[0-9]/.test(py)) py = `_${py}`;
  if (PYTHON_KEYWORDS.has(py)) py = `${py}_tool`;
  return py;
}

const BASH_RESERVED = new Set(
  "if then else elif fi case esac for while until do done in function select time coproc declare typeset local readonly export unset".split(" "),
);

/** A tool name as a bash function name; null when none can be made. */
export function bashToolName(name: string): string | null {
  let fn = name.replace(/[-\s.]/g, "_").replace(/[^A-Za-z0-9_]/g, "");
  if (fn === "" || /^_+$/.test(fn)) return null;
  if (/^[0-9]/.test(fn)) fn = `_${fn}`;
  if (BASH_RESERVED.has(fn)) fn = `${fn}_tool`;
  // Names of the bridge itself stay ours.
  if (fn.startsWith("__ci_")) fn = `tool${fn}`;
  return fn;
}

/** The languages whose programs can call tools. */
export const TOOL_LANGUAGES: ReadonlySet<string> = new Set(["py", "bash"]);

export type ProgramTools = { ok: true; tools: Array<{ name: string; py: string }> } | { ok: false; index: number; message: string };

/**
 * Each declared tool with its name in the program (`py`: the Python function
 * or the bash function); the first name that cannot be one, or that two tools
 * would share, is an error.
 */
export function programTools(declared: ReadonlyArray<{ name: string }>, lang: "py" | "bash" = "py"): ProgramTools {
  const tools: Array<{ name: string; py: string }> = [];
  const seen = new Map<string, string>();
  const what = lang === "py" ? "Python" : "bash";
  for (const [index, tool] of declared.entries()) {
    const py = lang === "py" ? pythonToolName(tool.name) : bashToolName(tool.name);
    const clash = py ? seen.get(py) : undefined;
    if (!py || clash !== undefined) {
      const message = py
        ? `Tools "${clash}" and "${tool.name}" both become the ${what} function ${py}`
        : `Tool name "${tool.name}" cannot become a ${what} function name`;
      return { ok: false, index, message };
    }
    seen.set(py, tool.name);
    tools.push({ name: tool.name, py });
  }
  return { ok: true, tools };
}
