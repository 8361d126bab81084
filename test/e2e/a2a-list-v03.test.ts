/**
 * ListTasks for an agent that speaks only A2A 0.3 (no tasks/list): the gateway answers from the tasks it bound to the
 * caller, each fetched with the agent's tasks/get (src/protocols/a2a/list-own.ts), with 1.0's filters and pagination.
 * Two replicas share the test Redis: tasks made through one are listed through the other; another identity's tasks
 * are never listed.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startTestAgent, type TestAgent } from '../helpers/a2a-agent.ts';
import { ALICE, BOB, sharedStore, startA2a, type A2aSetup, type SharedStore } from '../helpers/a2a-gateway.ts';
import { rest } from '../helpers/a2a-calls.ts';

const V1 = { 'a2a-version': '1.0' };

let agent: TestAgent;
let a: A2aSetup;
let b: A2aSetup;
let store: SharedStore;
const alices: string[] = [];
const slow: string[] = [];
const bobs: string[] = [];
let context = '';

interface Listed {
  tasks: { id: string; contextId: string; status: { state: string }; artifacts?: unknown[] }[];
  nextPageToken: string;
  pageSize: number;
  totalSize: number;
}

async function call(gw: A2aSetup, as: string, method: string, params: unknown): Promise<Record<string, unknown>> {
  const res = await gw.fetchAs(as)(gw.url, { method: 'POST', headers: { 'content-type': 'application/json', ...V1 }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) });
  return (await res.json()) as Record<string, unknown>;
}

async function send(gw: A2aSetup, as: string, text: string, extra: Record<string, unknown> = {}): Promise<{ id: string; contextId: string }> {
  const r = await call(gw, as, 'SendMessage', { message: { messageId: crypto.randomUUID(), role: 'ROLE_USER', parts: [{ text }] }, ...extra });
  return (r.result as { task: { id: string; contextId: string } }).task;
}

async function list(gw: A2aSetup, as: string, params: Record<string, unknown> = {}): Promise<Listed> {
  const r = await call(gw, as, 'ListTasks', params);
  expect(r.error, JSON.stringify(r.error)).toBeUndefined();
  return r.result as Listed;
}

beforeAll(async () => {
  agent = await startTestAgent({ versions: '0.3' });
  store = sharedStore('tgl');
  a = await startA2a({ agent, gatewayExtra: store.gatewayExtra });
  b = await startA2a({ agent, gatewayExtra: store.gatewayExtra });
  await store.ready(a, b);
  for (let i = 0; i < 3; i++) alices.push((await send(a, ALICE, `done ${i}`)).id);
  const first = await send(a, ALICE, 'slow', { configuration: { returnImmediately: true } });
  context = first.contextId;
  slow.push(first.id, (await send(a, ALICE, 'slow', { configuration: { returnImmediately: true } })).id);
  alices.push(...slow);
  for (let i = 0; i < 2; i++) bobs.push((await send(a, BOB, `bob ${i}`)).id);
}, 60_000);

afterAll(async () => {
  for (const id of slow) await call(a, ALICE, 'CancelTask', { id }).catch(() => undefined);
  await a?.close();
  await b?.close();
  await agent?.close();
  await store?.close();
});

test("the caller's own tasks, through the other replica, each fetched from the agent with tasks/get", async () => {
  const before = agent.seen.length;
  const r = await list(b, ALICE);
  expect(r.tasks.map((t) => t.id).sort()).toEqual([...alices].sort());
  expect(r).toMatchObject({ nextPageToken: '', pageSize: 50, totalSize: alices.length });
  // Artifacts only when asked for (1.0's default).
  expect(r.tasks.every((t) => (t.artifacts ?? []).length === 0)).toBe(true);
  const full = await list(b, ALICE, { includeArtifacts: true });
  expect(full.tasks.filter((t) => (t.artifacts ?? []).length > 0).length).toBe(3);
  const seen = agent.seen.slice(before);
  expect(seen.map((s) => (s.body as { method: string }).method)).toEqual(Array(alices.length * 2).fill('tasks/get'));
  // Bob sees his own only; nobody else's task is ever fetched for him.
  const bob = await list(a, BOB);
  expect(bob.tasks.map((t) => t.id).sort()).toEqual([...bobs].sort());
});

test('paginated: pages of pageSize, disjoint, together the whole list; the same over HTTP+JSON', async () => {
  const ids: string[] = [];
  let token = '';
  let pages = 0;
  do {
    const r = await list(pages % 2 === 0 ? a : b, ALICE, { pageSize: 2, pageToken: token });
    expect(r.tasks.length).toBeLessThanOrEqual(2);
    ids.push(...r.tasks.map((t) => t.id));
    token = r.nextPageToken;
    pages++;
  } while (token !== '' && pages < 10);
  expect(pages).toBe(3);
  expect(new Set(ids).size).toBe(ids.length);
  expect(ids.sort()).toEqual([...alices].sort());
  const first = await rest(a, ALICE, 'GET', '/tasks?pageSize=4', undefined, V1);
  expect(first.status, JSON.stringify(first.body)).toBe(200);
  const page = first.body as unknown as Listed;
  expect(page.tasks.length).toBe(4);
  const second = (await rest(a, ALICE, 'GET', `/tasks?pageSize=4&pageToken=${encodeURIComponent(page.nextPageToken)}`, undefined, V1)).body as unknown as Listed;
  expect(second.nextPageToken).toBe('');
  expect([...page.tasks, ...second.tasks].map((t) => t.id).sort()).toEqual([...alices].sort());
});

test('filters: status, contextId; bad parameters are invalid params', async () => {
  const working = await list(a, ALICE, { status: 'TASK_STATE_WORKING' });
  expect(working.tasks.map((t) => t.id).sort()).toEqual([...slow].sort());
  const inContext = await list(a, ALICE, { contextId: context });
  expect(inContext.tasks.map((t) => t.id)).toEqual([slow[0]]);
  for (const params of [{ pageSize: 101 }, { pageToken: 'not-a-token' }]) {
    expect((await call(a, ALICE, 'ListTasks', params)).error, JSON.stringify(params)).toMatchObject({ code: -32602 });
  }
});
