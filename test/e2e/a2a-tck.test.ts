/**
 * What the A2A TCK (a2aproject/a2a-tck: tests/compatibility/jsonrpc, http_json, agent_card; tests/mandatory/jsonrpc)
 * expects of an A2A server, for the answers the gateway writes itself (a task the caller did not create, a version,
 * content type or envelope it refuses, a capability its card turns off) in front of the real SDK agent: the same
 * codes, HTTP statuses and google.rpc.ErrorInfo (reason, domain `a2a-protocol.org`) the agent's SDK writes, so an SDK
 * client gets the same typed errors through the gateway as from the agent, and the gateway's stable code rides along.
 */
import { describe, expect, test } from 'vitest';
import { LegacyRestTransport } from '@a2a-js/sdk/compat/v0_3/client';
import { ADMIN, ALICE, BOB, useA2aSetups } from '../helpers/a2a-gateway.ts';
import { rest } from '../helpers/a2a-calls.ts';
import { SseEvents } from '../helpers/sse-events.ts';

const s = useA2aSetups({
  main: {},
  // The route allows no push URL: the card the gateway serves says pushNotifications false.
  nopush: { a2a: { push: { allowHosts: [] } } },
  // The agent's card says streaming is off.
  nostream: { streaming: false },
});

const V1 = { 'a2a-version': '1.0' };
const ERROR_INFO = 'type.googleapis.com/google.rpc.ErrorInfo';
const msg = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ message: { messageId: crypto.randomUUID(), role: 'ROLE_USER', parts: [{ text: 'hi' }], ...extra } });

async function rawRpc(setup: keyof typeof s, body: string, headers: Record<string, string> = {}): Promise<{ status: number; type: string | null; json: { id?: unknown; error?: { code: number; message: string; data?: unknown } } }> {
  const res = await s[setup].fetchAs(ALICE)(s[setup].url, { method: 'POST', headers: { 'content-type': 'application/json', ...V1, ...headers }, body });
  return { status: res.status, type: res.headers.get('content-type'), json: (await res.json()) as never };
}

const call = (setup: keyof typeof s, method: string, params: unknown, headers: Record<string, string> = {}) => rawRpc(setup, JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }), headers);

/** The ErrorInfo the A2A spec (9.5, 11.6) puts in an A2A error, with the gateway's stable code in its metadata. */
const info = (reason: string, code: string): Record<string, unknown> => ({ '@type': ERROR_INFO, reason, domain: 'a2a-protocol.org', metadata: expect.objectContaining({ code }) });

