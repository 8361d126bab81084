/**
 * Upstream pools (src/upstream/endpoint-pool.ts) through a real gateway: the "echo" test protocol forwards to a
 * Backend with several `endpoints`, each a real HTTP replica on loopback (test/helpers/replica-server.ts).
 * - least outstanding requests spreads held requests over the replicas;
 * - a replica that dies: no request fails (the attempt that was refused is retried on the other replica before any
 *   byte reached the client), the dead one is ejected, and it takes traffic again once its health checks pass;
 * - a replica failing its health checks is taken out before any request fails, and put back when it passes;
 * - 5xx answers and bodies that break eject a replica (passive), which returns after its ejection time;
 * - the circuit breaker refuses the request over `maxRequests` at once, and admits again once one finished.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfigDir } from '../../src/config/load.ts';
import type { EndpointStatus } from '../../src/upstream/endpoint-pool.ts';
import { echoProtocol } from '../helpers/echo-protocol.ts';
import { eventually, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startReplica, type ReplicaServer } from '../helpers/replica-server.ts';

interface Answer {
  readonly status: number;
  readonly body: string;
}

function pooledBackend(name: string, replicas: readonly ReplicaServer[], extra: Record<string, unknown> = {}): string {
  return `---
apiVersion: tollgate.dev/v1alpha1
kind: Backend
metadata: { name: ${name} }
spec: ${JSON.stringify({ protocol: 'echo', endpoints: replicas.map((r) => ({ url: r.url })), ...extra })}
`;
}

let gw: TestGateway | undefined;
const replicas: ReplicaServer[] = [];

async function replica(name: string): Promise<ReplicaServer> {
  const r = await startReplica(name);
  replicas.push(r);
  return r;
}

afterEach(async () => {
  for (const r of replicas) r.releaseHeld();
  await gw?.stop();
  gw = undefined;
  await Promise.all(replicas.splice(0).map((r) => r.stop()));
});

async function gateway(yaml: string): Promise<TestGateway> {
  gw = await startTestGateway({ 'pool.yaml': yaml + route('pool', '/pool', ['models']) }, { protocols: [echoProtocol] });
  return gw;
}

function get(g: TestGateway, path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(`${g.url}/pool${path}`, { headers: g.authHeaders() }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Opens a /hold request and resolves once its first chunk arrived (the replica holds it open). */
function hold(g: TestGateway): Promise<{ replica: string; done: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const req = request(`${g.url}/pool/hold`, { headers: g.authHeaders() }, (res) => {
      const done = new Promise<void>((r) => res.once('end', () => r()));
      res.once('data', () => res.resume());
      res.setEncoding('utf8');
      res.once('data', (first: string) => resolve({ replica: first.split(' ')[0]!, done }));
    });
    req.on('error', reject);
    req.end();
  });
}

function endpoints(g: TestGateway): readonly EndpointStatus[] {
  const status = g.gateway.readiness().upstreams.models as { endpoints?: readonly EndpointStatus[] };
  return status.endpoints ?? [];
}

function stateOf(g: TestGateway, r: ReplicaServer): string | undefined {
  return endpoints(g).find((e) => e.url === r.url)?.state;
}

