/**
 * A2A v0.3 as its specification (a2aproject/A2A v0.3.0 docs/specification.md, sections 7 and 8) and its reference
 * SDKs describe it, through the gateway, for every kind of agent a 0.3 client may reach: one serving both versions
 * (the SDK's own 0.3 answers: what "native" means below), a 1.0-only agent (translated), a 1.0-only agent serving
 * HTTP+JSON only (translated across versions and bindings) and a 0.3-only agent. Raw 0.3 requests (no A2A-Version,
 * 0.3 method names, `kind` fields, REST under /v1), so every field on the wire is checked.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { A2aAdapter } from '../../src/protocols/a2a/adapter.ts';
import { ECHO_EXTENSION } from '../helpers/a2a-agent.ts';
import { ALICE, BOB, startA2a, useA2aSetups, type A2aSetup } from '../helpers/a2a-gateway.ts';
import { artifactText, message, SLOW, streamKinds } from '../helpers/a2a-calls.ts';
import { startPythonAgent03 } from '../helpers/a2a-python-agent.ts';
import { eventually } from '../helpers/gateway.ts';

/** a2a-sdk 0.3 (Python), in the virtualenv scripts/install-tools.sh builds; a missing one fails the test. */
const PYTHON03 = join(process.env.TOLLGATE_CACHE ?? join(homedir(), '.cache/tollgate'), 'venv-a2a03/bin/python');

/**
 * Push webhooks: hooks.example.com resolves (injected resolver) to a public address that the injected connector
 * maps to a local server recording what it receives; nothing leaves the machine.
 */
