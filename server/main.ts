#!/usr/bin/env node
import { startApp } from "./app.ts";
import { runKeysCommand } from "./auth/keys-cli.ts";
import { runConfigCommand } from "./config/cli.ts";
import { loadConfig } from "./config/load.ts";
import { createLogger } from "./logging/logger.ts";

const USAGE = `usage: code-interpreter [serve]
       code-interpreter config summary|validate|security|template|export|docs
       code-interpreter keys create|list|enable|disable|delete`;

async function serve(): Promise<void> {
  const { config, errors, warnings } = loadConfig();
  if (errors.length > 0) {
    for (const error of errors) process.stderr.write(`config error: ${error}\n`);
    process.stderr.write("fix the configuration (see docs/CONFIGURATION.md, or run: npm run config validate)\n");
    process.exit(1);
  }
  const logger = createLogger(config.logging, { redactKeys: [config.auth.header] });
  for (const warning of warnings) logger.warn(warning);
  if (process.getuid?.() !== 0) {
    logger.warn("not running as root: sandboxes need root to set cgroup limits and switch to SANDBOX_UID");
  }
  const app = await startApp(config, logger);
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down");
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    await app.stop();
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
}

const [command = "serve", ...rest] = process.argv.slice(2);
if (command === "serve") {
  serve().catch((error: unknown) => {
    process.stderr.write(`fatal: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });
} else if (command === "config") {
  process.exitCode = runConfigCommand(rest, { stdout: process.stdout, stderr: process.stderr });
} else if (command === "keys") {
  process.exitCode = await runKeysCommand(rest, { stdout: process.stdout, stderr: process.stderr });
} else {
  process.stderr.write(`${USAGE}\n`);
  process.exitCode = 2;
}
