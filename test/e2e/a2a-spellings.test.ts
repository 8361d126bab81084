/**
 * The A2A SDK's decoders accept more than one spelling of a field (snake_case `task_id`, `reference_task_ids`,
 * `task_push_notification_config`; the v0.3 REST proto's `request` for the message and `pushNotification` for the
 * push config). The gateway's checks read every spelling the agent's SDK acts on: another identity's task stays
 * TaskNotFound and a refused push URL stays refused however they are spelled, and nothing reaches the agent
 * (a real @a2a-js/sdk agent serving both versions and bindings, reached without translation).
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { ALICE, BOB, startA2a, type A2aSetup } from '../helpers/a2a-gateway.ts';
import { reason, rpcCode } from '../helpers/a2a-calls.ts';

let s: A2aSetup;
let aliceTask: string;

beforeAll(async () => {
  s = await startA2a();
  const r = (await (await post(ALICE, '', { jsonrpc: '2.0', id: 1, method: 'SendMessage', params: { message: { messageId: crypto.randomUUID(), role: 'ROLE_USER', parts: [{ text: 'slow' }] }, configuration: { returnImmediately: true } } })).json()) as { result: { task: { id: string } } };
  aliceTask = r.result.task.id;
}, 60_000);

afterAll(async () => {
  await s?.close();
});

function post(as: string, path: string, body: unknown, version = '1.0'): Promise<Response> {
  return s.fetchAs(as)(`${s.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'a2a-version': version }, body: JSON.stringify(body) });
}

function msg(extra: Record<string, unknown>, text = 'hijack'): Record<string, unknown> {
  return { messageId: crypto.randomUUID(), role: 'ROLE_USER', parts: [{ text }], ...extra };
}

async function refused(res: Response): Promise<string | undefined> {
  const body = (await res.json()) as { error?: unknown };
  return rpcCode(body.error) ?? reason(body as Record<string, unknown>);
}

test("another identity's task, however it is spelled, is TaskNotFound; nothing reaches the agent", async () => {
  const before = s.agent.seen.length;
  const attempts: [string, Promise<Response>][] = [
    ['JSON-RPC task_id', post(BOB, '', { jsonrpc: '2.0', id: 2, method: 'SendMessage', params: { message: msg({ task_id: aliceTask }) } })],
    ['JSON-RPC reference_task_ids', post(BOB, '', { jsonrpc: '2.0', id: 3, method: 'SendMessage', params: { message: msg({ reference_task_ids: [aliceTask] }) } })],
    ['JSON-RPC push config task_id', post(BOB, '', { jsonrpc: '2.0', id: 4, method: 'CreateTaskPushNotificationConfig', params: { task_id: aliceTask, url: 'https://hooks.example.com/x' } })],
    ['REST 1.0 task_id', post(BOB, '/message:send', { message: msg({ task_id: aliceTask }) })],
    ['REST 0.3 request', post(BOB, '/v1/message:send', { request: { messageId: crypto.randomUUID(), role: 'ROLE_USER', taskId: aliceTask, content: [{ text: 'hijack' }] } }, '0.3')],
  ];
  for (const [what, res] of attempts) expect(await refused(await res), what).toBe('TG_A2A_TASK_NOT_FOUND');
  expect(s.agent.seen.length).toBe(before);
});

test('a push URL the route refuses is refused in every spelling; nothing reaches the agent', async () => {
  const before = s.agent.seen.length;
  const bad = 'http://127.0.0.1:9/steal';
  const attempts: [string, Promise<Response>][] = [
    ['JSON-RPC task_push_notification_config', post(ALICE, '', { jsonrpc: '2.0', id: 5, method: 'SendMessage', params: { message: msg({}, 'x'), configuration: { task_push_notification_config: { url: bad } } } })],
    ['REST 1.0 task_push_notification_config', post(ALICE, '/message:send', { message: msg({}, 'x'), configuration: { task_push_notification_config: { url: bad } } })],
    ['REST 0.3 pushNotification', post(ALICE, '/v1/message:send', { message: { messageId: crypto.randomUUID(), role: 'ROLE_USER', content: [{ text: 'x' }] }, configuration: { pushNotification: { url: bad } } }, '0.3')],
    ['REST 0.3 push_notification_config', post(ALICE, `/v1/tasks/${aliceTask}/pushNotificationConfigs`, { name: `tasks/${aliceTask}/pushNotificationConfigs/c`, push_notification_config: { url: bad } }, '0.3')],
  ];
  for (const [what, res] of attempts) expect(await refused(await res), what).toBe('TG_A2A_PUSH_URL_REFUSED');
  expect(s.agent.seen.length).toBe(before);
});
