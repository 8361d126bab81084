/**
 * Tracing end to end: the official SDK client calls a tool through the gateway, a real OTLP receiver (HTTP/protobuf,
 * HTTP/JSON and gRPC, decoding what it gets) gets the spans, and the upstream SDK server sees the trace context in
 * `_meta`. Spans and audit log records are serialised and sent by the export worker thread (the default); the
 * gateway's /metrics counts what it handed over. A gateway process stopped by SIGTERM under load exports every span
 * of every call it answered before it exits.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { queryLog } from '../../src/audit/query.ts';
import type { AuditRecord } from '../../src/audit/format.ts';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { DEV_SPIFFE_ID, GATEWAY_YAML, connectClient, devAuthHeaders, eventually, mcpBackend, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { sigtermUnderLoad, startConfiguredGateway, type ConfiguredGateway } from '../helpers/gateway-process.ts';
import { OtlpReceiver, type ReceivedSpan } from '../helpers/otlp-receiver.ts';

const CLIENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CLIENT_SPAN = '00f067aa0ba902b7';
const META_TRACE = 'a1a2a3a4a5a6a7a8a9aaabacadaeaf00';
const META_SPAN = 'b1b2b3b4b5b6b7b8';
const OTEL_VARS = ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_PROTOCOL', 'OTEL_BSP_SCHEDULE_DELAY', 'OTEL_METRIC_EXPORT_INTERVAL', 'OTEL_BLRP_SCHEDULE_DELAY'];

let receiver: OtlpReceiver | undefined;
let fixture: FixtureServer | undefined;
let gw: TestGateway | undefined;
const saved: Record<string, string | undefined> = {};

afterEach(async () => {
  await gw?.stop();
  await fixture?.close();
  await receiver?.close();
  gw = undefined;
  fixture = undefined;
  receiver = undefined;
  for (const k of OTEL_VARS) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
});

type Protocol = 'http/protobuf' | 'http/json' | 'grpc';

async function tracedGateway(protocol: Protocol, exportThread: 'worker' | 'main' = 'worker'): Promise<{ gw: TestGateway; fixture: FixtureServer; receiver: OtlpReceiver }> {
  receiver = new OtlpReceiver();
  await receiver.start();
  for (const k of OTEL_VARS) saved[k] = process.env[k];
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = protocol === 'grpc' ? receiver.grpcUrl : receiver.httpUrl;
  process.env.OTEL_EXPORTER_OTLP_PROTOCOL = protocol;
  process.env.OTEL_BSP_SCHEDULE_DELAY = '50';
  process.env.OTEL_METRIC_EXPORT_INTERVAL = '200';
  process.env.OTEL_BLRP_SCHEDULE_DELAY = '50';
  fixture = await startHttpMcpServer({ name: 'fixture' });
  // The audit log's OTLP sink rides on the same SDK (OTLP logs).
  gw = await startTestGateway(
    { 'mcp.yaml': mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']) },
    { gatewayYaml: `${GATEWAY_YAML}  audit: { sinks: { otlp: true } }\n  telemetry: { exportThread: ${exportThread} }\n` },
  );
  return { gw, fixture, receiver };
}

/** A counter's value per label set, from the gateway's /metrics (undefined when the series is absent). */
async function counter(url: string, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const family = parsePrometheusTextFormat(text).find((f) => f.name === name);
  const m = family?.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v));
  return m === undefined ? undefined : Number(m.value);
}

function childrenOf(spans: readonly ReceivedSpan[], parent: ReceivedSpan): ReceivedSpan[] {
  return spans.filter((s) => s.parentSpanId === parent.spanId && s.traceId === parent.traceId);
}

