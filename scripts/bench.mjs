#!/usr/bin/env node
// `npm run bench`: build, bundle the benchmark (TypeScript) and run it; it prints JSON.
// `npm run soak` (this script with "soak"): the same for the soak run (test/bench/soak.ts), by hand only.
import { execFileSync, spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
execFileSync(process.execPath, [join(root, "scripts/build.mjs")], { stdio: ["ignore", "ignore", "inherit"] });
const which = process.argv[2] === "soak" ? "soak" : "main";
const outfile = join(root, `.cache/bench/${which}.mjs`);
await build({
  entryPoints: [join(root, `test/bench/${which}.ts`)],
  outfile,
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  packages: "external",
  logLevel: "warning",
  // The helpers find the repository from their own location; keep it the same once bundled.
  define: { "import.meta.dirname": JSON.stringify(join(root, "test/helpers")) },
});
const result = spawnSync(process.execPath, [outfile], { stdio: "inherit", cwd: root });
process.exit(result.status ?? 1);
