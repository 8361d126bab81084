/**
 * GET /metrics: Prometheus text that a Prometheus text parser reads, with counts matching the calls made through the
 * gateway by the official SDK client.
 */
import parsePrometheusTextFormat, { type PromFamily } from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { connectClient, eventually, mcpBackend, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';

let fixture: FixtureServer;
let gw: TestGateway;

beforeAll(async () => {
  fixture = await startHttpMcpServer({ name: 'fixture' });
  gw = await startTestGateway({
    'mcp.yaml':
      mcpBackend('fixture', { url: fixture.url }) +
      mcpBackend('down', { url: 'http://127.0.0.1:9/mcp', timeouts: { connectMs: 300, initializeMs: 500 } }) +
      route('mcp', '/mcp', ['fixture', 'down']),
  });
});

afterAll(async () => {
  await gw?.stop();
  await fixture?.close();
});

let lastText = '';

async function scrape(): Promise<Map<string, PromFamily>> {
  const res = await fetch(`${gw.adminUrl}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  lastText = await res.text();
  return new Map(parsePrometheusTextFormat(lastText).map((f) => [f.name, f]));
}

/** A histogram's _count for one label set, read from its sample line (the parser flattens labelled histograms). */
function histogramCount(name: string, labels: Record<string, string>): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const line = lastText.split('\n').find((l) => l.startsWith(`${name}_count{`) && want.every((w) => l.includes(w)));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

function sample(f: PromFamily | undefined, labels: Record<string, string>): number {
  const m = f?.metrics.find((s) => Object.entries(labels).every(([k, v]) => (s.labels?.[k] ?? '') === v));
  return m === undefined ? 0 : Number(m.value ?? m.count);
}

describe('/metrics', () => {
  it('counts calls by protocol, route, operation, upstream and outcome', async () => {
    const client = await connectClient(`${gw.url}/mcp`);
    for (let i = 0; i < 7; i++) await client.callTool({ name: 'fixture__echo', arguments: { message: String(i) } });
    for (let i = 0; i < 3; i++) await expect(client.callTool({ name: 'nobody__x', arguments: {} })).rejects.toMatchObject({ code: -32602 });
    await client.listTools();
    const m = await scrape();
    const ok = { protocol: 'mcp', route: 'mcp', operation: 'tools/call', upstream: 'fixture', outcome: 'ok' };
    expect(m.get('tollgate_requests_total')?.type).toBe('COUNTER');
    expect(sample(m.get('tollgate_requests_total'), ok)).toBe(7);
    expect(sample(m.get('tollgate_requests_total'), { ...ok, upstream: '', outcome: 'error' })).toBe(3);
    expect(sample(m.get('tollgate_requests_total'), { operation: 'tools/list', outcome: 'ok' })).toBe(1);
    expect(sample(m.get('tollgate_requests_total'), { operation: 'initialize' })).toBe(1);
    const hist = m.get('tollgate_request_duration_seconds')!;
    expect(hist.type).toBe('HISTOGRAM');
    expect(histogramCount('tollgate_request_duration_seconds', ok)).toBe(7);
    expect(histogramCount('tollgate_request_duration_seconds', { ...ok, upstream: '', outcome: 'error' })).toBe(3);
    expect(sample(m.get('tollgate_upstream_up'), { upstream: 'fixture' })).toBe(1);
    expect(sample(m.get('tollgate_upstream_up'), { upstream: 'down' })).toBe(0);
    expect(sample(m.get('tollgate_active_sessions'), { protocol: 'mcp' })).toBe(1);
    expect(m.get('nodejs_eventloop_lag_seconds')?.type).toBe('GAUGE');
    expect(m.has('tollgate_policy_denials_total')).toBe(true);
    expect(m.has('tollgate_limit_rejections_total')).toBe(true);
    expect(m.has('tollgate_tokens_total')).toBe(true);
    await (client.transport as StreamableHTTPClientTransport).terminateSession();
    await client.close();
    const after = await scrape();
    expect(sample(after.get('tollgate_active_sessions'), { protocol: 'mcp' })).toBe(0);
    expect(sample(after.get('tollgate_requests_total'), { operation: 'mcp/delete', outcome: 'ok' })).toBe(1);
    // Audit records are written in the background: the gauge catches up.
    await eventually(async () => sample((await scrape()).get('tollgate_audit_records_written'), {}) > 12, 10_000, 'audit records written');
  });

  it('keeps unknown method names out of the label values beyond a bound', async () => {
    const client = await connectClient(`${gw.url}/mcp`);
    const sid = (client.transport as { sessionId?: string }).sessionId!;
    for (let i = 0; i < 80; i++) {
      await fetch(`${gw.url}/mcp`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': sid, 'mcp-protocol-version': '2025-06-18', ...gw.authHeaders() },
        body: JSON.stringify({ jsonrpc: '2.0', id: i, method: `made/up-${i}` }),
      }).then((r) => r.text());
    }
    const m = await scrape();
    const ops = new Set(m.get('tollgate_requests_total')!.metrics.map((s) => s.labels!.operation));
    expect(ops.size).toBeLessThanOrEqual(65); // 64 distinct values, then `other`
    expect(ops.has('other')).toBe(true);
    await client.close();
  });
});
