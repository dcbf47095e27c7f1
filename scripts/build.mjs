#!/usr/bin/env node
// One build for everything: bundle the server and the sidecar-agent with esbuild,
// the web console with Vite, and compile the agent's process launcher with the system C compiler.
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { build as viteBuild } from "vite";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");
mkdirSync(join(dist, "agent"), { recursive: true });

const common = {
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  sourcemap: "linked",
  logLevel: "warning",
};

await build({
  ...common,
  entryPoints: [join(root, "sidecar-agent/main.ts")],
  outfile: join(dist, "agent/agent.mjs"),
  // The agent runs inside sandboxes that only see /usr and this folder: bundle everything.
  external: ["bufferutil", "utf-8-validate"],
  // Bundled CommonJS dependencies (ws) call require(); give the ESM output one.
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
});

// The persistent Python interpreter's driver: the agent finds it next to its bundle.
copyFileSync(join(root, "sidecar-agent/python-repl-driver.py"), join(dist, "agent/python-repl-driver.py"));

await build({
  ...common,
  entryPoints: [join(root, "server/main.ts")],
  outfile: join(dist, "server.mjs"),
  // The server runs from the checkout: its dependencies stay in node_modules.
  packages: "external",
});

// The web console (web-console/): static files the server serves at "/".
await viteBuild({
  root: join(root, "web-console"),
  base: "/",
  configFile: false,
  logLevel: "warn",
  build: { outDir: join(dist, "web-console"), emptyOutDir: true, sourcemap: true, chunkSizeWarningLimit: 2000 },
});

const launcherSrc = join(root, "sidecar-agent/launcher/launcher.c");
const launcherOut = join(dist, "agent/launcher");
if (existsSync(launcherSrc)) {
  const cc = ["cc", "gcc"].find((c) => {
    try {
      execFileSync(c, ["--version"], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  });
  if (cc) {
    execFileSync(cc, ["-O2", "-Wall", "-Wextra", "-o", launcherOut, launcherSrc], { stdio: "inherit" });
    chmodSync(launcherOut, 0o755);
  } else {
    console.warn("build: no C compiler found; the agent will run programs without its launcher (no CPU and memory figures)");
  }
}
if (!existsSync(dirname(launcherOut))) throw new Error("build output missing");
console.log(
  `build: dist/server.mjs, dist/agent/agent.mjs, dist/agent/python-repl-driver.py, dist/web-console${existsSync(launcherOut) ? ", dist/agent/launcher" : ""}`,
);
