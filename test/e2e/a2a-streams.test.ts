/**
 * A2A streams and cards through the gateway: SubscribeToTask relayed event by event (SDK client), keep-alive comments
 * while the agent is silent, the stream ends when the task does; agent cards revalidated with ETag (the agent answers
 * 304) and the extended card rewritten like the public one.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { ALICE, startA2a, type A2aSetup } from '../helpers/a2a-gateway.ts';

let s: A2aSetup;

beforeAll(async () => {
  s = await startA2a({ a2a: { cardCacheMs: 0 }, gatewayExtra: '  http: { sseKeepAliveMs: 100 }\n' });
}, 60_000);

afterAll(async () => {
  await s?.close();
});

async function rpc(method: string, params: unknown): Promise<Record<string, unknown>> {
  const res = await s.fetchAs(ALICE)(s.url, { method: 'POST', headers: { 'content-type': 'application/json', 'a2a-version': '1.0' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) });
  return (await res.json()) as Record<string, unknown>;
}

async function slowTask(): Promise<string> {
  const r = await rpc('SendMessage', { message: { messageId: crypto.randomUUID(), role: 'ROLE_USER', parts: [{ text: 'slow' }] }, configuration: { returnImmediately: true } });
  return (r.result as { task: { id: string } }).task.id;
}

test('SubscribeToTask through the SDK client: the working task streams until it is cancelled', async () => {
  const id = await slowTask();
  const client = await s.client(ALICE, 'JSONRPC');
  const events: string[] = [];
  const done = (async () => {
    for await (const e of client.resubscribeTask({ id } as never)) {
      const p = (e as { payload?: { $case: string; value: { status?: { state: number } } } }).payload;
      events.push(`${p?.$case}:${p?.value.status?.state ?? ''}`);
      if (events.length === 1) await rpc('CancelTask', { id });
    }
  })();
  await done;
  expect(events[0]).toMatch(/^task:/);
  expect(events.at(-1)).toBe('statusUpdate:5');
});

test('a silent stream gets keep-alive comments between whole events, and ends with the task', async () => {
  const id = await slowTask();
  const res = await s.fetchAs(ALICE)(`${s.url}/tasks/${id}:subscribe`, { method: 'POST', headers: { 'a2a-version': '1.0', accept: 'text/event-stream' } });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  let cancelled = false;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
    // Cancel only once a keep-alive arrived while the agent had nothing to say.
    if (!cancelled && text.includes(': keep-alive\n\n')) {
      cancelled = true;
      expect((await rpc('CancelTask', { id })).result).toBeDefined();
    }
  }
  expect(cancelled).toBe(true);
  // Every chunk boundary of the relay is an event boundary: comments never cut an event (each event of a task's
  // stream carries its SSE id, for Last-Event-ID resumption).
  for (const block of text.split('\n\n').filter((b) => b !== '')) expect(block === ': keep-alive' || /^id: [0-9a-z]+\.\d+\ndata: /.test(block), block).toBe(true);
  expect(text).toContain('TASK_STATE_CANCELED');
});

test('the card is revalidated with If-None-Match and the agent answers 304', async () => {
  const before = s.agent.cardRequests.length;
  for (let i = 0; i < 3; i++) {
    const res = await s.fetchAs(ALICE)(`${s.url}/.well-known/agent-card.json`, { headers: { 'a2a-version': '1.0' } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { supportedInterfaces: { url: string }[] }).supportedInterfaces[0]!.url).toBe(s.url);
  }
  const fetched = s.agent.cardRequests.slice(before).filter((r) => r.headers['a2a-version'] === '1.0');
  expect(fetched.length).toBeGreaterThanOrEqual(3);
  const revalidated = fetched.filter((r) => r.headers['if-none-match'] !== undefined);
  expect(revalidated.length).toBeGreaterThanOrEqual(2);
  expect(revalidated.every((r) => r.status === 304)).toBe(true);
});

test('GetExtendedAgentCard is refused by the agent that has none, in the agent own words', async () => {
  const r = await rpc('GetExtendedAgentCard', {});
  expect(r.error).toBeDefined();
  expect(JSON.stringify(r)).not.toContain(new URL(s.agent.url).origin);
});
