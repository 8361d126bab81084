/**
 * Two vLLM-like backends in one pool behind the OpenAI-compatible route, with the adapter's own health probe (vLLM's
 * GET /health), driven by the official `openai` npm client:
 * - traffic is spread over both;
 * - one dies: no request fails (the refused attempt goes to the other before any byte reached the client), it is
 *   taken out, and it takes traffic again once its health checks pass;
 * - one reports unhealthy on /health: it is taken out before any request fails, and comes back when it recovers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EndpointStatus } from '../../src/upstream/endpoint-pool.ts';
import { eventually, type TestGateway } from '../helpers/gateway.ts';
import { LLAMA, LLAMA_UPSTREAM, modelsRoute, openaiBackend, openaiClient, startModelsGateway } from '../helpers/openai-gateway.ts';
import { startVllm, type VllmServer } from '../helpers/vllm-server.ts';

let a: VllmServer;
let b: VllmServer;
let gw: TestGateway;

beforeAll(async () => {
  a = await startVllm({ name: 'a', models: [LLAMA_UPSTREAM] });
  b = await startVllm({ name: 'b', models: [LLAMA_UPSTREAM] });
  gw = await startModelsGateway({
    'pool.yaml':
      openaiBackend('llama-pool', {
        endpoints: [{ url: a.url }, { url: b.url }],
        healthCheck: { intervalMs: 100, timeoutMs: 1000, unhealthyThreshold: 2, healthyThreshold: 2 },
        outlierDetection: { consecutiveFailures: 1, baseEjectionMs: 60_000 },
      }) + modelsRoute('models', ['llama-pool'], { models: [{ name: LLAMA, backend: 'llama-pool', model: LLAMA_UPSTREAM }] }),
  });
  await eventually(() => a.probes > 1 && b.probes > 1, 10_000, 'vLLM /health probes on both');
});

afterAll(async () => {
  await gw?.stop();
  await a?.stop();
  await b?.stop();
});

function stateOf(server: VllmServer): string | undefined {
  const up = gw.gateway.readiness().upstreams['llama-pool'] as { endpoints?: readonly EndpointStatus[] };
  return up.endpoints?.find((e) => e.url === server.url)?.state;
}

async function complete(n: number): Promise<string[]> {
  const client = openaiClient(gw);
  const served: string[] = [];
  for (let i = 0; i < n; i++) {
    const before = { a: a.seen.length, b: b.seen.length };
    const stream = await client.chat.completions.create({ model: LLAMA, messages: [{ role: 'user', content: 'words 3' }], stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(text).toBe('t0 t1 t2 ');
    served.push(a.seen.length > before.a ? 'a' : b.seen.length > before.b ? 'b' : '?');
  }
  return served;
}

describe('a pool of two vLLM backends', () => {
  it('spreads completions over both', async () => {
    const served = await complete(6);
    expect(served.filter((s) => s === 'a').length).toBeGreaterThan(0);
    expect(served.filter((s) => s === 'b').length).toBeGreaterThan(0);
  });

  it('one dies: every completion still succeeds, on the other; it comes back once its health checks pass', async () => {
    await a.stop();
    expect(await complete(8)).toEqual(Array(8).fill('b'));
    expect(stateOf(a)).not.toBe('available');
    await a.start();
    await eventually(() => stateOf(a) === 'available', 10_000, 'the restarted backend to pass its health checks');
    expect((await complete(6)).filter((s) => s === 'a').length).toBeGreaterThan(0);
  });

  it('one reports unhealthy: it is taken out before any completion fails, and back when it recovers', async () => {
    b.health = 503;
    await eventually(() => stateOf(b) === 'unhealthy', 10_000, 'the unhealthy backend to be taken out');
    expect(await complete(5)).toEqual(Array(5).fill('a'));
    b.health = 200;
    await eventually(() => stateOf(b) === 'available', 10_000, 'the backend to be put back');
    expect((await complete(6)).filter((s) => s === 'b').length).toBeGreaterThan(0);
  });
});