describe('TaskNotFoundError for a task the caller did not create (CORE-GET-002, CORE-CANCEL-003, STREAM-SUB-004, CORE-MULTI-004)', () => {
  test.each([
    ['GetTask', { id: 'tck-nonexistent' }],
    ['CancelTask', { id: 'tck-nonexistent' }],
    ['SubscribeToTask', { id: 'tck-nonexistent' }],
    ['SendMessage', msg({ taskId: 'tck-nonexistent' })],
    ['GetTaskPushNotificationConfig', { taskId: 'tck-nonexistent', id: 'c1' }],
  ])('JSON-RPC %s: -32001, HTTP 200, error.data an array with the ErrorInfo TASK_NOT_FOUND (JSONRPC-ERR-003)', async (method, params) => {
    const before = s.main.agent.seen.length;
    const r = await call('main', method, params);
    expect(r.status).toBe(200);
    expect(r.type).toMatch(/^application\/json/);
    expect(r.json.error).toEqual({ code: -32001, message: expect.any(String), data: [info('TASK_NOT_FOUND', 'TG_A2A_TASK_NOT_FOUND')] });
    expect(s.main.agent.seen.length).toBe(before);
  });

  test('the agent itself answers a task it does not have with the same code and ErrorInfo', async () => {
    const res = await fetch(`${s.main.agent.url}/rpc`, { method: 'POST', headers: { 'content-type': 'application/json', ...V1 }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'GetTask', params: { id: 'tck-nonexistent' } }) });
    const direct = ((await res.json()) as { error: { code: number; data: { reason: string; domain: string }[] } }).error;
    const through = (await call('main', 'GetTask', { id: 'tck-nonexistent' })).json.error as { code: number; data: { reason: string; domain: string }[] };
    expect(through.code).toBe(direct.code);
    expect(through.data.map((d) => [d.reason, d.domain])).toEqual(direct.data.map((d) => [d.reason, d.domain]));
  });

  test.each([
    ['GET', '/tasks/tck-nonexistent', undefined],
    ['POST', '/tasks/tck-nonexistent:cancel', {}],
    ['POST', '/tasks/tck-nonexistent:subscribe', {}],
    ['POST', '/message:send', msg({ taskId: 'tck-nonexistent' })],
  ] as const)('HTTP+JSON %s %s: 404, AIP-193 with the ErrorInfo TASK_NOT_FOUND, application/a2a+json (HTTP_JSON-ERR-001/002)', async (method, path, body) => {
    const r = await rest(s.main, ALICE, method, path, body, V1);
    expect(r.status).toBe(404);
    expect(r.type).toMatch(/^application\/a2a\+json/);
    expect(r.body).toEqual({ error: { code: 404, status: 'NOT_FOUND', message: expect.any(String), details: [info('TASK_NOT_FOUND', 'TG_A2A_TASK_NOT_FOUND')] } });
  });

  test.each(['JSONRPC', 'HTTP+JSON'] as const)('the SDK client over %s gets its typed TaskNotFoundError', async (transport) => {
    const client = await s.main.client(ALICE, transport);
    await expect(client.getTask({ id: 'tck-nonexistent' } as never)).rejects.toMatchObject({ name: 'TaskNotFoundError' });
  });

  test("a v0.3 REST caller also gets the 0.3 body's top-level code and message: the SDK's v0.3 client its typed error", async () => {
    const r = await rest(s.main, ALICE, 'GET', '/v1/tasks/tck-nonexistent');
    expect(r.status).toBe(404);
    expect(r.body).toMatchObject({ code: -32001, message: expect.any(String), error: { code: 404, status: 'NOT_FOUND', details: [info('TASK_NOT_FOUND', 'TG_A2A_TASK_NOT_FOUND')] } });
    const legacy = new LegacyRestTransport({ endpoint: s.main.url, fetchImpl: s.main.fetchAs(ALICE) });
    await expect(legacy.getTask({ id: 'tck-nonexistent' } as never)).rejects.toMatchObject({ name: 'TaskNotFoundError' });
    // A 1.0 REST caller gets google.rpc.Status alone.
    expect(Object.keys((await rest(s.main, ALICE, 'GET', '/tasks/tck-nonexistent', undefined, V1)).body)).toEqual(['error']);
  });
});

