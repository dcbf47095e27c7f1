/**
 * Programmatic tool calling: the names declared tools take inside a program.
 * Python: as the LibreChat client writes them (its normalizePythonFunctionName),
 * so that the code the model wrote calls what we define.
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

export type ProgramTools = { ok: true; tools: Array<{ name: string; py: string }> } | { ok: false; index: number; message: string };

/** Each declared tool with its name in the program; the first name that cannot be one, or that two tools would share, is an error. */
export function programTools(declared: ReadonlyArray<{ name: string }>): ProgramTools {
  const tools: Array<{ name: string; py: string }> = [];
  const seen = new Map<string, string>();
  for (const [index, tool] of declared.entries()) {
    const py = pythonToolName(tool.name);
    const clash = py ? seen.get(py) : undefined;
    if (!py || clash !== undefined) {
      const message = py
        ? `Tools "${clash}" and "${tool.name}" both become the Python function ${py}`
        : `Tool name "${tool.name}" cannot become a Python identifier`;
      return { ok: false, index, message };
    }
    seen.set(py, tool.name);
    tools.push({ name: tool.name, py });
  }
  return { ok: true, tools };
}
