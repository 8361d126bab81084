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
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { Call } from '../../src/core/call.ts';
import { startConformance2026Upstream, type Conformance2026Upstream } from '../helpers/conformance-server-2026.ts';
import { CONFORMANCE_2026_CLI, headerHop, runConformance, type SuiteRun } from '../helpers/conformance-suite.ts';
import { DEV_SPIFFE_ID, GATEWAY_YAML, mcpBackend, recordCalls, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { OtlpReceiver } from '../helpers/otlp-receiver.ts';

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

const OTEL_VARS = ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_PROTOCOL', 'OTEL_BSP_SCHEDULE_DELAY'] as const;

let upstream: Conformance2026Upstream;
let single: TestGateway;
let full: TestGateway;
let receiver: OtlpReceiver;
let hop: Server;
let hopUrl: string;
let out: string;
let calls: Call[];
const savedEnv: Partial<Record<(typeof OTEL_VARS)[number], string | undefined>> = {};

beforeAll(async () => {
  upstream = await startConformance2026Upstream();
  single = await startTestGateway({ 'mcp.yaml': mcpBackend('conf', { url: upstream.url }) + route('mcp', '/mcp', ['conf'], { auth: { anonymous: true } }) });
  receiver = new OtlpReceiver();
  await receiver.start();
  for (const k of OTEL_VARS) savedEnv[k] = process.env[k];
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.httpUrl;
  process.env.OTEL_EXPORTER_OTLP_PROTOCOL = 'http/protobuf';
  process.env.OTEL_BSP_SCHEDULE_DELAY = '50';
  const tools = upstream.tools.map((tool) => ({ backend: 'conf', tool }));
  full = await startTestGateway(
    { 'mcp.yaml': mcpBackend('conf', { url: upstream.url }) + route('mcp', '/mcp', ['conf'], { mcp: { virtualServers: [{ name: 'conformance', tools }] } }) },
    {
      gatewayYaml:
        `${GATEWAY_YAML}  policy:\n    bundle: ${JSON.stringify(join(process.cwd(), 'bundles/tollgate.tar.gz'))}\n` +
        `  audit: { decisions: true }\n  telemetry: { tracing: { enabled: true }, metrics: { prometheus: true } }\n` +
        // One identity here stands for every client the suite plays (each scenario describes its client its own
        // way, and each description is a stateless context): more than the default 16 contexts per principal.
        `  mcp: { limits: { statelessContextsPerPrincipal: 256 } }\n`,
    },
  );
  calls = recordCalls(full);
  hop = await headerHop(full.url, () => `Bearer ${full.devToken()}`);
  hopUrl = `http://127.0.0.1:${(hop.address() as AddressInfo).port}`;
  out = mkdtempSync(join(tmpdir(), 'tollgate-conformance-2026-'));
});

afterAll(async () => {
  await new Promise((r) => (hop ? hop.close(r) : r(undefined)));
  await single?.stop();
  await full?.stop();
  await receiver?.close();
  for (const k of OTEL_VARS) {
    if (savedEnv[k] === undefined) delete process.env[k];
    else process.env[k] = savedEnv[k];
  }
  await upstream?.close();
  if (out) rmSync(out, { recursive: true, force: true });
});

/** The server scenarios the revision requires (scored), from the suite's own frozen requirements file. */
function requiredScenarios(): string[] {
  const file = join(CONFORMANCE_2026_CLI, '../../requirements/2026-07-28.yaml');
  return (parse(readFileSync(file, 'utf8')) as { server: string[] }).server;
}

it('passes through the gateway every 2026-07-28 scenario the upstream passes: single server, full pipeline, virtual server', async () => {
  const targets = {
    direct: upstream.url,
    'gateway-single': `${single.url}/mcp/conf`,
    'gateway-pipeline': `${hopUrl}/mcp/conf`,
    'gateway-federated': `${hopUrl}/mcp/conformance`,
  } as const;
  const runs: Record<string, SuiteRun> = {};
  for (const [label, url] of Object.entries(targets)) runs[label] = await runConformance(CONFORMANCE_2026_CLI, url, join(out, label), ['--requirements', '2026-07-28']);
  const required = new Set(requiredScenarios());
  const scenarios = [...new Set(Object.values(runs).flatMap((r) => Object.keys(r.results)))].sort();
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
    scenarios: Object.fromEntries(
      scenarios.map((s) => [s, { scored: required.has(s), ...Object.fromEntries(Object.keys(targets).map((t) => [t, runs[t]!.results[s] ?? 'absent'])) }]),
    ),
    totals: Object.fromEntries(Object.keys(targets).map((t) => [t, { scored: total(t, required), all: total(t) }])),
  };
  mkdirSync('test-results', { recursive: true });
  writeFileSync('test-results/mcp-conformance-2026.json', `${JSON.stringify(report, null, 2)}\n`);
  console.log(JSON.stringify(report.totals));

  // The fixture is a real 2026 server: it passes every scenario the revision requires.
  const direct = runs.direct!;
  const failedDirect = [...required].filter((s) => direct.results[s] !== 'pass');
  expect(failedDirect, direct.output.slice(-3000)).toEqual([]);
  const passing = Object.keys(direct.results).filter((s) => direct.results[s] === 'pass');
  for (const label of ['gateway-single', 'gateway-pipeline'] as const) {
    const lost = passing.filter((s) => runs[label]!.results[s] !== 'pass');
    expect(lost, `${label}: ${runs[label]!.output.slice(-4000)}`).toEqual([]);
  }
  const lostVirtual = passing.filter((s) => runs['gateway-federated']!.results[s] !== 'pass' && VIRTUAL_SERVER_GAPS[s] === undefined);
  expect(lostVirtual, runs['gateway-federated']!.output.slice(-4000)).toEqual([]);
  // The gaps listed are real (a listed scenario that passes should leave the list).
  for (const s of Object.keys(VIRTUAL_SERVER_GAPS)) expect(runs['gateway-federated']!.results[s], s).toBe('fail');

  // The pipeline really ran: calls by the dev identity, decided by the policy, traced.
  for (const c of calls) if (c.decision) expect(c.principal?.id, c.operation).toBe(DEV_SPIFFE_ID);
  const tools = calls.filter((c) => c.operation === 'tools/call' && c.decision?.allow === true);
  expect(tools.length).toBeGreaterThan(10);
  expect(tools.some((c) => c.target?.name === 'test_simple_text' || c.target?.name === 'conf__test_simple_text')).toBe(true);
  await expect.poll(() => receiver.spans.filter((s) => s.kind === 2).length, { timeout: 10_000 }).toBeGreaterThan(10);
}, 900_000);