describe('upstream pools', () => {
  it('least outstanding requests: held requests spread over the replicas', async () => {
    const [a, b, c] = [await replica('a'), await replica('b'), await replica('c')];
    const g = await gateway(pooledBackend('models', [a, b, c]));
    const first = await Promise.all([hold(g), hold(g), hold(g)].map(async (p) => (await p).replica));
    expect(first.sort()).toEqual(['a', 'b', 'c']);
    // One more each: still one per replica at every step, since each pick goes to a least busy one.
    const second: string[] = [];
    for (let i = 0; i < 3; i++) second.push((await hold(g)).replica);
    expect(second.sort()).toEqual(['a', 'b', 'c']);
    expect(endpoints(g).map((e) => e.outstanding)).toEqual([2, 2, 2]);
    for (const r of [a, b, c]) r.releaseHeld();
    await eventually(() => endpoints(g).every((e) => e.outstanding === 0), 5_000, 'outstanding requests to drain');
  });

  it('a replica that dies: nothing fails, it is ejected, and it comes back once its health checks pass', async () => {
    const [a, b] = [await replica('a'), await replica('b')];
    const g = await gateway(
      pooledBackend('models', [a, b], {
        healthCheck: { path: '/health', intervalMs: 100, timeoutMs: 500, unhealthyThreshold: 2, healthyThreshold: 2 },
        outlierDetection: { consecutiveFailures: 1, baseEjectionMs: 60_000 },
      }),
    );
    await eventually(() => a.probes > 0 && b.probes > 0, 5_000, 'first health probes');
    await a.stop();
    const during: Answer[] = [];
    for (let i = 0; i < 20; i++) during.push(await get(g, '/id'));
    expect(during.map((x) => x.status)).toEqual(Array(20).fill(200));
    expect(during.every((x) => x.body === 'b')).toBe(true);
    expect(stateOf(g, a)).not.toBe('available');
    expect(g.gateway.readiness().upstreams.models).toMatchObject({ up: true, detail: '1/2 endpoints available' });
    // Back at the same address: the ejection (60 s) ends as soon as its health checks pass.
    await a.start();
    const took = await eventually(() => stateOf(g, a) === 'available', 10_000, 'the replica to be taken back');
    expect(took).toBeLessThan(10_000);
    const after: string[] = [];
    for (let i = 0; i < 10; i++) after.push((await get(g, '/id')).body);
    expect(after).toContain('a');
  });

  it('a replica failing its health checks is taken out before traffic fails, and put back when it passes', async () => {
    const [a, b] = [await replica('a'), await replica('b')];
    const g = await gateway(pooledBackend('models', [a, b], { healthCheck: { path: '/health', intervalMs: 100, unhealthyThreshold: 2, healthyThreshold: 1 } }));
    a.health = 503;
    await eventually(() => stateOf(g, a) === 'unhealthy', 5_000, 'the failing replica to be taken out');
    const before = a.hits.get('/id') ?? 0;
    for (let i = 0; i < 10; i++) expect(await get(g, '/id')).toMatchObject({ status: 200, body: 'b' });
    expect(a.hits.get('/id') ?? 0).toBe(before);
    expect(endpoints(g).find((e) => e.url === a.url)).toMatchObject({ state: 'unhealthy', detail: 'health check /health answered 503' });
    a.health = 200;
    await eventually(() => stateOf(g, a) === 'available', 5_000, 'the replica to pass again');
    const bodies: string[] = [];
    for (let i = 0; i < 6; i++) bodies.push((await get(g, '/id')).body);
    expect(bodies).toContain('a');
  });

  it('5xx answers and broken bodies eject a replica; it returns after its ejection time', async () => {
    const [a, b] = [await replica('a'), await replica('b')];
    const g = await gateway(pooledBackend('models', [a, b], { outlierDetection: { consecutiveFailures: 2, baseEjectionMs: 400 } }));
    // /fail answers 500 on both; the pick alternates (least-request ties are taken in turn), so after four calls
    // each replica failed twice in a row. At most half the pool may be ejected at once: only the first goes.
    for (let i = 0; i < 4; i++) expect((await get(g, '/fail')).status).toBe(500);
    const ejected = endpoints(g).filter((e) => e.state === 'ejected');
    expect(ejected).toHaveLength(1);
    expect(ejected[0]!.detail).toBe('status 500');
    const left = ejected[0]!.url === a.url ? 'b' : 'a';
    for (let i = 0; i < 4; i++) expect((await get(g, '/id')).body).toBe(left);
    await eventually(() => endpoints(g).every((e) => e.state === 'available'), 5_000, 'the ejection to end');
    // A body that breaks mid-way counts as well (the client saw a broken response, the replica is at fault).
    const g2 = g;
    for (let i = 0; i < 4; i++) await get(g2, '/break').catch(() => undefined);
    await eventually(() => endpoints(g2).some((e) => e.state === 'ejected' && e.detail !== undefined && e.detail !== 'status 500'), 5_000, 'an ejection for broken bodies');
  });

  it('the circuit breaker refuses the request over maxRequests at once', async () => {
    const a = await replica('a');
    const g = await gateway(pooledBackend('models', [a], { circuitBreaker: { maxRequests: 2 } }));
    const held = [await hold(g), await hold(g)];
    const refused = await get(g, '/id');
    expect(refused.status).toBe(503);
    expect(JSON.parse(refused.body)).toMatchObject({ error: { code: 'TG_UPSTREAM_OVERLOADED' } });
    expect(a.hits.get('/id') ?? 0).toBe(0);
    a.releaseHeld();
    await Promise.all(held.map((h) => h.done));
    expect(await get(g, '/id')).toMatchObject({ status: 200, body: 'a' });
  });
});

describe('pool config', () => {
  it('refuses url and endpoints together, and endpoints on an MCP backend, with file and line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-pool-config-'));
    writeFileSync(
      join(dir, 'bad.yaml'),
      `apiVersion: tollgate.dev/v1alpha1
kind: Backend
metadata: { name: both }
spec: { protocol: echo, url: "http://127.0.0.1:1", endpoints: [{ url: "http://127.0.0.1:2" }] }
---
apiVersion: tollgate.dev/v1alpha1
kind: Backend
metadata: { name: mcp-pool }
spec: { protocol: mcp, endpoints: [{ url: "http://127.0.0.1:2/mcp" }] }
`,
    );
    try {
      expect(() => loadConfigDir(dir)).toThrow(
        /bad\.yaml:4:\d+: spec\.endpoints: set url or endpoints, not both[\s\S]*bad\.yaml:9:\d+: spec\.endpoints: endpoints \(a pool of replicas\) are for HTTP-forwarded protocols/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