describe('errors of the request itself', () => {
  test('VersionNotSupportedError (-32009 / HTTP 400) for an unsupported A2A-Version (VER-SERVER-002)', async () => {
    const r = await call('main', 'SendMessage', msg(), { 'a2a-version': '99.0' });
    expect(r.status).toBe(200);
    expect(r.json.error).toMatchObject({ code: -32009, data: [info('VERSION_NOT_SUPPORTED', 'TG_A2A_VERSION_NOT_SUPPORTED')] });
    const rr = await rest(s.main, ALICE, 'POST', '/message:send', msg(), { 'a2a-version': '99.0' });
    expect(rr.status).toBe(400);
    // The google.rpc.Code as the SDK agent and A2A v1.0.1 (5.4) give it.
    expect(rr.body).toMatchObject({ error: { code: 400, status: 'FAILED_PRECONDITION', details: [info('VERSION_NOT_SUPPORTED', 'TG_A2A_VERSION_NOT_SUPPORTED')] } });
  });

  // VER-CLIENT-002: patch version numbers must not affect negotiation ("1.0.2" is 1.0, "0.3.1" is 0.3).
  test.each([
    ['1.0.0', 'SendMessage'],
    ['1.0.7', 'SendMessage'],
    ['0.3.1', 'message/send'],
  ])('A2A-Version %s is served as its Major.Minor', async (version, method) => {
    const params = method === 'SendMessage' ? msg() : { message: { kind: 'message', messageId: crypto.randomUUID(), role: 'user', parts: [{ kind: 'text', text: 'hi' }] } };
    const r = await call('main', method, params, { 'a2a-version': version });
    expect(r.json.error).toBeUndefined();
    expect(s.main.agent.seen.at(-1)?.headers['a2a-version']).toBe(version.slice(0, 3));
    const rr = await rest(s.main, ALICE, 'GET', '/tasks/tck-nonexistent', undefined, { 'a2a-version': version });
    expect(rr.status).toBe(404);
  });

  test.each(['1.1', '2.0', '0.2.5', '1.0.x', 'one'])('A2A-Version %s is VersionNotSupported', async (version) => {
    const r = await call('main', 'SendMessage', msg(), { 'a2a-version': version });
    expect(r.json.error).toMatchObject({ code: -32009 });
  });

  test('ContentTypeNotSupportedError (-32005 / HTTP 415) for a body that is not JSON', async () => {
    const r = await rawRpc('main', JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'SendMessage', params: msg() }), { 'content-type': 'text/plain' });
    expect(r.json.error).toMatchObject({ code: -32005, data: [info('CONTENT_TYPE_NOT_SUPPORTED', 'TG_A2A_CONTENT_TYPE_NOT_SUPPORTED')] });
    const res = await s.main.fetchAs(ALICE)(`${s.main.url}/message:send`, { method: 'POST', headers: { ...V1, 'content-type': 'text/plain' }, body: JSON.stringify(msg()) });
    expect(res.status).toBe(415);
    expect(await res.json()).toMatchObject({ error: { code: 415, details: [info('CONTENT_TYPE_NOT_SUPPORTED', 'TG_A2A_CONTENT_TYPE_NOT_SUPPORTED')] } });
  });

  // tests/mandatory/jsonrpc/test_json_rpc_compliance.py: "JSON-RPC errors are returned with 200".
  test.each([
    ['malformed JSON', '{"jsonrpc": "2.0", "method": "SendMessage", "params": {"foo": "bar"}', -32700],
    ['wrong jsonrpc, no id', '{"jsonrpc":"aaa","method":"SendMessage","params":{}}', -32600],
    ['no method', '{"jsonrpc":"2.0","params":{}}', -32600],
    ['unknown method', '{"jsonrpc":"2.0","method":"SendMessageXXX","id":"3","params":{}}', -32601],
    ['object id', '{"jsonrpc":"2.0","method":"SendMessage","params":{},"id":{"bad":"type"}}', -32600],
    ['a batch', '[{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"x"}}]', -32600],
  ])('%s: HTTP 200 with %s', async (_what, body, code) => {
    const before = s.main.agent.seen.length;
    const r = await rawRpc('main', body);
    expect(r.status).toBe(200);
    expect(r.json.error?.code).toBe(code);
    expect(s.main.agent.seen.length).toBe(before);
  });
});

