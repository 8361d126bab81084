/**
 * Redis killed mid-run, then restarted: each limit keeps its fail mode while the store is gone (closed refuses with
 * TG_LIMITER_UNAVAILABLE, open admits, local decides on a per-replica bucket), /readyz/store says so, and decisions
 * come from Redis again once it is back, without restarting the gateway. A reconciliation that could not reach the
 * store is applied when it returns. A corrupted counter is the store failing, never a free pass.
 */
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Guard } from '../../src/core/pipeline.ts';
import { encodeValue, rateKey, budgetKey } from '../../src/guards/limits/keys.ts';
import { Calendar } from '../../src/guards/limits/windows.ts';
import { GATEWAY_YAML, connectClient, eventually, mcpBackend, route, startTestGateway, DEV_SPIFFE_ID, type TestGateway } from '../helpers/gateway.ts';
import { limitCall } from '../helpers/limits.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { startToolServer, type ToolServer } from '../helpers/tool-server.ts';

const DOCS = ['closed', 'open', 'local']
  .map(
    (mode) => `---
apiVersion: tollgate.dev/v1alpha1
kind: RateLimit
metadata: { name: rate-${mode} }
spec: { match: { tools: [tools/${mode}] }, key: [principal], requests: 4, per: 10m, failMode: ${mode} }
`,
  )
  .join('')
  .concat(
    ['closed', 'open']
      .map(
        (mode) => `---
apiVersion: tollgate.dev/v1alpha1
kind: Budget
metadata: { name: budget-${mode} }
spec: { match: { tools: [tools/pay-${mode}] }, key: [principal], window: day, cost: 100, failMode: ${mode} }
`,
      )
      .join(''),
  )
  .concat(`---
apiVersion: tollgate.dev/v1alpha1
kind: Budget
metadata: { name: model-tokens }
spec: { match: { protocols: [openai] }, key: [principal], window: day, tokens: 100000 }
`);

let redis: RedisServer;
let tools: ToolServer;
let gw: TestGateway;
let client: Client;
let probe: Redis;

async function outcome(tool: string): Promise<string> {
  try {
    await client.callTool({ name: `tools__${tool}`, arguments: { message: 'x' } });
    return 'ok';
  } catch (err) {
    if (err instanceof McpError) return String((err.data as { code?: string }).code);
    throw err;
  }
}

async function outcomes(tool: string, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(await outcome(tool));
  return out;
}

async function storeStatus(): Promise<number> {
  return (await fetch(`${gw.adminUrl}/readyz/store`)).status;
}

function limitsGuard(): Guard {
  return gw.gateway.state().pipeline.guards.find((g) => g.name === 'limits')!;
}

beforeAll(async () => {
  // appendfsync always: what was written before the kill is there after the restart (a deferred settle applies).
  redis = await startRedis(['--appendonly', 'yes', '--appendfsync', 'always']);
  tools = await startToolServer('tools', { closed: ['message'], open: ['message'], local: ['message'], 'pay-closed': ['message'], 'pay-open': ['message'] });
  const gatewayYaml = `${GATEWAY_YAML}  redis: { url: ${redis.url}, commandTimeoutMs: 2000, reconnect: { minMs: 50, maxMs: 400 } }
  limits:
    replicas: 2
    toolCosts: [{ tool: "tools/pay-*", cost: 1 }]
`;
  gw = await startTestGateway({ 'mcp.yaml': mcpBackend('tools', { url: tools.url }) + route('mcp', '/mcp', ['tools']), 'limits.yaml': DOCS }, { gatewayYaml });
  await eventually(async () => (await storeStatus()) === 200, 10_000, 'store ready');
  client = await connectClient(`${gw.url}/mcp`);
  probe = new Redis(redis.url, { maxRetriesPerRequest: 0, enableOfflineQueue: false, lazyConnect: true });
  await probe.connect();
});

afterAll(async () => {
  probe?.disconnect();
  await client?.close();
  await gw?.stop();
  await tools?.close();
  await redis?.stop();
});

