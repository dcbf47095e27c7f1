import { resolve } from "node:path";

/** The checkout's root folder. */
export const REPO_ROOT = resolve(import.meta.dirname, "..", "..");
