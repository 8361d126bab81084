/**
 * A2A through the gateway with the official JS SDK on both sides: a real agent (AgentExecutor +
 * DefaultRequestHandler + InMemoryTaskStore) behind /a2a/echo, SDK clients built only from the card the gateway
 * serves, over JSON-RPC and HTTP+JSON (REST): send, stream, get, list, cancel; tasks bound to their creator; card
 * rewriting and skill filtering by policy; the default policy's decisions per skill.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Client } from '@a2a-js/sdk/client';
import { ADMIN, ALICE, BOB, NOBODY, startA2a, type A2aSetup } from '../helpers/a2a-gateway.ts';
import { recordCalls } from '../helpers/gateway.ts';
import type { Call } from '../../src/core/call.ts';

let s: A2aSetup;
let calls: Call[];

beforeAll(async () => {
  s = await startA2a();
  calls = recordCalls(s.gw);
}, 60_000);

afterAll(async () => {
  await s?.close();
});

function text(value: string, extra: Record<string, unknown> = {}): never {
  return { message: { messageId: crypto.randomUUID(), role: 1, parts: [{ content: { $case: 'text', value } }], ...extra } } as never;
}

function textOfTask(task: { artifacts?: { parts: { content?: { value?: unknown } }[] }[] }): string {
  return (task.artifacts ?? []).flatMap((a) => a.parts.map((p) => String(p.content?.value ?? ''))).join('');
}

async function rpc(as: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await s.fetchAs(as)(s.url, { method: 'POST', headers: { 'content-type': 'application/json', 'a2a-version': '1.0', ...headers }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

describe.each(['JSONRPC', 'HTTP+JSON'] as const)('SDK client over %s (v1.0)', (transport) => {
  let client: Client;
  beforeAll(async () => {
    client = await s.client(ALICE, transport);
  });

  test('send: the agent answers with a completed task carrying its artifact', async () => {
    const task = (await client.sendMessage(text('hello'))) as unknown as { id: string; status: { state: number }; artifacts: never[] };
    expect(task.status.state).toBe(3); // TASK_STATE_COMPLETED
    expect(textOfTask(task)).toBe('echo: hello');
    expect(s.agent.tasks).toContain(task.id);
  });

  test('stream: every event arrives, in order, as the agent sent it', async () => {
    const kinds: string[] = [];
    for await (const event of client.sendMessageStream(text('streamed'))) kinds.push((event as { payload?: { $case: string } }).payload?.$case ?? 'none');
    expect(kinds).toEqual(['task', 'statusUpdate', 'artifactUpdate', 'statusUpdate']);
  });

  test('get, list and cancel the caller own tasks', async () => {
    const done = (await client.sendMessage(text('to get'))) as unknown as { id: string };
    const got = await client.getTask({ id: done.id } as never);
    expect(got.id).toBe(done.id);
    expect(textOfTask(got as never)).toBe('echo: to get');
    const slow = (await client.sendMessage({ ...(text('slow') as object), configuration: { returnImmediately: true, acceptedOutputModes: [] } } as never)) as unknown as { id: string; status: { state: number } };
    expect(slow.status.state).toBeLessThan(3);
    const cancelled = await client.cancelTask({ id: slow.id } as never);
    expect(cancelled.status?.state).toBe(5); // TASK_STATE_CANCELED
    const list = await client.listTasks({ tenant: '', contextId: '', status: 0, pageToken: '', statusTimestampAfter: undefined } as never);
    const ids = list.tasks.map((t) => t.id);
    expect(ids).toContain(done.id);
    expect(ids).toContain(slow.id);
  });
});

describe('tasks belong to the identity that created them', () => {
  test('another identity gets TaskNotFound for get, cancel, subscribe, push configs and continuing messages, and its list omits them', async () => {
    const alice = await s.client(ALICE, 'JSONRPC');
    const task = (await alice.sendMessage(text('mine'))) as unknown as { id: string; contextId: string };
    const before = s.agent.seen.length;
    for (const [method, params] of [
      ['GetTask', { id: task.id }],
      ['CancelTask', { id: task.id }],
      ['ListTaskPushNotificationConfigs', { taskId: task.id }],
      ['GetTaskPushNotificationConfig', { taskId: task.id, id: 'c1' }],
      ['DeleteTaskPushNotificationConfig', { taskId: task.id, id: 'c1' }],
      ['SendMessage', { message: { messageId: 'm-bob', role: 'ROLE_USER', taskId: task.id, parts: [{ text: 'take over' }] } }],
      ['SendMessage', { message: { messageId: 'm-bob2', role: 'ROLE_USER', referenceTaskIds: [task.id], parts: [{ text: 'peek' }] } }],
    ] as const) {
      const r = await rpc(BOB, { jsonrpc: '2.0', id: 7, method, params });
      expect(r.json.error, method).toMatchObject({ code: -32001, data: [{ reason: 'TASK_NOT_FOUND', domain: 'a2a-protocol.org', metadata: { code: 'TG_A2A_TASK_NOT_FOUND' } }] });
      // The same answer as for a task that does not exist at all.
      const ghost = await rpc(BOB, { jsonrpc: '2.0', id: 7, method, params: JSON.parse(JSON.stringify(params).replaceAll(task.id, 'no-such-task')) });
      expect({ ...(ghost.json.error as object), message: '' }).toEqual({ ...(r.json.error as object), message: '' });
    }
    // Subscribing streams nothing either.
    const sub = await rpc(BOB, { jsonrpc: '2.0', id: 8, method: 'SubscribeToTask', params: { id: task.id } });
    expect(sub.json.error).toMatchObject({ code: -32001 });
    // None of it reached the agent.
    expect(s.agent.seen.slice(before).filter((r) => r.method === 'POST')).toEqual([]);
    const bobList = await rpc(BOB, { jsonrpc: '2.0', id: 9, method: 'ListTasks', params: {} });
    const listed = (bobList.json.result as { tasks: { id: string }[]; totalSize: number }).tasks.map((t) => t.id);
    expect(listed).not.toContain(task.id);
    expect((bobList.json.result as { totalSize: number }).totalSize).toBe(listed.length);
    // REST too.
    const rest = await s.fetchAs(BOB)(`${s.url}/tasks/${task.id}`, { headers: { 'a2a-version': '1.0' } });
    expect(rest.status).toBe(404);
    expect(await rest.json()).toMatchObject({ error: { code: 404, status: 'NOT_FOUND', details: [{ reason: 'TASK_NOT_FOUND', domain: 'a2a-protocol.org', metadata: { code: 'TG_A2A_TASK_NOT_FOUND' } }] } });
    // Alice still reaches it.
    expect((await alice.getTask({ id: task.id } as never)).id).toBe(task.id);
  });
});

describe('agent card through the gateway', () => {
  test('every URL points at the gateway, auth is the gateway, signatures are gone, and forbidden skills are absent', async () => {
    const res = await s.fetchAs(ALICE)(`${s.url}/.well-known/agent-card.json`, { headers: { 'a2a-version': '1.0' } });
    expect(res.status).toBe(200);
    const body = await res.text();
    const agentOrigin = new URL(s.agent.url).origin;
    expect(body).not.toContain(agentOrigin);
    const card = JSON.parse(body) as Record<string, unknown>;
    for (const i of card.supportedInterfaces as { url: string }[]) expect(i.url).toBe(s.url);
    expect(card.signatures).toBeUndefined();
    expect(Object.keys(card.securitySchemes as object)).toEqual(['tollgate']);
    expect((card.skills as { id: string }[]).map((k) => k.id)).toEqual(['echo']);
    const admin = (await (await s.fetchAs(ADMIN)(`${s.url}/.well-known/agent-card.json`, { headers: { 'a2a-version': '1.0' } })).json()) as { skills: { id: string }[] };
    expect(admin.skills.map((k) => k.id)).toEqual(['echo', 'secret-ops']);
  });

  test('the 0.3 card (no A2A-Version) and the older agent.json path are rewritten too', async () => {
    for (const path of ['agent-card.json', 'agent.json']) {
      const card = (await (await s.fetchAs(ALICE)(`${s.url}/.well-known/${path}`)).json()) as Record<string, unknown>;
      expect(card.url).toBe(s.url);
      for (const i of card.additionalInterfaces as { url: string }[]) expect(i.url).toBe(s.url);
      expect(JSON.stringify(card)).not.toContain(new URL(s.agent.url).origin);
      expect(card.signatures).toBeUndefined();
      expect(card.security).toEqual([{ tollgate: [] }]);
    }
  });

  test('a skill the caller may not use is refused when asked for; the agent never sees the message', async () => {
    const before = s.agent.seen.length;
    const r = await rpc(ALICE, { jsonrpc: '2.0', id: 1, method: 'SendMessage', params: { message: { messageId: 'x', role: 'ROLE_USER', parts: [{ text: 'hi' }], metadata: { skill: 'secret-ops' } } } });
    expect(r.json.error).toMatchObject({ code: -32062, data: { code: 'TG_POLICY_DENIED' } });
    expect(s.agent.seen.length).toBe(before);
    const ok = await rpc(ADMIN, { jsonrpc: '2.0', id: 2, method: 'SendMessage', params: { message: { messageId: 'y', role: 'ROLE_USER', parts: [{ text: 'hi' }], metadata: { skill: 'secret-ops' } } } });
    expect(ok.json.result).toBeDefined();
  });

  test('GET /a2a lists the agents the caller may use with their rewritten cards; a caller without grants sees none', async () => {
    const list = (await (await s.fetchAs(ALICE)(`${s.gw.url}/a2a`, { headers: { 'a2a-version': '1.0' } })).json()) as { agents: { name: string; url: string; card: { skills: { id: string }[] } }[] };
    expect(list.agents.map((a) => a.name)).toEqual(['echo']);
    expect(list.agents[0]!.url).toBe(s.url);
    expect(list.agents[0]!.card.skills.map((k) => k.id)).toEqual(['echo']);
    const none = await s.fetchAs(NOBODY)(`${s.gw.url}/a2a`, { headers: { 'a2a-version': '1.0' } });
    expect(((await none.json()) as { agents: unknown[] }).agents).toEqual([]);
    const card = await s.fetchAs(NOBODY)(`${s.url}/.well-known/agent-card.json`);
    expect(card.status).toBe(403);
  });

  test('nothing is served without authentication', async () => {
    for (const [path, init] of [
      ['/a2a', {}],
      ['/a2a/echo/.well-known/agent-card.json', {}],
      ['/a2a/echo', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{}}' }],
    ] as const) {
      const res = await fetch(`${s.gw.url}${path}`, init);
      expect(res.status, path).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    }
  });
});

describe('calls are calls: policy input, audit, telemetry', () => {
  test('a message becomes a skill call on the agent, with part kinds and the callee', async () => {
    const from = calls.length;
    await rpc(ALICE, { jsonrpc: '2.0', id: 3, method: 'SendMessage', params: { message: { messageId: 'z', role: 'ROLE_USER', parts: [{ text: 'hi' }, { data: { a: 1 } }] } } });
    const call = calls.slice(from).find((c) => c.operation === 'SendMessage')!;
    expect(call.protocol).toBe('a2a');
    expect(call.upstream).toBe('echo');
    expect(call.principal?.id).toBe(ALICE);
    expect(call.target).toEqual({ kind: 'skill', name: 'echo', server: 'echo', local: 'echo' });
    expect(call.args).toMatchObject({ skill: 'echo', part_kinds: ['data', 'text'], callee: 'echo' });
    expect(call.outcome).toBe('ok');
    expect(call.decision?.allow).toBe(true);
  });
});
