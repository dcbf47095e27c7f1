import type { AppConfig } from "../config/types.ts";
import type { FileStore } from "./file-store.ts";
import { LocalFileStore } from "./local-file-store.ts";
import { S3FileStore, type S3StoreLogger } from "./s3-file-store.ts";

/**
 * The file store the configuration asks for: S3 when S3_ENDPOINT or S3_BUCKET
 * is set (config.storage.backend === "s3"), else the embedded folder under
 * FILE_STORAGE_PATH. With S3, rejects when the bucket cannot be reached or
 * created, with a message that says which endpoint and bucket.
 */
export async function openFileStore(config: Pick<AppConfig, "storage" | "sessions">, logger?: S3StoreLogger): Promise<FileStore> {
  if (config.storage.backend === "s3") return S3FileStore.open(config.storage.s3, logger ? { logger } : {});
  return LocalFileStore.open(config.sessions.storagePath);
}