const WEBHOOK = '93.184.216.34';
let hook: Server | undefined;
let hookUrl = 'http://127.0.0.1:1';
const received: { path: string; body: string; type: string | undefined }[] = [];
beforeAll(async () => {
  hook = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      received.push({ path: req.url ?? '', body, type: req.headers['content-type'] });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => hook!.listen(0, '127.0.0.1', r));
  hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}`;
});
afterAll(async () => {
  hook?.closeAllConnections();
  await new Promise((r) => hook?.close(r));
});
const pushing = {
  a2a: { push: { allowHosts: ['hooks.example.com'], allowHttp: true } },
  protocols: [
    {
      name: 'a2a',
      protocols: ['a2a'],
      create: (ctx: ConstructorParameters<typeof A2aAdapter>[0]) =>
        new A2aAdapter(ctx, {
          resolver: async (host: string) => (host === 'hooks.example.com' ? [WEBHOOK] : Promise.reject(Object.assign(new Error('ENOTFOUND'), { code: 'ENOTFOUND' }))),
          push: { connect: (address: string) => new Pool(address === WEBHOOK ? hookUrl : 'http://127.0.0.1:1'), attempts: 1, backoffMs: 10, timeoutMs: 2_000 },
        }),
    },
  ],
};

const s = useA2aSetups({
  both: {},
  v1: { versions: '1.0' },
  v1rest: { versions: '1.0', bindings: 'rest' },
  old: { versions: '0.3' },
  pushV1: { versions: '1.0', ...pushing },
  pushOld: { versions: '0.3', ...pushing },
  extV1: { versions: '1.0', extension: true },
});
type Kind = keyof typeof s;

/** A 0.3 JSON-RPC MessageSendParams (`kind` fields, lower-case role). */
function send03(text: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { message: { kind: 'message', messageId: crypto.randomUUID(), role: 'user', parts: [{ kind: 'text', text }], ...extra } };
}

/** A 0.3 HTTP+JSON body of message:send (the 0.3 proto's JSON: the message in `request`, `content`, ROLE_USER). */
function restSend03(text: string): Record<string, unknown> {
  return { request: { messageId: crypto.randomUUID(), role: 'ROLE_USER', content: [{ text }] } };
}

interface Answer {
  status: number;
  type: string;
  text: string;
  /** The JSON body, or the JSON of each SSE `data:` line. */
  json: Record<string, unknown>[];
}

async function call(k: Kind, as: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await s[k].fetchAs(as)(`${s[k].url}${path}`, { method, headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  const type = res.headers.get('content-type') ?? '';
  const json = type.startsWith('text/event-stream')
    ? text
        .split('\n')
        .filter((l) => l.startsWith('data:'))
        .map((l) => JSON.parse(l.slice(5)) as Record<string, unknown>)
    : text === ''
      ? []
      : [JSON.parse(text) as Record<string, unknown>];
  return { status: res.status, type, text, json };
}

const rpc = (k: Kind, as: string, method: string, params: unknown): Promise<Answer> => call(k, as, 'POST', '', { jsonrpc: '2.0', id: 11, method, params });

/** The error object of a JSON-RPC answer (plain, or the one event of an SSE answer). */
function rpcError(a: Answer): { code: number; message: string } | undefined {
  return a.json.map((j) => j.error as { code: number; message: string } | undefined).find((e) => e !== undefined);
}

/** A task of Alice's on agent `k`, finished (0.3 message/send). */
async function finishedTask(k: Kind): Promise<string> {
  const a = await rpc(k, ALICE, 'message/send', send03('done soon'));
  const task = a.json[0]!.result as { kind: string; id: string; status: { state: string } };
  expect(task).toMatchObject({ kind: 'task', status: { state: 'completed' } });
  return task.id;
}

describe('tasks/resubscribe to a task that has finished (0.3 section 7.9: UnsupportedOperationError -32004)', () => {
  test('a 1.0-only agent, translated, answers as an agent serving 0.3 itself does: one SSE error event', async () => {
    const native = await rpc('both', ALICE, 'tasks/resubscribe', { id: await finishedTask('both') });
    expect(native.status).toBe(200);
    expect(native.type).toMatch(/^text\/event-stream/);
    expect(rpcError(native)?.code).toBe(-32004);
    const translated = await rpc('v1', ALICE, 'tasks/resubscribe', { id: await finishedTask('v1') });
    expect(translated.status).toBe(200);
    expect(translated.type).toMatch(/^text\/event-stream/);
    expect(translated.json).toHaveLength(1);
    expect(translated.json[0]).toMatchObject({ jsonrpc: '2.0', id: 11, error: { code: -32004 } });
  });

  test('a 1.0 caller of a 0.3-only agent (translated the other way) gets 1.0 UnsupportedOperation, not an internal error', async () => {
    const id = await finishedTask('old');
    const a = await call('old', ALICE, 'POST', '', { jsonrpc: '2.0', id: 12, method: 'SubscribeToTask', params: { id } }, { 'a2a-version': '1.0' });
    expect(a.status).toBe(200);
    expect(rpcError(a)?.code).toBe(-32004);
  });

  test('HTTP+JSON 0.3 (POST /v1/tasks/{id}:subscribe): 400 with the 0.3 error body, translated as native', async () => {
    for (const k of ['both', 'v1'] as const) {
      const a = await call(k, ALICE, 'POST', `/v1/tasks/${await finishedTask(k)}:subscribe`);
      expect({ k, status: a.status, code: a.json[0]?.code }).toEqual({ k, status: 400, code: -32004 });
    }
  });
});

describe('tasks/pushNotificationConfig/delete (0.3 section 7.8: result null; REST 204)', () => {
  test('HTTP+JSON 0.3 DELETE to a 1.0-only agent answers 204 with no body, as a native 0.3 agent does', async () => {
    for (const k of ['both', 'v1'] as const) {
      const a = await call(k, ALICE, 'DELETE', `/v1/tasks/${await finishedTask(k)}/pushNotificationConfigs/none`);
      expect({ k, status: a.status, text: a.text }).toEqual({ k, status: 204, text: '' });
    }
  });

  test('JSON-RPC 0.3 to an agent serving 1.0 over HTTP+JSON only (translated across binding and version): result null', async () => {
    const a = await rpc('v1rest', ALICE, 'tasks/pushNotificationConfig/delete', { id: await finishedTask('v1rest'), pushNotificationConfigId: 'none' });
    expect(a.json[0]).toEqual({ jsonrpc: '2.0', id: 11, result: null });
  });
});

describe('agent/getAuthenticatedExtendedCard on a card with supportsAuthenticatedExtendedCard false (0.3 section 7.10)', () => {
  test.each(['both', 'v1', 'old'] as const)('%s: -32007 AuthenticatedExtendedCardNotConfiguredError, nothing forwarded', async (k) => {
    const card = (await call(k, ALICE, 'GET', '/.well-known/agent-card.json')).json[0]!;
    expect(card.supportsAuthenticatedExtendedCard).toBe(false);
    const before = s[k].agent.seen.length;
    const a = await rpc(k, ALICE, 'agent/getAuthenticatedExtendedCard', undefined);
    expect(rpcError(a)?.code).toBe(-32007);
    const rest = await call(k, ALICE, 'GET', '/v1/card');
    expect(rest.status).toBe(400);
    expect(rest.json[0]?.code).toBe(-32007);
    expect(s[k].agent.seen.length).toBe(before);
  });

  test('a 1.0 caller of the same agent gets 1.0 UnsupportedOperation -32004 (1.0 section 3.1.11)', async () => {
    const a = await call('both', ALICE, 'POST', '', { jsonrpc: '2.0', id: 13, method: 'GetExtendedAgentCard', params: {} }, { 'a2a-version': '1.0' });
    expect(rpcError(a)?.code).toBe(-32004);
  });
});

describe.each(['both', 'v1', 'old'] as const)('a 0.3 caller never reaches another caller’s task (%s)', (k) => {
  test('JSON-RPC: get, cancel, resubscribe, push configs, continuing and referencing messages: -32001, nothing forwarded', async () => {
    const id = await finishedTask(k);
    const before = s[k].agent.seen.length;
    const tries: [string, unknown][] = [
      ['tasks/get', { id }],
      ['tasks/cancel', { id }],
      ['tasks/resubscribe', { id }],
      ['tasks/pushNotificationConfig/set', { taskId: id, pushNotificationConfig: { url: 'https://hooks.example.com/bob' } }],
      ['tasks/pushNotificationConfig/get', { id, pushNotificationConfigId: 'c1' }],
      ['tasks/pushNotificationConfig/get', { id }],
      ['tasks/pushNotificationConfig/list', { id }],
      ['tasks/pushNotificationConfig/delete', { id, pushNotificationConfigId: 'c1' }],
      ['message/send', send03('hijack', { taskId: id })],
      ['message/stream', send03('hijack', { taskId: id })],
      ['message/send', send03('peek', { referenceTaskIds: [id] })],
    ];
    for (const [method, params] of tries) {
      const a = await rpc(k, BOB, method, params);
      expect({ method, status: a.status, code: rpcError(a)?.code }).toEqual({ method, status: 200, code: -32001 });
    }
    // Answers to 0.3's streaming methods are streams, refusals too (one SSE error event), as a2a-python 0.3 writes them.
    for (const [method, params] of [['tasks/resubscribe', { id }], ['message/stream', send03('hijack', { taskId: id })]] as const) {
      const a = await rpc(k, BOB, method, params);
      expect(a.type, method).toMatch(/^text\/event-stream/);
      expect(a.json, method).toEqual([{ jsonrpc: '2.0', id: 11, error: expect.objectContaining({ code: -32001 }) }]);
    }
    expect(s[k].agent.seen.length).toBe(before);
    // Alice herself still reaches it.
    expect((await rpc(k, ALICE, 'tasks/get', { id })).json[0]!.result).toMatchObject({ kind: 'task', id });
  });

  test('HTTP+JSON /v1: 404 with the 0.3 error body (code -32001), nothing forwarded', async () => {
    const id = await finishedTask(k);
    const before = s[k].agent.seen.length;
    const tries: [string, string, unknown?][] = [
      ['GET', `/v1/tasks/${id}`],
      ['POST', `/v1/tasks/${id}:cancel`],
      ['POST', `/v1/tasks/${id}:subscribe`],
      ['GET', `/v1/tasks/${id}:subscribe`],
      ['POST', `/v1/tasks/${id}/pushNotificationConfigs`, { name: `tasks/${id}/pushNotificationConfigs/c1`, pushNotificationConfig: { url: 'https://hooks.example.com/bob' } }],
      ['GET', `/v1/tasks/${id}/pushNotificationConfigs`],
      ['GET', `/v1/tasks/${id}/pushNotificationConfigs/c1`],
      ['DELETE', `/v1/tasks/${id}/pushNotificationConfigs/c1`],
      ['POST', '/v1/message:send', { request: { ...(restSend03('hijack').request as object), taskId: id } }],
    ];
    for (const [method, path, body] of tries) {
      const a = await call(k, BOB, method, path, body);
      expect({ path, status: a.status, code: a.json[0]?.code }).toEqual({ path, status: 404, code: -32001 });
    }
    expect(s[k].agent.seen.length).toBe(before);
  });
});

describe.each(['both', 'v1', 'v1rest', 'old'] as const)('0.3 shapes on the wire (%s)', (k) => {
  test('message/stream: task, status-update (final false), artifact-update, status-update (final true), each with its kind', async () => {
    const a = await rpc(k, ALICE, 'message/stream', send03('streamed'));
    expect(a.type).toMatch(/^text\/event-stream/);
    const results = a.json.map((j) => j.result as Record<string, unknown>);
    expect(results.map((r) => [r.kind, r.final])).toEqual([
      ['task', undefined],
      ['status-update', false],
      ['artifact-update', undefined],
      ['status-update', true],
    ]);
    expect(results[3]).toMatchObject({ status: { state: 'completed' } });
    for (const j of a.json) expect(j).toMatchObject({ jsonrpc: '2.0', id: 11 });
  });

  test('HTTP+JSON /v1/message:send and GET /v1/tasks/{id}: the 0.3 proto JSON (TASK_STATE_*, ROLE_*, content)', async () => {
    const sent = await call(k, ALICE, 'POST', '/v1/message:send', restSend03('over rest'));
    expect([200, 201]).toContain(sent.status); // the JS SDK's 0.3 router answers 201, a2a-python's 200
    const task = sent.json[0]!.task as { id: string; status: { state: string } };
    expect(task.status.state).toBe('TASK_STATE_COMPLETED');
    const got = await call(k, ALICE, 'GET', `/v1/tasks/${task.id}?historyLength=1`);
    expect(got.status).toBe(200);
    expect(got.json[0]).toMatchObject({ id: task.id, status: { state: 'TASK_STATE_COMPLETED' } });
    expect((got.json[0]!.history as { role: string }[])[0]?.role).toBe('ROLE_USER');
  });
});

describe.each(['both', 'v1', 'old', 'pushV1'] as const)('the Python a2a-sdk 0.3 client, built from the card the gateway serves (%s)', (k) => {
  test('sends, gets, streams, cancels over JSON-RPC and HTTP+JSON; typed errors; another identity finds no task', async () => {
    expect(existsSync(PYTHON03), `${PYTHON03} (run scripts/install-tools.sh)`).toBe(true);
    const before = s[k].agent.seen.length;
    // pushV1 allows webhooks at hooks.example.com (resolved and connected by the test: pushing).
    const webhook = k === 'pushV1' ? [`http://hooks.example.com/py03-${crypto.randomUUID()}`] : [];
    const { stdout } = await promisify(execFile)(PYTHON03, ['test/python/a2a03_client.py', s[k].url, s[k].gw.devToken(ALICE), s[k].gw.devToken(BOB), ...webhook], { timeout: 90_000 });
    const out = JSON.parse(stdout) as Record<string, Record<string, unknown>>;
    for (const binding of ['JSONRPC', 'HTTP+JSON']) {
      const r = out[binding]!;
      expect(r.card, binding).toEqual({
        url: s[k].url,
        preferred_transport: 'JSONRPC',
        additional: [`HTTP+JSON ${s[k].url}`],
        protocol_version: expect.stringMatching(/^0\.3(\.|$)/),
        security: [['tollgate']],
        signatures: null,
      });
      expect(r.send_state, binding).toBe('completed');
      expect(r.send_text, binding).toBe('echo: from python 0.3');
      expect(r.get, binding).toEqual({ id_matches: true, history: 1 });
      expect(r.cancel_state, binding).toBe('canceled');
      // The caller's own webhook URL is what it reads back (the agent was told a relay URL of the gateway).
      if (webhook.length > 0) expect(r.push, binding).toEqual({ set_url: true, get_url: true });
      expect(r.stream, binding).toEqual(['task', 'status-update', 'artifact-update', 'status-update:final']);
      // Typed errors of the caller's binding: JSON-RPC's code, REST's HTTP status.
      const typed = (code: number, status: number) => (binding === 'JSONRPC' ? { type: 'A2AClientJSONRPCError', code } : { type: 'A2AClientHTTPError', status });
      expect(r.resubscribe_ended, binding).toEqual(typed(-32004, 400));
      expect(r.other_get, binding).toEqual(typed(-32001, 404));
      expect(r.other_cancel, binding).toEqual(typed(-32001, 404));
      // A stream refused: over JSON-RPC an SSE error event, as a2a-python 0.3 answers (its client reads only
      // text/event-stream); the 0.3 REST client checks the status of message:stream (404) but not of :subscribe.
      expect(r.other_resubscribe, binding).toEqual(binding === 'JSONRPC' ? typed(-32001, 404) : { type: 'A2AClientHTTPError', status: 400 });
      expect(r.other_stream, binding).toEqual(typed(-32001, 404));
    }
    // It went through the gateway, over both bindings of the agent (its paths: /rpc, /rest).
    const paths = new Set(s[k].agent.seen.slice(before).map((r) => r.path.split('/')[1]));
    expect(paths).toEqual(new Set(['rpc', 'rest']));
    // Cancelling the task the webhook was registered for notified it, in 0.3's shape, over each binding.
    for (const binding of webhook.length > 0 ? ['JSONRPC', 'HTTP+JSON'] : []) {
      const path = `${new URL(webhook[0]!).pathname}/${binding}`;
      await eventually(() => received.some((r) => r.path === path && r.body.includes('"canceled"')), 10_000, `the notification at ${path}`);
      for (const r of received.filter((x) => x.path === path)) expect(typeof (JSON.parse(r.body) as { kind?: unknown }).kind).toBe('string');
    }
  }, 120_000);
});

