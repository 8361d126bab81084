/**
 * A2A v0.3 <-> v1.0 translation over HTTP+JSON (REST), with the official JS SDK on both sides:
 * - a v0.3 REST client (the SDK's LegacyRestTransport: `/v1/...` paths, v0.3 proto-JSON, endpoint from the 0.3 card
 *   the gateway serves) calling an agent that serves only v1.0 (its REST interface gets 1.0 requests);
 * - a v1.0 REST client (the SDK's ClientFactory preferring HTTP+JSON, built from the 1.0 card the gateway serves)
 *   calling an agent of the 0.3 era (its `/v1` REST router gets 0.3 requests), and one that serves 0.3 over JSON-RPC
 *   only (translated to JSON-RPC).
 * Send, stream, get, cancel and subscribe; the agent's errors reach the caller in its version's REST shape; policy
 * and task binding hold as on the JSON-RPC path (another identity gets TaskNotFound, however it spells the task id).
 */
import { beforeAll, describe, expect, test } from 'vitest';
import { LegacyRestTransport } from '@a2a-js/sdk/compat/v0_3/client';
import type { Call } from '../../src/core/call.ts';
import { startTestAgent } from '../helpers/a2a-agent.ts';
import { ALICE, BOB, startA2a, useA2aSetups } from '../helpers/a2a-gateway.ts';
import { artifactText, message, reason, rest, SLOW, streamKinds } from '../helpers/a2a-calls.ts';
import { recordCalls } from '../helpers/gateway.ts';

const at = useA2aSetups({ v1only: { versions: '1.0' }, v03only: { versions: '0.3' }, v03rpc: { versions: '0.3', bindings: 'jsonrpc' } });
let calls: Call[];

beforeAll(() => {
  calls = recordCalls(at.v1only.gw);
});

