/**
 * Translation between the two bindings of one A2A version (HTTP+JSON <-> JSON-RPC, src/protocols/a2a/translate.ts),
 * with the official JS SDK on both sides: a caller of either binding reaches an agent that serves only the other one,
 * in 1.0 and in 0.3, and the served card advertises both bindings. Translated REST streams are relayed like the
 * agent's own: kept alive with comments, resumable with Last-Event-ID. Push configs answered through a translation
 * show the caller's own URL (never the gateway's relay URL), and trace metadata reaches the message of the 0.3 REST
 * `request` field.
 */
import { describe, expect, test } from 'vitest';
import { Pool } from 'undici';
import { LegacyJsonRpcTransport, LegacyRestTransport } from '@a2a-js/sdk/compat/v0_3/client';
import { A2aAdapter } from '../../src/protocols/a2a/adapter.ts';
import { ALICE, BOB, useA2aSetups, type A2aSetup } from '../helpers/a2a-gateway.ts';
import { artifactText, message, rest, reason, SLOW, streamKinds } from '../helpers/a2a-calls.ts';
import { eventKind, SseEvents } from '../helpers/sse-events.ts';

/** Push hosts resolve to a public address (no DNS traffic); no delivery may connect anywhere but a closed port. */
const pushAdapter = [
  {
    name: 'a2a',
    protocols: ['a2a'],
    create: (ctx: ConstructorParameters<typeof A2aAdapter>[0]) =>
      new A2aAdapter(ctx, { resolver: async () => ['93.184.216.34'], push: { connect: () => new Pool('http://127.0.0.1:1'), attempts: 1, backoffMs: 10, timeoutMs: 1_000 } }),
  },
] as const;

const at = useA2aSetups({
  rpc10: { versions: '1.0', bindings: 'jsonrpc', gatewayExtra: '  http: { sseKeepAliveMs: 100 }\n', a2a: { traceMetadata: true }, protocols: pushAdapter },
  rest10: { versions: '1.0', bindings: 'rest' },
  rpc03: { versions: '0.3', bindings: 'jsonrpc' },
  rest03: { versions: '0.3', bindings: 'rest' },
  both: { a2a: { traceMetadata: true } },
});

const V1 = { 'a2a-version': '1.0' };

async function card(s: A2aSetup, headers: Record<string, string> = {}): Promise<Record<string, unknown>> {
  return (await (await s.fetchAs(ALICE)(`${s.url}/.well-known/agent-card.json`, { headers })).json()) as Record<string, unknown>;
}

function rpcMethods(s: A2aSetup, from: number): string[] {
  return s.agent.seen.slice(from).map((r) => `${r.method} ${r.path}`);
}

