/**
 * Environment that tells language runtimes the sandbox's memory limit. Inside
 * a sandbox there is no /sys/fs/cgroup, so runtimes that size themselves from
 * the machine see the host's RAM: a JVM on a large host would reserve a heap of
 * gigabytes and be OOM-killed by the cgroup instead of throwing
 * OutOfMemoryError, and Go's GC would let its heap grow past the limit.
 */

/** Share of the limit Go's soft limit (GOMEMLIMIT) takes: the rest is the agent's and the kernel's. */
const GO_MEMORY_SHARE = 0.75;

export function memoryLimitEnv(memoryBytes: number): Record<string, string> {
  const bytes = Math.floor(memoryBytes);
  return {
    // Read by the java and javac commands of protocol/languages.ts (-XX:MaxRAM).
    SANDBOX_MEMORY_BYTES: String(bytes),
    GOMEMLIMIT: `${Math.floor(bytes * GO_MEMORY_SHARE)}B`,
  };
}