describe('push notifications reach the webhook in the version the caller registered it in', () => {
  /** What the webhook at `path` received about `taskId` once the task is cancelled. */
  async function notified(path: string, taskId: string): Promise<Record<string, unknown>[]> {
    await eventually(() => received.some((r) => r.path === path && r.body.includes(taskId) && /canceled|CANCELED/.test(r.body)), 10_000, `a notification at ${path}`);
    return received.filter((r) => r.path === path).map((r) => JSON.parse(r.body) as Record<string, unknown>);
  }

  test('a 0.3 caller (tasks/pushNotificationConfig/set) of a 1.0-only agent gets 0.3 payloads (`kind`, lower-case states)', async () => {
    const path = `/v03-${crypto.randomUUID()}`;
    const sent = await rpc('pushV1', ALICE, 'message/send', { ...send03('slow'), configuration: { blocking: false, acceptedOutputModes: [] } });
    const id = (sent.json[0]!.result as { id: string }).id;
    const set = await rpc('pushV1', ALICE, 'tasks/pushNotificationConfig/set', { taskId: id, pushNotificationConfig: { url: `http://hooks.example.com${path}`, token: 't03' } });
    expect(set.json[0]!.result).toMatchObject({ taskId: id, pushNotificationConfig: { url: `http://hooks.example.com${path}` } });
    expect(rpcError(await rpc('pushV1', ALICE, 'tasks/cancel', { id }))).toBeUndefined();
    const bodies = await notified(path, id);
    for (const b of bodies) expect(typeof b.kind, JSON.stringify(b)).toBe('string');
    const last = bodies.at(-1)!;
    expect(JSON.stringify(last)).toContain('"canceled"');
    expect(JSON.stringify(last)).not.toContain('TASK_STATE_');
    expect(new Set(received.filter((r) => r.path === path).map((r) => r.type))).toEqual(new Set(['application/json']));
  });

  test('a 1.0 caller (CreateTaskPushNotificationConfig) of a 0.3-only agent gets 1.0 StreamResponse payloads', async () => {
    const path = `/v10-${crypto.randomUUID()}`;
    const v1 = { 'a2a-version': '1.0' };
    const sent = await call('pushOld', ALICE, 'POST', '', { jsonrpc: '2.0', id: 1, method: 'SendMessage', params: { message: { messageId: crypto.randomUUID(), role: 'ROLE_USER', parts: [{ text: 'slow' }] }, configuration: { returnImmediately: true } } }, v1);
    const id = ((sent.json[0]!.result as { task: { id: string } }).task).id;
    const set = await call('pushOld', ALICE, 'POST', '', { jsonrpc: '2.0', id: 2, method: 'CreateTaskPushNotificationConfig', params: { taskId: id, url: `http://hooks.example.com${path}`, token: 't10' } }, v1);
    expect(set.json[0]!.result).toMatchObject({ url: `http://hooks.example.com${path}` });
    await call('pushOld', ALICE, 'POST', '', { jsonrpc: '2.0', id: 3, method: 'CancelTask', params: { id } }, v1);
    const bodies = await notified(path, id);
    for (const b of bodies) {
      expect(b.kind, JSON.stringify(b)).toBeUndefined();
      expect(Object.keys(b).filter((k) => ['task', 'message', 'statusUpdate', 'artifactUpdate'].includes(k)), JSON.stringify(b)).toHaveLength(1);
    }
    expect(JSON.stringify(bodies.at(-1))).toContain('TASK_STATE_CANCELED');
    expect(new Set(received.filter((r) => r.path === path).map((r) => r.type))).toEqual(new Set(['application/a2a+json']));
  });
});

