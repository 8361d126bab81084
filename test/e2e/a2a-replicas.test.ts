/**
 * A2A across replicas and trust domains, with the test Redis as the shared store: two gateways in front of one
 * agent. A task made through one replica is the creator's through the other; the same workload path in another
 * trust domain is another identity and gets TaskNotFound. Rate limits apply per agent skill (a `skills` match keyed
 * by `skill`). Trace context crosses the hop: the `traceparent` header to the agent and, when the route says so, in
 * the message's metadata. Push-notification relay hooks are shared too: the replicas are reached by one name (a
 * Service: test/helpers/load-balancer.ts, their `publicUrl`), so the agent's notification lands on whichever replica
 * the Service picks, and is delivered (src/protocols/a2a/push.ts). The replicas reach Redis through a TCP proxy the
 * test can cut (the store-failure path); webhooks are reached as in a2a-push.test.ts (injected resolver and connector).
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Call } from '../../src/core/call.ts';
import { A2aAdapter } from '../../src/protocols/a2a/adapter.ts';
import { startTestAgent, type TestAgent } from '../helpers/a2a-agent.ts';
import { ALICE, BOB, OTHER_ALICE, RATED, sharedStore, startA2a, type A2aSetup, type SharedStore } from '../helpers/a2a-gateway.ts';
import { eventually, recordCalls } from '../helpers/gateway.ts';
import { newSigner, nowS, signJwt, spiffeBundle } from '../helpers/jwt.ts';
import { startLoadBalancer, type LoadBalancer } from '../helpers/load-balancer.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';

const AUD = 'https://gw.a2a.test';
const other = newSigner('ES256');

const LIMITS = `apiVersion: tollgate.dev/v1alpha1
kind: RateLimit
metadata: { name: echo-skill }
spec: { match: { protocols: [a2a], skills: ["echo/echo"], principals: ["${RATED}"] }, key: [principal, skill], requests: 2, per: 60s }
`;

/** Where the webhook's name resolves (public), and what the injected connector maps to the local webhook server. */
const WEBHOOK = '93.184.216.34';

let agent: TestAgent;
let a: A2aSetup;
let b: A2aSetup;
let store: SharedStore;
/** The replicas' way to Redis (cut to make the store unavailable to them). */
let redisPath: TcpProxy;
/** The Service in front of the replicas: the name in the relay URLs the agent is told. */
let service: LoadBalancer;
let hook: Server;
let hookUrl: string;
const received: { path: string; body: string; headers: IncomingMessage['headers'] }[] = [];
let opts: Parameters<typeof startA2a>[0];

