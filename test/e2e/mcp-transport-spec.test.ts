/**
 * Transport rules of the MCP specification that the official conformance suites do not check, each against a real
 * gateway (SDK server upstream, dev JWT-SVID) with raw HTTP, so that the exact status, headers and JSON-RPC code
 * are what is asserted. Sources: docs/specification/2025-03-26, 2025-11-25/basic/transports.mdx,
 * 2026-07-28/basic/transports/streamable-http.mdx and versioning.mdx, 2024-11-05 (HTTP+SSE).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { eventually, mcpBackend, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';

let fixture: FixtureServer;
let gw: TestGateway;

const ACCEPT = 'application/json, text/event-stream';
const MODERN = '2026-07-28';
const META = {
  'io.modelcontextprotocol/protocolVersion': MODERN,
  'io.modelcontextprotocol/clientCapabilities': {},
  'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
};

type Rpc = { jsonrpc?: string; id?: unknown; result?: Record<string, unknown>; error?: { code: number; message: string; data?: Record<string, unknown> } };

function post(body: unknown, headers: Record<string, string> = {}, path = '/mcp'): Promise<Response> {
  return fetch(`${gw.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: ACCEPT, ...gw.authHeaders(), ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** The JSON-RPC messages of an answer, whether it came as one JSON body, a JSON array or an SSE stream. */
async function messages(res: Response): Promise<Rpc[]> {
  const text = await res.text();
  if ((res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
    return text
      .split('\n\n')
      .map((frame) => frame.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n'))
      .filter((d) => d !== '')
      .map((d) => JSON.parse(d) as Rpc);
  }
  const parsed = JSON.parse(text) as Rpc | Rpc[];
  return Array.isArray(parsed) ? parsed : [parsed];
}

async function initialize(protocolVersion: string, capabilities: Record<string, unknown> = {}): Promise<{ sid: string; result: Record<string, unknown> }> {
  const res = await post({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion, capabilities, clientInfo: { name: 'spec', version: '1' } } });
  expect(res.status).toBe(200);
  const sid = res.headers.get('mcp-session-id');
  expect(sid).toMatch(/^[\x21-\x7e]+$/);
  const [msg] = await messages(res);
  const notified = await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, { 'mcp-session-id': sid!, 'mcp-protocol-version': String(msg!.result!.protocolVersion) });
  expect(notified.status).toBe(202);
  return { sid: sid!, result: msg!.result! };
}

