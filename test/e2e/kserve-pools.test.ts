/**
 * A pool of two endpoints behind a KServe route, each a TCP relay (test/helpers/tcp-proxy.ts) in front of one real
 * Triton, with the adapter's own health probe (every routed model's /v2/models/<m>/ready):
 * - infer is spread over both endpoints;
 * - one fails (connections refused and reset): no request fails, it is taken out, and it takes traffic again once its
 *   health checks pass;
 * - the backend breaks mid-stream: the client gets a well-formed KServe error event and a clean end;
 * - the client goes away mid-stream: the gateway aborts the upstream request, and the backend side sees its connection
 *   closed long before the stream would have ended.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Call } from '../../src/core/call.ts';
import type { EndpointStatus } from '../../src/upstream/endpoint-pool.ts';
import { eventually, recordCalls, type TestGateway } from '../helpers/gateway.ts';
import { auth, kserveBackend, kserveRoute, readEvents, startKServeGateway } from '../helpers/kserve.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';
import { startTriton, type Triton } from '../helpers/triton.ts';

let triton: Triton;
let a: TcpProxy;
let b: TcpProxy;
let gw: TestGateway;
let finished: Call[] = [];

const ADD = { inputs: [{ name: 'a', datatype: 'FP32', shape: [1, 2], data: [1, 2] }, { name: 'b', datatype: 'FP32', shape: [1, 2], data: [3, 4] }] };

beforeAll(async () => {
  triton = await startTriton();
  a = await startTcpProxy(triton.url);
  b = await startTcpProxy(triton.url);
  gw = await startKServeGateway({
    'pool.yaml':
      kserveBackend('triton-pool', {
        endpoints: [{ url: a.url }, { url: b.url }],
        healthCheck: { intervalMs: 200, timeoutMs: 2000, unhealthyThreshold: 2, healthyThreshold: 2 },
        outlierDetection: { consecutiveFailures: 1, baseEjectionMs: 60_000 },
      }) +
      kserveRoute('models', ['triton-pool'], {
        models: [
          { name: 'add', backend: 'triton-pool' },
          { name: 'stream', backend: 'triton-pool' },
        ],
        kserve: { countStreamEvents: true },
      }),
  });
  finished = recordCalls(gw);
  await eventually(() => stateOf(a) === 'available' && stateOf(b) === 'available' && a.fromServer() > 0 && b.fromServer() > 0, 20_000, 'both endpoints to pass the ready probes');
}, 180_000);

afterAll(async () => {
  await gw?.stop();
  await a?.close();
  await b?.close();
  await triton?.stop();
}, 60_000);

function stateOf(p: TcpProxy): string | undefined {
  const up = gw.gateway.readiness().upstreams['triton-pool'] as { endpoints?: readonly EndpointStatus[] } | undefined;
  return up?.endpoints?.find((e) => e.url === p.url)?.state;
}

/** Runs `n` infers one at a time; which endpoint carried each (by the bytes each relay received). */
async function infer(n: number): Promise<string[]> {
  const served: string[] = [];
  for (let i = 0; i < n; i++) {
    const before = { a: a.fromClients(), b: b.fromClients() };
    const res = await fetch(`${gw.url}/v2/models/add/infer`, { method: 'POST', headers: { ...auth(gw), 'content-type': 'application/json' }, body: JSON.stringify(ADD) });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ outputs: [{ data: [4, 6] }] });
    // Health probes also cross the relays: the request body's bytes tell which one carried the infer.
    const da = a.fromClients() - before.a;
    const db = b.fromClients() - before.b;
    served.push(da > db ? 'a' : 'b');
  }
  return served;
}

async function callAfter(since: number): Promise<Call> {
  await eventually(() => finished.length > since, 5_000, 'the gateway to finish the call');
  return finished[since]!;
}

describe('a pool of two Triton endpoints', () => {
  it('spreads infer over both', async () => {
    const served = await infer(8);
    expect(served).toContain('a');
    expect(served).toContain('b');
  });

  it('one fails: nothing fails for callers, it is taken out, and it comes back after its health checks pass', async () => {
    await b.down();
    // Requests keep succeeding: a refused connection is retried on the other endpoint before any byte was sent back.
    const during = await infer(6);
    expect(during.every((s) => s === 'a')).toBe(true);
    await eventually(() => stateOf(b) !== 'available', 10_000, 'b to be taken out');
    expect((await fetch(`${gw.url}/v2/health/ready`, { headers: auth(gw) })).status).toBe(200);
    await b.up();
    await eventually(() => stateOf(b) === 'available', 20_000, 'b to pass its health checks again');
    const after = await infer(8);
    expect(after).toContain('b');
  });

  it('the backend breaking mid-stream: a well-formed KServe error event, then a clean end', async () => {
    const since = finished.length;
    const reading = readEvents(`${gw.url}/v2/models/stream/generate_stream`, { text_input: 'repeat 30 100' }, auth(gw));
    // Cut every relayed connection once the stream is under way.
    await eventually(() => finished.length === since && a.fromServer() + b.fromServer() > 0, 5_000);
    await new Promise((r) => setTimeout(r, 450));
    a.cut();
    b.cut();
    const { status, events } = await reading;
    expect(status).toBe(200);
    const last = JSON.parse(events.at(-1)!.data) as { error?: string; code?: string };
    expect(last.code).toBe('TG_UPSTREAM_UNAVAILABLE');
    expect(last.error).toContain('triton-pool');
    const outputs = events.slice(0, -1).map((e) => (JSON.parse(e.data) as { text_output: string }).text_output);
    expect(outputs.length).toBeGreaterThan(0);
    expect(outputs.length).toBeLessThan(30);
    expect(outputs).toEqual(outputs.map((_, i) => `w${i}`));
    const call = await callAfter(since);
    expect(call.outcome).toBe('upstream_error');
    expect(call.usage?.outputTokens).toBe(outputs.length);
    await eventually(() => stateOf(a) === 'available' && stateOf(b) === 'available', 20_000, 'both endpoints back');
  });

  it('the client going away mid-stream aborts the upstream request: the backend side sees its connection closed', async () => {
    const closes = a.clientCloses() + b.clientCloses();
    const controller = new AbortController();
    const since = finished.length;
    const started = performance.now();
    const res = await fetch(`${gw.url}/v2/models/stream/generate_stream`, {
      method: 'POST',
      headers: { ...auth(gw), 'content-type': 'application/json' },
      body: JSON.stringify({ text_input: 'repeat 100 100' }),
      signal: controller.signal,
    });
    const reader = res.body!.getReader();
    let text = '';
    while (!text.includes('"w1"')) text += Buffer.from((await reader.read()).value!).toString();
    controller.abort();
    await eventually(() => a.clientCloses() + b.clientCloses() > closes, 5_000, 'the gateway to close its upstream connection');
    // The stream would have run ~10 s; the backend's connection closed right after the client left.
    expect(performance.now() - started).toBeLessThan(8_000);
    const call = await callAfter(since);
    expect(call.outcome).toBe('cancelled');
    expect(call.error?.code).toBe('TG_REQUEST_CANCELLED');
  });
});
