import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** Build dist/ once before the integration suites: they start the built server and the built agent. */
export default function setup(): void {
  // Escape hatch while iterating on a suite that does not need a fresh build.
  if (process.env.INTEGRATION_SKIP_BUILD === "1") return;
  const root = join(dirname(fileURLToPath(import.meta.url)), "../..");
  execFileSync(process.execPath, [join(root, "scripts/build.mjs")], { cwd: root, stdio: "inherit", timeout: 300_000 });
}
