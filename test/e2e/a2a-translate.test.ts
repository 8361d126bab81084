/**
 * A2A v0.3 <-> v1.0 translation over JSON-RPC, with the official JS SDK on both sides:
 * - a v0.3 client (the SDK's LegacyJsonRpcTransport: 0.3 method names, `kind` fields, no A2A-Version header, built
 *   from the 0.3 card the gateway serves) calling an agent that serves only v1.0 (no compat layer);
 * - a v1.0 client (the SDK's ClientFactory, built from the 1.0 card the gateway serves) calling an agent of the 0.3
 *   era (the SDK's v0.3 handlers alone: v1.0 method names are unknown to it).
 * Send, stream, get, cancel and resubscribe; the agent's own errors reach the caller in the caller's version; tasks
 * stay bound to the identity that created them; the reshaped cards point at the gateway only.
 */
import { beforeAll, describe, expect, test } from 'vitest';
import { LegacyJsonRpcTransport } from '@a2a-js/sdk/compat/v0_3/client';
import { startTestAgent } from '../helpers/a2a-agent.ts';
import { ALICE, BOB, startA2a, useA2aSetups, type A2aSetup } from '../helpers/a2a-gateway.ts';
import { artifactText, message, rpc, streamKinds } from '../helpers/a2a-calls.ts';
import { SseEvents as Events } from '../helpers/sse-events.ts';

const at = useA2aSetups({ v1only: { versions: '1.0' }, v03only: { versions: '0.3' } });

