/**
 * Redis faults while a steady load of limited MCP calls runs (a real redis-server, reached through a fault proxy on
 * loopback): killed and restarted, paused with DEBUG SLEEP, the network stalled, connections dropped. Each limit keeps
 * its configured fail mode while the store cannot answer (closed: TG_LIMITER_UNAVAILABLE, open: admitted), nothing
 * else fails, no call hangs past the command timeout, and decisions come from Redis again after the fault without a
 * restart (recovery time measured), and decisions reach Redis again (its processed-command count moves).
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GATEWAY_YAML, eventually, mcpBackend, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { rawMcpSession, steadyLoad, type SteadyLoad } from '../helpers/steady-load.ts';
import { startToolServer, type ToolServer } from '../helpers/tool-server.ts';

const COMMAND_TIMEOUT_MS = 200;

// leaseUnits: 0: every call is a decision in Redis (the recovery check counts Redis commands per call; with leases
// a busy key's calls are served locally, see limits-lease.test.ts).
const LIMITS = ['closed', 'open']
  .map(
    (mode) => `---
apiVersion: tollgate.dev/v1alpha1
kind: RateLimit
metadata: { name: rate-${mode} }
spec: { match: { tools: [tools/${mode}] }, key: [principal], requests: 1000000, per: 1m, leaseUnits: 0, failMode: ${mode} }
`,
  )
  .join('');

let redis: RedisServer;
let proxy: FaultProxy;
let tools: ToolServer;
let gw: TestGateway;
let direct: Redis;
let closed: SteadyLoad;
let open: SteadyLoad;
const table: string[] = [];

beforeAll(async () => {
  redis = await startRedis(['--enable-debug-command', 'yes']);
  proxy = await startFaultProxy({ port: redis.port }, 'redis');
  tools = await startToolServer('tools', { closed: ['message'], open: ['message'] });
  const gatewayYaml = `${GATEWAY_YAML}  redis: { url: ${proxy.url}, commandTimeoutMs: ${COMMAND_TIMEOUT_MS}, connectTimeoutMs: 500, reconnect: { minMs: 50, maxMs: 400 } }\n`;
  gw = await startTestGateway({ 'mcp.yaml': mcpBackend('tools', { url: tools.url }) + route('mcp', '/mcp', ['tools']), 'limits.yaml': LIMITS }, { gatewayYaml });
  await eventually(() => gw.gateway.readiness().store?.ready === true, 10_000, 'store ready');
  direct = new Redis(redis.url, { maxRetriesPerRequest: 0, lazyConnect: true });
  direct.on('error', () => {});
  await direct.connect();
  const s = await rawMcpSession(`${gw.url}/mcp`, gw.authHeaders());
  closed = steadyLoad(2, (w, i) => s.call('tools__closed', { message: `c${w}-${i}` }), { maxCalls: 50_000, pauseMs: 20 });
  open = steadyLoad(2, (w, i) => s.call('tools__open', { message: `o${w}-${i}` }), { maxCalls: 50_000, pauseMs: 20 });
  await closed.more(10);
  await open.more(10);
});

afterAll(async () => {
  console.log(`[resil] redis faults\n${table.join('\n')}`);
  await closed?.stop();
  await open?.stop();
  direct?.disconnect();
  await gw?.stop();
  await tools?.close();
  await proxy?.close();
  await redis?.stop();
});

/** Commands Redis has processed (they move only when decisions reach Redis). */
async function commandsProcessed(): Promise<number> {
  const info = await direct.info('stats');
  return Number(/total_commands_processed:(\d+)/.exec(info)![1]);
}

/** Injects a fault until the closed-mode load saw `n` refusals, removes it, and waits until both loads recover. */
async function fault(name: string, inject: () => Promise<void> | void, remove: () => Promise<void> | void, n = 3): Promise<void> {
  await closed.more(5);
  const t0 = performance.now();
  await inject();
  await eventually(() => (closed.kinds(t0).TG_LIMITER_UNAVAILABLE ?? 0) >= n, 20_000, `${name}: closed-mode refusals`);
  await open.more(5);
  await remove();
  const t1 = performance.now();
  await eventually(() => closed.recoveredAfter(t1, 10) !== undefined, 20_000, `${name}: recovery`);
  const recoveryMs = closed.recoveredAfter(t1, 10)!;
  const during = { closed: closed.kinds(t0, t1), open: open.kinds(t0, t1) };
  table.push(`| ${name} | closed ${JSON.stringify(during.closed)} | open ${JSON.stringify(during.open)} | recovery ${recoveryMs.toFixed(0)} ms |`);
  // Fail modes and nothing else: closed refuses, open admits every call.
  expect(Object.keys(during.closed).filter((k) => k !== 'ok' && k !== 'TG_LIMITER_UNAVAILABLE'), JSON.stringify(during)).toEqual([]);
  expect(Object.keys(during.open), JSON.stringify(during)).toEqual(['ok']);
  // No call waited much longer than the command timeout (plus the call itself): nothing hangs on the store.
  const slowest = Math.max(...closed.outcomes.filter((o) => o.at >= t0 && o.at <= t1).map((o) => o.ms));
  expect(slowest).toBeLessThan(COMMAND_TIMEOUT_MS * 10 + 2_000);
  // Reconnect backoff max 400 ms, command timeout 200 ms: measured ~0.1-1 s here; bound 10 s for a loaded machine.
  expect(recoveryMs).toBeLessThan(10_000);
  expect(gw.gateway.readiness().store?.ready).toBe(true);
  // Decisions reach Redis again (not only the fail mode's answers).
  const c0 = await commandsProcessed();
  await closed.more(10);
  expect(await commandsProcessed()).toBeGreaterThan(c0 + 10);
}

describe('Redis faults under load', () => {
  it('killed, then restarted (empty): closed refuses, open admits, decisions from Redis again after', async () => {
    await fault(
      'redis killed + restarted',
      () => redis.kill(),
      async () => {
        await redis.restart();
        direct.disconnect();
        direct = new Redis(redis.url, { maxRetriesPerRequest: 0, lazyConnect: true });
        direct.on('error', () => {});
        await direct.connect();
      },
    );
  });

  it('paused with DEBUG SLEEP: commands time out, fail modes apply, then it answers again', async () => {
    let sleeping: Promise<unknown> | undefined;
    await fault(
      'DEBUG SLEEP 2',
      () => {
        const sleeper = new Redis(redis.url, { maxRetriesPerRequest: 0 });
        sleeping = sleeper.call('DEBUG', 'SLEEP', '2').finally(() => sleeper.disconnect());
      },
      async () => {
        await sleeping;
      },
    );
  });

  it('the network to Redis stalls (bytes held, nothing answered), then flows again', async () => {
    await fault(
      'network stall',
      () => proxy.mode('stall'),
      () => proxy.mode('pass'),
    );
  });

  it('connections to Redis dropped and refused, then accepted again', async () => {
    await fault(
      'connections dropped',
      () => proxy.mode('drop'),
      () => proxy.mode('pass'),
    );
  });

  it('connections to Redis reset, then accepted again', async () => {
    await fault(
      'connections reset',
      () => proxy.mode('reset'),
      () => proxy.mode('pass'),
    );
  });
});
