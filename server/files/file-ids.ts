/** File and session ids as the file stores accept them. */

export const FILE_ID_LENGTH = 21;

/**
 * Ids come from URLs: only what we generate (base62, maybe `_`/`-`) may name a
 * file. No `.` or `/`, so an id can never reach a folder above, another
 * session's key, or a `<id>.json` metadata object.
 */
export const SAFE_ID = /^[A-Za-z0-9_-]{1,128}$/;

export function isSafeId(id: string): boolean {
  return SAFE_ID.test(id);
}