describe('capabilities the served card turns off (CORE-CAP-001, CORE-CAP-002)', () => {
  test('the card of a route without push URLs says pushNotifications false', async () => {
    const card = (await (await s.nopush.fetchAs(ALICE)(`${s.nopush.url}/.well-known/agent-card.json`, { headers: V1 })).json()) as { capabilities: Record<string, unknown> };
    expect(card.capabilities.pushNotifications).toBe(false);
  });

  test.each([
    ['CreateTaskPushNotificationConfig', { taskId: 'tck-error-code-003', url: 'https://example.com' }],
    ['GetTaskPushNotificationConfig', { taskId: 'tck-error-code-003', id: 'c1' }],
    ['ListTaskPushNotificationConfigs', { taskId: 'tck-error-code-003' }],
    ['DeleteTaskPushNotificationConfig', { taskId: 'tck-error-code-003', id: 'c1' }],
  ])('JSON-RPC %s: PushNotificationNotSupportedError -32003, whatever the task', async (method, params) => {
    const before = s.nopush.agent.seen.length;
    const r = await call('nopush', method, params);
    expect(r.json.error).toMatchObject({ code: -32003, data: [info('PUSH_NOTIFICATION_NOT_SUPPORTED', 'TG_A2A_PUSH_NOT_SUPPORTED')] });
    // The TCK's enhanced error-code tests look for these words in the message.
    for (const word of ['push', 'notification', 'not', 'supported']) expect(r.json.error!.message.toLowerCase()).toContain(word);
    expect(s.nopush.agent.seen.length).toBe(before);
  });

  test.each([
    ['POST', '/tasks/tck-status-push-005/pushNotificationConfigs', { url: 'https://example.com' }],
    ['GET', '/tasks/tck-status-push-005/pushNotificationConfigs', undefined],
    ['GET', '/tasks/tck-status-push-005/pushNotificationConfigs/c1', undefined],
    ['DELETE', '/tasks/tck-status-push-005/pushNotificationConfigs/c1', undefined],
  ] as const)('HTTP+JSON %s %s: 400 with PUSH_NOTIFICATION_NOT_SUPPORTED', async (method, path, body) => {
    const r = await rest(s.nopush, ALICE, method, path, body, V1);
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ error: { code: 400, status: 'FAILED_PRECONDITION', details: [info('PUSH_NOTIFICATION_NOT_SUPPORTED', 'TG_A2A_PUSH_NOT_SUPPORTED')] } });
  });

  test('a message carrying a push config on such a route is refused with -32003, nothing forwarded', async () => {
    const before = s.nopush.agent.seen.length;
    const r = await call('nopush', 'SendMessage', { ...msg(), configuration: { taskPushNotificationConfig: { url: 'https://hooks.example.com/cb' } } });
    expect(r.json.error).toMatchObject({ code: -32003 });
    for (const word of ['push', 'notification', 'not', 'supported']) expect(r.json.error!.message.toLowerCase()).toContain(word);
    expect(s.nopush.agent.seen.length).toBe(before);
  });

  test('streaming off: SubscribeToTask and SendStreamingMessage get UnsupportedOperationError -32004 / HTTP 400', async () => {
    const card = (await (await s.nostream.fetchAs(ALICE)(`${s.nostream.url}/.well-known/agent-card.json`, { headers: V1 })).json()) as { capabilities: Record<string, unknown> };
    expect(card.capabilities.streaming).toBe(false);
    for (const [method, params] of [['SubscribeToTask', { id: 'tck-nonexistent' }], ['SendStreamingMessage', msg()]] as const) {
      const r = await call('nostream', method, params);
      expect(r.json.error, method).toMatchObject({ code: -32004, data: [expect.objectContaining({ reason: 'UNSUPPORTED_OPERATION', domain: 'a2a-protocol.org' })] });
      for (const word of ['operation', 'not', 'supported']) expect(r.json.error!.message.toLowerCase(), method).toContain(word);
    }
    const rr = await rest(s.nostream, ALICE, 'POST', '/tasks/tck-nonexistent:subscribe', {}, V1);
    expect(rr.status).toBe(400);
    expect(rr.body).toMatchObject({ error: { status: 'FAILED_PRECONDITION', details: [info('UNSUPPORTED_OPERATION', 'TG_A2A_UNSUPPORTED_OPERATION')] } });
  });
});

describe('agent card caching headers (CARD-CACHE-001, CARD-CACHE-002)', () => {
  const cardUrl = (): string => `${s.main.url}/.well-known/agent-card.json`;

  test('Cache-Control with max-age and an ETag of the card as this caller gets it; If-None-Match gets 304', async () => {
    const first = await s.main.fetchAs(ALICE)(cardUrl(), { headers: V1 });
    expect(first.status).toBe(200);
    expect(first.headers.get('cache-control')).toMatch(/max-age=\d+/);
    const etag = first.headers.get('etag');
    expect(etag).toMatch(/^"[A-Za-z0-9_-]{16,}"$/);
    const card = await first.json();
    const again = await s.main.fetchAs(ALICE)(cardUrl(), { headers: { ...V1, 'if-none-match': etag! } });
    expect(again.status).toBe(304);
    expect(again.headers.get('etag')).toBe(etag);
    expect(await again.text()).toBe('');
    // A stale tag (or another one) gets the card again.
    const stale = await s.main.fetchAs(ALICE)(cardUrl(), { headers: { ...V1, 'if-none-match': '"stale", W/"other"' } });
    expect(stale.status).toBe(200);
    expect(await stale.json()).toEqual(card);
  });

  test('the tag follows what the caller sees: another identity, or the 0.3 shape, has another one', async () => {
    const alice = (await s.main.fetchAs(ALICE)(cardUrl(), { headers: V1 })).headers.get('etag');
    const admin = await s.main.fetchAs(ADMIN)(cardUrl(), { headers: { ...V1, 'if-none-match': alice! } });
    expect(admin.status).toBe(200); // the admin sees the secret-ops skill: not Alice's card
    expect(admin.headers.get('etag')).not.toBe(alice);
    const legacy = await s.main.fetchAs(ALICE)(cardUrl(), { headers: { 'if-none-match': alice! } });
    expect(legacy.status).toBe(200);
    expect(((await legacy.json()) as { protocolVersion?: string }).protocolVersion).toBe('0.3');
  });
});

