import { randomBytes } from "node:crypto";

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/**
 * An unguessable id of `length` characters of `alphabet` (base62 by default,
 * about 5.95 bits each), with no `.` or `/` so that LibreChat clients can take
 * ids apart from file names.
 */
export function randomId(length = 32, alphabet = BASE62): string {
  // Reject the bytes past the last whole multiple of the alphabet so every character is equally likely.
  const limit = 256 - (256 % alphabet.length);
  let out = "";
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < limit) out += alphabet[byte % alphabet.length];
      if (out.length === length) break;
    }
  }
  return out;
}
