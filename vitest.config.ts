import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    // e2e tests start real peers (SDK servers, stdio processes, Redis, opa): give them room on a 2-core machine.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // The JSON report is what .ci/run counts ("N passed, N failed"); the default reporter is for humans.
    reporters: ['default', ['json', { outputFile: 'test-results/vitest.json' }]],
    // Admin listeners on ephemeral ports: many gateways run at once (a test that wants its own sets it).
    env: { TOLLGATE_LOG_LEVEL: process.env.TOLLGATE_LOG_LEVEL ?? 'silent', TOLLGATE_ADMIN_PORT: process.env.TOLLGATE_ADMIN_PORT ?? '0' },
  },
});
