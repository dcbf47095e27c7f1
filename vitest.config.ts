import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          environment: "node",
        },
      },
      {
        test: {
          name: "integration",
          // test/security: the hostile suite (issue 9), against real servers and sandboxes like the integration tests.
          include: ["test/integration/**/*.test.ts", "test/security/**/*.test.ts"],
          environment: "node",
          globalSetup: ["test/integration/global-setup.ts"],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          // Real sandboxes on a 2-core machine: one file at a time keeps timings honest.
          fileParallelism: false,
        },
      },
      {
        test: {
          name: "compat",
          include: ["test/compat/**/*.test.ts"],
          environment: "node",
          globalSetup: ["test/integration/global-setup.ts"],
          // Real LibreChat client packages against the real built server and real sandboxes
          // (pandas and matplotlib imports take seconds on a small machine).
          testTimeout: 180_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
      {
        test: {
          name: "browser",
          include: ["test/browser/**/*.test.ts"],
          environment: "node",
          globalSetup: ["test/integration/global-setup.ts"],
          // Headless Chromium driving the built console against a real server and real sandboxes.
          testTimeout: 120_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
