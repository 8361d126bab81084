/**
 * Push notifications delivered by the gateway (src/protocols/a2a/push.ts, src/upstream/webhook.ts), with a real
 * @a2a-js/sdk agent that sends them (its DefaultPushNotificationSender) and real webhook servers. The agent is only
 * ever told the gateway's relay URL; the gateway delivers with the SSRF guard held at delivery time.
 *
 * No traffic leaves the machine: webhook names resolve (injected resolver) to public addresses, and the injected
 * connector maps the one address a webhook may be reached at to a local server, and records every address it is
 * asked to connect to, so a refusal is proven to happen before any connection.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { Pool } from 'undici';
import type { Call } from '../../src/core/call.ts';
import { A2aAdapter } from '../../src/protocols/a2a/adapter.ts';
import { ALICE, startA2a, type A2aSetup } from '../helpers/a2a-gateway.ts';
import { eventually, recordCalls } from '../helpers/gateway.ts';

const WEBHOOK = '93.184.216.34';
const DOWN = '93.184.216.36';
const REBIND_FIRST = '93.184.216.35';

let s: A2aSetup;
let calls: Call[];
let hook: Server;
let hookUrl: string;
const received: { path: string; body: string; headers: IncomingMessage['headers'] }[] = [];
/** Every address the gateway asked to connect to. */
const connected: string[] = [];
const lookups = new Map<string, number>();