describe.each(['http/protobuf', 'grpc', 'http/json'] as const)('tracing over OTLP %s', (protocol) => {
  it('exports a server span per call with guard-stage events and an upstream child, parented by the client, and propagates _meta', async () => {
    const { gw, fixture, receiver } = await tracedGateway(protocol);
    const client = await connectClient(`${gw.url}/mcp`, { headers: { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01` } });
    try {
      const echo = await client.callTool({ name: 'fixture__echo', arguments: { message: 'traced' } });
      expect(echo.content).toEqual([{ type: 'text', text: 'traced' }]);
      // A trace context in params._meta (the MCP convention) takes precedence over the HTTP header.
      await client.callTool({ name: 'fixture__add', arguments: { a: 1, b: 2 }, _meta: { traceparent: `00-${META_TRACE}-${META_SPAN}-01` } });
      await expect(client.callTool({ name: 'nobody__nothing', arguments: {} })).rejects.toMatchObject({ code: -32602 });
    } finally {
      await client.close();
    }
    const serverSpan = (name: string): ReceivedSpan | undefined => receiver.spans.find((s) => s.name === name && s.kind === 2);
    await eventually(() => serverSpan('tools/call fixture__echo') !== undefined && serverSpan('tools/call fixture__add') !== undefined, 10_000, 'server spans');
    await eventually(() => receiver.spans.filter((s) => s.kind === 3).length >= 2, 10_000, 'upstream spans');

    const call = serverSpan('tools/call fixture__echo')!;
    expect(call.via).toBe(protocol === 'http/protobuf' ? 'http' : protocol);
    expect(call.traceId).toBe(CLIENT_TRACE);
    expect(call.parentSpanId).toBe(CLIENT_SPAN);
    expect(call.resource['service.name']).toBe('tollgate');
    expect(call.attributes).toMatchObject({
      'mcp.method.name': 'tools/call',
      'mcp.protocol.version': expect.stringMatching(/^\d{4}-\d{2}-\d{2}$/),
      'gen_ai.tool.name': 'fixture__echo',
      'gen_ai.operation.name': 'execute_tool',
      'tollgate.route': 'mcp',
      'tollgate.upstream': 'fixture',
      'tollgate.outcome': 'ok',
      'network.transport': 'tcp',
    });
    expect(typeof call.attributes['jsonrpc.request.id']).toBe('string');
    expect(typeof call.attributes['mcp.session.id']).toBe('string');
    expect(call.status.code).not.toBe(2);

    const children = childrenOf(receiver.spans, call);
    const upstream = children.find((s) => s.kind === 3);
    expect(upstream?.name).toBe('tools/call echo');
    expect(upstream?.attributes['gen_ai.tool.name']).toBe('echo');
    // Guard stages (events of the server span by default): the identity guard's (authenticate) and the audit
    // guard's back-pressure step, each with its guard and duration.
    expect(call.events.map((e) => e.name)).toEqual(expect.arrayContaining(['authenticate', 'audit']));
    const authn = call.events.find((e) => e.name === 'authenticate')!;
    expect(authn.attributes['tollgate.guard']).toBe('identity');
    expect(typeof authn.attributes['tollgate.stage.duration_ms']).toBe('number');
    expect(children.map((s) => s.name)).toEqual(['tools/call echo']);
    expect(call.attributes['tollgate.principal.id']).toBe(DEV_SPIFFE_ID);

    // The upstream server saw the upstream span as its parent, in params._meta.
    const metas = fixture.metas.filter((m) => m.tool === 'echo');
    expect(metas).toHaveLength(1);
    expect(metas[0]!.traceparent).toBe(`00-${CLIENT_TRACE}-${upstream!.spanId}-01`);

    const viaMeta = serverSpan('tools/call fixture__add')!;
    expect(viaMeta.traceId).toBe(META_TRACE);
    expect(viaMeta.parentSpanId).toBe(META_SPAN);
    const addMeta = fixture.metas.find((m) => m.tool === 'add')!;
    expect(String(addMeta.traceparent)).toMatch(new RegExp(`^00-${META_TRACE}-[0-9a-f]{16}-01$`));

    // A refused call is an ERROR span carrying the stable code.
    await eventually(() => receiver.spans.some((s) => s.kind === 2 && s.attributes['error.type'] === 'TG_MCP_UNKNOWN_TOOL'), 10_000, 'error span');
    const refused = receiver.spans.find((s) => s.kind === 2 && s.attributes['error.type'] === 'TG_MCP_UNKNOWN_TOOL')!;
    expect(refused.status.code).toBe(2);
    expect(refused.attributes['rpc.response.status_code']).toBe('-32602');

    // Metrics go out over OTLP too, bridged from the Prometheus registry.
    await eventually(() => receiver.metrics.some((m) => m.name === 'tollgate_requests_total' && m.points.some((p) => p.attributes.operation === 'tools/call' && p.value >= 2)), 10_000, 'OTLP metrics');

    // Audit records went out as OTLP log records too, with the chain fields.
    await eventually(() => receiver.logs.some((l) => l.attributes['tollgate.audit.kind'] === 'call' && String(l.body).includes('"name":"fixture__echo"')), 10_000, 'OTLP audit logs');
    const logged = receiver.logs.find((l) => String(l.body).includes('"name":"fixture__echo"'))!;
    expect(JSON.parse(String(logged.body))).toMatchObject({ kind: 'call', trace: CLIENT_TRACE, prev: expect.stringMatching(/^[0-9a-f]{64}$/) });

    // Spans and audit log records went through the export worker: the gateway handed over at least what arrived
    // (every span the receiver has is the gateway's), and dropped none.
    const handed = (signal: string): Promise<number | undefined> => counter(gw.adminUrl!, 'tollgate_otlp_handed_over_total', { signal });
    expect(await handed('spans')).toBeGreaterThanOrEqual(receiver.spans.length);
    expect(await handed('logs')).toBeGreaterThanOrEqual(1);
    expect(await counter(gw.adminUrl!, 'tollgate_otlp_dropped_total', { signal: 'spans' })).toBe(0);
    expect(await counter(gw.adminUrl!, 'tollgate_otlp_dropped_total', { signal: 'logs' })).toBe(0);
    expect(await counter(gw.adminUrl!, 'tollgate_otlp_failed_total', { signal: 'spans' })).toBe(0);

    // The audit record carries the trace id.
    const dir = join(gw.dir, '..', '.tollgate', 'audit');
    await gw.shutdown();
    const records = [...queryLog(dir, { target: 'fixture__echo' })].map((l) => JSON.parse(l) as AuditRecord);
    expect(records.map((r) => r.trace)).toEqual([CLIENT_TRACE]);
  });
});

describe('exportThread: main', () => {
  it("exports with the SDK's batch processors on the gateway's thread, handing nothing to a worker", async () => {
    const { gw, receiver } = await tracedGateway('http/protobuf', 'main');
    const client = await connectClient(`${gw.url}/mcp`);
    await client.callTool({ name: 'fixture__echo', arguments: { message: 'inline' } });
    await client.close();
    await eventually(() => receiver.spans.some((s) => s.name === 'tools/call fixture__echo' && s.kind === 2), 10_000, 'server span');
    await eventually(() => receiver.logs.some((l) => String(l.body).includes('"name":"fixture__echo"')), 10_000, 'OTLP audit log');
    expect(await counter(gw.adminUrl!, 'tollgate_otlp_handed_over_total', { signal: 'spans' })).toBeUndefined();
  });
});

describe('tracing off (the embedded default)', () => {
  it('sends no trace context upstream and forwards the request as the client sent it', async () => {
    for (const k of OTEL_VARS) saved[k] = process.env[k];
    for (const k of OTEL_VARS) delete process.env[k];
    fixture = await startHttpMcpServer({ name: 'fixture' });
    gw = await startTestGateway({ 'mcp.yaml': mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']) });
    const client = await connectClient(`${gw.url}/mcp`, { headers: { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01` } });
    await client.callTool({ name: 'fixture__echo', arguments: { message: 'plain' }, _meta: { note: 'kept' } });
    await client.close();
    expect(fixture.metas).toEqual([{ tool: 'echo', note: 'kept' }]);
    // The client's trace id still correlates the audit record.
    const dir = join(gw.dir, '..', '.tollgate', 'audit');
    await gw.shutdown();
    const records = [...queryLog(dir, { target: 'fixture__echo' })].map((l) => JSON.parse(l) as AuditRecord);
    expect(records.map((r) => r.trace)).toEqual([CLIENT_TRACE]);
  });
});