// CORE-ERR-002 ("Servers MUST validate all input parameters") and the TCK's edge cases (a negative historyLength
// must be rejected): the SDK agent accepts these, so the gateway checks them before anything is forwarded.
describe('parameters the gateway validates (CORE-ERR-002)', () => {
  test.each([
    ['GetTask', { id: 'tck-x', historyLength: -1 }],
    ['GetTask', { id: 'tck-x', historyLength: 1.5 }],
    ['GetTask', { id: 'tck-x', historyLength: 'lots' }],
    ['tasks/get', { id: 'tck-x', historyLength: -1 }],
    ['SendMessage', { ...msg(), configuration: { historyLength: -1 } }],
    ['SendStreamingMessage', { ...msg(), configuration: { historyLength: -3 } }],
    ['ListTasks', { historyLength: -1 }],
    ['ListTasks', { statusTimestampAfter: 'yesterday' }],
    ['ListTasks', { statusTimestampAfter: '2026-13-45T99:00:00Z' }],
  ])('%s %j: -32602 InvalidParams, nothing forwarded', async (method, params) => {
    const before = s.main.agent.seen.length;
    const r = await call('main', method, params, method.includes('/') ? { 'a2a-version': '0.3' } : {});
    expect(r.status).toBe(200);
    expect(r.json.error).toMatchObject({ code: -32602, data: { code: 'TG_INVALID_PARAMS' } });
    expect(s.main.agent.seen.length).toBe(before);
  });

  test.each([
    ['GET', '/tasks/tck-x?historyLength=-1', undefined],
    ['GET', '/tasks?historyLength=-2', undefined],
    ['GET', '/tasks?statusTimestampAfter=yesterday', undefined],
    ['POST', '/message:send', { ...msg(), configuration: { historyLength: -1 } }],
  ] as const)('HTTP+JSON %s %s: 400 InvalidParams', async (method, path, body) => {
    const before = s.main.agent.seen.length;
    const r = await rest(s.main, ALICE, method, path, body, V1);
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ error: { code: 400, status: 'INVALID_ARGUMENT', details: [{ reason: 'TG_INVALID_PARAMS' }] } });
    expect(s.main.agent.seen.length).toBe(before);
  });

  test('valid values pass: historyLength 0 and int32 max, a real timestamp, a numeric string', async () => {
    const sent = (await call('main', 'SendMessage', { ...msg(), configuration: { historyLength: 0 } })).json as { result?: { task: { id: string } } };
    const id = sent.result!.task.id;
    for (const historyLength of [0, 2147483647, '3']) expect((await call('main', 'GetTask', { id, historyLength })).json.error, String(historyLength)).toBeUndefined();
    expect((await call('main', 'ListTasks', { statusTimestampAfter: '2020-01-01T00:00:00.000Z', historyLength: 1 })).json.error).toBeUndefined();
    expect((await rest(s.main, ALICE, 'GET', `/tasks/${id}?historyLength=0`, undefined, V1)).status).toBe(200);
  });
});

// The TCK (tests/compatibility/conftest.py) fetches {sut}/.well-known/agent-card.json with no A2A-Version header and
// takes its transports from `supportedInterfaces`. Without the header the card is in the 0.3 shape; the SDK agent
// then embeds its interfaces of both versions there, and so must the gateway (CARD-STRUCT-001, CARD-PROTO-002).
test('a card fetched without A2A-Version is 0.3-shaped and lists every interface in supportedInterfaces too', async () => {
  const card = (await (await s.main.fetchAs(ALICE)(`${s.main.url}/.well-known/agent-card.json`)).json()) as Record<string, unknown>;
  expect(card).toMatchObject({ protocolVersion: '0.3', url: s.main.url, preferredTransport: 'JSONRPC' });
  expect(card.supportedInterfaces).toEqual([
    { url: s.main.url, protocolBinding: 'JSONRPC', protocolVersion: '1.0', tenant: '' },
    { url: s.main.url, protocolBinding: 'HTTP+JSON', protocolVersion: '1.0', tenant: '' },
    { url: s.main.url, protocolBinding: 'JSONRPC', protocolVersion: '0.3', tenant: '' },
    { url: s.main.url, protocolBinding: 'HTTP+JSON', protocolVersion: '0.3', tenant: '' },
  ]);
  // The fields CARD-STRUCT-001 requires, in either shape.
  for (const shape of [card, (await (await s.main.fetchAs(ALICE)(`${s.main.url}/.well-known/agent-card.json`, { headers: V1 })).json()) as Record<string, unknown>]) {
    for (const field of ['name', 'description', 'version', 'supportedInterfaces', 'capabilities', 'defaultInputModes', 'defaultOutputModes', 'skills']) expect(shape, field).toHaveProperty(field);
  }
});