describe('limits when Redis dies and comes back', () => {
  it('keeps each fail mode while Redis is down, and recovers without a restart', async () => {
    for (const t of ['closed', 'open', 'local', 'pay-closed', 'pay-open']) expect(await outcome(t)).toBe('ok');
    // A model call admitted (tokens reserved) before the crash, still streaming when Redis dies.
    const call = limitCall({ principal: DEV_SPIFFE_ID, protocol: 'openai', operation: 'chat.completions', target: { kind: 'model', name: 'llama', server: 'vllm' }, estimate: { inputTokens: 100, maxOutputTokens: 900 } });
    await limitsGuard().admit!(call);
    const tokensKey = budgetKey('tg:', 'tollgate', 'model-tokens', `principal=${encodeValue(DEV_SPIFFE_ID)}`, new Calendar('UTC').current('day', Date.now()).id, 't');
    expect(await probe.get(tokensKey)).toBe('1000');
    probe.disconnect();

    await redis.kill();
    await eventually(async () => (await storeStatus()) === 503, 10_000, '/readyz/store reports the store down');
    const status = (await (await fetch(`${gw.adminUrl}/readyz/store`)).json()) as { ready: boolean; state: string };
    expect(status.ready).toBe(false);
    // /readyz shows it too: still ready (every limit has a fail mode), but not under ?strict.
    const readyz = await fetch(`${gw.adminUrl}/readyz`);
    expect(readyz.status).toBe(200);
    expect(((await readyz.json()) as { store: { ready: boolean; mode: string } }).store).toMatchObject({ ready: false, mode: 'standalone' });
    expect((await fetch(`${gw.adminUrl}/readyz?strict`)).status).toBe(503);

    expect(await outcomes('closed', 3)).toEqual(Array(3).fill('TG_LIMITER_UNAVAILABLE'));
    expect(await outcomes('open', 6)).toEqual(Array(6).fill('ok')); // beyond the 4 per 10 minutes: not counted
    // Local fallback: 1/replicas of the burst (4 / 2), then refused.
    expect(await outcomes('local', 3)).toEqual(['ok', 'ok', 'TG_RATE_LIMITED']);
    expect(await outcome('pay-closed')).toBe('TG_LIMITER_UNAVAILABLE');
    expect(await outcome('pay-open')).toBe('ok');
    // The stream ends meanwhile: its reconciliation waits for the store.
    call.usage = { inputTokens: 80, outputTokens: 120, reported: true };
    await limitsGuard().settle!(call);
    expect(call.scratch.get('limits')).toMatchObject({ charged: { tokens: 200 }, settle: 'queued' });
    expect(gw.services.limits.pendingSettles).toBe(1);

    await redis.restart();
    await eventually(async () => (await storeStatus()) === 200, 15_000, 'store ready again (no gateway restart)');
    expect((await fetch(`${gw.adminUrl}/readyz?strict`)).status).toBe(200);
    // The deferred reconciliation was applied on reconnect: 1000 reserved -> 200 used.
    await probe.connect();
    await eventually(async () => (await probe.get(tokensKey)) === '200', 5_000, 'deferred settle applied');
    expect(gw.services.limits.pendingSettles).toBe(0);
    // Decisions come from Redis again: the closed limit admits, and its bucket (1 of 4 used before) is in Redis.
    expect(await outcomes('closed', 4)).toEqual(['ok', 'ok', 'ok', 'TG_RATE_LIMITED']);
    expect(await outcome('pay-closed')).toBe('ok');
    const key = rateKey('tg:', 'tollgate', 'rate-closed', `principal=${encodeValue(DEV_SPIFFE_ID)}`);
    expect(Number(await probe.get(key))).toBeGreaterThan(Date.now() * 1000);

    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/tollgate_limiter_store_errors_total\{reason="not_connected"\} [1-9]/);
    expect(metrics).toMatch(/tollgate_rate_limit_decisions_total\{limit="rate-local",decision="local_limited"\} 1/);
    expect(metrics).toMatch(/tollgate_rate_limit_decisions_total\{limit="rate-open",decision="fail_open"\} 6/);
    expect(metrics).toMatch(/tollgate_budget_settles_total\{result="queued"\} 1/);
  });

  it('treats a corrupted counter as the store failing, not as a free pass', async () => {
    const key = rateKey('tg:', 'tollgate', 'rate-closed', `principal=${encodeValue(DEV_SPIFFE_ID)}`);
    const openKey = rateKey('tg:', 'tollgate', 'rate-open', `principal=${encodeValue(DEV_SPIFFE_ID)}`);
    await probe.set(key, 'garbage');
    expect(await outcome('closed')).toBe('TG_LIMITER_UNAVAILABLE');
    await probe.del(key);
    await probe.lpush(key, 'x'); // another type altogether (WRONGTYPE)
    expect(await outcome('closed')).toBe('TG_LIMITER_UNAVAILABLE');
    await probe.set(openKey, '-5');
    expect(await outcome('open')).toBe('ok'); // that limit's fail mode is open
    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/tollgate_limiter_store_errors_total\{reason="corrupt"\} 3/);
    await probe.del(key, openKey);
    expect(await outcome('closed')).toBe('ok');
  });
});
