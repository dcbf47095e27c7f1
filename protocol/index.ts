export * from "./agent-frames.ts";
export * from "./client-frames.ts";
export * from "./common.ts";
export * from "./languages.ts";
export * from "./server-frames.ts";
export * from "./validate.ts";