beforeAll(async () => {
  agent = await startTestAgent();
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6390';
  redisPath = await startTcpProxy(redisUrl);
  store = sharedStore('tga', redisPath.url.replace(/^http:/, 'redis:'));
  hook = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      received.push({ path: req.url ?? '', body, headers: req.headers });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}`;
  service = await startLoadBalancer([]);
  const resolver = async (host: string): Promise<string[]> => {
    if (host === 'hooks.example.com') return [WEBHOOK];
    throw Object.assign(new Error('ENOTFOUND'), { code: 'ENOTFOUND' });
  };
  const connect = (address: string): Pool => new Pool(address === WEBHOOK ? hookUrl : 'http://127.0.0.1:1');
  opts = {
    agent,
    a2a: { traceMetadata: true, push: { allowHosts: ['hooks.example.com'], allowHttp: true } },
    gatewayExtra: store.gatewayExtra,
    identityExtra: `    audiences: [${AUD}]\n    trustDomains:\n      - { name: other.test, bundle: { file: other-bundle.json } }\n`,
    files: { 'other-bundle.json': JSON.stringify(spiffeBundle([other])), 'limits.yaml': LIMITS },
    publicUrl: service.url,
    // Another name of the same agent: a hook of `echo` presented on `twin`'s path.
    twins: ['twin'],
    protocols: [{ name: 'a2a', protocols: ['a2a'], create: (ctx) => new A2aAdapter(ctx, { resolver, push: { connect, attempts: 1, backoffMs: 10, timeoutMs: 2_000 } }) }],
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
  await service?.close();
  await redisPath?.close();
  hook?.closeAllConnections();
  await new Promise((r) => hook?.close(r));
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
    // The binding is in Redis, under the shared prefix (written once the event went out: it may land just after).
    await eventually(async () => (await store.redis.get(`${store.prefix}a2a:task:{echo}:${taskId}`)) === ALICE, 5_000, 'the binding in Redis');
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

describe('push-notification relay hooks across replicas', () => {
  const WEBHOOK_URL = 'http://hooks.example.com/replicas';

  /** A working task of Alice made through `gw`, with a push config for WEBHOOK_URL; the relay URL the agent holds. */
  async function taskNotifying(gw: A2aSetup, token: string): Promise<{ taskId: string; relay: string }> {
    const alice = gw.gw.devToken(ALICE);
    const r = await rpc(gw, alice, 'SendMessage', { ...msg('slow'), configuration: { returnImmediately: true } });
    const taskId = (r.result as { task: { id: string } }).task.id;
    const created = await rpc(gw, alice, 'CreateTaskPushNotificationConfig', { taskId, url: WEBHOOK_URL, token });
    expect(created.result, JSON.stringify(created)).toMatchObject({ url: WEBHOOK_URL });
    // The agent holds the relay URL: the Service's name, never the caller's webhook.
    const direct = (await (
      await fetch(`${agent.url}/rpc`, { method: 'POST', headers: { 'content-type': 'application/json', 'a2a-version': '1.0' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ListTaskPushNotificationConfigs', params: { taskId } }) })
    ).json()) as { result: { configs: { url: string }[] } };
    const relay = direct.result.configs[0]!.url;
    expect(relay).toMatch(new RegExp(`^${service.url}/a2a/echo/push/[A-Za-z0-9_-]{22}$`));
    return { taskId, relay };
  }

  /** Routes the Service to `to` only. */
  function serviceTo(to: A2aSetup): void {
    for (const r of [a, b]) service.remove(r.gw.url);
    service.add(to.gw.url);
  }

  const deliveries = (calls: Call[]): Call[] => calls.filter((c) => c.operation === 'DeliverPushNotification');

  /** Every key under the run's prefix, and every string value. */
  async function redisContents(): Promise<string[]> {
    const keys = await store.redis.keys(`${store.prefix}*`);
    const out = [...keys];
    for (const k of keys) if ((await store.redis.type(k)) === 'string') out.push((await store.redis.get(k)) ?? '');
    return out;
  }

  test('a webhook registered through replica A is delivered by replica B; Redis holds no relay token', async () => {
    serviceTo(b);
    const callsB = recordCalls(b.gw);
    const { taskId, relay } = await taskNotifying(a, 'caller-token');
    const token = relay.slice(relay.lastIndexOf('/') + 1);
    // Stored under a digest of the token, with what delivery needs (no claims); the token itself is nowhere in Redis.
    const digest = createHash('sha256').update(token).digest('hex');
    const contents = await redisContents();
    expect(contents.some((c) => c.includes(token))).toBe(false);
    const key = contents.find((k) => k.startsWith(`${store.prefix}a2a:push:`) && k.includes(digest));
    expect(key, JSON.stringify(contents)).toBeDefined();
    const stored = JSON.parse((await store.redis.get(key!))!) as Record<string, unknown>;
    expect(stored).toMatchObject({ agent: 'echo', version: '1.0', principal: { id: ALICE, issuer: 'spiffe', trustDomain: 'example.org' } });
    // The caller's webhook URL is sealed under the relay token: Redis alone cannot read it.
    expect(stored.url).toMatch(/^sealed:/);
    expect(JSON.stringify(stored)).not.toContain(new URL(WEBHOOK_URL).host);
    expect(JSON.stringify(stored)).not.toContain('claims');
    expect(await store.redis.pttl(key!)).toBeGreaterThan(0);
    // Through B (which never saw the registration), the caller sees its own URL in the agent's answer.
    const listed = (await rpc(b, b.gw.devToken(ALICE), 'ListTaskPushNotificationConfigs', { taskId })).result as { configs: { url: string }[] };
    expect(listed.configs.map((c) => c.url)).toEqual([WEBHOOK_URL]);
    const before = received.length;
    const servedB = service.served.get(b.gw.url) ?? 0;
    await rpc(b, b.gw.devToken(ALICE), 'CancelTask', { id: taskId });
    await eventually(() => received.slice(before).some((r) => r.body.includes(taskId) && r.body.includes('CANCELED')), 10_000, 'the notification at the webhook');
    const got = received.slice(before).find((r) => r.body.includes(taskId))!;
    expect(got.path).toBe('/replicas');
    expect(got.headers['x-a2a-notification-token']).toBe('caller-token');
    // The agent's notification went through the Service to B, which delivered it, as the caller.
    expect(service.served.get(b.gw.url) ?? 0).toBeGreaterThan(servedB);
    await eventually(() => deliveries(callsB).length > 0, 10_000, 'the delivery on record at B');
    expect(deliveries(callsB)[0]!.principal?.id).toBe(ALICE);
    expect(deliveries(callsB)[0]!.outcome).toBe('ok');
  });

  test('at B, an unknown token and a hook of another agent get 404; nothing is delivered', async () => {
    const { relay } = await taskNotifying(a, 'caller-token');
    const token = relay.slice(relay.lastIndexOf('/') + 1);
    const before = received.length;
    const notify = (url: string): Promise<Response> => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', 'a2a-version': '1.0' }, body: JSON.stringify({ task: { id: 'x' } }) });
    expect((await notify(`${b.url}/push/AAAAAAAAAAAAAAAAAAAAAA`)).status).toBe(404);
    // The same token on the path of another agent of the route.
    const twin = await notify(`${b.gw.url}/a2a/twin/push/${token}`);
    expect(twin.status).toBe(404);
    expect(await twin.json()).toMatchObject({ error: { code: 404, details: [expect.objectContaining({ reason: 'TG_NOT_FOUND' })] } });
    // A token one character off.
    const off = token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A');
    expect((await notify(`${b.url}/push/${off}`)).status).toBe(404);
    // The right token at B is taken (proof the refusals above are about the token and the agent, not B).
    expect((await notify(`${b.url}/push/${token}`)).status).toBe(200);
    await eventually(() => received.length > before, 10_000, 'the delivery of the right token');
    expect(received.slice(before).map((r) => r.body)).toEqual([JSON.stringify({ task: { id: 'x' } })]);
  });

  test('after replica A restarts, a hook it registered is delivered by the new A, and restored there', async () => {
    const { taskId } = await taskNotifying(a, 'before-restart');
    await a.close();
    a = await startA2a(opts);
    await store.ready(a);
    serviceTo(a);
    const callsA = recordCalls(a.gw);
    const listed = (await rpc(a, a.gw.devToken(ALICE), 'ListTaskPushNotificationConfigs', { taskId })).result as { configs: { url: string }[] };
    expect(listed.configs.map((c) => c.url)).toEqual([WEBHOOK_URL]);
    const before = received.length;
    await rpc(a, a.gw.devToken(ALICE), 'CancelTask', { id: taskId });
    await eventually(() => received.slice(before).some((r) => r.body.includes(taskId) && r.body.includes('CANCELED')), 10_000, 'the notification at the webhook');
    expect(received.slice(before).find((r) => r.body.includes(taskId))!.headers['x-a2a-notification-token']).toBe('before-restart');
    await eventually(() => deliveries(callsA).length > 0, 10_000, 'the delivery on record at the new A');
    // Another caller cannot see Alice's configs (task ownership), so nothing of hers is restored for it.
    expect((await rpc(a, a.gw.devToken(BOB), 'ListTaskPushNotificationConfigs', { taskId })).error).toMatchObject({ code: -32001 });
  });

  test('a replica whose store cannot answer refuses a notification it does not hold (503 TG_STORE_UNAVAILABLE) and a new webhook; nothing is delivered', async () => {
    const { taskId, relay } = await taskNotifying(a, 'caller-token');
    const token = relay.slice(relay.lastIndexOf('/') + 1);
    const other = (await rpc(a, a.gw.devToken(ALICE), 'SendMessage', { ...msg('slow'), configuration: { returnImmediately: true } })).result as { task: { id: string } };
    serviceTo(b);
    const callsB = recordCalls(b.gw);
    const before = received.length;
    await redisPath.down();
    try {
      // The agent notifies (its task cancelled through A, whose own bindings need no store): B is asked and refuses.
      const servedB = service.served.get(b.gw.url) ?? 0;
      await rpc(a, a.gw.devToken(ALICE), 'CancelTask', { id: taskId });
      await eventually(() => (service.served.get(b.gw.url) ?? 0) > servedB, 10_000, "the agent's notification at B");
      const refused = await fetch(`${b.url}/push/${token}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      expect(refused.status).toBe(503);
      expect(await refused.json()).toMatchObject({ error: { code: 503, details: [expect.objectContaining({ reason: 'TG_STORE_UNAVAILABLE' })] } });
      // A new webhook cannot be shared: refused before the agent is told anything.
      const seen = agent.seen.length;
      const created = await rpc(a, a.gw.devToken(ALICE), 'CreateTaskPushNotificationConfig', { taskId: other.task.id, url: WEBHOOK_URL, token: 't' });
      expect(created.error).toMatchObject({ code: -32073, data: { code: 'TG_STORE_UNAVAILABLE' } });
      expect(agent.seen.length).toBe(seen);
    } finally {
      await redisPath.up();
    }
    await eventually(() => a.gw.services.store!.ready && b.gw.services.store!.ready, 15_000, 'the stores reconnected');
    await new Promise((r) => setTimeout(r, 300));
    expect(received.length).toBe(before);
    expect(deliveries(callsB)).toEqual([]);
    // Back: B takes the hook again.
    expect((await fetch(`${b.url}/push/${token}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status).toBe(200);
    await eventually(() => received.length > before, 10_000, 'the delivery after the store came back');
  });
});
