/**
 * Fuzzing the MCP and A2A adapters through a running gateway (fast-check): JSON-RPC bodies shaped like each
 * protocol's messages (known methods with random params, random members, wrong types, huge and odd ids, random bytes)
 * sent to /mcp (in a session and without) and to /a2a/echo. Every answer must be a well-formed JSON-RPC error or
 * result (or an empty 202 for a notification), with a status from the error registry; never a 500, never a hang,
 * and the gateway serves normally afterwards. Bounded in `npm test`; TOLLGATE_FUZZ_MS runs it longer.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Errors } from '../../src/core/errors.ts';
import { startA2a, ADMIN, type A2aSetup } from '../helpers/a2a-gateway.ts';
import { mcpBackend, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { exchange, rawMcpSession, rpcMessage, type RawAnswer } from '../helpers/steady-load.ts';

const LONG_MS = Number(process.env.TOLLGATE_FUZZ_MS ?? 0);
const FUZZ: fc.Parameters<unknown> = LONG_MS > 0 ? { numRuns: Number.MAX_SAFE_INTEGER, interruptAfterTimeLimit: LONG_MS, markInterruptAsFailure: false } : { numRuns: 150, interruptAfterTimeLimit: 15_000 };

const CODES = new Set(Object.values(Errors).map((e) => e.code));
const STATUSES = new Set([200, 202, ...Object.values(Errors).map((e) => e.status)]);

const MCP_METHODS = ['initialize', 'ping', 'tools/list', 'tools/call', 'prompts/list', 'prompts/get', 'resources/list', 'resources/read', 'resources/templates/list', 'resources/subscribe', 'completion/complete', 'logging/setLevel', 'notifications/initialized', 'notifications/cancelled', 'notifications/progress', 'sampling/createMessage', 'elicitation/create', 'server/discover', 'x/unknown'];
const A2A_METHODS = ['SendMessage', 'SendStreamingMessage', 'GetTask', 'ListTasks', 'CancelTask', 'SubscribeToTask', 'CreateTaskPushNotificationConfig', 'GetTaskPushNotificationConfig', 'ListTaskPushNotificationConfigs', 'DeleteTaskPushNotificationConfig', 'GetExtendedAgentCard', 'message/send', 'message/stream', 'tasks/get', 'tasks/cancel', 'tasks/resubscribe', 'x/unknown'];

const anyJson = fc.jsonValue({ maxDepth: 3 });
const id = fc.oneof(fc.integer(), fc.string({ maxLength: 20 }), fc.constant(null), fc.constant(1e300), fc.constant(-0), fc.double(), anyJson);

/** Params shaped like the protocols' own: names, arguments, URIs, cursors, messages with parts, task ids. */
const shapedParams = fc.record(
  {
    name: fc.oneof(fc.constantFrom('fixture__echo', 'fixture__add', 'fixture__slow', 'fixture__nope', '', '__', 'a'.repeat(300)), fc.string(), anyJson),
    arguments: fc.oneof(fc.dictionary(fc.string({ maxLength: 8 }), anyJson, { maxKeys: 4 }), anyJson),
    uri: fc.oneof(fc.webUrl(), fc.string(), anyJson),
    cursor: fc.oneof(fc.string(), fc.base64String(), anyJson),
    id: fc.oneof(fc.uuid(), fc.string(), anyJson),
    _meta: fc.oneof(fc.dictionary(fc.string({ maxLength: 40 }), anyJson, { maxKeys: 3 }), anyJson),
    message: fc.oneof(
      fc.record(
        { messageId: fc.oneof(fc.uuid(), anyJson), role: fc.oneof(fc.constantFrom('ROLE_USER', 'user', 'agent', 'ROLE_AGENT'), anyJson), parts: fc.oneof(fc.array(fc.oneof(fc.record({ text: fc.string() }), fc.record({ kind: fc.constant('text'), text: fc.string() }), anyJson), { maxLength: 3 }), anyJson), taskId: fc.oneof(fc.uuid(), anyJson), metadata: anyJson },
        { requiredKeys: [] },
      ),
      anyJson,
    ),
    protocolVersion: fc.oneof(fc.constantFrom('2025-06-18', '2025-03-26', '2024-11-05', '2026-07-28', '1999-01-01'), anyJson),
    capabilities: anyJson,
    clientInfo: anyJson,
    level: fc.oneof(fc.constantFrom('debug', 'info', 'emergency'), anyJson),
  },
  { requiredKeys: [] },
);

