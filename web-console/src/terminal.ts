import { FitAddon } from "@xterm/addon-fit";
import { Terminal } from "@xterm/xterm";
import "@xterm/xterm/css/xterm.css";

const STDERR_COLOUR = "\x1b[31m";
const RESET = "\x1b[0m";
const LIGHT = { background: "#fbfbfb", foreground: "#1e1e1e", cursor: "#1e1e1e", selectionBackground: "#c8d7f0" };
const DARK = { background: "#16181d", foreground: "#d7dae0", cursor: "#d7dae0", selectionBackground: "#3a4660" };

export interface OutputTerminal {
  term: Terminal;
  /** Program output: stderr in red, ANSI colours of the program kept. */
  write(stream: "stdout" | "stderr", data: string): void;
  /** A console note (status lines), dimmed. */
  note(text: string): void;
  clear(): void;
  setDark(dark: boolean): void;
  /** Everything written, as plain text (the browser tests read it). */
  transcript(): string;
}

/**
 * The output pane, and the program's stdin: the sandbox has no terminal, so
 * the console does the line discipline itself (echo, backspace, Enter sends
 * the line, Ctrl+D sends EOF, Ctrl+C interrupts).
 */
export function createTerminal(parent: HTMLElement, input: { line(text: string): void; eof(): void; interrupt(): void }): OutputTerminal {
  const term = new Terminal({ convertEol: true, fontSize: 13, scrollback: 5000, theme: LIGHT, fontFamily: "ui-monospace, Menlo, Consolas, monospace" });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(parent);
  new ResizeObserver(() => fit.fit()).observe(parent);
  let pending = "";
  let text = "";
  term.onData((data) => {
    for (const ch of data) {
      if (ch === "\r") {
        term.write("\r\n");
        input.line(`${pending}\n`);
        pending = "";
      } else if (ch === "\x7f") {
        if (pending.length > 0) {
          pending = pending.slice(0, -1);
          term.write("\b \b");
        }
      } else if (ch === "\x04") {
        if (pending) input.line(pending);
        pending = "";
        input.eof();
      } else if (ch === "\x03") {
        input.interrupt();
      } else if (ch >= " ") {
        pending += ch;
        term.write(ch);
      }
    }
  });
  return {
    term,
    write(stream, data) {
      text += data;
      term.write(stream === "stderr" ? `${STDERR_COLOUR}${data}${RESET}` : data);
    },
    note(line) {
      text += `${line}\n`;
      term.write(`\x1b[2m${line}${RESET}\r\n`);
    },
    clear() {
      term.reset();
      text = "";
      pending = "";
    },
    setDark: (dark) => {
      term.options.theme = dark ? DARK : LIGHT;
    },
    transcript: () => text,
  };
}
