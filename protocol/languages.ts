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
  /**
   * Compiler command, for compiled languages. It runs in {dir}, so it names
   * the source by its file name: compiler messages then say `main.c:3:5`, not
   * a temporary path. A non-zero exit ends the exec before the run stage.
   */
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
  /**
   * Debian packages that provide the toolchain (and, for Python, the data
   * libraries programs expect). scripts/setup.sh installs the same list; a unit
   * test fails when the two disagree.
   */
  debianPackages: readonly string[];
}

/**
 * JVM flags for javac and java: the serial GC and the C1 compiler alone start
 * fastest and use the fewest threads. The JVM cannot see the sandbox's memory
 * cgroup (no /sys/fs/cgroup inside) and would size its heap from the host's RAM,
 * so the provider passes the limit in SANDBOX_MEMORY_BYTES and the heap takes
 * 60% of it (the rest: metaspace, code cache, stacks, and the agent).
 * JAVA_TOOL_OPTIONS would do the same without a shell, but the JVM then prints
 * "Picked up JAVA_TOOL_OPTIONS" on every program's stderr.
 */
// biome-ignore lint/suspicious/noTemplateCurlyInString: a shell expansion, for the `sh -c` of the java commands
const JVM_FLAGS = "-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:MaxRAMPercentage=60 ${SANDBOX_MEMORY_BYTES:+-XX:MaxRAM=$SANDBOX_MEMORY_BYTES}";
const JAVAC_FLAGS = JVM_FLAGS.replace(/-XX:/g, "-J-XX:");

/** Where TypeScript finds @types/node: Debian's nodejs package, else the copy scripts/setup.sh installs. */
export const TS_TYPE_ROOTS = ["/usr/share/nodejs/@types", "/usr/local/lib/code-interpreter/typescript/node_modules/@types"] as const;

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
    debianPackages: [
      "python3",
      "python3-numpy",
      "python3-pandas",
      "python3-matplotlib",
      "python3-scipy",
      "python3-sklearn",
      "python3-cloudpickle",
      "python3-pip",
    ],
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
    // tsc prints its diagnostics on stdout: the shell moves them to stderr, with the other compilers' errors.
    compile: [
      "sh",
      "-c",
      'exec tsc "$@" >&2',
      "tsc",
      "--outDir",
      "{dir}",
      "--target",
      "es2022",
      // No DOM declarations (tsc's default): they double its start time, and @types/node declares console and the rest.
      "--lib",
      "es2022",
      "--module",
      "commonjs",
      "--skipLibCheck",
      "--typeRoots",
      TS_TYPE_ROOTS.join(","),
      "--types",
      "node",
      "main.ts",
    ],
    run: ["node", "{dir}/main.js"],
    feed: "file",
    version: ["tsc", "--version"],
    // @types/node is not a Debian package of its own: see TS_TYPE_ROOTS.
    debianPackages: ["node-typescript"],
  },
  {
    code: "go",
    name: "Go",
    sourceFile: "main.go",
    compile: ["go", "build", "-o", "{bin}", "main.go"],
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
    // Through sh for JVM_FLAGS' memory limit; "$@" is the rest of the command (and, for java, the caller's args).
    compile: ["sh", "-c", `exec javac ${JAVAC_FLAGS} "$@"`, "javac", "-d", "{dir}", "{main}.java"],
    // -Xss8m: deep recursion, as in other languages' 8 MiB main stack.
    // SANDBOX_JAVA_PROXY_FLAGS (egress on): unquoted on purpose, one word per system property.
    run: ["sh", "-c", `exec java ${JVM_FLAGS} $SANDBOX_JAVA_PROXY_FLAGS -Xss8m -cp "$0" "$@"`, "{dir}", "{main}"],
    feed: "file",
    version: ["javac", "-version"],
    debianPackages: ["default-jdk-headless"],
  },
  {
    code: "c",
    name: "C",
    sourceFile: "main.c",
    compile: ["gcc", "-O2", "-o", "{bin}", "main.c", "-lm"],
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
    compile: ["g++", "-O2", "-o", "{bin}", "main.cpp"],
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
    compile: ["rustc", "-O", "-o", "{bin}", "main.rs"],
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
    compile: ["gfortran", "-O2", "-o", "{bin}", "main.f90"],
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
    // No -O: it costs ldc2 over a second even for a ten-line program.
    compile: ["ldc2", "-of={bin}", "main.d"],
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