function body(methods: readonly string[]): fc.Arbitrary<string> {
  const envelope = fc.record(
    { jsonrpc: fc.oneof(fc.constant('2.0'), fc.constant('2.0'), anyJson), id, method: fc.oneof(fc.constantFrom(...methods), fc.string(), anyJson), params: fc.oneof(shapedParams, shapedParams, anyJson), result: anyJson, error: anyJson },
    { requiredKeys: [] },
  );
  return fc.oneof(
    { weight: 6, arbitrary: envelope.map((e) => JSON.stringify(e)) },
    { weight: 1, arbitrary: fc.array(envelope, { maxLength: 3 }).map((a) => JSON.stringify(a)) },
    { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
    { weight: 1, arbitrary: envelope.map((e) => JSON.stringify(e).slice(0, -1)) },
  );
}

/** The shape every answer must have. */
function wellFormed(a: RawAnswer): void {
  expect(STATUSES.has(a.status), `status ${a.status}: ${a.body.slice(0, 300)}`).toBe(true);
  expect(a.status, a.body.slice(0, 300)).not.toBe(500);
  if (a.status === 202 && a.body === '') return;
  const m = rpcMessage(a) as { jsonrpc?: string; result?: unknown; error?: { code: unknown; message: unknown; data?: { code?: string } } } | undefined;
  if (m === undefined) {
    // A body that is not JSON-RPC is only acceptable as a plain HTTP error of the registry (e.g. 406, 415).
    const e = (JSON.parse(a.body) as { error?: { code?: string } }).error;
    expect(CODES.has(e?.code ?? ''), a.body.slice(0, 300)).toBe(true);
    return;
  }
  expect(m.jsonrpc).toBe('2.0');
  if (m.error !== undefined) {
    expect(typeof m.error.code).toBe('number');
    expect(typeof m.error.message).toBe('string');
    // An A2A error of the specification carries its stable code in its ErrorInfo's metadata (data is an array).
    const data = m.error.data as { code?: string } | { metadata?: { code?: string } }[] | undefined;
    const code = Array.isArray(data) ? data[0]?.metadata?.code : data?.code;
    if (code !== undefined && code.startsWith('TG_')) expect(CODES.has(code)).toBe(true);
    expect(code).not.toBe('TG_INTERNAL');
  } else {
    expect('result' in m, a.body.slice(0, 300)).toBe(true);
  }
}

describe('MCP adapter under fuzzed messages', () => {
  let fixture: FixtureServer;
  let gw: TestGateway;
  beforeAll(async () => {
    fixture = await startHttpMcpServer({ name: 'fixture', json: true });
    gw = await startTestGateway({ 'mcp.yaml': mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']) });
  });
  afterAll(async () => {
    await gw?.stop();
    await fixture?.close();
  });

  it('in a session and without one: a well-formed answer every time, and the session still works after', async () => {
    const s = await rawMcpSession(`${gw.url}/mcp`, gw.authHeaders());
    const base = { ...gw.authHeaders(), 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    await fc.assert(
      fc.asyncProperty(body(MCP_METHODS), fc.boolean(), fc.constantFrom('2025-06-18', '2026-07-28', undefined), async (text, inSession, version) => {
        const headers: Record<string, string> = { ...base };
        if (inSession) headers['mcp-session-id'] = s.id;
        if (version !== undefined) headers['mcp-protocol-version'] = version;
        wellFormed(await exchange(`${gw.url}/mcp`, { headers, body: text, timeoutMs: 10_000 }));
      }),
      FUZZ,
    );
    expect(await s.call('fixture__echo', { message: 'alive' }, 'alive')).toBe('ok');
  });
});

describe('A2A adapter under fuzzed messages', () => {
  let a2a: A2aSetup;
  beforeAll(async () => {
    a2a = await startA2a();
  });
  afterAll(async () => {
    await a2a?.close();
  });

  it('JSON-RPC at /a2a/echo: a well-formed answer every time, and the agent still answers after', async () => {
    const auth = { authorization: `Bearer ${a2a.gw.devToken(ADMIN)}` };
    await fc.assert(
      fc.asyncProperty(body(A2A_METHODS), fc.constantFrom('1.0', '0.3', undefined, '9.9'), async (text, version) => {
        const headers: Record<string, string> = { ...auth, 'content-type': 'application/json' };
        if (version !== undefined) headers['a2a-version'] = version;
        const a = await exchange(a2a.url, { headers, body: text, timeoutMs: 10_000 });
        // A streaming method answers with SSE whose events are JSON-RPC messages: rpcMessage reads the last one.
        wellFormed(a);
      }),
      FUZZ,
    );
    const ok = await exchange(a2a.url, {
      headers: { ...auth, 'content-type': 'application/json', 'a2a-version': '1.0' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'SendMessage', params: { message: { messageId: 'm-1', role: 'ROLE_USER', parts: [{ text: 'hello' }] } } }),
    });
    expect(ok.status).toBe(200);
    expect(rpcMessage(ok)?.result).toBeDefined();
  });
});