beforeAll(async () => {
  hook = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      received.push({ path: req.url ?? '', body, headers: req.headers });
      if (req.url === '/redirect') {
        res.writeHead(302, { location: `${hookUrl}/stolen` }).end();
      } else if (req.url === '/fail') res.writeHead(503).end();
      else res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}`;
  const resolver = async (host: string): Promise<string[]> => {
    const n = (lookups.get(host) ?? 0) + 1;
    lookups.set(host, n);
    if (host === 'hooks.example.com' || host === 'redirect.example.com') return [WEBHOOK];
    if (host === 'down.example.com') return [DOWN];
    // Public when the URL is registered, private when the notification is delivered.
    if (host === 'rebind.example.com') return n === 1 ? [REBIND_FIRST] : ['10.0.0.5'];
    throw Object.assign(new Error('ENOTFOUND'), { code: 'ENOTFOUND' });
  };
  const connect = (address: string): Pool => {
    connected.push(address);
    // The webhook's address reaches the local webhook server; any other, a closed port (refused).
    return new Pool(address === WEBHOOK ? hookUrl : 'http://127.0.0.1:1');
  };
  s = await startA2a({
    a2a: { push: { allowHosts: ['hooks.example.com', 'redirect.example.com', 'down.example.com', 'rebind.example.com'], allowHttp: true } },
    protocols: [{ name: 'a2a', protocols: ['a2a'], create: (ctx) => new A2aAdapter(ctx, { resolver, push: { connect, attempts: 3, backoffMs: 10, timeoutMs: 2_000 } }) }],
  });
  calls = recordCalls(s.gw);
}, 60_000);

afterAll(async () => {
  await s?.close();
  hook?.closeAllConnections();
  await new Promise((r) => hook?.close(r));
});

async function rpc(method: string, params: unknown): Promise<Record<string, unknown>> {
  const res = await s.fetchAs(ALICE)(s.url, { method: 'POST', headers: { 'content-type': 'application/json', 'a2a-version': '1.0' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) });
  return (await res.json()) as Record<string, unknown>;
}

/** A working task with a push config for `url`; cancelling it makes the agent notify. */
async function taskNotifying(url: string): Promise<string> {
  const r = await rpc('SendMessage', { message: { messageId: crypto.randomUUID(), role: 'ROLE_USER', parts: [{ text: 'slow' }] }, configuration: { returnImmediately: true } });
  const taskId = (r.result as { task: { id: string } }).task.id;
  const created = await rpc('CreateTaskPushNotificationConfig', { taskId, url, token: 'caller-token' });
  expect(created.result, JSON.stringify(created)).toMatchObject({ url });
  return taskId;
}

function deliveries(host: string): Call[] {
  return calls.filter((c) => c.operation === 'DeliverPushNotification' && (c.args as { push_host?: string }).push_host === host);
}

test('the agent is told a relay URL of the gateway; the gateway delivers to the caller webhook, audited as the caller', async () => {
  const taskId = await taskNotifying('http://hooks.example.com/ok');
  // The agent holds the relay URL, never the caller's.
  const direct = (await (
    await fetch(`${s.agent.url}/rpc`, { method: 'POST', headers: { 'content-type': 'application/json', 'a2a-version': '1.0' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ListTaskPushNotificationConfigs', params: { taskId } }) })
  ).json()) as { result: { configs: { url: string }[] } };
  expect(direct.result.configs[0]!.url).toMatch(new RegExp(`^${s.url}/push/[A-Za-z0-9_-]{22}$`));
  // Through the gateway, the caller sees its own URL.
  const listed = (await rpc('ListTaskPushNotificationConfigs', { taskId })).result as { configs: { url: string }[] };
  expect(listed.configs.map((c) => c.url)).toEqual(['http://hooks.example.com/ok']);
  const before = received.length;
  await rpc('CancelTask', { id: taskId });
  await eventually(() => received.slice(before).some((r) => r.body.includes(taskId) && r.body.includes('CANCELED')), 10_000, 'the notification at the webhook');
  const got = received.slice(before).find((r) => r.body.includes(taskId))!;
  expect(got.path).toBe('/ok');
  expect(got.headers['x-a2a-notification-token']).toBe('caller-token');
  await eventually(() => deliveries('hooks.example.com').length > 0);
  const call = deliveries('hooks.example.com')[0]!;
  expect(call.principal?.id).toBe(ALICE);
  expect(call.outcome).toBe('ok');
  expect(connected).not.toContain(DOWN);
});

test('a webhook that redirects (to loopback) is not followed: one request, the delivery fails, audited', async () => {
  const taskId = await taskNotifying('http://redirect.example.com/redirect');
  const before = received.length;
  await rpc('CancelTask', { id: taskId });
  await eventually(() => deliveries('redirect.example.com').length > 0, 10_000, 'the failed delivery');
  const call = deliveries('redirect.example.com')[0]!;
  expect(call.outcome).not.toBe('ok');
  expect(call.error?.code).toBe('TG_A2A_PUSH_DELIVERY_FAILED');
  expect(call.error?.message).toMatch(/redirect not followed/);
  // Each notification (the agent sends one per task event) is one request to the webhook, never retried, never followed.
  const redirects = (): number => received.slice(before).filter((r) => r.path === '/redirect').length;
  await eventually(() => deliveries('redirect.example.com').length === redirects());
  for (const d of deliveries('redirect.example.com')) expect(d.error?.data?.attempts).toBe(1);
  expect(received.slice(before).map((r) => r.path)).not.toContain('/stolen');
});

test('a name that resolves to a private address at delivery is refused before any connection', async () => {
  const taskId = await taskNotifying('http://rebind.example.com/cb');
  // Registered while the name resolved to a public address.
  expect(lookups.get('rebind.example.com')).toBe(1);
  await rpc('CancelTask', { id: taskId });
  await eventually(() => deliveries('rebind.example.com').length > 0, 10_000, 'the refused delivery');
  const call = deliveries('rebind.example.com')[0]!;
  expect(call.error?.code).toBe('TG_A2A_PUSH_DELIVERY_FAILED');
  expect(call.error?.message).toMatch(/resolves to 10\.0\.0\.5/);
  expect(call.error?.data?.attempts).toBe(0);
  expect(connected).not.toContain(REBIND_FIRST);
  expect(connected).not.toContain('10.0.0.5');
});

test('a refused connection and a 5xx webhook: bounded retries, a failed delivery on record, the gateway serves on', async () => {
  const down = await taskNotifying('http://down.example.com/cb');
  const failing = await taskNotifying('http://hooks.example.com/fail');
  const before = received.length;
  const connectedBefore = connected.filter((a) => a === DOWN).length;
  await rpc('CancelTask', { id: down });
  await rpc('CancelTask', { id: failing });
  await eventually(() => deliveries('down.example.com').length > 0 && calls.some((c) => c.operation === 'DeliverPushNotification' && c.status === 503), 15_000, 'both failed deliveries');
  const refused = deliveries('down.example.com')[0]!;
  expect(refused.error?.code).toBe('TG_A2A_PUSH_DELIVERY_FAILED');
  expect(refused.error?.data?.attempts).toBe(3);
  expect(connected.filter((a) => a === DOWN).length - connectedBefore).toBeGreaterThanOrEqual(3);
  const fivexx = calls.find((c) => c.operation === 'DeliverPushNotification' && c.status === 503)!;
  expect(fivexx.error?.data?.attempts).toBe(3);
  expect(received.slice(before).filter((r) => r.path === '/fail').length).toBeGreaterThanOrEqual(3);
  // Still serving.
  expect((await rpc('GetTask', { id: down })).result).toMatchObject({ id: down });
});

test('an unknown relay token is a 404; nothing is delivered', async () => {
  const before = received.length;
  const res = await fetch(`${s.url}/push/AAAAAAAAAAAAAAAAAAAAAA`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  expect(res.status).toBe(404);
  expect(received.length).toBe(before);
});
