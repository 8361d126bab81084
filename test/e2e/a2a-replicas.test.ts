/**
 * A2A across replicas and trust domains, with the test Redis as the shared store: two gateways in front of one
 * agent. A task made through one replica is the creator's through the other; the same workload path in another
 * trust domain is another identity and gets TaskNotFound. Rate limits apply per agent skill (a `skills` match keyed
 * by `skill`). Trace context crosses the hop: the `traceparent` header to the agent and, when the route says so, in
 * the message's metadata.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestAgent, type TestAgent } from '../helpers/a2a-agent.ts';
import { ALICE, OTHER_ALICE, RATED, sharedStore, startA2a, type A2aSetup, type SharedStore } from '../helpers/a2a-gateway.ts';
import { newSigner, nowS, signJwt, spiffeBundle } from '../helpers/jwt.ts';

const AUD = 'https://gw.a2a.test';
const other = newSigner('ES256');

const LIMITS = `apiVersion: tollgate.dev/v1alpha1
kind: RateLimit
metadata: { name: echo-skill }
spec: { match: { protocols: [a2a], skills: ["echo/echo"], principals: ["${RATED}"] }, key: [principal, skill], requests: 2, per: 60s }
`;

let agent: TestAgent;
let a: A2aSetup;
let b: A2aSetup;
let store: SharedStore;

beforeAll(async () => {
  agent = await startTestAgent();
  store = sharedStore('tga');
  const opts = {
    agent,
    a2a: { traceMetadata: true },
    gatewayExtra: store.gatewayExtra,
    identityExtra: `    audiences: [${AUD}]\n    trustDomains:\n      - { name: other.test, bundle: { file: other-bundle.json } }\n`,
    files: { 'other-bundle.json': JSON.stringify(spiffeBundle([other])), 'limits.yaml': LIMITS },
  };
  a = await startA2a(opts);
  b = await startA2a(opts);
  await store.ready(a, b);
}, 60_000);

afterAll(async () => {
  await a?.close();
  await b?.close();
  await agent?.close();
  await store?.close();
});

/** A JWT-SVID of the other trust domain, signed by its bundle's key. */
function otherToken(spiffeId: string): string {
  return signJwt(other, { sub: spiffeId, aud: [`${AUD}/a2a`], iat: nowS(), exp: nowS() + 600 });
}

async function rpc(gw: A2aSetup, auth: string, method: string, params: unknown, headers: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const res = await fetch(gw.url, {
    method: 'POST',
    headers: { authorization: `Bearer ${auth}`, 'content-type': 'application/json', 'a2a-version': '1.0', ...headers },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  return (await res.json()) as Record<string, unknown>;
}

const msg = (text: string): Record<string, unknown> => ({ message: { messageId: crypto.randomUUID(), role: 'ROLE_USER', parts: [{ text }] } });

describe('tasks across replicas and trust domains', () => {
  test('a task streamed through replica A is its creator own through replica B; the same path in another trust domain gets TaskNotFound', async () => {
    const res = await fetch(a.url, {
      method: 'POST',
      headers: { authorization: `Bearer ${a.gw.devToken(ALICE)}`, 'content-type': 'application/json', 'a2a-version': '1.0' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'SendStreamingMessage', params: msg('across') }),
    });
    const first = (await res.text()).split('\n').find((l) => l.startsWith('data:'))!;
    const taskId = (JSON.parse(first.slice(5)) as { result: { task: { id: string } } }).result.task.id;
    // The binding is in Redis, under the shared prefix.
    expect(await store.redis.get(`${store.prefix}a2a:task:{echo}:${taskId}`)).toBe(ALICE);
    expect((await rpc(b, b.gw.devToken(ALICE), 'GetTask', { id: taskId })).result).toMatchObject({ id: taskId });
    for (const gw of [a, b]) {
      const denied = await rpc(gw, otherToken(OTHER_ALICE), 'GetTask', { id: taskId });
      expect(denied.error).toMatchObject({ code: -32001, data: [{ reason: 'TASK_NOT_FOUND', metadata: { code: 'TG_A2A_TASK_NOT_FOUND' } }] });
      const cancel = await rpc(gw, otherToken(OTHER_ALICE), 'CancelTask', { id: taskId });
      expect(cancel.error).toMatchObject({ code: -32001 });
      const list = (await rpc(gw, otherToken(OTHER_ALICE), 'ListTasks', {})).result as { tasks: { id: string }[] };
      expect(list.tasks.map((t) => t.id)).not.toContain(taskId);
    }
    // The other trust domain's caller may use the agent (its own tasks work).
    const own = (await rpc(b, otherToken(OTHER_ALICE), 'SendMessage', msg('mine'))).result as { task: { id: string } };
    expect((await rpc(a, otherToken(OTHER_ALICE), 'GetTask', { id: own.task.id })).result).toMatchObject({ id: own.task.id });
    expect((await rpc(a, a.gw.devToken(ALICE), 'GetTask', { id: own.task.id })).error).toMatchObject({ code: -32001 });
  });
});

describe('limits per agent skill', () => {
  test('the third message to echo/echo within the minute is refused; task reads are not counted', async () => {
    const token = a.gw.devToken(RATED);
    const first = (await rpc(a, token, 'SendMessage', msg('one'))).result as { task: { id: string } };
    expect(first.task.id).toBeTruthy();
    expect((await rpc(a, token, 'GetTask', { id: first.task.id })).result).toBeDefined();
    expect((await rpc(a, token, 'SendMessage', msg('two'))).result).toBeDefined();
    const before = agent.seen.length;
    const third = await rpc(b, b.gw.devToken(RATED), 'SendMessage', msg('three'));
    expect(third.error).toMatchObject({ code: -32064, data: { code: 'TG_RATE_LIMITED' } });
    expect(agent.seen.length).toBe(before);
    expect((await rpc(a, token, 'GetTask', { id: first.task.id })).result).toBeDefined();
    // Another principal's counter is its own.
    expect((await rpc(a, a.gw.devToken(ALICE), 'SendMessage', msg('alice'))).result).toBeDefined();
  });
});

describe('trace context crosses the hop', () => {
  test('the caller traceparent reaches the agent, in the header and in the message metadata', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const before = agent.seen.length;
    const r = (await rpc(a, a.gw.devToken(ALICE), 'SendMessage', msg('traced'), { traceparent: `00-${traceId}-00f067aa0ba902b7-01` })).result as {
      task: { history: { metadata?: Record<string, string> }[] };
    };
    const seen = agent.seen.slice(before);
    expect(String(seen[0]!.headers.traceparent)).toContain(traceId);
    // No caller credential crossed.
    expect(seen[0]!.headers.authorization).toBeUndefined();
    expect(String(r.task.history[0]!.metadata?.traceparent)).toContain(traceId);
  });
});
