#!/usr/bin/env node
import { startApp } from "./app.ts";
import { runKeysCommand } from "./auth/keys-cli.ts";
import { runConfigCommand } from "./config/cli.ts";
import { loadConfig } from "./config/load.ts";
import { createLogger } from "./logging/logger.ts";
import { StartRefusal } from "./start-refusal.ts";

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
  // Listen for the signals before starting: one that comes while the server starts (it listens before
  // startApp returns) stops it once started, with the same cleanup, instead of killing it half-way.
  let requested: string | undefined;
  let stop = (signal: string) => {
    requested ??= signal;
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
  const app = await startApp(config, logger);
  let stopping = false;
  stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down");
    const force = setTimeout(() => {
      logger.error({ afterMs: app.shutdownBudgetMs }, "shutdown took too long: exiting now");
      process.exit(1);
    }, app.shutdownBudgetMs);
    force.unref();
    app.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  if (requested) stop(requested);
}

const [command = "serve", ...rest] = process.argv.slice(2);
if (command === "serve") {
  serve().catch((error: unknown) => {
    // A refusal is the operator's to act on, not a bug: its reason alone.
    const text = error instanceof StartRefusal ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error);
    process.stderr.write(`fatal: ${text}\n`);
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
