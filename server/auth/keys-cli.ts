/**
 * `code-interpreter keys <command>`: manage API keys in the configured key
 * store (Redis when REDIS_* says where it is, else the JSON file under
 * FILE_STORAGE_PATH that running servers re-read). Returns the exit code.
 */
import { MAX_KEY_NAME_LENGTH, MAX_RATE_LIMIT } from "../../protocol/admin-bodies.ts";
import { type LoadConfigOptions, loadConfig } from "../config/load.ts";
import type { AppConfig } from "../config/types.ts";
import { closeRedis, connectRedis, type RedisClient } from "../redis/connection.ts";
import { openKeyStore } from "./auth-services.ts";
import { KEY_HASH, type KeyStore, newKey, RATE_WINDOWS, type RateWindow } from "./key-store.ts";
import { keyView, limitsWithDefaults } from "./key-view.ts";

export interface KeysCommandIO {
  stdout: { write(chunk: string): unknown };
  stderr: { write(chunk: string): unknown };
}

export const KEYS_USAGE = `usage: code-interpreter keys <command>
  create [--name NAME] [--rate-limit WINDOW=N[,WINDOW=N...]]... [--disabled] [--json]
               a new key (sk-...), printed once; WINDOW: second, minute, hour, day, month
               (or per_minute...); N = 0 or none: no limit in that window; windows left out
               get RATE_LIMIT_DEFAULT_PER_*
  list [--json]
               every managed key: hash, name, state, limits, usage
  enable HASH | disable HASH | delete HASH
               HASH: the key_hash, or a unique prefix of it (at least 8 characters)
The store: Redis when REDIS_* is configured, else FILE_STORAGE_PATH/api-keys.json.
Running servers see a change within API_KEY_CACHE_TTL.`;

class UsageError extends Error {}

const COMMANDS = ["create", "list", "enable", "disable", "delete"];

interface Parsed {
  command: string | undefined;
  positional: string[];
  name?: string;
  limits: Partial<Record<RateWindow, number | null>>;
  disabled: boolean;
  json: boolean;
}

