/**
 * A protocol is added without touching src/gateway/: the "echo" test adapter (test/helpers/echo-protocol.ts) is
 * registered only here, and gets from the core what every protocol gets: identity (real dev SVIDs), policy (Rego
 * built by the real opa), the audit log, metrics and traces (a real OTLP receiver), the lifecycle's refusal entry
 * point, the forwarder (caller credentials never forwarded, the backend's own added from config) and /readyz.
 * A Backend naming a protocol nobody registered is refused when the config loads, with its file and line.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { request, type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryLog } from '../../src/audit/query.ts';
import { ConfigError, loadConfigDir } from '../../src/config/load.ts';
import type { Call } from '../../src/core/call.ts';
import { startGateway } from '../../src/main.ts';
import { echoBackend, echoProtocol } from '../helpers/echo-protocol.ts';
import { startEchoServer, type EchoServer } from '../helpers/echo-server.ts';
import { DEV_SPIFFE_ID, GATEWAY_YAML, eventually, recordCalls, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { OtlpReceiver } from '../helpers/otlp-receiver.ts';
import { writeTree } from '../helpers/policy.ts';

const POLICY = `package tollgate

import rego.v1

default allow := false

allow if {
	input.protocol == "echo"
	input.principal.id == "${DEV_SPIFFE_ID}"
	not startswith(input.target.name, "/secret")
}

reason := "secrets are not echoed" if startswith(input.target.name, "/secret")

else := ""

decision := {"allow": allow, "reason": reason}
`;

const OTEL_VARS = ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_PROTOCOL', 'OTEL_BSP_SCHEDULE_DELAY'] as const;
const saved: Record<string, string | undefined> = {};

let gw: TestGateway;
let upstream: EchoServer;
let receiver: OtlpReceiver;
let finished: Call[] = [];

function auditRecords(): Array<Record<string, unknown>> {
  const dir = join(gw.dir, '..', '.tollgate', 'audit');
  return [...queryLog(dir, { kinds: ['call'] })].map((l) => JSON.parse(l) as Record<string, unknown>).filter((r) => r.protocol === 'echo');
}

function exchange(url: string, opts: { method: string; headers: Record<string, string>; body?: string }): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method, headers: opts.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

async function counter(name: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
  const family = parsePrometheusTextFormat(text).find((f) => f.name === name);
  const m = family?.metrics.filter((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v)) ?? [];
  return m.reduce((sum, x) => sum + Number(x.value), 0);
}

beforeAll(async () => {
  upstream = await startEchoServer();
  receiver = new OtlpReceiver();
  await receiver.start();
  for (const k of OTEL_VARS) saved[k] = process.env[k];
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.httpUrl;
  process.env.OTEL_EXPORTER_OTLP_PROTOCOL = 'http/protobuf';
  process.env.OTEL_BSP_SCHEDULE_DELAY = '50';
  process.env.ECHO_UPSTREAM_TOKEN = 'Bearer the-gateway-own-credential';
  const policyDir = writeTree({ 'echo.rego': POLICY });
  gw = await startTestGateway(
    {
      'echo.yaml':
        echoBackend('echoer', upstream.url, { headers: [{ name: 'authorization', valueFrom: { env: 'ECHO_UPSTREAM_TOKEN' } }] }) +
        route('echo', '/echo', ['echoer']),
    },
    {
      gatewayYaml: `${GATEWAY_YAML}  policy: { dir: ${JSON.stringify(policyDir)}, entrypoints: { decision: tollgate/decision, visible: null } }\n`,
      protocols: [echoProtocol],
    },
  );
  finished = recordCalls(gw);
});

afterAll(async () => {
  await gw?.stop();
  await upstream?.close();
  await receiver?.close();
  for (const k of OTEL_VARS) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
  delete process.env.ECHO_UPSTREAM_TOKEN;
});

describe('a protocol registered by a test gets the whole core (the echo adapter)', () => {
  it('refuses a caller without credentials in its own error shape, before the upstream sees anything', async () => {
    const before = upstream.seen.length;
    const res = await fetch(`${gw.url}/echo/hello`, { method: 'POST', body: 'hi' });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer /);
    expect(await res.json()).toMatchObject({ error: { code: 'TG_UNAUTHENTICATED' } });
    expect(upstream.seen.length).toBe(before);
  });

  it('forwards an allowed call: the body streams back, caller credentials stay behind, the backend credential is added', async () => {
    // node:http, not fetch: fetch will not send a Connection header naming another header.
    const res = await exchange(`${gw.url}/echo/hello?x=1`, {
      method: 'POST',
      body: 'hello through the core',
      headers: { ...gw.authHeaders(), 'content-type': 'text/plain', cookie: 'session=caller-secret', 'x-secret-header': 'no', 'x-echo-note': 'yes', connection: 'keep-alive, x-echo-hop', 'x-echo-hop': 'hop-by-hop' },
    });
    expect(res.status).toBe(200);
    expect(res.body).toBe('hello through the core');
    expect(res.headers['x-echo-path']).toBe('/hello?x=1');
    expect(res.headers['x-echo-authorization']).toBe('Bearer the-gateway-own-credential');
    expect(res.headers['x-echo-cookie']).toBe('');
    expect(res.headers['x-echo-saw-secret']).toBe('');
    // Response headers outside the allow-list do not reach the caller.
    expect(res.headers['x-upstream-private']).toBeUndefined();
    const seen = upstream.seen.at(-1)!;
    expect(seen.headers['x-echo-note']).toBe('yes');
    // A header the Connection header names is hop-by-hop, even when the allow-list would take it.
    expect(seen.headers['x-echo-hop']).toBeUndefined();
    expect(seen.headers.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
    await eventually(() => finished.some((c) => c.operation === 'echo/post' && c.outcome === 'ok'), 5_000, 'the call to finish');
    const call = finished.find((c) => c.operation === 'echo/post' && c.outcome === 'ok')!;
    expect(call.principal?.id).toBe(DEV_SPIFFE_ID);
    expect(call.decision?.allow).toBe(true);
    expect(call.transfer).toMatchObject({ requestBytes: 22, responseBytes: 22, attempts: 1 });
    expect(call.transfer!.firstByteMs).toBeGreaterThanOrEqual(0);
  });

  it('denies by policy in its own error shape, and the upstream never sees the call', async () => {
    const before = upstream.seen.length;
    const res = await fetch(`${gw.url}/echo/secret/plans`, { method: 'POST', body: 'x', headers: gw.authHeaders() });
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ error: { code: 'TG_POLICY_DENIED', message: expect.stringContaining('secrets are not echoed') } });
    expect(upstream.seen.length).toBe(before);
  });

  it('refuses a method before a Call exists through the lifecycle entry point, and still audits and counts it', async () => {
    const res = await fetch(`${gw.url}/echo/hello`, { method: 'DELETE', headers: gw.authHeaders() });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET, POST, PUT');
    expect(await res.json()).toMatchObject({ error: { code: 'TG_METHOD_NOT_ALLOWED' } });
    await eventually(() => finished.some((c) => c.operation === 'echo/refused'), 5_000, 'the refusal to be recorded');
  });

  it('shows its upstream in /readyz', async () => {
    const body = (await (await fetch(`${gw.adminUrl}/readyz`)).json()) as { upstreams: Record<string, { up: boolean; transport: string }> };
    // A backend with one url is a pool of one endpoint (src/upstream/endpoint-pool.ts).
    expect(body.upstreams.echoer).toEqual({ up: true, transport: 'http', endpoints: [{ url: upstream.url, state: 'available', outstanding: 0 }] });
  });

  it('counts, traces and audits every echo call like any other protocol', async () => {
    expect(await counter('tollgate_requests_total', { protocol: 'echo', outcome: 'ok' })).toBeGreaterThanOrEqual(1);
    expect(await counter('tollgate_requests_total', { protocol: 'echo', outcome: 'unauthenticated' })).toBeGreaterThanOrEqual(1);
    expect(await counter('tollgate_requests_total', { protocol: 'echo', outcome: 'denied' })).toBeGreaterThanOrEqual(1);
    expect(await counter('tollgate_policy_denials_total', { protocol: 'echo' })).toBeGreaterThanOrEqual(1);

    await eventually(() => receiver.spans.some((s) => s.kind === 2 && s.attributes['tollgate.protocol'] === 'echo' && s.attributes['tollgate.outcome'] === 'ok'), 10_000, 'the echo server span');
    const server = receiver.spans.find((s) => s.kind === 2 && s.attributes['tollgate.protocol'] === 'echo' && s.attributes['tollgate.outcome'] === 'ok')!;
    expect(server.name).toBe('echo/post');
    expect(server.attributes['tollgate.principal.id']).toBe(DEV_SPIFFE_ID);
    await eventually(() => receiver.spans.some((s) => s.parentSpanId === server.spanId && s.kind === 3), 10_000, 'the upstream span');
    const children = receiver.spans.filter((s) => s.parentSpanId === server.spanId);
    // Guard stages are events of the server span (telemetry.tracing.stages: events, the default).
    expect(server.events.map((e) => e.name)).toEqual(expect.arrayContaining(['authenticate', 'authorize']));
    const upstreamSpan = children.find((s) => s.kind === 3)!;
    expect(upstreamSpan.attributes).toMatchObject({ 'tollgate.upstream': 'echoer', 'http.request.body.size': 22, 'http.response.body.size': 22 });
    // The upstream got the CLIENT span's context in its traceparent header.
    expect(upstream.seen.some((r) => r.headers.traceparent === `00-${upstreamSpan.traceId}-${upstreamSpan.spanId}-01`)).toBe(true);

    await eventually(() => auditRecords().length >= 4, 10_000, 'the audit records');
    const records = auditRecords();
    expect(records.find((r) => r.outcome === 'unauthenticated')).toMatchObject({ operation: 'echo/post', code: 'TG_UNAUTHENTICATED', status: 401 });
    expect(records.find((r) => r.outcome === 'ok')).toMatchObject({ operation: 'echo/post', principal: DEV_SPIFFE_ID, upstream: 'echoer', status: 200, target: { kind: 'resource', name: '/hello' } });
    expect(records.find((r) => r.outcome === 'denied')).toMatchObject({ principal: DEV_SPIFFE_ID, code: 'TG_POLICY_DENIED', status: 403, decision: { allow: false } });
    expect(records.find((r) => r.operation === 'echo/refused')).toMatchObject({ code: 'TG_METHOD_NOT_ALLOWED', status: 405, outcome: 'error' });
  });
});

describe('a protocol nobody registered', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-unregistered-'));
  writeFileSync(join(dir, 'gateway.yaml'), GATEWAY_YAML);
  writeFileSync(join(dir, 'echo.yaml'), echoBackend('echoer', 'http://127.0.0.1:9') + route('echo', '/echo', ['echoer']));

  it('is refused when the config loads, naming the file and line of the Backend protocol', () => {
    let err: unknown;
    try {
      loadConfigDir(dir, process.env, new Set(['mcp']));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const issue = (err as ConfigError).issues[0]!;
    expect(issue.file).toBe(join(dir, 'echo.yaml'));
    expect(issue.line).toBe(5);
    expect(issue.message).toContain('protocol "echo" is not served by this gateway (served: mcp)');
  });

  it('stops a gateway that does not register it from starting', async () => {
    await expect(startGateway({ configDir: dir, host: '127.0.0.1', port: 0, logLevel: 'silent' })).rejects.toBeInstanceOf(ConfigError);
  });
});