describe('A2A 1.0, one binding at the agent', () => {
  test('a REST client of a JSON-RPC-only agent: card, send, stream, get, list (own tasks only), cancel', async () => {
    const c = (await card(at.rpc10, V1)) as { supportedInterfaces: { url: string; protocolBinding: string; protocolVersion: string }[] };
    expect(c.supportedInterfaces.map((i) => i.protocolBinding).sort()).toEqual(['HTTP+JSON', 'JSONRPC']);
    for (const i of c.supportedInterfaces) expect(i.url).toBe(at.rpc10.url);
    const client = await at.rpc10.client(ALICE, 'HTTP+JSON');
    const bobs = (await (await at.rpc10.client(BOB, 'HTTP+JSON')).sendMessage(message('bob'))) as unknown as { id: string };
    const before = at.rpc10.agent.seen.length;
    const task = (await client.sendMessage(message('rest to rpc'))) as unknown as { id: string; status: { state: number } };
    expect(task.status.state).toBe(3);
    expect(artifactText(task as never)).toBe('echo: rest to rpc');
    expect(await streamKinds(client.sendMessageStream(message('streamed')))).toEqual(['task', 'statusUpdate', 'artifactUpdate', 'statusUpdate']);
    expect((await client.getTask({ id: task.id } as never)).id).toBe(task.id);
    const listed = (await client.listTasks({} as never)) as unknown as { tasks: { id: string }[] };
    expect(listed.tasks.map((t) => t.id)).toContain(task.id);
    expect(listed.tasks.map((t) => t.id)).not.toContain(bobs.id);
    const slow = (await client.sendMessage({ ...(message('slow') as object), ...SLOW } as never)) as unknown as { id: string };
    expect((await client.cancelTask({ id: slow.id } as never)).status?.state).toBe(5);
    const forwarded = at.rpc10.agent.seen.slice(before);
    expect(forwarded.length).toBe(6);
    for (const r of forwarded) {
      expect(`${r.method} ${r.path}`).toBe('POST /rpc');
      expect(r.headers['a2a-version']).toBe('1.0');
      expect(r.headers.authorization).toBeUndefined();
    }
    const ghost = await rest(at.rpc10, BOB, 'GET', `/tasks/${task.id}`, undefined, V1);
    expect(ghost.status).toBe(404);
    expect(reason(ghost.body)).toBe('TG_A2A_TASK_NOT_FOUND');
  });

  test('a JSON-RPC client of a REST-only agent: card, send, stream, get, list', async () => {
    const c = (await card(at.rest10, V1)) as { supportedInterfaces: { protocolBinding: string }[] };
    expect(c.supportedInterfaces.map((i) => i.protocolBinding).sort()).toEqual(['HTTP+JSON', 'JSONRPC']);
    const client = await at.rest10.client(ALICE, 'JSONRPC');
    const before = at.rest10.agent.seen.length;
    const task = (await client.sendMessage(message('rpc to rest'))) as unknown as { id: string };
    expect(artifactText(task as never)).toBe('echo: rpc to rest');
    expect(await streamKinds(client.sendMessageStream(message('streamed')))).toEqual(['task', 'statusUpdate', 'artifactUpdate', 'statusUpdate']);
    expect((await client.getTask({ id: task.id } as never)).id).toBe(task.id);
    // status 0 (unspecified): the SDK's JSON-RPC client encodes an absent status as one the agent refuses.
    const listed = (await client.listTasks({ status: 0 } as never)) as unknown as { tasks: { id: string }[] };
    expect(listed.tasks.map((t) => t.id)).toContain(task.id);
    const paths = rpcMethods(at.rest10, before).map((p) => p.split('?')[0]);
    expect(paths).toEqual(['POST /rest/message:send', 'POST /rest/message:stream', `GET /rest/tasks/${task.id}`, 'GET /rest/tasks']);
    // The client itself spoke JSON-RPC to the gateway: another identity's GetTask is TaskNotFound in that binding.
    const bob = await at.rest10.fetchAs(BOB)(at.rest10.url, { method: 'POST', headers: { 'content-type': 'application/json', ...V1 }, body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'GetTask', params: { id: task.id } }) });
    expect(await bob.json()).toMatchObject({ id: 3, error: { code: -32001 } });
  });
});

describe('A2A 0.3, one binding at the agent', () => {
  test('a REST client of a JSON-RPC-only agent: the 0.3 card lists HTTP+JSON; send and stream reach it as 0.3 JSON-RPC', async () => {
    const c = (await card(at.rpc03)) as { url: string; preferredTransport: string; additionalInterfaces?: { url: string; transport: string }[] };
    const restIf = (c.additionalInterfaces ?? []).find((i) => i.transport === 'HTTP+JSON');
    expect(restIf?.url).toBe(at.rpc03.url);
    const alice = new LegacyRestTransport({ endpoint: restIf!.url, fetchImpl: at.rpc03.fetchAs(ALICE) });
    const before = at.rpc03.agent.seen.length;
    const task = (await alice.sendMessage(message('0.3 rest to rpc'))) as unknown as { id: string };
    expect(artifactText(task as never)).toBe('echo: 0.3 rest to rpc');
    expect(await streamKinds(alice.sendMessageStream(message('streamed')))).toEqual(['task', 'statusUpdate', 'artifactUpdate', 'statusUpdate']);
    expect((await alice.getTask({ id: task.id } as never)).id).toBe(task.id);
    const forwarded = at.rpc03.agent.seen.slice(before);
    expect(forwarded.every((r) => r.path === '/rpc' && r.headers['a2a-version'] === undefined)).toBe(true);
    expect(forwarded.map((r) => (r.body as { method: string }).method)).toEqual(['message/send', 'message/stream', 'tasks/get']);
  });

  test('a JSON-RPC client of a REST-only agent: send and stream reach it on its /v1 REST paths', async () => {
    const c = (await card(at.rest03)) as { url: string; preferredTransport: string; additionalInterfaces?: { url: string; transport: string }[] };
    const transports = [c.preferredTransport, ...(c.additionalInterfaces ?? []).map((i) => i.transport)];
    expect(transports).toContain('JSONRPC');
    expect(c.url).toBe(at.rest03.url);
    const alice = new LegacyJsonRpcTransport({ endpoint: c.url, fetchImpl: at.rest03.fetchAs(ALICE) });
    const before = at.rest03.agent.seen.length;
    const task = (await alice.sendMessage(message('0.3 rpc to rest'))) as unknown as { id: string };
    expect(artifactText(task as never)).toBe('echo: 0.3 rpc to rest');
    expect(await streamKinds(alice.sendMessageStream(message('streamed')))).toEqual(['task', 'statusUpdate', 'artifactUpdate', 'statusUpdate']);
    expect(rpcMethods(at.rest03, before)).toEqual(['POST /rest/v1/message:send', 'POST /rest/v1/message:stream']);
  });
});