export async function runKeysCommand(args: string[], io: KeysCommandIO, options: LoadConfigOptions = {}): Promise<number> {
  let parsed: Parsed;
  try {
    parsed = parseArgs(args);
  } catch (error) {
    io.stderr.write(`${(error as Error).message}\n${KEYS_USAGE}\n`);
    return 2;
  }
  if (parsed.command === undefined || ["help", "--help", "-h"].includes(parsed.command)) {
    (parsed.command ? io.stdout : io.stderr).write(`${KEYS_USAGE}\n`);
    return parsed.command ? 0 : 2;
  }
  if (!COMMANDS.includes(parsed.command)) {
    io.stderr.write(`unknown keys command: ${parsed.command}\n${KEYS_USAGE}\n`);
    return 2;
  }
  const { config, errors } = loadConfig(options);
  if (errors.length > 0) {
    for (const error of errors) io.stderr.write(`config error: ${error}\n`);
    return 1;
  }
  // The guides: MASTER_API_KEY is required for key management, by the admin API and by this CLI alike.
  if (!config.auth.masterKey) {
    io.stderr.write("keys: MASTER_API_KEY is not configured: key management is off (set it in the environment or .env)\n");
    return 1;
  }
  let redis: RedisClient | undefined;
  try {
    if (config.redis.enabled) redis = await connectRedis(config.redis, { name: "keys-cli" });
    const store = await openKeyStore(config, redis);
    try {
      return await run(parsed, store, config, io);
    } finally {
      await store.close();
    }
  } catch (error) {
    io.stderr.write(`keys: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  } finally {
    if (redis) await closeRedis(redis);
  }
}

async function run(parsed: Parsed, store: KeyStore, config: AppConfig, io: KeysCommandIO): Promise<number> {
  const where = store.kind === "redis" ? "Redis" : `${config.sessions.storagePath}/api-keys.json`;
  const ttl = `${config.auth.keyCacheTtlMs / 1000} s`;
  switch (parsed.command) {
    case "create": {
      const rateLimits = limitsWithDefaults(parsed.limits, config.auth.defaultRateLimits);
      const { key, record } = newKey({ name: parsed.name ?? "", rateLimits, enabled: !parsed.disabled });
      await store.create(record);
      if (parsed.json) {
        io.stdout.write(`${JSON.stringify({ key, ...keyView(record) }, null, 2)}\n`);
      } else {
        io.stdout.write(
          `API key created in ${where}. It is shown this once: store it now.\n\n  ${key}\n\n` +
            `key_hash  ${record.keyHash}\nname      ${record.name || "-"}\nenabled   ${record.enabled}\nlimits    ${describeLimits(record.rateLimits)}\n`,
        );
      }
      return 0;
    }
    case "list": {
      const keys = (await store.list()).map((record) => keyView(record));
      if (parsed.json) {
        io.stdout.write(`${JSON.stringify(keys, null, 2)}\n`);
        return 0;
      }
      if (keys.length === 0) {
        io.stdout.write(`no managed keys in ${where}\n`);
        return 0;
      }
      const rows = keys.map((k) => [
        k.key_hash.slice(0, 16),
        k.name || "-",
        k.enabled ? "enabled" : "disabled",
        describeLimits(Object.fromEntries(RATE_WINDOWS.map((w) => [w, k.rate_limits[`per_${w}`] ?? undefined]))),
        String(k.usage.requests),
        k.usage.last_used_at ?? "never",
        k.created_at,
      ]);
      io.stdout.write(table(["HASH", "NAME", "STATE", "LIMITS", "REQUESTS", "LAST USED", "CREATED"], rows));
      return 0;
    }
    case "enable":
    case "disable":
    case "delete": {
      const keyHash = await resolveHash(store, parsed.positional[0]);
      if (parsed.command === "delete") {
        if (!(await store.delete(keyHash))) throw new Error(`no key with hash ${keyHash}`);
        io.stdout.write(`deleted ${keyHash}; running servers refuse it within API_KEY_CACHE_TTL (${ttl})\n`);
      } else {
        const enabled = parsed.command === "enable";
        if (!(await store.update(keyHash, { enabled }))) throw new Error(`no key with hash ${keyHash}`);
        io.stdout.write(`${enabled ? "enabled" : "disabled"} ${keyHash}; running servers follow within API_KEY_CACHE_TTL (${ttl})\n`);
      }
      return 0;
    }
    default:
      io.stderr.write(`unknown keys command: ${parsed.command}\n${KEYS_USAGE}\n`);
      return 2;
  }
}

function parseArgs(args: string[]): Parsed {
  const parsed: Parsed = { command: args[0], positional: [], limits: {}, disabled: false, json: false };
  for (let i = 1; i < args.length; i++) {
    const arg = args[i]!;
    const [flag, inline] = arg.startsWith("--") && arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined];
    const value = (): string => {
      const next = inline ?? args[++i];
      if (next === undefined) throw new UsageError(`${flag} needs a value`);
      return next;
    };
    switch (flag) {
      case "--name": {
        const name = value().trim();
        if (name.length > MAX_KEY_NAME_LENGTH) throw new UsageError(`--name is longer than ${MAX_KEY_NAME_LENGTH} characters`);
        parsed.name = name;
        break;
      }
      case "--rate-limit":
      case "--rate-limits":
        for (const item of value().split(",").filter(Boolean)) parseLimit(item, parsed.limits);
        break;
      case "--disabled":
        parsed.disabled = true;
        break;
      case "--json":
        parsed.json = true;
        break;
      default:
        if (arg.startsWith("--")) throw new UsageError(`unknown option ${arg}`);
        parsed.positional.push(arg);
    }
  }
  return parsed;
}

function parseLimit(item: string, limits: Partial<Record<RateWindow, number | null>>): void {
  const match = /^(?:per_)?(second|minute|hour|day|month)=(\d+|none)$/i.exec(item.trim());
  if (!match) throw new UsageError(`--rate-limit ${item}: expected WINDOW=N with WINDOW one of ${RATE_WINDOWS.join(", ")}`);
  const window = match[1]!.toLowerCase() as RateWindow;
  const count = match[2]!.toLowerCase() === "none" ? 0 : Number(match[2]);
  if (count > MAX_RATE_LIMIT) throw new UsageError(`--rate-limit ${item}: at most ${MAX_RATE_LIMIT}`);
  limits[window] = count === 0 ? null : count;
}

/** A full key hash, or the one key whose hash starts with the given prefix. */
async function resolveHash(store: KeyStore, given: string | undefined): Promise<string> {
  const wanted = given?.trim().toLowerCase();
  if (!wanted) throw new UsageError("give the key_hash (see `keys list`)");
  if (KEY_HASH.test(wanted)) return wanted;
  if (wanted.startsWith("sk-")) throw new Error("give the key_hash (see `keys list`), not the key itself");
  if (!/^[0-9a-f]{8,63}$/.test(wanted)) throw new Error(`${given} is not a key_hash nor a prefix of one (8 to 64 hex characters)`);
  const matches = (await store.list()).filter((record) => record.keyHash.startsWith(wanted));
  if (matches.length === 0) throw new Error(`no key hash starts with ${wanted}`);
  if (matches.length > 1) throw new Error(`${matches.length} key hashes start with ${wanted}: give more characters`);
  return matches[0]!.keyHash;
}

function describeLimits(limits: Partial<Record<RateWindow, number | undefined>>): string {
  const parts = RATE_WINDOWS.filter((window) => limits[window] !== undefined).map((window) => `${limits[window]}/${window}`);
  return parts.length > 0 ? parts.join(", ") : "none";
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  ");
  return `${[line(header), ...rows.map(line)].join("\n")}\n`;
}
