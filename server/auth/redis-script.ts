import { createHash } from "node:crypto";
import type { RedisClient } from "../redis/connection.ts";

/**
 * A Lua script run by EVALSHA, loaded with EVAL when the server does not know
 * it yet (after a restart or failover). Not `defineCommand`: the client belongs
 * to the caller and is shared, so this module adds no methods to it.
 */
export class LuaScript {
  readonly #source: string;
  readonly #sha: string;

  constructor(source: string) {
    this.#source = source;
    this.#sha = createHash("sha1").update(source).digest("hex");
  }

  async run(client: RedisClient, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await client.evalsha(this.#sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!String((error as Error).message).includes("NOSCRIPT")) throw error;
      return await client.eval(this.#source, keys.length, ...keys, ...args);
    }
  }
}
