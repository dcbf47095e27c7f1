import { cpp } from "@codemirror/lang-cpp";
import { go } from "@codemirror/lang-go";
import { java } from "@codemirror/lang-java";
import { javascript } from "@codemirror/lang-javascript";
import { php } from "@codemirror/lang-php";
import { python } from "@codemirror/lang-python";
import { rust } from "@codemirror/lang-rust";
import { StreamLanguage } from "@codemirror/language";
import { d } from "@codemirror/legacy-modes/mode/d";
import { fortran } from "@codemirror/legacy-modes/mode/fortran";
import { r } from "@codemirror/legacy-modes/mode/r";
import { shell } from "@codemirror/legacy-modes/mode/shell";
import { Compartment, type Extension, Prec } from "@codemirror/state";
import { oneDark } from "@codemirror/theme-one-dark";
import { keymap } from "@codemirror/view";
import { basicSetup, EditorView } from "codemirror";

/** Highlighting per language code of protocol/languages.ts. */
function highlighting(lang: string): Extension {
  switch (lang) {
    case "py":
      return python();
    case "js":
      return javascript();
    case "ts":
      return javascript({ typescript: true });
    case "c":
    case "cpp":
      return cpp();
    case "java":
      return java();
    case "go":
      return go();
    case "php":
      return php({ plain: true });
    case "rs":
      return rust();
    case "r":
      return StreamLanguage.define(r);
    case "f90":
      return StreamLanguage.define(fortran);
    case "d":
      return StreamLanguage.define(d);
    case "bash":
      return StreamLanguage.define(shell);
    default:
      return [];
  }
}

export interface CodeEditor {
  view: EditorView;
  code(): string;
  setCode(code: string): void;
  setLanguage(lang: string): void;
  setDark(dark: boolean): void;
}

export function createEditor(parent: HTMLElement, onRun: () => void): CodeEditor {
  const language = new Compartment();
  const theme = new Compartment();
  const view = new EditorView({
    parent,
    doc: "",
    extensions: [
      // Ctrl/Cmd+Enter runs, ahead of basicSetup's own Enter bindings.
      Prec.highest(
        keymap.of([
          {
            key: "Mod-Enter",
            run: () => {
              onRun();
              return true;
            },
          },
        ]),
      ),
      basicSetup,
      language.of(highlighting("py")),
      theme.of([]),
      EditorView.contentAttributes.of({ "aria-label": "Code" }),
    ],
  });
  return {
    view,
    code: () => view.state.doc.toString(),
    setCode: (code) => view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: code } }),
    setLanguage: (lang) => view.dispatch({ effects: language.reconfigure(highlighting(lang)) }),
    setDark: (dark) => view.dispatch({ effects: theme.reconfigure(dark ? oneDark : []) }),
  };
}

/** A first program per language: something that runs as it is. */
export const SAMPLES: Record<string, string> = {
  py: 'import time\nfor i in range(3):\n    print(f"line {i}", flush=True)\n    time.sleep(0.5)\nname = input("your name? ")\nprint(f"hello {name}")\n',
  js: 'console.log("hello from", process.version);\n',
  ts: 'const n: number = 55;\nconsole.log("sum(1..10)=" + n);\n',
  bash: 'echo "hello from $BASH_VERSION"\n',
  c: '#include <stdio.h>\nint main(void) { puts("hello from C"); return 0; }\n',
  cpp: '#include <iostream>\nint main() { std::cout << "hello from C++" << std::endl; }\n',
  go: 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello from Go") }\n',
  java: 'public class Code {\n  public static void main(String[] args) { System.out.println("hello from Java"); }\n}\n',
  rs: 'fn main() { println!("hello from Rust"); }\n',
  php: '<?php echo "hello from PHP\\n";\n',
  r: 'cat("hello from R\\n")\n',
  f90: 'program hello\n  print *, "hello from Fortran"\nend program hello\n',
  d: 'import std.stdio;\nvoid main() { writeln("hello from D"); }\n',
};