describe('a v0.3 REST client and an agent that speaks only v1.0', () => {
  let endpoint: string;
  let alice: LegacyRestTransport;
  let bob: LegacyRestTransport;

  beforeAll(async () => {
    const card = (await (await at.v1only.fetchAs(ALICE)(`${at.v1only.url}/.well-known/agent-card.json`)).json()) as { url: string; protocolVersion: string; additionalInterfaces?: { url: string; transport: string }[] };
    expect(card.protocolVersion).toMatch(/^0\.3/);
    // The 0.3 card lists HTTP+JSON (translated) at the gateway, beside JSON-RPC.
    const restIf = (card.additionalInterfaces ?? []).find((i) => i.transport === 'HTTP+JSON');
    expect(restIf?.url).toBe(at.v1only.url);
    endpoint = restIf!.url;
    alice = new LegacyRestTransport({ endpoint, fetchImpl: at.v1only.fetchAs(ALICE) });
    bob = new LegacyRestTransport({ endpoint, fetchImpl: at.v1only.fetchAs(BOB) });
  });

  test('send, get and cancel; the agent only ever saw v1.0 REST requests; each is a Call of the caller', async () => {
    const before = at.v1only.agent.seen.length;
    const task = (await alice.sendMessage(message('old to new'))) as unknown as { id: string; status: { state: number } };
    expect(task.status.state).toBe(3);
    expect(artifactText(task as never)).toBe('echo: old to new');
    const got = await alice.getTask({ id: task.id } as never);
    expect(got.id).toBe(task.id);
    expect(artifactText(got as never)).toBe('echo: old to new');
    const slow = (await alice.sendMessage({ ...(message('slow') as object), ...SLOW } as never)) as unknown as { id: string; status: { state: number } };
    expect(slow.status.state).toBeLessThan(3);
    expect((await alice.cancelTask({ id: slow.id } as never)).status?.state).toBe(5);
    const forwarded = at.v1only.agent.seen.slice(before);
    expect(forwarded.map((r) => `${r.method} ${r.path}`)).toEqual(['POST /rest/message:send', `GET /rest/tasks/${task.id}`, 'POST /rest/message:send', `POST /rest/tasks/${slow.id}:cancel`]);
    for (const r of forwarded) {
      expect(r.headers['a2a-version']).toBe('1.0');
      expect(r.headers.authorization).toBeUndefined();
    }
    const mine = calls.filter((c) => (c.args as { task_id?: unknown } | undefined)?.task_id === null && c.operation === 'SendMessage' && c.principal?.id === ALICE);
    expect(mine.length).toBeGreaterThanOrEqual(2);
    expect(mine[0]!.target).toMatchObject({ kind: 'skill', name: 'echo' });
    expect(calls.find((c) => c.operation === 'CancelTask')).toMatchObject({ outcome: 'ok', target: { kind: 'task', name: slow.id } });
  });

  test('the 0.3 REST wire shapes are what the client gets (proto-JSON, 201 for a send)', async () => {
    const r = await rest(at.v1only, ALICE, 'POST', '/v1/message:send', { message: { messageId: crypto.randomUUID(), role: 'ROLE_USER', content: [{ text: 'raw 0.3 rest' }] } });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    expect(r.body).toMatchObject({ task: { status: { state: 'TASK_STATE_COMPLETED' } } });
    expect(JSON.stringify(r.body)).toContain('echo: raw 0.3 rest');
  });

  test('stream and subscribe: every event arrives, in order, translated', async () => {
    expect(await streamKinds(alice.sendMessageStream(message('streamed old to new')))).toEqual(['task', 'statusUpdate', 'artifactUpdate', 'statusUpdate']);
    const slow = (await alice.sendMessage({ ...(message('slow') as object), ...SLOW } as never)) as unknown as { id: string };
    const states: string[] = [];
    for await (const e of alice.resubscribeTask({ id: slow.id } as never)) {
      const p = (e as { payload?: { $case: string; value: { status?: { state: number } } } }).payload;
      states.push(`${p?.$case}:${p?.value.status?.state ?? ''}`);
      if (states.length === 1) await alice.cancelTask({ id: slow.id } as never);
    }
    expect(states[0]).toMatch(/^task:/);
    expect(states.at(-1)).toBe('statusUpdate:5');
  });

  test("errors: the agent's in the 0.3 REST shape; another identity's task does not exist, however it is named", async () => {
    const done = (await alice.sendMessage(message('finished'))) as unknown as { id: string };
    // Cancelling a completed task: the agent's TaskNotCancelable, as a 0.3 REST error.
    const r = await rest(at.v1only, ALICE, 'POST', `/v1/tasks/${done.id}:cancel`);
    expect(r.status, JSON.stringify(r.body)).toBe(400);
    expect(JSON.stringify(r.body)).toMatch(/-32002|not cancelable/i);
    await expect(bob.getTask({ id: done.id } as never)).rejects.toThrow();
    const ghost = await rest(at.v1only, BOB, 'GET', `/v1/tasks/${done.id}`);
    expect(ghost.status).toBe(404);
    expect(reason(ghost.body)).toBe('TG_A2A_TASK_NOT_FOUND');
    // A task created by a translated stream is bound to its creator too.
    let streamed = '';
    for await (const e of alice.sendMessageStream(message('mine'))) streamed ||= (e as { payload: { value: { id?: string; taskId?: string } } }).payload.value.id ?? '';
    expect((await rest(at.v1only, BOB, 'GET', `/v1/tasks/${streamed}`)).status).toBe(404);
    expect((await rest(at.v1only, ALICE, 'GET', `/v1/tasks/${streamed}`)).status).toBe(200);
    // Continuing Alice's task with the spellings the SDK also decodes (`request`, `task_id`): still not Bob's.
    const before = at.v1only.agent.seen.length;
    for (const body of [
      { request: { messageId: crypto.randomUUID(), role: 'ROLE_USER', taskId: done.id, content: [{ text: 'hijack' }] } },
      { message: { messageId: crypto.randomUUID(), role: 'ROLE_USER', task_id: done.id, content: [{ text: 'hijack' }] } },
    ]) {
      const hijack = await rest(at.v1only, BOB, 'POST', '/v1/message:send', body);
      expect(hijack.status, JSON.stringify(hijack.body)).toBe(404);
      expect(reason(hijack.body)).toBe('TG_A2A_TASK_NOT_FOUND');
    }
    expect(at.v1only.agent.seen.length).toBe(before);
  });

  test('policy holds: a skill Alice may not use is refused in the REST shape and never reaches the agent', async () => {
    const before = at.v1only.agent.seen.length;
    const r = await rest(at.v1only, ALICE, 'POST', '/v1/message:send', { message: { messageId: crypto.randomUUID(), role: 'ROLE_USER', content: [{ text: 'x' }], metadata: { skill: 'secret-ops' } } });
    expect(r.status).toBe(403);
    expect(reason(r.body)).toBe('TG_POLICY_DENIED');
    expect(at.v1only.agent.seen.length).toBe(before);
  });
});

