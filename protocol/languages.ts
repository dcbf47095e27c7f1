/**
 * The 13 languages of HTTP-API.md: how each is compiled and run inside a sandbox.
 *
 * Command templates use placeholders the agent fills in:
 *   {src}  the source file (in the exec's private build directory, never /mnt/data)
 *   {dir}  that build directory
 *   {bin}  the compiled program's path
 *   {main} Java's main class (`Code`, or the public class the code declares)
 * Every program runs with /mnt/data as its working directory and the caller's
 * args appended to `run`.
 */
export interface LanguageSpec {
  code: LanguageCode;
  name: string;
  /** Source file name, in the build directory. */
  sourceFile: string;
  /** Compiler command, for compiled languages. */
  compile?: readonly string[];
  run: readonly string[];
  /**
   * How the program gets its source: every language here is file-fed (the
   * source is a file the command names); stdin stays free for the program.
   */
  feed: "file";
  /** Extra environment for compile and run (caches, unbuffered output). */
  env?: Readonly<Record<string, string>>;
  /** stdio is block-buffered when piped: run under `stdbuf -oL -eL` so output streams live. */
  lineBuffer?: boolean;
  /** Command whose first output line names the toolchain version. */
  version: readonly string[];
  /** Debian packages that provide the toolchain. */
  debianPackages: readonly string[];
}

export const LANGUAGE_CODES = ["py", "js", "ts", "go", "java", "c", "cpp", "php", "rs", "r", "f90", "d", "bash"] as const;
export type LanguageCode = (typeof LANGUAGE_CODES)[number];

const table: readonly LanguageSpec[] = [
  {
    code: "py",
    name: "Python",
    sourceFile: "main.py",
    run: ["python3", "-u", "{src}"],
    feed: "file",
    env: { PYTHONUNBUFFERED: "1", PYTHONDONTWRITEBYTECODE: "1", MPLBACKEND: "Agg" },
    version: ["python3", "--version"],
    debianPackages: ["python3"],
  },
  {
    code: "js",
    name: "JavaScript (Node.js)",
    sourceFile: "main.js",
    run: ["node", "{src}"],
    feed: "file",
    version: ["node", "--version"],
    debianPackages: [],
  },
  {
    code: "ts",
    name: "TypeScript",
    sourceFile: "main.ts",
    compile: ["tsc", "--outDir", "{dir}", "--target", "es2020", "--module", "commonjs", "--skipLibCheck", "--types", "node", "{src}"],
    run: ["node", "{dir}/main.js"],
    feed: "file",
    version: ["tsc", "--version"],
    debianPackages: ["node-typescript", "node-types-node"],
  },
  {
    code: "go",
    name: "Go",
    sourceFile: "main.go",
    compile: ["go", "build", "-o", "{bin}", "{src}"],
    run: ["{bin}"],
    feed: "file",
    env: { GOCACHE: "/tmp/.cache/go-build", GOPATH: "/tmp/go", GO111MODULE: "off", GOFLAGS: "-buildvcs=false" },
    version: ["go", "version"],
    debianPackages: ["golang-go"],
  },
  {
    code: "java",
    name: "Java",
    sourceFile: "{main}.java",
    compile: ["javac", "-d", "{dir}", "{src}"],
    run: ["java", "-cp", "{dir}", "{main}"],
    feed: "file",
    env: { JAVA_TOOL_OPTIONS: "-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss8m" },
    version: ["javac", "-version"],
    debianPackages: ["default-jdk-headless"],
  },
  {
    code: "c",
    name: "C",
    sourceFile: "main.c",
    compile: ["gcc", "-O2", "-o", "{bin}", "{src}", "-lm"],
    run: ["{bin}"],
    feed: "file",
    lineBuffer: true,
    version: ["gcc", "--version"],
    debianPackages: ["gcc", "libc6-dev"],
  },
  {
    code: "cpp",
    name: "C++",
    sourceFile: "main.cpp",
    compile: ["g++", "-O2", "-o", "{bin}", "{src}"],
    run: ["{bin}"],
    feed: "file",
    lineBuffer: true,
    version: ["g++", "--version"],
    debianPackages: ["g++"],
  },
  {
    code: "php",
    name: "PHP",
    sourceFile: "main.php",
    run: ["php", "{src}"],
    feed: "file",
    version: ["php", "--version"],
    debianPackages: ["php-cli"],
  },
  {
    code: "rs",
    name: "Rust",
    sourceFile: "main.rs",
    compile: ["rustc", "-O", "-o", "{bin}", "{src}"],
    run: ["{bin}"],
    feed: "file",
    version: ["rustc", "--version"],
    debianPackages: ["rustc"],
  },
  {
    code: "r",
    name: "R",
    sourceFile: "main.R",
    run: ["Rscript", "{src}"],
    feed: "file",
    version: ["Rscript", "--version"],
    debianPackages: ["r-base-core"],
  },
  {
    code: "f90",
    name: "Fortran",
    sourceFile: "main.f90",
    compile: ["gfortran", "-O2", "-o", "{bin}", "{src}"],
    run: ["{bin}"],
    feed: "file",
    env: { GFORTRAN_UNBUFFERED_PRECONNECTED: "y" },
    version: ["gfortran", "--version"],
    debianPackages: ["gfortran"],
  },
  {
    code: "d",
    name: "D",
    sourceFile: "main.d",
    compile: ["ldc2", "-O", "-of={bin}", "{src}"],
    run: ["{bin}"],
    feed: "file",
    lineBuffer: true,
    version: ["ldc2", "--version"],
    debianPackages: ["ldc"],
  },
  {
    code: "bash",
    name: "Bash",
    sourceFile: "main.sh",
    run: ["bash", "{src}"],
    feed: "file",
    version: ["bash", "--version"],
    debianPackages: ["bash"],
  },
];

export const LANGUAGES: ReadonlyMap<string, LanguageSpec> = new Map(table.map((spec) => [spec.code, spec]));

/** Other names clients use for the same languages. */
const aliases: Readonly<Record<string, LanguageCode>> = {
  python: "py",
  python3: "py",
  javascript: "js",
  node: "js",
  typescript: "ts",
  golang: "go",
  "c++": "cpp",
  rust: "rs",
  fortran: "f90",
  sh: "bash",
};

/** The language of `code` or one of its aliases, or undefined. */
export function findLanguage(code: string): LanguageSpec | undefined {
  const key = code.toLowerCase();
  return LANGUAGES.get(key) ?? LANGUAGES.get(aliases[key] ?? "");
}

/** Java runs the public class the code declares, else `Code`. */
export function javaMainClass(code: string): string {
  const match = /^\s*public\s+(?:final\s+|abstract\s+)*class\s+([A-Za-z_$][\w$]*)/m.exec(code);
  return match?.[1] ?? "Code";
}