describe('extensions: 0.3 X-A2A-Extensions is 1.0 A2A-Extensions (0.3 section 3.2.6; 1.0 section 3.2.6)', () => {
  test('a 0.3 caller of a 1.0-only agent: the agent is told A2A-Extensions', async () => {
    const before = s.v1.agent.seen.length;
    await call('v1', ALICE, 'POST', '', { jsonrpc: '2.0', id: 1, method: 'message/send', params: send03('ext') }, { 'x-a2a-extensions': 'urn:example:ext-a, urn:example:ext-b' });
    const seen = s.v1.agent.seen.slice(before);
    expect(seen.map((r) => r.headers['a2a-extensions'])).toEqual(['urn:example:ext-a, urn:example:ext-b']);
  });

  // (Not checked on streams: the SDK's agent sends its response headers before its executor activates anything.)
  test('a 0.3 caller of a 1.0-only agent that activates the extension: X-A2A-Extensions in the answer (JSON-RPC and REST)', async () => {
    const card = (await call('extV1', ALICE, 'GET', '/.well-known/agent-card.json')).json[0] as { capabilities: { extensions: { uri: string }[] } };
    expect(card.capabilities.extensions.map((e) => e.uri)).toEqual([ECHO_EXTENSION]);
    const headers = { 'x-a2a-extensions': ECHO_EXTENSION };
    for (const [method, path, body] of [
      ['POST', '', { jsonrpc: '2.0', id: 1, method: 'message/send', params: send03('ext') }],
      ['POST', '/v1/message:send', restSend03('ext')],
    ] as const) {
      const res = await s.extV1.fetchAs(ALICE)(`${s.extV1.url}${path}`, { method, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
      await res.text();
      expect({ path, status: res.status, ext: res.headers.get('x-a2a-extensions') }).toEqual({ path, status: path === '' ? 200 : 201, ext: ECHO_EXTENSION });
    }
  });

  test('a 1.0 caller of a 0.3-only agent: the agent is told X-A2A-Extensions', async () => {
    const before = s.old.agent.seen.length;
    await call('old', ALICE, 'POST', '', { jsonrpc: '2.0', id: 1, method: 'SendMessage', params: { message: { messageId: crypto.randomUUID(), role: 'ROLE_USER', parts: [{ text: 'ext' }] } } }, { 'a2a-version': '1.0', 'a2a-extensions': 'urn:example:ext-a' });
    const seen = s.old.agent.seen.slice(before);
    expect(seen.map((r) => r.headers['x-a2a-extensions'])).toEqual(['urn:example:ext-a']);
  });
});

describe('an a2a-python 0.3 agent (the 0.3 reference server) behind the gateway', () => {
  let py: A2aSetup;
  beforeAll(async () => {
    const agent = await startPythonAgent03();
    try {
      py = await startA2a({ agent, ...pushing });
    } catch (err) {
      await agent.close();
      throw err;
    }
  }, 60_000);
  afterAll(async () => {
    await py?.close();
    // startA2a closes only an agent it started itself.
    await py?.agent.close();
  });

  test('its card: 0.3 for a 0.3 client, 1.0 for a 1.0 client, every URL the gateway', async () => {
    const legacy = (await (await py.fetchAs(ALICE)(`${py.url}/.well-known/agent-card.json`)).json()) as Record<string, unknown>;
    // Its additionalInterfaces list its main interface too (as 0.3 section 5.6.1 recommends): both at the gateway now.
    expect(legacy).toMatchObject({ url: py.url, preferredTransport: 'JSONRPC', protocolVersion: '0.3.0', additionalInterfaces: [{ url: py.url, transport: 'JSONRPC' }, { url: py.url, transport: 'HTTP+JSON' }] });
    const v1 = (await (await py.fetchAs(ALICE)(`${py.url}/.well-known/agent-card.json`, { headers: { 'a2a-version': '1.0' } })).json()) as { supportedInterfaces: Record<string, unknown>[] };
    expect(v1.supportedInterfaces.filter((i) => i.protocolVersion === '1.0').map((i) => [i.protocolBinding, i.url])).toEqual([
      ['JSONRPC', py.url],
      ['HTTP+JSON', py.url],
    ]);
    expect(JSON.stringify([legacy, v1])).not.toContain(new URL(py.agent.url).origin);
  });

  test.each(['JSONRPC', 'HTTP+JSON'] as const)('a 1.0 SDK client over %s (translated): send, get, stream, cancel; another identity finds nothing', async (binding) => {
    const client = await py.client(ALICE, binding);
    const sent = (await client.sendMessage(message('to python'))) as unknown as { id: string; status: { state: number }; artifacts: never[] };
    expect(sent.status.state).toBe(3);
    expect(artifactText(sent)).toBe('echo: to python');
    expect((await client.getTask({ id: sent.id, historyLength: 1 } as never)).id).toBe(sent.id);
    expect(await streamKinds(client.sendMessageStream(message('streamed to python')))).toEqual(['task', 'statusUpdate', 'artifactUpdate', 'statusUpdate']);
    const slow = (await client.sendMessage(message('slow', SLOW))) as unknown as { id: string };
    expect((await client.cancelTask({ id: slow.id } as never)).status?.state).toBe(5);
    const bob = await py.client(BOB, binding);
    await expect(bob.getTask({ id: sent.id } as never)).rejects.toThrow(/not found/i);
  });

  test('a 1.0 caller gives a webhook with its message; the agent posts 0.3 Tasks to the relay; the webhook gets 1.0 StreamResponses', async () => {
    const path = `/py-${crypto.randomUUID()}`;
    const res = await py.fetchAs(ALICE)(py.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'a2a-version': '1.0' },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'SendMessage',
        params: { message: { messageId: crypto.randomUUID(), role: 'ROLE_USER', parts: [{ text: 'notify me' }] }, configuration: { taskPushNotificationConfig: { url: `http://hooks.example.com${path}`, token: 'py-token' } } },
      }),
    });
    expect(((await res.json()) as { result: { task: { status: { state: string } } } }).result.task.status.state).toBe('TASK_STATE_COMPLETED');
    // (a2a-python 0.3 notifies on the events of the message that registered the webhook, not on a later cancel.)
    await eventually(() => received.some((r) => r.path === path && r.body.includes('TASK_STATE_COMPLETED')), 10_000, `a notification at ${path}`);
    for (const r of received.filter((x) => x.path === path)) {
      const body = JSON.parse(r.body) as Record<string, unknown>;
      expect(Object.keys(body), r.body).toEqual(['task']);
      expect(r.type).toBe('application/a2a+json');
    }
  });

  test('a 1.0 HTTP+JSON caller creates, lists and deletes a push config (translated): the agent takes them', async () => {
    const h = { 'content-type': 'application/json', 'a2a-version': '1.0' };
    const f = py.fetchAs(ALICE);
    const sent = (await (await f(`${py.url}/message:send`, { method: 'POST', headers: h, body: JSON.stringify({ message: { messageId: crypto.randomUUID(), role: 'ROLE_USER', parts: [{ text: 'slow' }] }, configuration: { returnImmediately: true } }) })).json()) as { task: { id: string } };
    const id = sent.task.id;
    const url = `http://hooks.example.com/py-rest-${crypto.randomUUID()}`;
    const created = await f(`${py.url}/tasks/${id}/pushNotificationConfigs`, { method: 'POST', headers: h, body: JSON.stringify({ taskId: id, url }) });
    expect(created.status).toBeLessThan(300);
    expect(await created.json()).toMatchObject({ taskId: id, url });
    const listed = (await (await f(`${py.url}/tasks/${id}/pushNotificationConfigs`, { headers: h })).json()) as { configs: { url: string }[] };
    expect(listed.configs.map((c) => c.url)).toEqual([url]);
    const cid = (listed.configs[0] as { id?: string }).id ?? id;
    expect((await f(`${py.url}/tasks/${id}/pushNotificationConfigs/${encodeURIComponent(cid)}`, { headers: h })).status).toBe(200);
    expect((await f(`${py.url}/tasks/${id}/pushNotificationConfigs/${encodeURIComponent(cid)}`, { method: 'DELETE', headers: h })).status).toBeLessThan(300);
    await f(`${py.url}/tasks/${id}:cancel`, { method: 'POST', headers: h });
  });

  test('the Python 0.3 client through the gateway to it (no translation), over both bindings', async () => {
    const { stdout } = await promisify(execFile)(PYTHON03, ['test/python/a2a03_client.py', py.url, py.gw.devToken(ALICE), py.gw.devToken(BOB)], { timeout: 90_000 });
    const out = JSON.parse(stdout) as Record<string, Record<string, unknown>>;
    for (const binding of ['JSONRPC', 'HTTP+JSON']) {
      const r = out[binding]!;
      expect(r.card, binding).toMatchObject({ url: py.url, additional: [`HTTP+JSON ${py.url}`, `JSONRPC ${py.url}`], security: [['tollgate']], signatures: null });
      expect([r.send_state, r.send_text, r.cancel_state, r.stream], binding).toEqual(['completed', 'echo: from python 0.3', 'canceled', ['task', 'status-update', 'artifact-update', 'status-update:final']]);
      const typed = (code: number, status: number) => (binding === 'JSONRPC' ? { type: 'A2AClientJSONRPCError', code } : { type: 'A2AClientHTTPError', status });
      expect(r.other_get, binding).toEqual(typed(-32001, 404));
      expect(r.other_cancel, binding).toEqual(typed(-32001, 404));
      expect(r.other_stream, binding).toEqual(typed(-32001, 404));
    }
    // (tasks/resubscribe to an ended task is the agent's to answer: a2a-python 0.3 says -32602 over JSON-RPC and
    // breaks its REST stream.)
  }, 120_000);
});
