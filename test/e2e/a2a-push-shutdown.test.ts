/**
 * Push deliveries when the gateway shuts down (SIGTERM's drain, src/protocols/a2a/push.ts): a delivery under way is
 * waited for up to the drain deadline (`shutdown.drainMs`, 2 s here) and one still running at the deadline is cut
 * and recorded (audit: `DeliverPushNotification` with TG_A2A_PUSH_DELIVERY_CUT); none is lost silently. A real
 * @a2a-js/sdk agent sends the notifications; the webhook is a slow local server, reached through the injected
 * connector (its name resolves to a public address that the connector maps to loopback), as in a2a-push.test.ts.
 */
import { createServer, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { Pool } from 'undici';
import type { AuditRecord } from '../../src/audit/format.ts';
import { queryLog } from '../../src/audit/query.ts';
import type { Call } from '../../src/core/call.ts';
import { A2aAdapter } from '../../src/protocols/a2a/adapter.ts';
import { ALICE, startA2a, type A2aSetup } from '../helpers/a2a-gateway.ts';
import { eventually, recordCalls } from '../helpers/gateway.ts';

const WEBHOOK = '93.184.216.34';
/** How long the slow webhook takes to answer (well inside the 2 s drain deadline). */
const SLOW_MS = 800;

let hook: Server;
let hookUrl: string;
/** Requests that reached the webhook (on arrival) and those it answered. */
const arrived: string[] = [];
const answered: string[] = [];
/** Answers the hanging webhook never sends (ended when the test is over). */
const hanging: ServerResponse[] = [];

beforeAll(async () => {
  hook = createServer((req, res) => {
    req.resume();
    arrived.push(req.url ?? '');
    if (req.url === '/hang') return void hanging.push(res);
    setTimeout(() => {
      res.writeHead(200).end();
      answered.push(req.url ?? '');
    }, SLOW_MS);
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const res of hanging) res.destroy();
  hook?.closeAllConnections();
  await new Promise((r) => hook?.close(r));
});

async function gateway(): Promise<{ s: A2aSetup; calls: Call[] }> {
  const resolver = async (host: string): Promise<string[]> => {
    if (host === 'hooks.example.com') return [WEBHOOK];
    throw Object.assign(new Error('ENOTFOUND'), { code: 'ENOTFOUND' });
  };
  const connect = (address: string): Pool => new Pool(address === WEBHOOK ? hookUrl : 'http://127.0.0.1:1');
  const s = await startA2a({
    a2a: { push: { allowHosts: ['hooks.example.com'], allowHttp: true } },
    // One attempt, and a timeout longer than the drain: only the drain deadline ends a hanging delivery.
    protocols: [{ name: 'a2a', protocols: ['a2a'], create: (ctx) => new A2aAdapter(ctx, { resolver, push: { connect, attempts: 1, backoffMs: 10, timeoutMs: 60_000 } }) }],
  });
  return { s, calls: recordCalls(s.gw) };
}

async function rpc(s: A2aSetup, method: string, params: unknown): Promise<Record<string, unknown>> {
  const res = await s.fetchAs(ALICE)(s.url, { method: 'POST', headers: { 'content-type': 'application/json', 'a2a-version': '1.0' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) });
  return (await res.json()) as Record<string, unknown>;
}

/** A working task whose push config names `url`; cancelling it makes the agent notify (one notification). */
async function notifyingTask(s: A2aSetup, url: string): Promise<string> {
  const r = await rpc(s, 'SendMessage', { message: { messageId: crypto.randomUUID(), role: 'ROLE_USER', parts: [{ text: 'slow' }] }, configuration: { returnImmediately: true } });
  const taskId = (r.result as { task: { id: string } }).task.id;
  const created = await rpc(s, 'CreateTaskPushNotificationConfig', { taskId, url, token: 'caller-token' });
  expect(created.result, JSON.stringify(created)).toMatchObject({ url });
  return taskId;
}

function auditedDeliveries(s: A2aSetup): AuditRecord[] {
  const dir = join(s.gw.dir, '..', '.tollgate', 'audit');
  return [...queryLog(dir, { kinds: ['call'] })].map((l) => JSON.parse(l) as AuditRecord).filter((r) => r.operation === 'DeliverPushNotification');
}

test('SIGTERM while a delivery is under way: the drain waits for it; delivered, audited ok', async () => {
  const { s, calls } = await gateway();
  try {
    const taskId = await notifyingTask(s, 'http://hooks.example.com/slow');
    const before = arrived.length;
    await rpc(s, 'CancelTask', { id: taskId });
    await eventually(() => arrived.slice(before).includes('/slow'), 10_000, 'the notification at the slow webhook');
    const answeredBefore = answered.length;
    const t0 = performance.now();
    await s.gw.shutdown();
    const took = performance.now() - t0;
    // The webhook answered before the gateway was gone, and the delivery was recorded as delivered.
    expect(answered.length).toBeGreaterThan(answeredBefore);
    const delivered = calls.filter((c) => c.operation === 'DeliverPushNotification');
    expect(delivered.length).toBeGreaterThan(0);
    for (const c of delivered) expect(c.outcome, c.error?.message).toBe('ok');
    const audited = auditedDeliveries(s);
    expect(audited.length).toBe(delivered.length);
    for (const r of audited) expect(r).toMatchObject({ outcome: 'ok', principal: ALICE });
    // Waited for the delivery, not for the deadline (2 s).
    expect(took).toBeLessThan(2_000);
  } finally {
    await s.gw.stop();
    await s.agent.close();
  }
}, 30_000);

test('a delivery still running at the drain deadline is cut and audited with TG_A2A_PUSH_DELIVERY_CUT', async () => {
  const { s, calls } = await gateway();
  try {
    const taskId = await notifyingTask(s, 'http://hooks.example.com/hang');
    const before = arrived.length;
    await rpc(s, 'CancelTask', { id: taskId });
    await eventually(() => arrived.slice(before).includes('/hang'), 10_000, 'the notification at the hanging webhook');
    expect(calls.filter((c) => c.operation === 'DeliverPushNotification')).toEqual([]);
    const t0 = performance.now();
    await s.gw.shutdown();
    const took = performance.now() - t0;
    // Bounded by the drain deadline (2 s), with room for the rest of the shutdown.
    expect(took).toBeGreaterThan(1_500);
    expect(took).toBeLessThan(6_000);
    const cut = calls.filter((c) => c.operation === 'DeliverPushNotification');
    expect(cut.length).toBeGreaterThan(0);
    for (const c of cut) {
      expect(c.outcome).not.toBe('ok');
      expect(c.error?.code).toBe('TG_A2A_PUSH_DELIVERY_CUT');
      expect(c.principal?.id).toBe(ALICE);
    }
    const audited = auditedDeliveries(s);
    expect(audited.length).toBe(cut.length);
    for (const r of audited) expect(r).toMatchObject({ outcome: 'error', code: 'TG_A2A_PUSH_DELIVERY_CUT', principal: ALICE });
  } finally {
    await s.gw.stop();
    await s.agent.close();
  }
}, 30_000);

test('a notification still being received when the drain begins is refused (503 TG_SHUTTING_DOWN), not taken on', async () => {
  const { s, calls } = await gateway();
  try {
    const taskId = await notifyingTask(s, 'http://hooks.example.com/late');
    // The relay URL the agent was given (the agent's own view of the config).
    const direct = (await (
      await fetch(`${s.agent.url}/rpc`, { method: 'POST', headers: { 'content-type': 'application/json', 'a2a-version': '1.0' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ListTaskPushNotificationConfigs', params: { taskId } }) })
    ).json()) as { result: { configs: { url: string }[] } };
    const relay = new URL(direct.result.configs[0]!.url);
    const body = JSON.stringify({ statusUpdate: { taskId, contextId: 'c', status: { state: 'TASK_STATE_CANCELED' } } });
    const before = arrived.length;
    const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(relay, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on('error', reject);
      // Half the body now; the rest once the drain has begun.
      req.write(body.slice(0, 10));
      setTimeout(() => {
        const stopping = s.gw.shutdown();
        setTimeout(() => req.end(body.slice(10)), 100);
        void stopping;
      }, 100);
    });
    const got = await answer;
    expect(got.status).toBe(503);
    expect(JSON.parse(got.body)).toMatchObject({ error: { details: [{ reason: 'TG_SHUTTING_DOWN' }] } });
    await s.gw.shutdown();
    expect(calls.filter((c) => c.operation === 'DeliverPushNotification')).toEqual([]);
    expect(arrived.slice(before)).not.toContain('/late');
  } finally {
    await s.gw.stop();
    await s.agent.close();
  }
}, 30_000);
