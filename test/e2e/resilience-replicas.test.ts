/**
 * One of two replicas killed (SIGKILL: a crash, no drain) while MCP calls, limited calls and A2A traffic run through a
 * round-robin load balancer without affinity, the replicas sharing one Redis and the session keys:
 * - MCP sessions opened before the crash continue on the survivor (same session ids), errors only for the calls that
 *   were in flight on the dead replica, recovery time measured;
 * - a rate limit's bucket survives: the principal gets exactly the rest of its burst on the survivor, then 429;
 * - an A2A task created before the crash (task ownership in Redis) is read on the survivor by its owner, and still
 *   refused to another identity.
 * (The graceful variant, SIGTERM with drain and audit checks, is ha-cluster.test.ts.)
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestAgent, type TestAgent } from '../helpers/a2a-agent.ts';
import { eventually } from '../helpers/gateway.ts';
import type { LoadBalancer } from '../helpers/load-balancer.ts';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { startCluster, type Cluster, type Replica } from '../helpers/replicas.ts';
import { exchange, rawMcpSession, rpcMessage, steadyLoad } from '../helpers/steady-load.ts';

const BURST = 12;

let fixture: FixtureServer;
let agent: TestAgent;
let cluster: Cluster;
let lb: LoadBalancer;
let replicas: readonly Replica[] = [];

function auth(agentName: string, aud: string): Record<string, string> {
  return cluster.auth(agentName, aud);
}

beforeAll(async () => {
  fixture = await startHttpMcpServer({ name: 'fixture', json: true });
  agent = await startTestAgent();
  cluster = await startCluster({
    label: 'resil-replicas',
    fixtureUrl: fixture.url,
    sessionKey: 'resil-session-key-0123456789abcdef0123456789abcdef',
    keyPrefix: 'tgresil',
    burst: BURST,
    redis: ', commandTimeoutMs: 2000',
    docs: `---
apiVersion: tollgate.dev/v1alpha1
kind: Backend
metadata: { name: echo }
spec: { protocol: a2a, url: "${agent.url}" }
---
apiVersion: tollgate.dev/v1alpha1
kind: Route
metadata: { name: agents }
spec:
  a2a: { defaultVersion: "1.0", defaultSkills: { echo: echo } }
  rules: [{ matches: [{ path: { type: PathPrefix, value: /a2a } }], backendRefs: [{ name: echo }] }]
`,
  });
  ({ lb, replicas } = cluster);
}, 120_000);

afterAll(async () => {
  await cluster?.close();
  await fixture?.close();
  await agent?.close();
});

async function addCall(session: Awaited<ReturnType<typeof rawMcpSession>>, i: number): Promise<string> {
  return session.call('fixture__add', { a: i, b: 1 }, String(i + 1));
}

async function a2a(as: string, body: unknown): Promise<{ status: number; message: ReturnType<typeof rpcMessage> }> {
  const a = await exchange(`${lb.url}/a2a/echo`, { headers: { ...auth(as, `${lb.url}/a2a`), 'content-type': 'application/json', 'a2a-version': '1.0' }, body: JSON.stringify(body) });
  return { status: a.status, message: rpcMessage(a) };
}

it('one replica killed mid-load: sessions, limits and A2A tasks continue on the other', async () => {
  const [a, b] = replicas as [Replica, Replica];
  // Before the crash: MCP sessions under load, half of a rate limit's burst used, an A2A task created.
  const sessions = await Promise.all([0, 1, 2, 3].map((k) => rawMcpSession(`${lb.url}/mcp`, auth(`load-${k}`, `${lb.url}/mcp`))));
  const load = steadyLoad(4, (w, i) => sessions[w]!.call('fixture__echo', { message: `k${w}-${i}` }, `k${w}-${i}`), { maxCalls: 50_000, pauseMs: 5 });
  const limited = await rawMcpSession(`${lb.url}/mcp`, auth('limited', `${lb.url}/mcp`));
  const before: string[] = [];
  for (let i = 0; i < BURST / 2; i++) before.push(await addCall(limited, i));
  expect(before).toEqual(new Array(BURST / 2).fill('ok'));
  const sent = await a2a('alice', { jsonrpc: '2.0', id: 1, method: 'SendMessage', params: { message: { messageId: crypto.randomUUID(), role: 'ROLE_USER', parts: [{ text: 'before the crash' }] } } });
  expect(sent.status).toBe(200);
  const taskId = (sent.message?.result as { task?: { id: string }; id?: string }).task?.id ?? (sent.message?.result as { id: string }).id;
  expect(taskId).toBeTruthy();
  let t0 = 0;
  try {
    await load.more(100);
    // Both replicas served before the crash.
    expect(lb.served.get(a.url) ?? 0).toBeGreaterThan(0);
    expect(lb.served.get(b.url) ?? 0).toBeGreaterThan(0);
    t0 = performance.now();
    a.proc.kill('SIGKILL');
    await a.exited;
    await eventually(() => load.recoveredAfter(t0, 20) !== undefined, 20_000, 'load carries on on the survivor');
    await load.more(100);
  } finally {
    await load.stop();
  }
  const recoveryMs = load.recoveredAfter(t0, 20)!;
  const during = load.kinds(t0);
  // Only calls caught on the dead replica failed (the balancer answers 502 for a reset exchange); no session was lost.
  expect(Object.keys(during).filter((k) => k !== 'ok' && k !== 'http-502' && !k.startsWith('throw-')), JSON.stringify(during)).toEqual([]);
  expect(during.TG_MCP_SESSION_NOT_FOUND).toBeUndefined();
  for (const s of sessions) expect(await s.call('fixture__echo', { message: 'same session' }, 'same session')).toBe('ok');

  // The limit's bucket survived in Redis: exactly the rest of the burst on the survivor, then refused.
  const after: string[] = [];
  for (let i = 0; i < BURST; i++) after.push(await addCall(limited, 100 + i));
  expect(after.filter((k) => k === 'ok')).toHaveLength(BURST / 2);
  expect(after.slice(BURST / 2)).toEqual(new Array(BURST / 2).fill('TG_RATE_LIMITED'));

  // The A2A task is its owner's on the survivor, and nobody else's.
  const got = await a2a('alice', { jsonrpc: '2.0', id: 2, method: 'GetTask', params: { id: taskId } });
  expect(got.message?.error, JSON.stringify(got.message)).toBeUndefined();
  expect((got.message?.result as { id: string }).id).toBe(taskId);
  const stolen = await a2a('mallory', { jsonrpc: '2.0', id: 3, method: 'GetTask', params: { id: taskId } });
  expect(stolen.message?.error).toBeDefined();
  console.log(`[resil] replica killed: load after the crash ${JSON.stringify(during)}, recovery ${recoveryMs.toFixed(0)} ms; limit rest ${after.filter((k) => k === 'ok').length}/${BURST / 2}; A2A task read on the survivor`);
  b.proc.kill('SIGTERM');
  expect(await b.exited).toBe(0);
}, 120_000);