// STREAM-SUB-001/002 and STREAM-ORDER-002..004: a subscription starts with the Task, every active stream of a task
// gets the same events in the same order, a stream closes at the terminal state, closing one leaves the others.
test('several streams of one task through the gateway: same events, each closes at the terminal state, one closing leaves the others', async () => {
  const open = async (method: string, params: unknown, signal?: AbortSignal): Promise<SseEvents> => {
    const res = await s.main.fetchAs(ALICE)(s.main.url, { method: 'POST', signal, headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...V1 }, body: JSON.stringify({ jsonrpc: '2.0', id: 9, method, params }) });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    return new SseEvents(res);
  };
  const kind = (e: { data: Record<string, unknown> } | undefined): string => Object.keys((e?.data.result ?? {}) as object)[0] ?? 'none';
  const first = await open('SendStreamingMessage', { message: { messageId: crypto.randomUUID(), role: 'ROLE_USER', parts: [{ text: 'slow' }] } });
  const created = await first.next();
  expect(kind(created)).toBe('task');
  const id = ((created!.data.result as { task: { id: string } }).task).id;
  const second = await open('SubscribeToTask', { id });
  const gone = new AbortController();
  const third = await open('SubscribeToTask', { id }, gone.signal);
  for (const sub of [second, third]) expect(kind(await sub.next()), 'a subscription begins with the Task').toBe('task');
  // The third client goes away; the others go on.
  gone.abort();
  const cancel = await call('main', 'CancelTask', { id });
  expect(cancel.json.error).toBeUndefined();
  const states = async (sse: SseEvents): Promise<string[]> =>
    (await sse.rest()).filter((e) => kind(e) === 'statusUpdate').map((e) => (e.data.result as { statusUpdate: { status: { state: string } } }).statusUpdate.status.state);
  const [a, b] = await Promise.all([states(first), states(second)]);
  expect(a.at(-1)).toBe('TASK_STATE_CANCELED');
  expect(b.at(-1)).toBe('TASK_STATE_CANCELED');
  expect(first.ended && second.ended).toBe(true);
});

// A2A v1.0 11.3: HTTP+JSON paths may carry a tenant before the resource (`/{tenant}/message:send`, as the SDK's REST
// router serves them). The gateway routes them, checks the task they name like any other, and forwards the path.
test('HTTP+JSON paths with a tenant: routed, the task they name checked against the caller', async () => {
  const sent = await rest(s.main, ALICE, 'POST', '/acme/message:send', msg(), V1);
  expect(sent.status, JSON.stringify(sent.body)).toBe(200);
  const id = (sent.body as { task: { id: string } }).task.id;
  expect(s.main.agent.seen.at(-1)?.path).toBe('/rest/acme/message:send');
  expect((await rest(s.main, ALICE, 'GET', `/acme/tasks/${id}?historyLength=1`, undefined, V1)).status).toBe(200);
  const before = s.main.agent.seen.length;
  const stolen = await rest(s.main, BOB, 'GET', `/acme/tasks/${id}`, undefined, V1);
  expect(stolen.status).toBe(404);
  expect(stolen.body).toMatchObject({ error: { details: [info('TASK_NOT_FOUND', 'TG_A2A_TASK_NOT_FOUND')] } });
  expect((await rest(s.main, BOB, 'POST', `/acme/tasks/${id}:cancel`, {}, V1)).status).toBe(404);
  expect(s.main.agent.seen.length).toBe(before);
  expect((await rest(s.main, ALICE, 'GET', `/acme/tasks/${id}?historyLength=-1`, undefined, V1)).status).toBe(400);
  expect((await rest(s.main, ALICE, 'GET', '/a/b/tasks/x', undefined, V1)).status).toBe(404);
});
