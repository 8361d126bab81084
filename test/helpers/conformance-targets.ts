/**
 * The targets both conformance tests (session era and 2026-07-28) run the official suite against, besides the upstream
 * itself: a single-server route that admits anonymous callers, the same server with the full pipeline on (identity
 * through a header-adding hop, the default policy bundle, audit, OTLP tracing, Prometheus metrics), and the federated
 * mount of that pipeline through a virtual server exposing the upstream's tools unprefixed. Also the checks both make
 * on the runs: what passes directly passes through the gateway, and the pipeline really ran.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { Call } from '../../src/core/call.ts';
import { headerHop, type SuiteRun } from './conformance-suite.ts';
import { DEV_SPIFFE_ID, GATEWAY_YAML, mcpBackend, recordCalls, route, startTestGateway } from './gateway.ts';
import { OtlpReceiver } from './otlp-receiver.ts';

const OTEL_VARS = ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_PROTOCOL', 'OTEL_BSP_SCHEDULE_DELAY'] as const;

export interface ConformanceTargets {
  /** Target label -> URL: `single` is the anonymous single-server route, then `gateway-pipeline`, `gateway-federated`. */
  readonly urls: (singleLabel: string) => Record<string, string>;
  /** Calls the full-pipeline gateway made. */
  readonly calls: Call[];
  readonly receiver: OtlpReceiver;
  /** A scratch directory for the suite's output. */
  readonly out: string;
  stop(): Promise<void>;
}

export async function startConformanceTargets(upstream: { url: string; tools: readonly string[] }, label: string, extraGatewayYaml = ''): Promise<ConformanceTargets> {
  const stops: Array<() => Promise<unknown> | unknown> = [];
  const saved: Partial<Record<(typeof OTEL_VARS)[number], string | undefined>> = {};
  const stop = async (): Promise<void> => {
    for (const s of stops.reverse()) await s();
  };
  try {
    const single = await startTestGateway({ 'mcp.yaml': mcpBackend('conf', { url: upstream.url }) + route('mcp', '/mcp', ['conf'], { auth: { anonymous: true } }) });
    stops.push(() => single.stop());
    const receiver = new OtlpReceiver();
    await receiver.start();
    stops.push(() => receiver.close());
    for (const k of OTEL_VARS) saved[k] = process.env[k];
    stops.push(() => {
      for (const k of OTEL_VARS) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
    });
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.httpUrl;
    process.env.OTEL_EXPORTER_OTLP_PROTOCOL = 'http/protobuf';
    process.env.OTEL_BSP_SCHEDULE_DELAY = '50';
    const tools = upstream.tools.map((tool) => ({ backend: 'conf', tool }));
    const full = await startTestGateway(
      { 'mcp.yaml': mcpBackend('conf', { url: upstream.url }) + route('mcp', '/mcp', ['conf'], { mcp: { virtualServers: [{ name: 'conformance', tools }] } }) },
      {
        gatewayYaml:
          `${GATEWAY_YAML}  policy:\n    bundle: ${JSON.stringify(join(process.cwd(), 'bundles/tollgate.tar.gz'))}\n` +
          `  audit: { decisions: true }\n  telemetry: { tracing: { enabled: true }, metrics: { prometheus: true } }\n` +
          extraGatewayYaml,
      },
    );
    stops.push(() => full.stop());
    const calls = recordCalls(full);
    const hop = await headerHop(full.url, () => `Bearer ${full.devToken()}`);
    stops.push(() => new Promise((r) => hop.close(r)));
    const hopUrl = `http://127.0.0.1:${(hop.address() as AddressInfo).port}`;
    const out = mkdtempSync(join(tmpdir(), `tollgate-${label}-`));
    stops.push(() => rmSync(out, { recursive: true, force: true }));
    return {
      urls: (singleLabel) => ({
        direct: upstream.url,
        [singleLabel]: `${single.url}/mcp/conf`,
        'gateway-pipeline': `${hopUrl}/mcp/conf`,
        'gateway-federated': `${hopUrl}/mcp/conformance`,
      }),
      calls,
      receiver,
      out,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Results per scenario and target, for the JSON report: `extra(s)` adds fields per scenario (scored or not). */
export function scenarioTable(runs: Record<string, SuiteRun>, extra: (s: string) => Record<string, unknown> = () => ({})): Record<string, Record<string, unknown>> {
  const targets = Object.keys(runs);
  const scenarios = [...new Set(Object.values(runs).flatMap((r) => Object.keys(r.results)))].sort();
  return Object.fromEntries(scenarios.map((s) => [s, { ...extra(s), ...Object.fromEntries(targets.map((t) => [t, runs[t]!.results[s] ?? 'absent'])) }]));
}

/**
 * What passes directly passes through the single-server routes, and through the virtual server but for `gaps` (each
 * of which must really fail there: a listed scenario that passes should leave the list).
 */
export function expectThroughGateway(runs: Record<string, SuiteRun>, singleLabels: readonly string[], gaps: Record<string, string>): void {
  const direct = runs.direct!;
  const passing = Object.keys(direct.results).filter((s) => direct.results[s] === 'pass');
  for (const label of singleLabels) {
    const lost = passing.filter((s) => runs[label]!.results[s] !== 'pass');
    expect(lost, `${label}: ${runs[label]!.output.slice(-4000)}`).toEqual([]);
  }
  const federated = runs['gateway-federated']!;
  const lostVirtual = passing.filter((s) => federated.results[s] !== 'pass' && gaps[s] === undefined);
  expect(lostVirtual, federated.output.slice(-4000)).toEqual([]);
  for (const s of Object.keys(gaps)) expect(federated.results[s], s).toBe('fail');
}

/**
 * The pipeline really ran: every call the policy decided was made by the dev identity (refusals before
 * authentication, such as the dns-rebinding scenario's bad Origin, have no principal and no decision), tools were
 * called and allowed, and spans were exported.
 */
export async function expectPipelineRan(t: ConformanceTargets): Promise<void> {
  for (const c of t.calls) if (c.decision) expect(c.principal?.id, c.operation).toBe(DEV_SPIFFE_ID);
  const tools = t.calls.filter((c) => c.operation === 'tools/call' && c.decision?.allow === true);
  expect(tools.length).toBeGreaterThan(10);
  expect(tools.some((c) => c.target?.name === 'conf__test_simple_text' || c.target?.name === 'test_simple_text')).toBe(true);
  const denied = t.calls.filter((c) => c.decision?.allow === false).map((c) => `${c.operation} ${c.target?.name}: ${c.decision?.reason}`);
  console.log(`calls through the pipeline: ${t.calls.length}; denied by policy: ${JSON.stringify(denied)}`);
  await expect.poll(() => t.receiver.spans.filter((s) => s.kind === 2).length, { timeout: 10_000 }).toBeGreaterThan(10);
}
