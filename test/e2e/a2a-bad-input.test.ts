/**
 * Bad A2A input through the gateway: each gets the error shape of the caller's binding (a JSON-RPC error object, or
 * google.rpc.Status for HTTP+JSON) with a stable code, nothing reaches the agent, and the gateway keeps serving.
 * Push-notification URLs a route does not allow are refused before anything is forwarded (SSRF).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ALICE, startA2a, type A2aSetup } from '../helpers/a2a-gateway.ts';
import { rpcCode } from '../helpers/a2a-calls.ts';

let s: A2aSetup;

beforeAll(async () => {
  s = await startA2a({ a2a: { push: { allowHosts: ['hooks.example.com', 'localhost', '127.0.0.1'] } } });
}, 60_000);

afterAll(async () => {
  await s?.close();
});

async function post(body: string, headers: Record<string, string> = {}, path = ''): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await s.fetchAs(ALICE)(`${s.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'a2a-version': '1.0', ...headers }, body });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

const message = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ message: { messageId: crypto.randomUUID(), role: 'ROLE_USER', parts: [{ text: 'hi' }] }, ...extra });

describe('JSON-RPC binding', () => {
  test.each([
    // Every answer to a JSON-RPC message is HTTP 200 (what A2A servers and the A2A TCK do), envelope errors included.
    ['malformed JSON', '{"jsonrpc":"2.0","id":1,', {}, 200, -32700, 'TG_PARSE_ERROR', null],
    ['not an object', '[1,2]', {}, 200, -32600, 'TG_BATCH_NOT_SUPPORTED', null],
    ['wrong jsonrpc', '{"jsonrpc":"1.0","id":4,"method":"SendMessage"}', {}, 200, -32600, 'TG_INVALID_REQUEST', 4],
    ['object id', '{"jsonrpc":"2.0","id":{},"method":"SendMessage"}', {}, 200, -32600, 'TG_INVALID_REQUEST', null],
    ['a notification', '{"jsonrpc":"2.0","method":"SendMessage","params":{}}', {}, 200, -32600, 'TG_INVALID_REQUEST', null],
    ['unknown method', '{"jsonrpc":"2.0","id":5,"method":"DoThings","params":{}}', {}, 200, -32601, 'TG_METHOD_NOT_FOUND', 5],
    ['0.3 method under A2A-Version 1.0', '{"jsonrpc":"2.0","id":6,"method":"message/send","params":{}}', {}, 200, -32601, 'TG_METHOD_NOT_FOUND', 6],
    ['unsupported version', '{"jsonrpc":"2.0","id":7,"method":"SendMessage","params":{}}', { 'a2a-version': '2.0' }, 200, -32009, 'TG_A2A_VERSION_NOT_SUPPORTED', 7],
    ['text/plain body', '{"jsonrpc":"2.0","id":8,"method":"SendMessage","params":{}}', { 'content-type': 'text/plain' }, 415, -32005, 'TG_A2A_CONTENT_TYPE_NOT_SUPPORTED', null],
    ['params not an object', '{"jsonrpc":"2.0","id":9,"method":"SendMessage","params":[1]}', {}, 200, -32600, 'TG_INVALID_REQUEST', 9],
  ] as const)('%s', async (_what, body, headers, status, code, tg, id) => {
    const before = s.agent.seen.length;
    const r = await post(body, headers);
    expect(r.status).toBe(status);
    expect(r.json).toMatchObject({ jsonrpc: '2.0', id, error: { code } });
    expect(rpcCode(r.json.error)).toBe(tg);
    expect(s.agent.seen.length).toBe(before);
  });

  test('an oversize message is refused with 413 before it is read whole', async () => {
    const big = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'SendMessage', params: { message: { messageId: 'big', role: 'ROLE_USER', parts: [{ text: 'x'.repeat(5 * 1024 * 1024) }] } } });
    const r = await post(big);
    expect(r.status).toBe(413);
    expect(r.json).toMatchObject({ error: { code: -32600, data: { code: 'TG_PAYLOAD_TOO_LARGE' } } });
  });

  test('an unknown agent is a 404 in the JSON-RPC shape', async () => {
    const res = await s.fetchAs(ALICE)(`${s.gw.url}/a2a/nobody-here`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{}}' });
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: { data: { code: 'TG_A2A_UNKNOWN_AGENT' } } });
  });
});

describe('HTTP+JSON binding', () => {
  test.each([
    ['GET', '/message:send', undefined, 404, 'TG_NOT_FOUND'],
    ['POST', '/tasks/abc:explode', '{}', 404, 'TG_NOT_FOUND'],
    ['POST', '/nothing/here', '{}', 404, 'TG_NOT_FOUND'],
    ['GET', '/tasks/%E0%A4%A', undefined, 404, 'TG_NOT_FOUND'],
    ['POST', '/message:send', '{"message":', 400, 'TG_PARSE_ERROR'],
    ['POST', '/message:send', '[]', 400, 'TG_INVALID_REQUEST'],
  ] as const)('%s %s', async (method, path, body, status, reason) => {
    const before = s.agent.seen.length;
    const res = await s.fetchAs(ALICE)(`${s.url}${path}`, { method, headers: { 'content-type': 'application/a2a+json', 'a2a-version': '1.0' }, body });
    expect(res.status).toBe(status);
    const json = (await res.json()) as { error: { code: number; status: string; details: { reason: string }[] } };
    expect(json.error.code).toBe(status);
    expect(json.error.details[0]!.reason).toBe(reason);
    expect(s.agent.seen.length).toBe(before);
  });

  test('a body that is not JSON gets 415 with ContentTypeNotSupported', async () => {
    const res = await s.fetchAs(ALICE)(`${s.url}/message:send`, { method: 'POST', headers: { 'content-type': 'text/xml', 'a2a-version': '1.0' }, body: '<x/>' });
    expect(res.status).toBe(415);
    expect(await res.json()).toMatchObject({ error: { status: 'INVALID_ARGUMENT', details: [{ reason: 'CONTENT_TYPE_NOT_SUPPORTED', domain: 'a2a-protocol.org', metadata: { code: 'TG_A2A_CONTENT_TYPE_NOT_SUPPORTED' } }] } });
  });

  test('an unsupported A2A-Version is refused in the REST shape', async () => {
    const res = await s.fetchAs(ALICE)(`${s.url}/message:send`, { method: 'POST', headers: { 'content-type': 'application/json', 'a2a-version': '0.1' }, body: JSON.stringify(message()) });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { details: [{ reason: 'VERSION_NOT_SUPPORTED', domain: 'a2a-protocol.org', metadata: { code: 'TG_A2A_VERSION_NOT_SUPPORTED' } }] } });
  });
});

describe('push-notification URLs (SSRF)', () => {
  const refused = [
    ['plain http', 'http://hooks.example.com/cb'],
    ['loopback literal', 'https://127.0.0.1/cb'],
    ['loopback name (resolves to 127.0.0.1)', 'https://localhost/cb'],
    ['unspecified address', 'https://0.0.0.0/cb'],
    ['metadata service', 'https://169.254.169.254/latest/meta-data/'],
    ['IPv6 loopback', 'https://[::1]/cb'],
    ['IPv4-mapped loopback', 'https://[::ffff:127.0.0.1]/cb'],
    ['a host not on the allow-list', 'https://evil.example.net/cb'],
    ['credentials in the URL', 'https://user:pw@hooks.example.com/cb'],
  ] as const;

  test.each(refused)('SendMessage with %s is refused before anything is forwarded', async (_what, url) => {
    const before = s.agent.seen.length;
    const r = await post(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'SendMessage', params: message({ configuration: { taskPushNotificationConfig: { url } } }) }));
    expect(r.json.error).toMatchObject({ code: -32602, data: { code: 'TG_A2A_PUSH_URL_REFUSED' } });
    expect(s.agent.seen.length).toBe(before);
  });

  test.each(refused)('CreateTaskPushNotificationConfig with %s is refused (JSON-RPC and REST)', async (_what, url) => {
    const task = (await post(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'SendMessage', params: message() }))).json.result as { task: { id: string } };
    const before = s.agent.seen.length;
    const r = await post(JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'CreateTaskPushNotificationConfig', params: { taskId: task.task.id, url } }));
    expect(r.json.error).toMatchObject({ code: -32602, data: { code: 'TG_A2A_PUSH_URL_REFUSED' } });
    const rest = await s.fetchAs(ALICE)(`${s.url}/tasks/${task.task.id}/pushNotificationConfigs`, {
      method: 'POST',
      headers: { 'content-type': 'application/a2a+json', 'a2a-version': '1.0' },
      body: JSON.stringify({ taskId: task.task.id, url }),
    });
    expect(rest.status).toBe(400);
    expect(await rest.json()).toMatchObject({ error: { details: [{ reason: 'TG_A2A_PUSH_URL_REFUSED' }] } });
    expect(s.agent.seen.length).toBe(before);
  });

  test('a route without push.allowHosts refuses every push URL: push notifications are not supported there', async () => {
    const other = await startA2a({ a2a: { push: { allowHosts: [] } } });
    try {
      const res = await other.fetchAs(ALICE)(other.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'a2a-version': '1.0' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'SendMessage', params: message({ configuration: { taskPushNotificationConfig: { url: 'https://hooks.example.com/cb' } } }) }),
      });
      expect(await res.json()).toMatchObject({ error: { code: -32003, data: [{ reason: 'PUSH_NOTIFICATION_NOT_SUPPORTED', metadata: { code: 'TG_A2A_PUSH_NOT_SUPPORTED' } }] } });
      const card = (await (await other.fetchAs(ALICE)(`${other.url}/.well-known/agent-card.json`, { headers: { 'a2a-version': '1.0' } })).json()) as { capabilities: { pushNotifications: boolean } };
      expect(card.capabilities.pushNotifications).toBe(false);
    } finally {
      await other.close();
    }
  });
});
