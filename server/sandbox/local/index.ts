export { type LocalProviderOptions, LocalSandbox, LocalSandboxProvider, type ProviderLogger } from "./local-provider.ts";