describe('a v0.3 client and an agent that speaks only v1.0', () => {
  let card: { url: string; protocolVersion: string; preferredTransport: string; additionalInterfaces?: { url: string; transport: string }[]; skills: { id: string }[] };
  let alice: LegacyJsonRpcTransport;
  let bob: LegacyJsonRpcTransport;

  beforeAll(async () => {
    card = (await (await at.v1only.fetchAs(ALICE)(`${at.v1only.url}/.well-known/agent-card.json`)).json()) as typeof card;
    alice = new LegacyJsonRpcTransport({ endpoint: card.url, fetchImpl: at.v1only.fetchAs(ALICE) });
    bob = new LegacyJsonRpcTransport({ endpoint: card.url, fetchImpl: at.v1only.fetchAs(BOB) });
  });

  test('the card (no A2A-Version) is a 0.3 card advertising JSON-RPC (and HTTP+JSON) at the gateway only, filtered for the caller', async () => {
    // The agent itself serves a 1.0 card only.
    const direct = (await (await fetch(`${at.v1only.agent.url}/.well-known/agent-card.json`)).json()) as Record<string, unknown>;
    expect(direct.url).toBeUndefined();
    expect(card.protocolVersion).toMatch(/^0\.3/);
    expect(card.url).toBe(at.v1only.url);
    expect(card.preferredTransport).toBe('JSONRPC');
    // HTTP+JSON 0.3 is served too, by translation (a2a-translate-rest.test.ts).
    expect((card.additionalInterfaces ?? []).map((i) => i.transport)).toContain('HTTP+JSON');
    for (const i of card.additionalInterfaces ?? []) expect(i.url).toBe(at.v1only.url);
    expect(card.skills.map((k) => k.id)).toEqual(['echo']);
    expect(JSON.stringify(card)).not.toContain(new URL(at.v1only.agent.url).origin);
  });

  test('send, get and cancel; the agent only ever saw v1.0 requests', async () => {
    const before = at.v1only.agent.seen.length;
    const task = (await alice.sendMessage(message('old to new'))) as unknown as { id: string; status: { state: number } };
    expect(task.status.state).toBe(3);
    expect(artifactText(task as never)).toBe('echo: old to new');
    const forwarded = at.v1only.agent.seen.slice(before);
    expect(forwarded.map((r) => `${r.method} ${r.path}`)).toEqual(['POST /rpc']);
    expect(forwarded[0]!.headers['a2a-version']).toBe('1.0');
    expect(forwarded[0]!.headers.authorization).toBeUndefined();
    const got = await alice.getTask({ id: task.id } as never);
    expect(got.id).toBe(task.id);
    expect(artifactText(got as never)).toBe('echo: old to new');
    const slow = (await alice.sendMessage({ ...(message('slow') as object), configuration: { returnImmediately: true, acceptedOutputModes: [] } } as never)) as unknown as { id: string; status: { state: number } };
    expect(slow.status.state).toBeLessThan(3);
    expect((await alice.cancelTask({ id: slow.id } as never)).status?.state).toBe(5);
  });

  test('the 0.3 wire shapes are what the client gets (kind fields, lower-case states)', async () => {
    const r = await rpc(at.v1only, ALICE, 'message/send', { message: { kind: 'message', messageId: crypto.randomUUID(), role: 'user', parts: [{ kind: 'text', text: 'raw 0.3' }] } });
    expect(r.result).toMatchObject({ kind: 'task', status: { state: 'completed' }, artifacts: [{ parts: [{ kind: 'text', text: 'echo: raw 0.3' }] }] });
  });

  test('stream: every event arrives, in order, translated', async () => {
    expect(await streamKinds(alice.sendMessageStream(message('streamed old to new')))).toEqual(['task', 'statusUpdate', 'artifactUpdate', 'statusUpdate']);
    // On the wire: SSE events in the 0.3 shape.
    const res = await at.v1only.fetchAs(ALICE)(at.v1only.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'message/stream', params: { message: { kind: 'message', messageId: crypto.randomUUID(), role: 'user', parts: [{ kind: 'text', text: 'wire' }] } } }),
    });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const blocks = (await res.text()).split('\n\n').filter((b) => b.includes('data: '));
    // Each event carries an SSE id (resumable, resume.ts) and its data.
    for (const b of blocks) expect(b).toMatch(/^id: [0-9a-z]+\.\d+\ndata: /);
    const events = blocks.map((b) => JSON.parse(b.slice(b.indexOf('data: ') + 6)) as { id: number; result: { kind: string; final?: boolean } });
    expect(events.map((e) => e.result.kind)).toEqual(['task', 'status-update', 'artifact-update', 'status-update']);
    expect(events.every((e) => e.id === 9)).toBe(true);
    expect(events.at(-1)!.result.final).toBe(true);
  });

  test('tasks/resubscribe streams a working task until it is cancelled', async () => {
    const slow = (await alice.sendMessage({ ...(message('slow') as object), configuration: { returnImmediately: true, acceptedOutputModes: [] } } as never)) as unknown as { id: string };
    const states: string[] = [];
    for await (const e of alice.resubscribeTask({ id: slow.id } as never)) {
      const p = (e as { payload?: { $case: string; value: { status?: { state: number } } } }).payload;
      states.push(`${p?.$case}:${p?.value.status?.state ?? ''}`);
      if (states.length === 1) await alice.cancelTask({ id: slow.id } as never);
    }
    expect(states[0]).toMatch(/^task:/);
    expect(states.at(-1)).toBe('statusUpdate:5');
  });

  test("the agent's errors reach the 0.3 client with their A2A codes; another identity's task does not exist", async () => {
    const done = (await alice.sendMessage(message('finished'))) as unknown as { id: string };
    // Cancelling a completed task: the agent's TaskNotCancelable, through the translation.
    const r = await rpc(at.v1only, ALICE, 'tasks/cancel', { id: done.id });
    expect(r.error).toMatchObject({ code: -32002 });
    await expect(bob.getTask({ id: done.id } as never)).rejects.toThrow();
    const ghost = await rpc(at.v1only, BOB, 'tasks/get', { id: done.id });
    expect(ghost.error).toMatchObject({ code: -32001, data: [{ reason: 'TASK_NOT_FOUND', metadata: { code: 'TG_A2A_TASK_NOT_FOUND' } }] });
    // A task created by a translated stream is bound to its creator too.
    let streamed = '';
    for await (const e of alice.sendMessageStream(message('mine'))) streamed ||= ((e as { payload: { value: { id?: string; taskId?: string } } }).payload.value.id ?? '');
    expect((await rpc(at.v1only, BOB, 'tasks/get', { id: streamed })).error).toMatchObject({ code: -32001 });
    expect((await rpc(at.v1only, ALICE, 'tasks/get', { id: streamed })).result).toMatchObject({ id: streamed, kind: 'task' });
  });
});