beforeAll(async () => {
  fixture = await startHttpMcpServer({ name: 'fixture', asks: true });
  gw = await startTestGateway({ 'mcp.yaml': mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']) });
});

afterAll(async () => {
  await gw?.stop();
  await fixture?.close();
});

describe('session era (2025-03-26 .. 2025-11-25)', () => {
  it('answers initialize with an unsupported version with its latest, and a supported one with that one', async () => {
    expect((await initialize('2099-01-01')).result.protocolVersion).toBe('2025-11-25');
    expect((await initialize('2025-06-18')).result.protocolVersion).toBe('2025-06-18');
    expect((await initialize('2025-03-26')).result.protocolVersion).toBe('2025-03-26');
  });

  it('refuses a POST whose Accept lacks either type with 406, and one without Accept', async () => {
    const { sid } = await initialize('2025-11-25');
    for (const accept of ['application/json', 'text/event-stream', '']) {
      const res = await post({ jsonrpc: '2.0', id: 1, method: 'ping' }, { accept, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' });
      expect(res.status, accept).toBe(406);
      const [msg] = await messages(res);
      expect(msg!.error).toBeDefined();
    }
  });

  it('takes any spelling of the JSON media type and refuses others with 415', async () => {
    const { sid } = await initialize('2025-11-25');
    const h = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
    for (const type of ['application/json', 'application/json; charset=utf-8', 'Application/JSON', 'application/json;charset=UTF-8']) {
      const res = await post({ jsonrpc: '2.0', id: 2, method: 'ping' }, { ...h, 'content-type': type });
      expect(res.status, type).toBe(200);
      await res.text();
    }
    for (const type of ['text/plain', 'application/jsonl', 'application/json-seq', 'application/x-www-form-urlencoded']) {
      const res = await post({ jsonrpc: '2.0', id: 3, method: 'ping' }, { ...h, 'content-type': type });
      expect(res.status, type).toBe(415);
      await res.text();
    }
  });

  it('answers invalid JSON with 400 and -32700 (id null)', async () => {
    const { sid } = await initialize('2025-11-25');
    const res = await post('{"jsonrpc":"2.0","id":1,', { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' });
    expect(res.status).toBe(400);
    const [msg] = await messages(res);
    expect(msg!.error!.code).toBe(-32700);
    expect(msg!.id).toBeNull();
  });

  it('answers ping itself, and notifications and responses with 202 and no body', async () => {
    const { sid } = await initialize('2025-11-25');
    const h = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
    const ping = await post({ jsonrpc: '2.0', id: 'p1', method: 'ping' }, h);
    expect(ping.status).toBe(200);
    expect(await messages(ping)).toEqual([{ jsonrpc: '2.0', id: 'p1', result: {} }]);
    const note = await post({ jsonrpc: '2.0', method: 'notifications/roots/list_changed' }, h);
    expect(note.status).toBe(202);
    expect(await note.text()).toBe('');
    // A response to nothing the server asked is not accepted: an error status, never 2xx.
    const stray = await post({ jsonrpc: '2.0', id: 'never-sent', result: {} }, h);
    expect(stray.status).toBe(400);
    await stray.text();
  });

  it('passes notifications/cancelled to the upstream and sends no response for the cancelled request', async () => {
    const { sid } = await initialize('2025-11-25');
    const h = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
    const before = fixture.cancelled.length;
    // Progress makes the answer an SSE stream at once: the request is running upstream when it is cancelled.
    const pending = await post({ jsonrpc: '2.0', id: 'c1', method: 'tools/call', params: { name: 'fixture__slow', arguments: { steps: 50 }, _meta: { progressToken: 'c1' } } }, h);
    expect(pending.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = pending.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    while (!text.includes('notifications/progress')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    const cancel = await post({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'c1', reason: 'changed my mind' } }, h);
    expect(cancel.status).toBe(202);
    expect(await cancel.text()).toBe('');
    // The stream ends (well before the 50 steps) without a response for c1.
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    const answers = text.split('\n').filter((l) => l.startsWith('data: ') && l.length > 6).map((l) => JSON.parse(l.slice(6)) as Rpc).filter((m) => m.id === 'c1');
    expect(answers).toEqual([]);
    await eventually(() => fixture.cancelled.length > before, 5_000, 'the upstream to see the cancellation');
    // Cancelled before anything was answered: the POST still gets an answer, a stream that ends without a message.
    const calls = fixture.metas.length;
    const quiet = post({ jsonrpc: '2.0', id: 'c2', method: 'tools/call', params: { name: 'fixture__slow', arguments: { steps: 50 }, _meta: { marker: 'c2' } } }, h);
    await eventually(() => fixture.metas.length > calls, 5_000, 'the upstream to start c2');
    const cancel2 = await post({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'c2' } }, h);
    expect(cancel2.status).toBe(202);
    await cancel2.text();
    const ended = await quiet;
    expect(ended.status).toBe(200);
    expect(await messages(ended)).toEqual([]);
    // A cancellation of nothing (unknown id, malformed) is ignored: 202.
    const stray = await post({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'never' } }, h);
    expect(stray.status).toBe(202);
    await stray.text();
  });

  it('requires the session id after initialize (400), and answers an unknown one with 404', async () => {
    await initialize('2025-11-25');
    const missing = await post({ jsonrpc: '2.0', id: 4, method: 'tools/list' }, { 'mcp-protocol-version': '2025-11-25' });
    expect(missing.status).toBe(400);
    await missing.text();
    const unknown = await post({ jsonrpc: '2.0', id: 5, method: 'tools/list' }, { 'mcp-session-id': 'no-such-session', 'mcp-protocol-version': '2025-11-25' });
    expect(unknown.status).toBe(404);
    await unknown.text();
  });

  it('ends a session on DELETE: later requests, a GET and a second DELETE get 404', async () => {
    const { sid } = await initialize('2025-11-25');
    const h = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
    const del = await fetch(`${gw.url}/mcp`, { method: 'DELETE', headers: { ...gw.authHeaders(), ...h } });
    expect(del.status).toBe(200);
    await del.text();
    const after = await post({ jsonrpc: '2.0', id: 6, method: 'tools/list' }, h);
    expect(after.status).toBe(404);
    await after.text();
    const get = await fetch(`${gw.url}/mcp`, { headers: { accept: 'text/event-stream', ...gw.authHeaders(), ...h } });
    expect(get.status).toBe(404);
    await get.text();
    const again = await fetch(`${gw.url}/mcp`, { method: 'DELETE', headers: { ...gw.authHeaders(), ...h } });
    expect(again.status).toBe(404);
    await again.text();
  });

  it('opens the GET stream as text/event-stream, and refuses a GET that does not accept it with 406', async () => {
    const { sid } = await initialize('2025-11-25');
    const h = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25', ...gw.authHeaders() };
    const refused = await fetch(`${gw.url}/mcp`, { headers: { ...h, accept: 'application/json' } });
    expect(refused.status).toBe(406);
    await refused.text();
    const controller = new AbortController();
    const res = await fetch(`${gw.url}/mcp`, { headers: { ...h, accept: 'text/event-stream' }, signal: controller.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    controller.abort();
    await res.text().catch(() => '');
  });

  it('assumes a version when MCP-Protocol-Version is absent, refuses an unsupported one with 400', async () => {
    const { sid } = await initialize('2025-06-18');
    const absent = await post({ jsonrpc: '2.0', id: 7, method: 'tools/list' }, { 'mcp-session-id': sid });
    expect(absent.status).toBe(200);
    expect((await messages(absent))[0]!.result!.tools).toBeDefined();
    for (const v of ['1999-01-01', 'not-a-version', '2025-11-25, 2025-06-18']) {
      const res = await post({ jsonrpc: '2.0', id: 8, method: 'tools/list' }, { 'mcp-session-id': sid, 'mcp-protocol-version': v });
      expect(res.status, v).toBe(400);
      expect((await messages(res))[0]!.error).toBeDefined();
    }
  });

  it('refuses an unsupported MCP-Protocol-Version on GET and DELETE too (400), leaving the session alone', async () => {
    const { sid } = await initialize('2025-11-25');
    const h = { 'mcp-session-id': sid, ...gw.authHeaders() };
    const get = await fetch(`${gw.url}/mcp`, { headers: { ...h, accept: 'text/event-stream', 'mcp-protocol-version': '1999-01-01' } });
    expect(get.status).toBe(400);
    expect((await messages(get))[0]!.error).toBeDefined();
    const del = await fetch(`${gw.url}/mcp`, { method: 'DELETE', headers: { ...h, 'mcp-protocol-version': 'bogus' } });
    expect(del.status).toBe(400);
    await del.text();
    const still = await post({ jsonrpc: '2.0', id: 11, method: 'ping' }, { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' });
    expect(still.status).toBe(200);
    await still.text();
  });

  it('refuses a foreign Origin with 403 (a JSON-RPC error without id), allows its own loopback origin', async () => {
    const { sid } = await initialize('2025-11-25');
    const h = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
    const foreign = await post({ jsonrpc: '2.0', id: 9, method: 'ping' }, { ...h, origin: 'https://evil.example' });
    expect(foreign.status).toBe(403);
    const [msg] = await messages(foreign);
    expect(msg!.id).toBeNull();
    expect(msg!.error).toBeDefined();
    // Refused before anything: initialize from a foreign origin mints no session.
    const init = await post({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } }, { origin: 'http://attacker.test' });
    expect(init.status).toBe(403);
    expect(init.headers.get('mcp-session-id')).toBeNull();
    await init.text();
    const own = await post({ jsonrpc: '2.0', id: 10, method: 'ping' }, { ...h, origin: new URL(gw.url).origin });
    expect(own.status).toBe(200);
    await own.text();
  });
});

describe('JSON-RPC batches: part of 2025-03-26, removed in 2025-06-18', () => {
  it('answers a batch of requests on a 2025-03-26 session with one response per request', async () => {
    const { sid } = await initialize('2025-03-26');
    const res = await post(
      [
        { jsonrpc: '2.0', id: 'a', method: 'ping' },
        { jsonrpc: '2.0', method: 'notifications/roots/list_changed' },
        { jsonrpc: '2.0', id: 'b', method: 'tools/call', params: { name: 'fixture__add', arguments: { a: 2, b: 3 } } },
      ],
      { 'mcp-session-id': sid },
    );
    expect(res.status).toBe(200);
    const out = (await messages(res)).filter((m) => m.id !== undefined);
    expect(out.map((m) => m.id).sort()).toEqual(['a', 'b']);
    expect(out.find((m) => m.id === 'a')!.result).toEqual({});
    expect(JSON.stringify(out.find((m) => m.id === 'b')!.result)).toContain('"text":"5"');
  });

  it('streams the answer to a batch whose member reports progress: every message, then both responses', async () => {
    const { sid } = await initialize('2025-03-26');
    const res = await post(
      [
        { jsonrpc: '2.0', id: 'slow', method: 'tools/call', params: { name: 'fixture__slow', arguments: { steps: 3 }, _meta: { progressToken: 'tok' } } },
        { jsonrpc: '2.0', id: 'quick', method: 'tools/call', params: { name: 'fixture__echo', arguments: { message: 'hi' } } },
      ],
      { 'mcp-session-id': sid },
    );
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const out = await messages(res);
    const progress = out.filter((m) => (m as { method?: string }).method === 'notifications/progress');
    expect(progress.length).toBeGreaterThanOrEqual(1);
    expect(JSON.stringify(out.find((m) => m.id === 'slow')!.result)).toContain('done after 3 steps');
    expect(JSON.stringify(out.find((m) => m.id === 'quick')!.result)).toContain('"text":"hi"');
  });

  it('relays a server-to-client request met by a batch member; the client answers it and the batch completes', async () => {
    // The client declares elicitation: a request for a capability it did not declare is never relayed.
    const { sid } = await initialize('2025-03-26', { elicitation: {} });
    const res = await post(
      [
        { jsonrpc: '2.0', id: 'asks', method: 'tools/call', params: { name: 'fixture__ask_twice', arguments: {} } },
        { jsonrpc: '2.0', id: 'pings', method: 'ping' },
      ],
      { 'mcp-session-id': sid },
    );
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let buffered = '';
    const seen: Rpc[] = [];
    let answered = 0;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffered.indexOf('\n\n')) >= 0) {
        const data = buffered.slice(0, end).split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
        buffered = buffered.slice(end + 2);
        if (data === '') continue;
        const m = JSON.parse(data) as Rpc & { method?: string };
        seen.push(m);
        if (m.method === 'elicitation/create') {
          const reply = await post({ jsonrpc: '2.0', id: m.id, result: { action: 'accept', content: { answer: `a${++answered}` } } }, { 'mcp-session-id': sid });
          expect(reply.status).toBe(202);
          await reply.text();
        }
      }
    }
    expect(answered).toBe(2);
    expect(JSON.stringify(seen.find((m) => m.id === 'asks')!.result)).toContain('first=a1; second=a2');
    expect(seen.find((m) => m.id === 'pings')!.result).toEqual({});
  });

  it('refuses a batch of more than 100 messages with -32600', async () => {
    const { sid } = await initialize('2025-03-26');
    const res = await post(Array.from({ length: 101 }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'ping' })), { 'mcp-session-id': sid });
    expect(res.status).toBe(400);
    expect((await messages(res))[0]!.error!.code).toBe(-32600);
  });

  it('answers a batch of notifications only with 202 and no body', async () => {
    const { sid } = await initialize('2025-03-26');
    const res = await post([{ jsonrpc: '2.0', method: 'notifications/roots/list_changed' }, { jsonrpc: '2.0', method: 'notifications/roots/list_changed' }], { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-03-26' });
    expect(res.status).toBe(202);
    expect(await res.text()).toBe('');
  });

  it('answers invalid members of a batch each with its own error, and an empty batch with -32600', async () => {
    const { sid } = await initialize('2025-03-26');
    const res = await post([{ jsonrpc: '2.0', id: 'ok', method: 'ping' }, { jsonrpc: '1.0', id: 'bad', method: 'ping' }, 42], { 'mcp-session-id': sid });
    expect(res.status).toBe(200);
    const out = await messages(res);
    expect(out.find((m) => m.id === 'ok')!.result).toEqual({});
    expect(out.find((m) => m.id === 'bad')!.error!.code).toBe(-32600);
    expect(out.filter((m) => m.id === null && m.error?.code === -32600)).toHaveLength(1);
    const empty = await post([], { 'mcp-session-id': sid });
    expect(empty.status).toBe(400);
    expect((await messages(empty))[0]!.error!.code).toBe(-32600);
  });

  it('refuses a batch on a session of any other version, or under a later version header, with 400 and -32600', async () => {
    for (const v of ['2024-11-05', '2025-06-18', '2025-11-25']) {
      const { sid } = await initialize(v);
      const res = await post([{ jsonrpc: '2.0', id: 1, method: 'ping' }], { 'mcp-session-id': sid, 'mcp-protocol-version': v });
      expect(res.status, v).toBe(400);
      expect((await messages(res))[0]!.error!.code, v).toBe(-32600);
    }
    const { sid } = await initialize('2025-03-26');
    const res = await post([{ jsonrpc: '2.0', id: 1, method: 'ping' }], { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' });
    expect(res.status).toBe(400);
    await res.text();
  });

  it('refuses initialize inside a batch and a batch without a session, creating nothing', async () => {
    const init = { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'b', version: '1' } } };
    const res = await post([init, { jsonrpc: '2.0', id: 1, method: 'ping' }]);
    expect(res.status).toBe(400);
    expect(res.headers.get('mcp-session-id')).toBeNull();
    expect((await messages(res))[0]!.error!.code).toBe(-32600);
    const nosession = await post([{ jsonrpc: '2.0', id: 1, method: 'ping' }]);
    expect(nosession.status).toBe(400);
    await nosession.text();
  });

  it('refuses a batch from another identity as if the session did not exist (404)', async () => {
    const { sid } = await initialize('2025-03-26');
    const res = await post([{ jsonrpc: '2.0', id: 1, method: 'ping' }], { 'mcp-session-id': sid, ...gw.authHeaders('spiffe://dev.tollgate.local/other') });
    expect(res.status).toBe(404);
    await res.text();
  });
});

describe('stateless era (2026-07-28) on the same endpoint', () => {
  const modernHeaders = (method: string): Record<string, string> => ({ 'mcp-protocol-version': MODERN, 'mcp-method': method });

  it('answers GET and DELETE from a 2026-07-28 client with 405', async () => {
    const get = await fetch(`${gw.url}/mcp`, { headers: { accept: 'text/event-stream', 'mcp-protocol-version': MODERN, ...gw.authHeaders() } });
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toContain('POST');
    await get.text();
    const del = await fetch(`${gw.url}/mcp`, { method: 'DELETE', headers: { 'mcp-protocol-version': MODERN, 'mcp-session-id': 'whatever', ...gw.authHeaders() } });
    expect(del.status).toBe(405);
    await del.text();
  });

  it('ignores an Mcp-Session-Id header and never mints or echoes one', async () => {
    const res = await post({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: META } }, { ...modernHeaders('tools/list'), 'mcp-session-id': 'stale-session' });
    expect(res.status).toBe(200);
    expect(res.headers.get('mcp-session-id')).toBeNull();
    const [msg] = await messages(res);
    expect(msg!.result!.resultType).toBe('complete');
    expect(typeof msg!.result!.ttlMs).toBe('number');
    expect(['public', 'private']).toContain(msg!.result!.cacheScope);
  });

  it('gives every list result resultType, ttlMs and cacheScope, and resources/read its cache hints', async () => {
    for (const method of ['tools/list', 'prompts/list', 'resources/list', 'resources/templates/list']) {
      const res = await post({ jsonrpc: '2.0', id: method, method, params: { _meta: META } }, modernHeaders(method));
      expect(res.status, method).toBe(200);
      const [msg] = await messages(res);
      expect(msg!.result, method).toMatchObject({ resultType: 'complete', ttlMs: expect.any(Number), cacheScope: expect.stringMatching(/^(public|private)$/) });
    }
    const uri = 'tollgate://fixture/fixture://doc/1';
    const read = await post({ jsonrpc: '2.0', id: 'read', method: 'resources/read', params: { uri, _meta: META } }, { ...modernHeaders('resources/read'), 'mcp-name': uri });
    expect(read.status).toBe(200);
    expect((await messages(read))[0]!.result).toMatchObject({ resultType: 'complete', ttlMs: expect.any(Number), cacheScope: 'private' });
  });

  it('treats a client closing the response as the cancellation of its request', async () => {
    const before = fixture.cancelled.length;
    const calls = fixture.metas.length;
    const controller = new AbortController();
    const pending = fetch(`${gw.url}/mcp`, {
      method: 'POST',
      signal: controller.signal,
      headers: { 'content-type': 'application/json', accept: ACCEPT, ...modernHeaders('tools/call'), 'mcp-name': 'fixture__slow', ...gw.authHeaders() },
      body: JSON.stringify({ jsonrpc: '2.0', id: 'gone', method: 'tools/call', params: { name: 'fixture__slow', arguments: { steps: 50 }, _meta: META } }),
    }).catch(() => undefined);
    await eventually(() => fixture.metas.length > calls, 5_000, 'the upstream to start the call');
    controller.abort();
    await pending;
    await eventually(() => fixture.cancelled.length > before, 5_000, 'the upstream to see the cancellation');
  });

  it('acknowledges on subscriptions/listen only the change notifications the server can send', async () => {
    const ack = async (path: string): Promise<Record<string, unknown>> => {
      const controller = new AbortController();
      const res = await fetch(`${gw.url}${path}`, {
        method: 'POST',
        signal: controller.signal,
        headers: { 'content-type': 'application/json', accept: ACCEPT, ...modernHeaders('subscriptions/listen'), ...gw.authHeaders() },
        body: JSON.stringify({ jsonrpc: '2.0', id: 'l', method: 'subscriptions/listen', params: { notifications: { toolsListChanged: true, promptsListChanged: true, resourcesListChanged: true }, _meta: META } }),
      });
      expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
      const reader = res.body!.getReader();
      const decoder = new TextDecoder();
      let text = '';
      try {
        while (!text.includes('\n\n') || !text.includes('acknowledged')) {
          const { value, done } = await reader.read();
          if (done) break;
          text += decoder.decode(value, { stream: true });
        }
      } finally {
        controller.abort();
      }
      const first = text.split('\n').find((l) => l.startsWith('data: ') && l.includes('acknowledged'))!;
      const msg = JSON.parse(first.slice(6)) as { params: { notifications: Record<string, unknown>; _meta: Record<string, unknown> } };
      expect(msg.params._meta['io.modelcontextprotocol/subscriptionId']).toBe('l');
      return msg.params.notifications;
    };
    // The fixture announces tools/list_changed only; alone at /mcp/fixture that is all it can be asked for.
    expect(await ack('/mcp/fixture')).toEqual({ toolsListChanged: true });
    // The federated endpoint re-emits every kind its servers have.
    expect(await ack('/mcp')).toEqual({ toolsListChanged: true, promptsListChanged: true, resourcesListChanged: true });
  });

  it('serves server/discover with resultType, supported versions and capabilities', async () => {
    const res = await post({ jsonrpc: '2.0', id: 2, method: 'server/discover', params: { _meta: META } }, modernHeaders('server/discover'));
    expect(res.status).toBe(200);
    const [msg] = await messages(res);
    expect(msg!.result!.resultType).toBe('complete');
    expect(msg!.result!.supportedVersions).toContain(MODERN);
    expect(msg!.result!.capabilities).toBeTypeOf('object');
  });

  it('answers a tools/call with resultType complete', async () => {
    const res = await post({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'fixture__add', arguments: { a: 1, b: 2 }, _meta: META } }, { ...modernHeaders('tools/call'), 'mcp-name': 'fixture__add' });
    expect(res.status).toBe(200);
    const [msg] = await messages(res);
    expect(msg!.result!.resultType).toBe('complete');
  });

  it('answers a 2026-07-28 initialize or ping as an unknown method: 404, -32601', async () => {
    for (const method of ['ping', 'initialize']) {
      const res = await post({ jsonrpc: '2.0', id: 4, method, params: { _meta: META } }, modernHeaders(method));
      expect(res.status, method).toBe(404);
      expect((await messages(res))[0]!.error!.code, method).toBe(-32601);
    }
  });

  it('takes a 2026-07-28 notification (which carries no envelope) with 202, and refuses a response with 400', async () => {
    const note = await post({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'x' } }, { 'mcp-protocol-version': MODERN });
    expect(note.status).toBe(202);
    expect(await note.text()).toBe('');
    const response = await post({ jsonrpc: '2.0', id: 'x', result: {} }, { 'mcp-protocol-version': MODERN });
    expect(response.status).toBe(400);
    const [msg] = await messages(response);
    expect(msg!.error!.code).toBe(-32600);
    expect(msg!.error!.message).not.toContain('Unsupported protocol version');
  });

  it('refuses a batch of 2026-07-28 requests with 400', async () => {
    const res = await post([{ jsonrpc: '2.0', id: 5, method: 'tools/list', params: { _meta: META } }], modernHeaders('tools/list'));
    expect(res.status).toBe(400);
    await res.text();
  });
});

describe('legacy HTTP+SSE (2024-11-05)', () => {
  it('sends the endpoint event first, takes POSTs there with 202, and answers on the stream', async () => {
    const controller = new AbortController();
    const stream = await fetch(`${gw.url}/mcp/sse`, { headers: { accept: 'text/event-stream', ...gw.authHeaders() }, signal: controller.signal });
    expect(stream.status).toBe(200);
    expect(stream.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = stream.body!.getReader();
    const decoder = new TextDecoder();
    let buffered = '';
    const until = async (pred: () => boolean): Promise<void> => {
      while (!pred()) {
        const { value, done } = await reader.read();
        if (done) throw new Error('stream ended');
        buffered += decoder.decode(value, { stream: true });
      }
    };
    try {
      await until(() => buffered.includes('\n\n'));
      const first = buffered.slice(0, buffered.indexOf('\n\n'));
      expect(first).toMatch(/^event: endpoint\n/);
      const endpoint = new URL(first.split('\n').find((l) => l.startsWith('data:'))!.slice(5).trim(), gw.url);
      const res = await fetch(endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...gw.authHeaders() },
        body: JSON.stringify({ jsonrpc: '2.0', id: 'init', method: 'initialize', params: { protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 'legacy', version: '1' } } }),
      });
      expect(res.status).toBe(202);
      expect(await res.text()).toBe('');
      await until(() => buffered.includes('"id":"init"'));
      expect(buffered).toMatch(/event: message\ndata: \{[^\n]*"id":"init"/);
      expect(buffered).toContain('"protocolVersion":"2024-11-05"');
      const bad = await fetch(endpoint, { method: 'POST', headers: { 'content-type': 'application/json', ...gw.authHeaders() }, body: '{"jsonrpc":' });
      expect(bad.status).toBe(400);
      await bad.text();
      const text = await fetch(endpoint, { method: 'POST', headers: { 'content-type': 'text/plain', ...gw.authHeaders() }, body: '{"jsonrpc":"2.0","id":1,"method":"ping"}' });
      expect(text.status).toBe(415);
      await text.text();
    } finally {
      controller.abort();
    }
  });
});