describe('translated REST streams', () => {
  function stream(s: A2aSetup, path: string, body: unknown, headers: Record<string, string>, signal?: AbortSignal): Promise<Response> {
    return s.fetchAs(ALICE)(`${s.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...headers }, body: JSON.stringify(body), signal });
  }
  const slow1 = (): unknown => ({ message: { messageId: crypto.randomUUID(), role: 'ROLE_USER', parts: [{ text: 'slow' }] } });

  test('resumable with Last-Event-ID: the missed events, then the live ones; another identity gets TaskNotFound', async () => {
    const abort = new AbortController();
    const first = new SseEvents(await stream(at.rpc10, '/message:stream', slow1(), V1, abort.signal));
    const task = (await first.next())!;
    const working = (await first.next())!;
    expect([eventKind(task), eventKind(working)]).toEqual(['task:TASK_STATE_SUBMITTED', 'statusUpdate:TASK_STATE_WORKING']);
    expect(task.id).toMatch(/^[0-9a-z]+\.1$/);
    const taskId = (task.data as { task: { id: string } }).task.id;
    abort.abort();
    const ghost = await at.rpc10.fetchAs(BOB)(`${at.rpc10.url}/tasks/${taskId}:subscribe`, { method: 'POST', headers: { ...V1, 'last-event-id': task.id! } });
    expect(ghost.status).toBe(404);
    const before = at.rpc10.agent.seen.length;
    const resumed = await at.rpc10.fetchAs(ALICE)(`${at.rpc10.url}/tasks/${taskId}:subscribe`, { method: 'POST', headers: { ...V1, accept: 'text/event-stream', 'last-event-id': task.id! } });
    expect(resumed.status).toBe(200);
    expect(resumed.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = new SseEvents(resumed);
    const missed = (await events.next())!;
    expect(eventKind(missed)).toBe('statusUpdate:TASK_STATE_WORKING');
    expect(missed.id).toBe(working.id);
    // Served from the gateway's buffer: the agent sees the cancel only; the cancellation arrives live, then the end.
    expect((await rest(at.rpc10, ALICE, 'POST', `/tasks/${taskId}:cancel`, undefined, V1)).status).toBe(200);
    const live = await events.rest();
    expect(live.map(eventKind)).toEqual(['statusUpdate:TASK_STATE_CANCELED']);
    expect(live[0]!.id).toBe(task.id!.replace(/\.1$/, '.3'));
    expect(rpcMethods(at.rpc10, before)).toEqual(['POST /rpc']);
  });

  test('a 0.3 REST stream translated to 1.0 JSON-RPC resumes too', async () => {
    const abort = new AbortController();
    const body = { message: { messageId: crypto.randomUUID(), role: 'ROLE_USER', content: [{ text: 'slow' }] } };
    const first = new SseEvents(await stream(at.rpc10, '/v1/message:stream', body, {}, abort.signal));
    const task = (await first.next())!;
    expect(task.id).toMatch(/^[0-9a-z]+\.1$/);
    const taskId = (task.data as { task: { id: string } }).task.id;
    abort.abort();
    const events = new SseEvents(await at.rpc10.fetchAs(ALICE)(`${at.rpc10.url}/v1/tasks/${taskId}:subscribe`, { method: 'POST', headers: { accept: 'text/event-stream', 'last-event-id': task.id! } }));
    expect((await events.next())!.data).toMatchObject({ statusUpdate: { status: { state: 'TASK_STATE_WORKING' } } });
    expect((await rest(at.rpc10, ALICE, 'POST', `/v1/tasks/${taskId}:cancel`)).status).toBe(200);
    expect((await events.rest()).map((e) => e.data)).toEqual([expect.objectContaining({ statusUpdate: expect.objectContaining({ status: expect.objectContaining({ state: 'TASK_STATE_CANCELLED' }) }) })]);
  });

  test('kept alive with comments while the agent is silent', async () => {
    const events = new SseEvents(await stream(at.rpc10, '/message:stream', slow1(), V1));
    const task = (await events.next())!;
    const taskId = (task.data as { task: { id: string } }).task.id;
    const meanwhile = await events.comment(2);
    expect(meanwhile.map(eventKind)).toEqual(['statusUpdate:TASK_STATE_WORKING']);
    expect((await rest(at.rpc10, ALICE, 'POST', `/tasks/${taskId}:cancel`, undefined, V1)).status).toBe(200);
    expect((await events.rest()).map(eventKind)).toEqual(['statusUpdate:TASK_STATE_CANCELED']);
  });
});

test("push configs answered through a translation show the caller's URL, never the relay's", async () => {
  const s = at.rpc10;
  const created = await rest(s, ALICE, 'POST', '/message:send', { message: { messageId: crypto.randomUUID(), role: 'ROLE_USER', parts: [{ text: 'slow' }] }, configuration: { returnImmediately: true } }, V1);
  const taskId = (created.body as { task: { id: string } }).task.id;
  const url = 'https://hooks.example.com/alice?x=1';
  const set = await rest(s, ALICE, 'POST', `/tasks/${taskId}/pushNotificationConfigs`, { taskId, url, token: 't' }, V1);
  expect(set.status, JSON.stringify(set.body)).toBe(201);
  expect(set.body).toMatchObject({ url });
  const id = String(set.body.id);
  const listed = await rest(s, ALICE, 'GET', `/tasks/${taskId}/pushNotificationConfigs`, undefined, V1);
  expect((listed.body as { configs: { url: string }[] }).configs.map((c) => c.url)).toEqual([url]);
  expect((await rest(s, ALICE, 'GET', `/tasks/${taskId}/pushNotificationConfigs/${id}`, undefined, V1)).body).toMatchObject({ url });
  // The agent itself was only told the gateway's relay URL.
  const direct = await fetch(`${s.agent.url}/rpc`, { method: 'POST', headers: { 'content-type': 'application/json', ...V1 }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ListTaskPushNotificationConfigs', params: { taskId } }) });
  const agentSide = ((await direct.json()) as { result: { configs: { url: string }[] } }).result.configs;
  expect(agentSide.map((c) => c.url)).toEqual([expect.stringMatching(new RegExp(`^${s.url}/push/[A-Za-z0-9_-]{22}$`))]);
  // A 0.3 JSON-RPC caller (translated to 1.0) sees its own URL too.
  const legacy = await s.fetchAs(ALICE)(s.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tasks/pushNotificationConfig/list', params: { id: taskId } }) });
  expect(JSON.stringify(await legacy.json())).toContain(JSON.stringify(url).slice(1, -1));
  expect((await rest(s, ALICE, 'POST', `/tasks/${taskId}:cancel`, undefined, V1)).status).toBe(200);
});

describe('trace metadata in the 0.3 REST `request` field', () => {
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
  for (const key of ['both', 'rpc10'] as const) {
    test(key === 'both' ? 'forwarded as it is' : 'translated to 1.0 JSON-RPC', async () => {
      const r = await rest(at[key], ALICE, 'POST', '/v1/message:send', { request: { messageId: crypto.randomUUID(), role: 'ROLE_USER', content: [{ text: 'traced' }], metadata: { mine: 'kept' } } }, { traceparent: `00-${traceId}-00f067aa0ba902b7-01` });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
      const metadata = (r.body as { task: { history: { metadata?: Record<string, string> }[] } }).task.history[0]!.metadata;
      expect(metadata?.mine).toBe('kept');
      expect(String(metadata?.traceparent)).toContain(traceId);
    });
  }
});