describe('a v1.0 client and an agent that speaks only v0.3', () => {
  test('the card (A2A-Version 1.0) is a 1.0 card whose JSON-RPC (and HTTP+JSON) interfaces are the gateway', async () => {
    const direct = (await (await fetch(`${at.v03only.agent.url}/.well-known/agent-card.json`, { headers: { 'a2a-version': '1.0' } })).json()) as Record<string, unknown>;
    expect(typeof direct.url).toBe('string');
    const card = (await (await at.v03only.fetchAs(ALICE)(`${at.v03only.url}/.well-known/agent-card.json`, { headers: { 'a2a-version': '1.0' } })).json()) as {
      supportedInterfaces: { url: string; protocolBinding: string; protocolVersion: string }[];
      skills: { id: string }[];
    };
    expect(card.supportedInterfaces.filter((i) => i.protocolVersion === '1.0').map((i) => i.protocolBinding)).toEqual(['JSONRPC', 'HTTP+JSON']);
    for (const i of card.supportedInterfaces) expect(i.url).toBe(at.v03only.url);
    expect(card.skills.map((k) => k.id)).toEqual(['echo']);
    expect(JSON.stringify(card)).not.toContain(new URL(at.v03only.agent.url).origin);
  });

  test('an SDK client built from that card sends, gets and cancels; the agent only ever saw 0.3 requests', async () => {
    const client = await at.v03only.client(ALICE, 'JSONRPC');
    const before = at.v03only.agent.seen.length;
    const task = (await client.sendMessage(message('new to old'))) as unknown as { id: string; status: { state: number } };
    expect(task.status.state).toBe(3);
    expect(artifactText(task as never)).toBe('echo: new to old');
    expect((await client.getTask({ id: task.id } as never)).id).toBe(task.id);
    const slow = (await client.sendMessage({ ...(message('slow') as object), configuration: { returnImmediately: true, acceptedOutputModes: [] } } as never)) as unknown as { id: string };
    expect((await client.cancelTask({ id: slow.id } as never)).status?.state).toBe(5);
    const forwarded = at.v03only.agent.seen.slice(before);
    expect(forwarded.length).toBe(4);
    expect(forwarded.every((r) => r.method === 'POST' && r.path === '/rpc')).toBe(true);
    expect(forwarded.map((r) => (r.body as { method: string }).method)).toEqual(['message/send', 'tasks/get', 'message/send', 'tasks/cancel']);
  });

  test('the 1.0 wire shapes are what the client gets', async () => {
    const r = await rpc(at.v03only, ALICE, 'SendMessage', { message: { messageId: crypto.randomUUID(), role: 'ROLE_USER', parts: [{ text: 'raw 1.0' }] } }, { 'a2a-version': '1.0' });
    expect(r.result).toMatchObject({ task: { status: { state: 'TASK_STATE_COMPLETED' }, artifacts: [{ parts: [{ text: 'echo: raw 1.0' }] }] } });
  });

  test('stream and subscribe: every event arrives, in order, translated', async () => {
    const client = await at.v03only.client(ALICE, 'JSONRPC');
    expect(await streamKinds(client.sendMessageStream(message('streamed new to old')))).toEqual(['task', 'statusUpdate', 'artifactUpdate', 'statusUpdate']);
    const slow = (await client.sendMessage({ ...(message('slow') as object), configuration: { returnImmediately: true, acceptedOutputModes: [] } } as never)) as unknown as { id: string };
    const states: string[] = [];
    for await (const e of client.resubscribeTask({ id: slow.id } as never)) {
      const p = (e as { payload?: { $case: string; value: { status?: { state: number } } } }).payload;
      states.push(`${p?.$case}:${p?.value.status?.state ?? ''}`);
      if (states.length === 1) await client.cancelTask({ id: slow.id } as never);
    }
    expect(states[0]).toMatch(/^task:/);
    expect(states.at(-1)).toBe('statusUpdate:5');
  });

  test("errors: the agent's own in 1.0 codes, ListTasks answered by the gateway, another identity refused", async () => {
    const done = (await rpc(at.v03only, ALICE, 'SendMessage', { message: { messageId: crypto.randomUUID(), role: 'ROLE_USER', parts: [{ text: 'x' }] } }, { 'a2a-version': '1.0' })).result as { task: { id: string } };
    expect((await rpc(at.v03only, ALICE, 'CancelTask', { id: done.task.id }, { 'a2a-version': '1.0' })).error).toMatchObject({ code: -32002 });
    // ListTasks has no v0.3 equivalent: the gateway lists the caller's own tasks (a2a-list-v03.test.ts).
    const listed = (await rpc(at.v03only, ALICE, 'ListTasks', {}, { 'a2a-version': '1.0' })).result as { tasks: { id: string }[] };
    expect(listed.tasks.map((t) => t.id)).toContain(done.task.id);
    expect(((await rpc(at.v03only, BOB, 'ListTasks', {}, { 'a2a-version': '1.0' })).result as { tasks: unknown[] }).tasks).toEqual([]);
    expect((await rpc(at.v03only, BOB, 'GetTask', { id: done.task.id }, { 'a2a-version': '1.0' })).error).toMatchObject({ code: -32001 });
  });
});

