// Mutation testing of the security-critical code (StrykerJS, vitest runner, TypeScript checker), on demand:
// `npm run test:mutation [-- scope...]` (scripts/mutation.sh). Not part of `npm test` or .ci/run: it is slow on
// 2 cores. One scope per run: which sources are mutated, and the tests that are supposed to catch them. Results
// (HTML, JSON, and the incremental file that lets the next run reuse what did not change) go to
// reports/mutation/<scope>/.
import { existsSync } from 'node:fs';

/** @type {Record<string, { mutate: string[]; testFiles: string[] }>} */
export const SCOPES = {
  identity: {
    mutate: ['src/guards/identity/**/*.ts'],
    testFiles: ['test/unit/identity.test.ts', 'test/e2e/identity-*.test.ts'],
  },
  policy: {
    mutate: ['src/guards/policy/**/*.ts'],
    testFiles: ['test/unit/policy-*.test.ts', 'test/e2e/policy-*.test.ts', 'test/e2e/audit-policy.test.ts'],
  },
  audit: {
    mutate: ['src/audit/**/*.ts', 'src/guards/audit/**/*.ts'],
    // audit-sigterm runs the gateway as a child process, where no mutant is ever active: left out.
    testFiles: ['test/unit/audit-log.test.ts', 'test/unit/audit-verify.test.ts', 'test/e2e/audit.test.ts', 'test/e2e/audit-policy.test.ts'],
  },
  // A session, its sealed id and a multi round-trip requestState stay with the identity that created them.
  session: {
    mutate: ['src/protocols/mcp/session.ts', 'src/protocols/mcp/session-token.ts', 'src/protocols/mcp/sealer.ts', 'src/protocols/mcp/mrtr.ts'],
    testFiles: [
      'test/unit/mcp-sealing.test.ts',
      'test/e2e/mcp-sessions.test.ts',
      'test/e2e/mcp-replicas.test.ts',
      'test/e2e/mcp-stateless-principals.test.ts',
      'test/e2e/mcp-session-tokens.test.ts',
      'test/e2e/mcp-eras.test.ts',
      'test/e2e/identity-gateway.test.ts',
    ],
  },
  body: {
    mutate: ['src/server/io.ts', 'src/server/body.ts'],
    testFiles: ['test/e2e/body-limit-streaming.test.ts', 'test/e2e/mcp-bad-input.test.ts', 'test/e2e/forwarder.test.ts'],
  },
  // Rate and cost limits, once they exist on main (issue 15).
  ...(existsSync('src/guards/limits')
    ? { limits: { mutate: ['src/guards/limits/**/*.ts'], testFiles: ['test/unit/limit*.test.ts', 'test/e2e/limit*.test.ts'] } }
    : {}),
};

const name = process.env.TOLLGATE_MUTATION_SCOPE ?? '';
const scope = SCOPES[name];
if (scope === undefined) {
  throw new Error(`TOLLGATE_MUTATION_SCOPE must name one of: ${Object.keys(SCOPES).join(', ')} (got "${name}"); run it through npm run test:mutation`);
}

// TOLLGATE_MUTATION_FILES narrows a run to some of the scope's sources (comma-separated globs, Stryker's
// `file.ts:10-40` line ranges allowed), e.g. the security decisions first when the whole scope is too slow.
// TOLLGATE_MUTATION_TESTS likewise narrows the tests run (a subset of the scope's: the score is then a lower bound).
const list = (v) => (v ?? '').split(',').map((f) => f.trim()).filter((f) => f !== '');
const only = list(process.env.TOLLGATE_MUTATION_FILES);
const onlyTests = list(process.env.TOLLGATE_MUTATION_TESTS);
// TOLLGATE_MUTATION_ALL_KILLERS=1 runs every covering test of a mutant (no bail): its killedBy then lists all the
// tests that catch it, so one run tells what a set of new tests adds (slower per killed mutant).
const allKillers = process.env.TOLLGATE_MUTATION_ALL_KILLERS === '1';

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.config.ts', pool: 'forks', related: false },
  checkers: ['typescript'],
  tsconfigFile: 'tsconfig.json',
  typescriptChecker: { prioritizePerformanceOverAccuracy: true },
  mutate: only.length > 0 ? only : scope.mutate,
  testFiles: onlyTests.length > 0 ? onlyTests : scope.testFiles,
  coverageAnalysis: 'perTest',
  // Module-level constants run once at import: every test would have to run for each such mutant.
  ignoreStatic: true,
  disableBail: allKillers,
  incremental: true,
  incrementalFile: `reports/mutation/${name}/stryker-incremental.json`,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: `reports/mutation/${name}/index.html` },
  jsonReporter: { fileName: `reports/mutation/${name}/mutation.json` },
  clearTextReporter: { allowColor: false, logTests: false, maxTestsToLog: 0, reportScoreTable: true },
  // Real peers (gateways, opa, SPIRE) make test runs slow and uneven on a shared 2-core machine.
  concurrency: Number(process.env.TOLLGATE_MUTATION_CONCURRENCY ?? 1),
  timeoutMS: 30_000,
  timeoutFactor: 3,
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
  ignorePatterns: ['bench/results', 'reports', 'test-results', '.tollgate', 'coverage', '.scratch'],
};
