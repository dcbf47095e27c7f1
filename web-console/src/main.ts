import type { ExitFrame, ServerFrame } from "../../protocol/index.ts";
import { api } from "./api.ts";
import { type LinkStatus, SessionLink } from "./connection.ts";
import { createEditor, SAMPLES } from "./editor.ts";
import { FilesPanel } from "./files.ts";
import { startOperator } from "./operator.ts";
import { createTerminal } from "./terminal.ts";
import "./style.css";

const KEY_STORAGE = "ci.apiKey";
const THEME_STORAGE = "ci.theme";
/** Stop sends SIGINT first (Python prints its KeyboardInterrupt), then SIGKILL if the program ignores it. */
const KILL_AFTER_MS = 2_000;

const el = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

// --- theme: the system's choice unless the user picked one
const prefersDark = matchMedia("(prefers-color-scheme: dark)").matches;
let dark = (localStorage.getItem(THEME_STORAGE) ?? (prefersDark ? "dark" : "light")) === "dark";

// --- state of the console view
let link: SessionLink | undefined;
let running: string | undefined;
let killTimer: ReturnType<typeof setTimeout> | undefined;
let execCounter = 0;
let stopOperator: (() => void) | undefined;
const apiKey = () => localStorage.getItem(KEY_STORAGE) ?? "";

const terminal = createTerminal(el("terminal"), {
  line: (data) => {
    if (running) link?.send({ type: "stdin", id: running, data });
  },
  eof: () => {
    if (running) link?.send({ type: "stdin", id: running, eof: true });
  },
  interrupt: () => stop(),
});
const editor = createEditor(el("editor"), () => run());
const files = new FilesPanel(
  el<HTMLUListElement>("file-list"),
  el<HTMLProgressElement>("upload-progress"),
  apiKey,
  () => link?.sessionId,
  (message) => terminal.note(message),
);

function applyTheme(): void {
  document.documentElement.dataset.theme = dark ? "dark" : "light";
  editor.setDark(dark);
  terminal.setDark(dark);
}

function setStatus(status: LinkStatus, detail?: string): void {
  const badge = el("status");
  badge.textContent = detail ? `${status}: ${detail}` : status;
  badge.dataset.status = status;
}

function setRunning(id: string | undefined): void {
  running = id;
  el<HTMLButtonElement>("run").disabled = id !== undefined;
  el<HTMLButtonElement>("stop").disabled = id === undefined;
  if (id === undefined) clearTimeout(killTimer);
}

function describeExit(exit: ExitFrame): string {
  const parts = [`exit ${exit.code ?? "-"}`, exit.reason];
  if (exit.signal) parts.push(exit.signal);
  parts.push(`wall ${exit.wallMs} ms`);
  if (exit.cpuMs !== undefined) parts.push(`cpu ${exit.cpuMs} ms`);
  if (exit.memBytes !== undefined) parts.push(`mem ${(exit.memBytes / 1048576).toFixed(1)} MiB`);
  if (exit.truncated) parts.push("output truncated");
  return parts.join(" · ");
}

function onFrame(frame: ServerFrame): void {
  switch (frame.type) {
    case "session.ready":
      el("session-id").textContent = frame.sessionId;
      void files.refresh().catch(() => undefined);
      return;
    case "exec.start":
      setRunning(frame.id);
      el("exit-status").textContent = "running…";
      return;
    case "exec.stage":
      el("exit-status").textContent = `${frame.stage}…`;
      return;
    case "out":
      terminal.write(frame.stream, frame.encoding === "base64" ? atob(frame.data) : frame.data);
      return;
    case "display": {
      const img = document.createElement("img");
      img.src = `data:${frame.mime};base64,${frame.data}`;
      img.alt = frame.name ?? "program output";
      el("displays").append(img);
      return;
    }
    case "exit": {
      setRunning(undefined);
      const status = el("exit-status");
      status.textContent = describeExit(frame);
      status.dataset.reason = frame.reason;
      void files.refresh().catch(() => undefined);
      return;
    }
    case "error":
      terminal.note(`error ${frame.code}: ${frame.message}`);
      if (frame.id && frame.id === running) setRunning(undefined);
      return;
    default:
      return;
  }
}

function connect(sessionId?: string): void {
  link?.close();
  el("session-id").textContent = "-";
  link = new SessionLink({ apiKey: apiKey(), ...(sessionId ? { sessionId } : {}), onFrame, onStatus: setStatus });
}