describe('SIGTERM under load (gateway process)', () => {
  let gateway: ConfiguredGateway | undefined;

  afterEach(() => {
    gateway?.dispose();
    gateway = undefined;
  });

  it('exports every span and audit log record of every answered call before it exits', async () => {
    receiver = new OtlpReceiver();
    await receiver.start();
    fixture = await startHttpMcpServer({ name: 'fixture', json: true });
    // The SDK's default batch delay (5 s) and batch size: the last spans leave only because shutdown flushes them.
    const env: NodeJS.ProcessEnv = { ...process.env, TOLLGATE_LOG_LEVEL: 'info', OTEL_EXPORTER_OTLP_ENDPOINT: receiver.httpUrl, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf', OTEL_METRICS_EXPORTER: 'none' };
    for (const k of Object.keys(env)) if (k.startsWith('OTEL_B')) delete env[k];
    gateway = await startConfiguredGateway({
      label: 'trace-sigterm',
      name: 'trace-sigterm',
      drainMs: 5000,
      spec: '  audit: { sinks: { otlp: true } }\n',
      routes: mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']),
      env,
    });
    const config = gateway.config;
    const headers = devAuthHeaders(config, undefined, gateway.url);
    expect(gateway.stdout()).toMatch(/"exportWorker":\["spans","logs"\][^\n]*"msg":"telemetry"/);

    // Each call carries its own trace id (also its echo text), so each answered call's spans and record can be found.
    const traceOf = (k: number, i: number): string => `${(k + 1).toString(16).padStart(8, '0')}${i.toString(16).padStart(8, '0')}${'c'.repeat(16)}`;
    const { answered, code } = await sigtermUnderLoad(gateway, {
      headers,
      tool: 'fixture__echo',
      clients: 4,
      before: 400,
      call: (k, i) => ({ name: traceOf(k, i), meta: { traceparent: `00-${traceOf(k, i)}-${'1'.repeat(16)}-01` } }),
    });
    expect(code, gateway.stderr()).toBe(0);
    expect(answered.length).toBeGreaterThanOrEqual(400);

    // Every answered call: one server span, with its authenticate stage and upstream child, all exported.
    const servers = new Map<string, ReceivedSpan[]>();
    for (const s of receiver.spans) if (s.kind === 2) servers.set(s.traceId, [...(servers.get(s.traceId) ?? []), s]);
    const incomplete = answered.filter((t) => {
      const server = servers.get(t);
      if (server?.length !== 1) return true;
      const names = childrenOf(receiver!.spans, server[0]!).map((c) => c.name);
      return !server[0]!.events.some((e) => e.name === 'authenticate') || !names.includes('tools/call echo');
    });
    expect(incomplete).toEqual([]);
    // And its audit record went out as an OTLP log record.
    const logged = new Set(receiver.logs.map((l) => (JSON.parse(String(l.body)) as { trace?: string }).trace));
    expect(answered.filter((t) => !logged.has(t))).toEqual([]);
  });
});
