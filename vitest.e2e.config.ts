import { defineConfig } from 'vitest/config';

// End-to-end scenarios (test/e2e): a target process and a host worker process
// per scenario, faults through the target's control API or the network
// (veth between network namespaces). One file at a time: they share the CPU
// (2 cores) and measure stalls. See docs/scenarios.md.
export default defineConfig({
  test: {
    include: ['test/e2e/**/*.test.ts'],
    globalSetup: ['scripts/e2e/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    teardownTimeout: 60_000,
    fileParallelism: false,
    pool: 'forks',
  },
});