test('an agent that is down: the gateway error in the caller JSON-RPC shape, nothing crashes', async () => {
  const agent = await startTestAgent({ versions: '1.0' });
  const s = await startA2a({ agent });
  try {
    // The cards are cached (the 1.0 one says where the agent serves JSON-RPC: the call is translated); then the agent goes away.
    expect((await s.fetchAs(ALICE)(`${s.url}/.well-known/agent-card.json`, { headers: { 'a2a-version': '1.0' } })).status).toBe(200);
    expect(((await (await s.fetchAs(ALICE)(`${s.url}/.well-known/agent-card.json`)).json()) as { url: string }).url).toBe(s.url);
    await agent.close();
    const res = await s.fetchAs(ALICE)(s.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'message/send', params: { message: { kind: 'message', messageId: 'm', role: 'user', parts: [{ kind: 'text', text: 'anyone?' }] } } }),
    });
    const body = (await res.json()) as Record<string, unknown>;
    expect(body, JSON.stringify(body)).toMatchObject({ jsonrpc: '2.0', id: 5, error: { data: { code: expect.stringMatching(/^TG_UPSTREAM/) } } });
    // The gateway is still serving.
    expect((await s.fetchAs(ALICE)(`${s.url}/.well-known/agent-card.json`)).status).toBe(200);
  } finally {
    await s.gw.stop();
  }
});

describe('translated streams resume with Last-Event-ID', () => {
  async function stream(s: A2aSetup, as: string, method: string, params: unknown, id: number, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Response> {
    return s.fetchAs(as)(s.url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...headers }, body: JSON.stringify({ jsonrpc: '2.0', id, method, params }), signal });
  }

  test('a v0.3 client of a 1.0-only agent: the stream is lost, the task goes on, the client gets exactly what it missed', async () => {
    const abort = new AbortController();
    const first = new Events(await stream(at.v1only, ALICE, 'message/stream', { message: { kind: 'message', messageId: crypto.randomUUID(), role: 'user', parts: [{ kind: 'text', text: 'slow' }] } }, 41, {}, abort.signal));
    const task = (await first.next())!;
    const working = (await first.next())!;
    expect([(task.data.result as { kind: string }).kind, (working.data.result as { kind: string }).kind]).toEqual(['task', 'status-update']);
    expect(task.id).toMatch(/^[0-9a-z]+\.1$/);
    expect(working.id).toMatch(/^[0-9a-z]+\.2$/);
    const taskId = (task.data.result as { id: string }).id;
    // The connection drops; the task is cancelled meanwhile (the agent's stream carries that, the gateway reads it).
    abort.abort();
    const before = at.v1only.agent.seen.length;
    expect((await rpc(at.v1only, ALICE, 'tasks/cancel', { id: taskId })).result).toMatchObject({ status: { state: 'canceled' } });
    // Another identity may not resume it (0.3 tasks/resubscribe answers are streams: one SSE error event).
    const refused = await new Events(await stream(at.v1only, BOB, 'tasks/resubscribe', { id: taskId }, 12, { 'last-event-id': working.id! })).rest();
    expect(refused.map((e) => e.data.error)).toEqual([expect.objectContaining({ code: -32001 })]);
    const res = await stream(at.v1only, ALICE, 'tasks/resubscribe', { id: taskId }, 77, { 'last-event-id': working.id! });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const missed = await new Events(res).rest();
    expect(missed.map((e) => e.data.result)).toEqual([expect.objectContaining({ kind: 'status-update', status: expect.objectContaining({ state: 'canceled' }), final: true })]);
    expect(missed[0]!.id).toBe(working.id!.replace(/\.2$/, '.3'));
    // In 0.3 shape, with the resuming request's own id; served from the buffer (the agent only saw the cancel).
    expect(missed[0]!.data.id).toBe(77);
    expect(at.v1only.agent.seen.slice(before).map((r) => r.path)).toEqual(['/rpc']);
  });

  test('a v1.0 client of a 0.3-only agent: resuming while the stream is live gives the missed events, then the live ones', async () => {
    const h = { 'a2a-version': '1.0' };
    const abort = new AbortController();
    const first = new Events(await stream(at.v03only, ALICE, 'SendStreamingMessage', { message: { messageId: crypto.randomUUID(), role: 'ROLE_USER', parts: [{ text: 'slow' }] } }, 5, h, abort.signal));
    const task = (await first.next())!;
    expect(Object.keys(task.data.result as object)).toEqual(['task']);
    const taskId = (task.data.result as { task: { id: string } }).task.id;
    abort.abort();
    // Resumed from the first event: the working update it missed, then (live) the cancellation, then the end.
    const resumed = new Events(await stream(at.v03only, ALICE, 'SubscribeToTask', { id: taskId }, 6, { ...h, 'last-event-id': task.id! }));
    const missed = (await resumed.next())!;
    expect(missed.data).toMatchObject({ id: 6, result: { statusUpdate: { status: { state: 'TASK_STATE_WORKING' } } } });
    expect((await rpc(at.v03only, ALICE, 'CancelTask', { id: taskId }, h)).result).toBeDefined();
    const live = await resumed.rest();
    expect(live.map((e) => e.data)).toEqual([expect.objectContaining({ id: 6, result: { statusUpdate: expect.objectContaining({ status: expect.objectContaining({ state: 'TASK_STATE_CANCELED' }) }) } })]);
  });
});
