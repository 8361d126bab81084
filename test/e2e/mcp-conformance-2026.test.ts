/**
 * The official conformance suite's 2026-07-28 (stateless) revision, `--requirements 2026-07-28` (the scenarios that
 * revision requires, frozen at its release, plus the not-scored ones run for visibility), against a 2026-native
 * upstream (test/helpers/conformance-server-2026.ts, official v2 SDK) directly and through the gateway:
 * - `gateway-single`: a single-server route (/mcp/conf) that admits anonymous callers (said in its config);
 * - `gateway-pipeline`: the same single server with the full pipeline on: identity (a dev JWT-SVID added by a
 *   header-adding hop, since the suite sends no credentials), policy (the default bundle), audit, OTLP tracing;
 * - `gateway-federated`: the federated mount of that pipeline, through a virtual server (/mcp/conformance) exposing
 *   the fixture's tools under their own (unprefixed) names, as the suite expects them.
 * Every scenario that passes directly must pass through the single-server routes; through the virtual server every
 * one but those listed below with the reason. The result per scenario and target goes to
 * test-results/mcp-conformance-2026.json.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parse } from 'yaml';
import { startConformance2026Upstream, type Conformance2026Upstream } from '../helpers/conformance-server-2026.ts';
import { CONFORMANCE_2026_CLI, runConformance, type SuiteRun } from '../helpers/conformance-suite.ts';
import { expectPipelineRan, expectThroughGateway, scenarioTable, startConformanceTargets, type ConformanceTargets } from '../helpers/conformance-targets.ts';

/**
 * Scenarios a tools-only virtual server cannot pass, and why (anything else failing there fails the test). It declares
 * prompts and resources and lists them empty; getting, reading or completing one names nothing it serves.
 */
const VIRTUAL_SERVER_GAPS: Record<string, string> = {
  'completion-complete': 'completion/complete names a prompt or resource template: a virtual server serves tools only',
  'resources-read-text': 'a virtual server serves tools only (resources are served by /mcp and /mcp/<server>)',
  'resources-read-binary': 'a virtual server serves tools only',
  'resources-templates-read': 'a virtual server serves tools only',
  'prompts-get-simple': 'a virtual server serves tools only (prompts are served by /mcp and /mcp/<server>)',
  'prompts-get-with-args': 'a virtual server serves tools only',
  'prompts-get-embedded-resource': 'a virtual server serves tools only',
  'prompts-get-with-image': 'a virtual server serves tools only',
  'input-required-result-non-tool-request': 'the scenario asks for input through prompts/get: a virtual server serves tools only',
};

let upstream: Conformance2026Upstream;
let gw: ConformanceTargets;

beforeAll(async () => {
  upstream = await startConformance2026Upstream();
  // One identity here stands for every client the suite plays (each scenario describes its client its own way, and
  // each description is a stateless context): more than the default 16 contexts per principal.
  gw = await startConformanceTargets(upstream, 'conformance-2026', `  mcp: { limits: { statelessContextsPerPrincipal: 256 } }\n`);
});

afterAll(async () => {
  await gw?.stop();
  await upstream?.close();
});

/** The server scenarios the revision requires (scored), from the suite's own frozen requirements file. */
function requiredScenarios(): string[] {
  const file = join(CONFORMANCE_2026_CLI, '../../requirements/2026-07-28.yaml');
  return (parse(readFileSync(file, 'utf8')) as { server: string[] }).server;
}

it('passes through the gateway every 2026-07-28 scenario the upstream passes: single server, full pipeline, virtual server', async () => {
  const targets = gw.urls('gateway-single');
  const runs: Record<string, SuiteRun> = {};
  for (const [label, url] of Object.entries(targets)) runs[label] = await runConformance(CONFORMANCE_2026_CLI, url, join(gw.out, label), ['--requirements', '2026-07-28']);
  const required = new Set(requiredScenarios());
  const total = (t: string, only?: Set<string>) => {
    const entries = Object.entries(runs[t]!.results).filter(([s]) => only === undefined || only.has(s));
    return { pass: entries.filter(([, x]) => x === 'pass').length, fail: entries.filter(([, x]) => x === 'fail').length };
  };
  const report = {
    suite: '@modelcontextprotocol/conformance@0.2.0-alpha.12 server --requirements 2026-07-28',
    era: 'stateless (2026-07-28)',
    upstream: 'test/helpers/conformance-server-2026.ts (official v2 SDK, McpServer + createMcpHandler, modern only)',
    targets: Object.fromEntries(Object.entries(targets).map(([k, v]) => [k, v.replace(/127\.0\.0\.1:\d+/, '127.0.0.1')])),
    pipeline: 'gateway-pipeline and gateway-federated: identity (dev JWT-SVID added by a hop), policy (bundles/tollgate.tar.gz), audit, OTLP tracing, Prometheus metrics',
    virtualServerGaps: VIRTUAL_SERVER_GAPS,
    scenarios: scenarioTable(runs, (s) => ({ scored: required.has(s) })),
    totals: Object.fromEntries(Object.keys(targets).map((t) => [t, { scored: total(t, required), all: total(t) }])),
  };
  mkdirSync('test-results', { recursive: true });
  writeFileSync('test-results/mcp-conformance-2026.json', `${JSON.stringify(report, null, 2)}\n`);
  console.log(JSON.stringify(report.totals));

  // The fixture is a real 2026 server: it passes every scenario the revision requires.
  const direct = runs.direct!;
  const failedDirect = [...required].filter((s) => direct.results[s] !== 'pass');
  expect(failedDirect, direct.output.slice(-3000)).toEqual([]);
  expectThroughGateway(runs, ['gateway-single', 'gateway-pipeline'], VIRTUAL_SERVER_GAPS);
  await expectPipelineRan(gw);
}, 900_000);
