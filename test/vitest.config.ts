// Test tiers: unit/ (pure), inprocess/ (whole control planes over the in-memory twins),
// integration/ (real etcd on loopback, real addon),
// e2e/ and lab/ (root: network namespaces, TUN, weftd processes).
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: new URL('..', import.meta.url).pathname,
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/harness/global_etcd.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
  },
});
