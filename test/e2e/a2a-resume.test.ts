/**
 * Resuming an A2A task stream through the gateway with Last-Event-ID (src/protocols/a2a/resume.ts), against a real
 * @a2a-js/sdk agent: a client loses its stream, the agent goes on (the gateway keeps reading), the client comes back
 * with SubscribeToTask and the id of the last event it got, and receives exactly the events it missed, then the
 * live rest, over JSON-RPC and HTTP+JSON. Another identity resuming the same task gets TaskNotFound; an id the
 * gateway does not know gets a fresh subscription from the agent.
 */
import { expect, test } from 'vitest';
import { ALICE, BOB, useA2aSetups } from '../helpers/a2a-gateway.ts';
import { eventually } from '../helpers/gateway.ts';
import { eventKind as kind, SseEvents as Events } from '../helpers/sse-events.ts';

const at = useA2aSetups({ echo: {} });

async function rpc(as: string, method: string, params: unknown, headers: Record<string, string> = {}, id = 1, signal?: AbortSignal): Promise<Response> {
  return at.echo.fetchAs(as)(at.echo.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'a2a-version': '1.0', accept: 'text/event-stream, application/json', ...headers },
    body: JSON.stringify({ jsonrpc: '2.0', id, method, params }),
    signal,
  });
}

function slowMessage(): Record<string, unknown> {
  return { message: { messageId: crypto.randomUUID(), role: 'ROLE_USER', parts: [{ text: 'slow' }] } };
}

async function cancel(taskId: string): Promise<void> {
  const r = (await (await rpc(ALICE, 'CancelTask', { id: taskId })).json()) as { result?: unknown };
  expect(r.result).toBeDefined();
}

test('JSON-RPC: the stream is lost, the task goes on, the client resumes and gets exactly what it missed', async () => {
  const abort = new AbortController();
  const first = new Events(await rpc(ALICE, 'SendStreamingMessage', slowMessage(), {}, 41, abort.signal));
  const task = (await first.next())!;
  const working = (await first.next())!;
  expect([kind(task), kind(working)]).toEqual(['task:TASK_STATE_SUBMITTED', 'statusUpdate:TASK_STATE_WORKING']);
  expect(task.id).toMatch(/^[0-9a-z]+\.1$/);
  const taskId = ((task.data.result as { task: { id: string } }).task).id;
  // The connection drops; meanwhile the task is cancelled (the agent's stream carries that event, then ends).
  abort.abort();
  const before = at.echo.agent.seen.length;
  await cancel(taskId);
  // Bob may not resume Alice's task: TaskNotFound, nothing streamed.
  const bob = (await (await rpc(BOB, 'SubscribeToTask', { id: taskId }, { 'last-event-id': working.id! }, 7)).json()) as { error: unknown };
  expect(bob.error).toMatchObject({ code: -32001, data: [{ reason: 'TASK_NOT_FOUND', metadata: { code: 'TG_A2A_TASK_NOT_FOUND' } }] });
  const res = await rpc(ALICE, 'SubscribeToTask', { id: taskId }, { 'last-event-id': working.id! }, 77);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const missed = await new Events(res).rest();
  expect(missed.map(kind)).toEqual(['statusUpdate:TASK_STATE_CANCELED']);
  expect(missed[0]!.id).toBe(working.id!.replace(/\.2$/, '.3'));
  // The client's own request id, not the lost request's.
  expect(missed[0]!.data.id).toBe(77);
  // Served from the gateway's buffer: the agent only saw the cancel.
  expect(at.echo.agent.seen.slice(before).map((r) => r.path)).toEqual(['/rpc']);
});

test('HTTP+JSON: resuming while the stream is live gives the missed events, then the live ones, to the end', async () => {
  const abort = new AbortController();
  const res = await at.echo.fetchAs(ALICE)(`${at.echo.url}/message:stream`, {
    method: 'POST',
    headers: { 'content-type': 'application/a2a+json', 'a2a-version': '1.0', accept: 'text/event-stream' },
    body: JSON.stringify(slowMessage()),
    signal: abort.signal,
  });
  const first = new Events(res);
  const task = (await first.next())!;
  const taskId = (task.data as { task: { id: string } }).task.id;
  abort.abort();
  const before = at.echo.agent.seen.length;
  const resumed = await at.echo.fetchAs(ALICE)(`${at.echo.url}/tasks/${taskId}:subscribe`, { method: 'POST', headers: { 'a2a-version': '1.0', accept: 'text/event-stream', 'last-event-id': task.id! } });
  expect(resumed.status).toBe(200);
  const events = new Events(resumed);
  const missed = (await events.next())!;
  expect(kind(missed)).toBe('statusUpdate:TASK_STATE_WORKING');
  expect(missed.id).toBe(task.id!.replace(/\.1$/, '.2'));
  // Still attached to the agent's stream: the cancel arrives live, and the stream ends with the task.
  await cancel(taskId);
  const live = await events.rest();
  expect(live.map(kind)).toEqual(['statusUpdate:TASK_STATE_CANCELED']);
  expect(live[0]!.id).toBe(task.id!.replace(/\.1$/, '.3'));
  expect(at.echo.agent.seen.slice(before).map((r) => r.path)).toEqual(['/rpc']);
});

test('an id the gateway does not know: a fresh subscription from the agent, starting with the task as it is', async () => {
  const r = (await (await rpc(ALICE, 'SendMessage', { ...slowMessage(), configuration: { returnImmediately: true } })).json()) as { result: { task: { id: string } } };
  const taskId = r.result.task.id;
  const before = at.echo.agent.seen.length;
  const events = new Events(await rpc(ALICE, 'SubscribeToTask', { id: taskId }, { 'last-event-id': 'nonsense.5' }, 9));
  const snapshot = (await events.next())!;
  expect(kind(snapshot)).toBe('task:TASK_STATE_WORKING');
  expect(snapshot.id).toMatch(/^[0-9a-z]+\.1$/);
  await eventually(() => at.echo.agent.seen.length > before);
  expect(at.echo.agent.seen[before]!.path).toBe('/rpc');
  await cancel(taskId);
  expect((await events.rest()).map(kind)).toEqual(['statusUpdate:TASK_STATE_CANCELED']);
});