describe('a v1.0 REST client and an agent that speaks only v0.3', () => {
  test('the card (A2A-Version 1.0) lists both bindings in 1.0, at the gateway', async () => {
    const card = (await (await at.v03only.fetchAs(ALICE)(`${at.v03only.url}/.well-known/agent-card.json`, { headers: { 'a2a-version': '1.0' } })).json()) as { supportedInterfaces: { url: string; protocolBinding: string; protocolVersion: string }[] };
    const v1 = card.supportedInterfaces.filter((i) => i.protocolVersion === '1.0');
    expect(v1.map((i) => i.protocolBinding).sort()).toEqual(['HTTP+JSON', 'JSONRPC']);
    for (const i of card.supportedInterfaces) expect(i.url).toBe(at.v03only.url);
    expect(JSON.stringify(card)).not.toContain(new URL(at.v03only.agent.url).origin);
  });

  test('an SDK REST client built from that card sends, gets, cancels; the agent only ever saw 0.3 REST requests', async () => {
    const client = await at.v03only.client(ALICE, 'HTTP+JSON');
    const before = at.v03only.agent.seen.length;
    const task = (await client.sendMessage(message('new to old'))) as unknown as { id: string; status: { state: number } };
    expect(task.status.state).toBe(3);
    expect(artifactText(task as never)).toBe('echo: new to old');
    expect((await client.getTask({ id: task.id } as never)).id).toBe(task.id);
    const slow = (await client.sendMessage({ ...(message('slow') as object), ...SLOW } as never)) as unknown as { id: string };
    expect((await client.cancelTask({ id: slow.id } as never)).status?.state).toBe(5);
    const forwarded = at.v03only.agent.seen.slice(before);
    expect(forwarded.map((r) => `${r.method} ${r.path}`)).toEqual(['POST /rest/v1/message:send', `GET /rest/v1/tasks/${task.id}`, 'POST /rest/v1/message:send', `POST /rest/v1/tasks/${slow.id}:cancel`]);
  });

  test('the 1.0 REST wire shapes are what the client gets', async () => {
    const r = await rest(at.v03only, ALICE, 'POST', '/message:send', { message: { messageId: crypto.randomUUID(), role: 'ROLE_USER', parts: [{ text: 'raw 1.0 rest' }] } }, { 'a2a-version': '1.0' });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body).toMatchObject({ task: { status: { state: 'TASK_STATE_COMPLETED' }, artifacts: [{ parts: [{ text: 'echo: raw 1.0 rest' }] }] } });
  });

  test('stream and subscribe: every event arrives, in order, translated', async () => {
    const client = await at.v03only.client(ALICE, 'HTTP+JSON');
    expect(await streamKinds(client.sendMessageStream(message('streamed new to old')))).toEqual(['task', 'statusUpdate', 'artifactUpdate', 'statusUpdate']);
    const slow = (await client.sendMessage({ ...(message('slow') as object), ...SLOW } as never)) as unknown as { id: string };
    const states: string[] = [];
    for await (const e of client.resubscribeTask({ id: slow.id } as never)) {
      const p = (e as { payload?: { $case: string; value: { status?: { state: number } } } }).payload;
      states.push(`${p?.$case}:${p?.value.status?.state ?? ''}`);
      if (states.length === 1) await client.cancelTask({ id: slow.id } as never);
    }
    expect(states[0]).toMatch(/^task:/);
    expect(states.at(-1)).toBe('statusUpdate:5');
  });

  test("errors: the agent's in the 1.0 REST shape, ListTasks answered by the gateway, another identity refused", async () => {
    const h = { 'a2a-version': '1.0' };
    const done = (await rest(at.v03only, ALICE, 'POST', '/message:send', { message: { messageId: crypto.randomUUID(), role: 'ROLE_USER', parts: [{ text: 'x' }] } }, h)).body as { task: { id: string } };
    const r = await rest(at.v03only, ALICE, 'POST', `/tasks/${done.task.id}:cancel`, undefined, h);
    expect(r.status, JSON.stringify(r.body)).toBeGreaterThanOrEqual(400);
    expect(r.body).toMatchObject({ error: { code: r.status } });
    expect(JSON.stringify(r.body)).toMatch(/TASK_NOT_CANCELABLE|not cancelable/i);
    // ListTasks has no v0.3 equivalent: the gateway lists the caller's own tasks (a2a-list-v03.test.ts).
    const list = await rest(at.v03only, ALICE, 'GET', '/tasks', undefined, h);
    expect(list.status, JSON.stringify(list.body)).toBe(200);
    expect((list.body as { tasks: { id: string }[] }).tasks.map((t) => t.id)).toContain(done.task.id);
    expect((await rest(at.v03only, BOB, 'GET', '/tasks', undefined, h)).body).toMatchObject({ tasks: [] });
    const ghost = await rest(at.v03only, BOB, 'GET', `/tasks/${done.task.id}`, undefined, h);
    expect(ghost.status).toBe(404);
    expect(reason(ghost.body)).toBe('TG_A2A_TASK_NOT_FOUND');
  });
});