function run(): void {
  if (!link || running) return;
  const code = editor.code();
  if (!code.trim()) return;
  const lang = el<HTMLSelectElement>("lang").value;
  const id = `run-${Date.now().toString(36)}-${++execCounter}`;
  terminal.clear();
  el("displays").replaceChildren();
  el("exit-status").textContent = "starting…";
  delete el("exit-status").dataset.reason;
  const sent = link.send({ type: "exec", id, lang, code, stdin: true, files: files.execFiles() });
  if (!sent) el("exit-status").textContent = "not connected";
  else terminal.term.focus();
}

function stop(): void {
  const id = running;
  if (!id || !link) return;
  link.send({ type: "signal", id, signal: "SIGINT" });
  clearTimeout(killTimer);
  killTimer = setTimeout(() => {
    if (running === id) link?.send({ type: "signal", id, signal: "SIGKILL" });
  }, KILL_AFTER_MS);
}

async function loadLanguages(): Promise<void> {
  const langs = await api<{ code: string; name: string; available: boolean; version: string | null }[]>(apiKey(), "GET", "/languages");
  const select = el<HTMLSelectElement>("lang");
  select.replaceChildren(
    ...langs
      .filter((l) => l.available)
      .map((l) => {
        const option = document.createElement("option");
        option.value = l.code;
        option.textContent = `${l.name}${l.version ? ` (${l.version.slice(0, 30)})` : ""}`;
        return option;
      }),
  );
  if (Array.from(select.options).some((o) => o.value === "py")) select.value = "py";
  editor.setLanguage(select.value);
  if (!editor.code()) editor.setCode(SAMPLES[select.value] ?? "");
}

function showView(operator: boolean): void {
  el("console-view").hidden = operator;
  el("operator-view").hidden = !operator;
  el("tab-console").setAttribute("aria-pressed", String(!operator));
  el("tab-operator").setAttribute("aria-pressed", String(operator));
  if (operator && !stopOperator && apiKey()) stopOperator = startOperator(apiKey(), el);
  if (!operator) {
    stopOperator?.();
    stopOperator = undefined;
  }
  if (location.hash !== (operator ? "#operator" : "")) history.replaceState(null, "", operator ? "#operator" : location.pathname);
}

function start(): void {
  el("key-form").hidden = true;
  void loadLanguages().catch((e: Error) => terminal.note(`languages: ${e.message}`));
  showView(location.hash === "#operator");
  if (!el("console-view").hidden) connect();
}

// --- wiring
el("run").onclick = run;
el("stop").onclick = stop;
el<HTMLSelectElement>("lang").onchange = () => {
  const lang = el<HTMLSelectElement>("lang").value;
  editor.setLanguage(lang);
  // Swap the sample only while the editor still holds an untouched one.
  if (Object.values(SAMPLES).includes(editor.code()) || !editor.code().trim()) editor.setCode(SAMPLES[lang] ?? "");
};
el("new-session").onclick = () => connect();
el("attach").onclick = () => {
  const id = el<HTMLInputElement>("attach-id").value.trim();
  if (id) connect(id);
};
el("copy-id").onclick = () => {
  if (link?.sessionId) void navigator.clipboard?.writeText(link.sessionId);
};
el("forget-key").onclick = () => {
  link?.close();
  localStorage.removeItem(KEY_STORAGE);
  el("key-form").hidden = false;
  el("api-key").focus();
};
el<HTMLInputElement>("upload").onchange = (event) => {
  const input = event.target as HTMLInputElement;
  if (input.files?.length) void files.upload(input.files).catch((e: Error) => terminal.note(e.message));
  input.value = "";
};
el("theme").onclick = () => {
  dark = !dark;
  localStorage.setItem(THEME_STORAGE, dark ? "dark" : "light");
  applyTheme();
};
el("tab-console").onclick = () => {
  showView(false);
  if (!link && apiKey()) connect();
};
el("tab-operator").onclick = () => showView(true);
el<HTMLFormElement>("key-form").onsubmit = (event) => {
  event.preventDefault();
  localStorage.setItem(KEY_STORAGE, el<HTMLInputElement>("api-key").value.trim());
  start();
};

// A hook for the browser tests: read what the terminal showed, drop the socket as a network blip would.
Object.assign(window, {
  __console: {
    transcript: () => terminal.transcript(),
    dropSocket: () => link?.dropSocket(),
    sessionId: () => link?.sessionId,
    setCode: (code: string) => editor.setCode(code),
  },
});

applyTheme();
if (apiKey()) start();
else {
  el("key-form").hidden = false;
  el("api-key").focus();
}