describe('a v1.0 REST client and an agent that serves v0.3 over JSON-RPC only', () => {
  test('the 1.0 card lists HTTP+JSON; the REST calls reach the agent as 0.3 JSON-RPC', async () => {
    const card = (await (await at.v03rpc.fetchAs(ALICE)(`${at.v03rpc.url}/.well-known/agent-card.json`, { headers: { 'a2a-version': '1.0' } })).json()) as { supportedInterfaces: { protocolBinding: string; protocolVersion: string }[] };
    expect(card.supportedInterfaces.filter((i) => i.protocolVersion === '1.0').map((i) => i.protocolBinding).sort()).toEqual(['HTTP+JSON', 'JSONRPC']);
    const client = await at.v03rpc.client(ALICE, 'HTTP+JSON');
    const before = at.v03rpc.agent.seen.length;
    const task = (await client.sendMessage(message('rest to rpc'))) as unknown as { id: string };
    expect(artifactText(task as never)).toBe('echo: rest to rpc');
    expect(await streamKinds(client.sendMessageStream(message('streamed rest to rpc')))).toEqual(['task', 'statusUpdate', 'artifactUpdate', 'statusUpdate']);
    expect((await client.getTask({ id: task.id } as never)).id).toBe(task.id);
    const forwarded = at.v03rpc.agent.seen.slice(before);
    expect(forwarded.every((r) => r.method === 'POST' && r.path === '/rpc')).toBe(true);
    expect(forwarded.map((r) => (r.body as { method: string }).method)).toEqual(['message/send', 'message/stream', 'tasks/get']);
    expect((await rest(at.v03rpc, BOB, 'GET', `/tasks/${task.id}`, undefined, { 'a2a-version': '1.0' })).status).toBe(404);
  });
});

test('an agent that is down: the gateway error in the REST shape, nothing crashes', async () => {
  const agent = await startTestAgent({ versions: '1.0' });
  const s = await startA2a({ agent });
  try {
    // Both cards cached (the 1.0 one says where the agent serves each binding); then the agent goes away.
    expect((await s.fetchAs(ALICE)(`${s.url}/.well-known/agent-card.json`, { headers: { 'a2a-version': '1.0' } })).status).toBe(200);
    expect((await s.fetchAs(ALICE)(`${s.url}/.well-known/agent-card.json`)).status).toBe(200);
    await agent.close();
    const r = await rest(s, ALICE, 'POST', '/v1/message:send', { message: { messageId: 'm', role: 'ROLE_USER', content: [{ text: 'anyone?' }] } });
    expect(r.status, JSON.stringify(r.body)).toBeGreaterThanOrEqual(502);
    expect(reason(r.body)).toMatch(/^TG_UPSTREAM/);
    expect((await s.fetchAs(ALICE)(`${s.url}/.well-known/agent-card.json`)).status).toBe(200);
  } finally {
    await s.gw.stop();
  }
});
