/**
 * Protocol eras through the gateway, with the official SDKs of both lines: a 1.x client (session era) and a v2
 * client pinned to 2026-07-28 (stateless), each against a session-era upstream (SDK 1.x server) and a stateless
 * upstream (SDK v2 `createMcpHandler`, modern-only). Plus multi round-trip requests bridged both ways, and the
 * 2026 request validation the spec requires (header/body mismatch, unsupported version, envelope).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js';
import { Client as V2Client, StreamableHTTPClientTransport as V2Transport } from '@modelcontextprotocol/client';
import { ElicitRequestSchema, ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { startConformanceUpstream, type ConformanceUpstream } from '../helpers/conformance-server.ts';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { startModernServer, type ModernServer } from '../helpers/mcp-modern-server.ts';
import { connectClient, eventually, mcpBackend, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';

let classic: FixtureServer;
let modern: ModernServer;
let conf: ConformanceUpstream;
let gw: TestGateway;
let v1: V1Client;
let v2: V2Client;

const MODERN = '2026-07-28';
const META = {
  'io.modelcontextprotocol/protocolVersion': MODERN,
  'io.modelcontextprotocol/clientCapabilities': {},
  'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
};

async function connectV2(url: string): Promise<V2Client> {
  const client = new V2Client(
    { name: 'v2-client', version: '1.0.0' },
    { capabilities: { elicitation: { form: {} }, sampling: {} }, versionNegotiation: { mode: { pin: MODERN } } },
  );
  client.setRequestHandler('elicitation/create', async () => ({ action: 'accept', content: { confirm: true, response: 'yes from v2' } }));
  client.setRequestHandler('sampling/createMessage', async (req) => ({
    role: 'assistant',
    content: { type: 'text', text: `v2 sampled: ${JSON.stringify(req.params.messages[0]?.content)}` },
    model: 'test-model',
    stopReason: 'endTurn',
  }));
  await client.connect(new V2Transport(new URL(url), { requestInit: { headers: gw.authHeaders() } }));
  return client;
}

function post(body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${gw.url}/mcp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...gw.authHeaders(), ...headers },
    body: JSON.stringify(body),
  });
}

function text(r: unknown): string {
  return (((r as { content?: unknown }).content as { text?: string }[] | undefined) ?? []).map((c) => c.text ?? '').join('');
}

beforeAll(async () => {
  [classic, modern, conf] = await Promise.all([startHttpMcpServer({ name: 'classic' }), startModernServer(), startConformanceUpstream()]);
  gw = await startTestGateway({
    'mcp.yaml':
      mcpBackend('classic', { url: classic.url }) +
      mcpBackend('modern', { url: modern.url }) +
      mcpBackend('conf', { url: conf.url }) +
      route('mcp', '/mcp', ['classic', 'modern', 'conf']),
  });
  v1 = await connectClient(`${gw.url}/mcp`);
  v2 = await connectV2(`${gw.url}/mcp`);
});

afterAll(async () => {
  await v1?.close();
  await v2?.close();
  await gw?.stop();
  await Promise.all([classic?.close(), modern?.close(), conf?.close()]);
});

describe('session-era client (SDK 1.x)', () => {
  it('calls a session-era upstream', async () => {
    expect(text(await v1.callTool({ name: 'classic__add', arguments: { a: 2, b: 3 } }))).toBe('5');
  });

  it('calls a 2026-07-28 upstream: the gateway adds the per-request envelope and headers', async () => {
    const tools = (await v1.listTools()).tools.map((t) => t.name);
    expect(tools).toEqual(expect.arrayContaining(['classic__add', 'modern__add', 'modern__confirm']));
    expect(text(await v1.callTool({ name: 'modern__echo', arguments: { message: 'hi' } }))).toBe('modern: hi');
    const call = modern.seen.find((s) => s.method === 'tools/call' && s.mcpName === 'echo');
    expect(call?.version).toBe(MODERN);
  });

  it('answers a 2026 upstream\'s input_required with an elicitation request to the client, then retries', async () => {
    const client = await connectClient(`${gw.url}/mcp`);
    try {
      // The 1.x client must declare elicitation to be asked; connectClient declares none, so register it here.
      const asked: string[] = [];
      const c2 = new (await import('@modelcontextprotocol/sdk/client/index.js')).Client({ name: 'elicit', version: '1' }, { capabilities: { elicitation: {} } });
      c2.setRequestHandler(ElicitRequestSchema, async (req) => {
        asked.push(String(req.params.message));
        return { action: 'accept', content: { confirm: true } };
      });
      const { StreamableHTTPClientTransport } = await import('@modelcontextprotocol/sdk/client/streamableHttp.js');
      await c2.connect(new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp`), { requestInit: { headers: gw.authHeaders() } }));
      const r = await c2.callTool({ name: 'modern__confirm', arguments: { action: 'deploy' } });
      expect(text(r)).toBe('deploy: confirmed');
      expect(asked).toEqual(['Really deploy?']);
      await c2.close();
    } finally {
      await client.close();
    }
  });
});

describe('change notifications across eras', () => {
  it('turns a 2026 upstream\'s subscriptions/listen stream into list_changed on a session-era client\'s GET stream', async () => {
    const client = await connectClient(`${gw.url}/mcp/modern`);
    try {
      let changed = 0;
      client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
        changed++;
      });
      // The gateway subscribes upstream once the client's GET stream is open: publish until it arrives.
      await eventually(async () => {
        modern.toolsChanged();
        await new Promise((r) => setTimeout(r, 100));
        return changed > 0;
      }, 10_000, 'list_changed from the 2026 upstream');
      const listens = modern.seen.filter((s) => s.method === 'subscriptions/listen');
      expect(listens.length).toBeGreaterThan(0);
      expect(listens.every((s) => s.version === MODERN)).toBe(true);
    } finally {
      await client.close();
    }
  });
});

describe('2026-07-28 client (SDK v2, pinned)', () => {
  it('negotiated the stateless era with server/discover', () => {
    expect(v2.getNegotiatedProtocolVersion()).toBe(MODERN);
    expect(v2.getServerVersion()?.name).toBe('tollgate');
    expect(v2.getServerCapabilities()?.tools).toBeDefined();
  });

  it('calls a session-era upstream (the gateway holds the upstream session)', async () => {
    expect(text(await v2.callTool({ name: 'classic__add', arguments: { a: 40, b: 2 } }))).toBe('42');
    const progress: number[] = [];
    const r = await v2.callTool({ name: 'classic__slow', arguments: { steps: 2 } }, { onprogress: (p) => progress.push(p.progress) });
    expect(text(r)).toBe('done after 2 steps');
    expect(progress).toEqual([1, 2]);
  });

  it('lists tools of both eras, with the required caching hints', async () => {
    const res = await post({ jsonrpc: '2.0', id: 7, method: 'tools/list', params: { _meta: META } }, { 'mcp-protocol-version': MODERN, 'mcp-method': 'tools/list' });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { result: { tools: { name: string }[]; ttlMs: number; cacheScope: string } };
    expect(body.result.cacheScope).toBe('private');
    expect(typeof body.result.ttlMs).toBe('number');
    const names = body.result.tools.map((t) => t.name);
    expect(names).toEqual(expect.arrayContaining(['classic__echo', 'modern__echo', 'conf__test_sampling']));
    const viaSdk = (await v2.listTools()).tools.map((t) => t.name);
    expect(viaSdk).toEqual(expect.arrayContaining(names));
  });

  it('calls a 2026-07-28 upstream, multi round-trip requests relayed as they are', async () => {
    expect(text(await v2.callTool({ name: 'modern__add', arguments: { a: 1, b: 2 } }))).toBe('3');
    expect(text(await v2.callTool({ name: 'modern__confirm', arguments: { action: 'ship' } }))).toBe('ship: confirmed');
  });

  it('turns a session-era upstream\'s sampling and elicitation requests into input_required round trips', async () => {
    const s = await v2.callTool({ name: 'conf__test_sampling', arguments: { prompt: 'capital of France?' } });
    expect(text(s)).toContain('LLM response: v2 sampled:');
    expect(text(s)).toContain('capital of France?');
    const e = await v2.callTool({ name: 'conf__test_elicitation', arguments: { message: 'name?' } });
    expect(text(e)).toContain('action=accept');
    expect(text(e)).toContain('yes from v2');
  });
});

describe('mirrored tool parameters and caching hints (2026-07-28)', () => {
  const regionCall = (region: string): unknown => ({
    jsonrpc: '2.0',
    id: 21,
    method: 'tools/call',
    params: { name: 'modern__region_query', arguments: { region, query: 'q' }, _meta: META },
  });
  const regionHeaders = (region: string | undefined): Record<string, string> => ({
    'mcp-protocol-version': MODERN,
    'mcp-method': 'tools/call',
    'mcp-name': 'modern__region_query',
    ...(region !== undefined && { 'mcp-param-region': region }),
  });

  it('sends the Mcp-Param-* headers a 2026 upstream requires, for a session-era client too', async () => {
    // The upstream itself rejects a call without a matching Mcp-Param-Region header (-32020).
    expect(text(await v1.callTool({ name: 'modern__region_query', arguments: { region: 'eu-west1', query: 'q' } }))).toBe('eu-west1: q');
    expect(text(await v2.callTool({ name: 'modern__region_query', arguments: { region: 'us-east1', query: 'q' } }))).toBe('us-east1: q');
  });

  it('leaves out of tools/list the tools whose x-mcp-header annotations break the rules, for every client', async () => {
    const raw = await post({ jsonrpc: '2.0', id: 77, method: 'tools/list', params: { _meta: META } }, { 'mcp-protocol-version': MODERN, 'mcp-method': 'tools/list' });
    const names = ((await raw.json()) as { result: { tools: { name: string }[] } }).result.tools.map((t) => t.name);
    const one = await fetch(`${gw.url}/mcp/modern`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': MODERN, 'mcp-method': 'tools/list', ...gw.authHeaders() },
      body: JSON.stringify({ jsonrpc: '2.0', id: 78, method: 'tools/list', params: { _meta: META } }),
    });
    const alone = ((await one.json()) as { result: { tools: { name: string }[] } }).result.tools.map((t) => t.name);
    const v1names = (await v1.listTools()).tools.map((t) => t.name);
    // A session-era client of the 2026 server alone (its list is otherwise forwarded untouched).
    const single = await connectClient(`${gw.url}/mcp/modern`);
    const v1alone = (await single.listTools()).tools.map((t) => `modern__${t.name}`);
    await single.close();
    for (const list of [names, alone.map((n) => `modern__${n}`), v1names, v1alone]) {
      expect(list).toContain('modern__good_header_nested');
      expect(list).toContain('modern__region_query');
      expect(list.filter((n) => n.includes('bad_header'))).toEqual([]);
    }
  });

  it('checks a 2026 client\'s Mcp-Param-* headers against the arguments (-32020 on mismatch)', async () => {
    const ok = await post(regionCall('ap-south1'), regionHeaders('ap-south1'));
    expect(ok.status).toBe(200);
    await ok.text();
    for (const h of [regionHeaders('us-west1'), regionHeaders(undefined), regionHeaders('=?base64?!!?=')]) {
      const res = await post(regionCall('ap-south1'), h);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { code: number } }).error.code).toBe(-32020);
    }
    // The Base64 sentinel form of the same value matches.
    const b64 = await post(regionCall('ap-south1'), regionHeaders(`=?base64?${Buffer.from('ap-south1').toString('base64')}?=`));
    expect(b64.status).toBe(200);
    await b64.text();
  });

  it('caches a list page its upstream marked public, for its ttl, and never a private one', async () => {
    const listsAt = (): number => modern.seen.filter((s) => s.method === 'tools/list').length;
    await v2.listTools();
    const before = listsAt();
    for (let i = 0; i < 3; i++) {
      const names = (await v2.listTools()).tools.map((t) => t.name);
      expect(names).toContain('modern__region_query');
      expect(names).toContain('classic__add');
    }
    expect(listsAt()).toBe(before);
    // The session-era upstream's list carries no caching hint (private): a change shows at once.
    const added = `fresh-${Date.now()}`;
    await classic.addTool(added);
    expect((await v2.listTools()).tools.map((t) => t.name)).toContain(`classic__${added}`);
  });
});

describe('2026-07-28 request validation', () => {
  const call = (name: string, extra: Record<string, unknown> = {}): unknown => ({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name, arguments: { a: 1, b: 1 }, _meta: META, ...extra } });
  const headers = (name: string): Record<string, string> => ({ 'mcp-protocol-version': MODERN, 'mcp-method': 'tools/call', 'mcp-name': name });

  it('serves server/discover with every supported version', async () => {
    const res = await post({ jsonrpc: '2.0', id: 1, method: 'server/discover', params: { _meta: META } }, { 'mcp-protocol-version': MODERN, 'mcp-method': 'server/discover' });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { result: { supportedVersions: string[]; capabilities: Record<string, unknown>; _meta: Record<string, { name: string }> } };
    expect(body.result.supportedVersions).toEqual(expect.arrayContaining([MODERN, '2025-11-25', '2025-03-26']));
    expect(body.result._meta['io.modelcontextprotocol/serverInfo']?.name).toBe('tollgate');
  });

  it('answers a plain call with the upstream result', async () => {
    const res = await post(call('classic__add'), headers('classic__add'));
    expect(res.status).toBe(200);
    expect(((await res.json()) as { result: { content: { text: string }[] } }).result.content[0]?.text).toBe('2');
  });

  it('refuses header/body mismatches with 400 and -32020', async () => {
    for (const [h, why] of [
      [{ ...headers('classic__add'), 'mcp-name': 'classic__echo' }, 'name'],
      [{ ...headers('classic__add'), 'mcp-method': 'tools/list' }, 'method'],
      [{ ...headers('classic__add'), 'mcp-protocol-version': '2025-11-25' }, 'version'],
      [{ 'mcp-protocol-version': MODERN, 'mcp-method': 'tools/call' }, 'missing name'],
      [{ 'mcp-method': 'tools/call', 'mcp-name': 'classic__add' }, 'missing version'],
      [{ ...headers('classic__add'), 'mcp-name': '=?base64?###?=' }, 'bad base64'],
    ] as const) {
      const res = await post(call('classic__add'), h);
      expect(res.status, why).toBe(400);
      expect(((await res.json()) as { error: { code: number } }).error.code, why).toBe(-32020);
    }
    // The Base64 sentinel form of a matching name is accepted.
    const ok = await post(call('classic__add'), { ...headers('classic__add'), 'mcp-name': `=?base64?${Buffer.from('classic__add').toString('base64')}?=` });
    expect(ok.status).toBe(200);
  });

  it('refuses an unsupported version with 400, -32022 and data.supported', async () => {
    const meta = { ...META, 'io.modelcontextprotocol/protocolVersion': '2099-01-01' };
    const res = await post({ jsonrpc: '2.0', id: 3, method: 'tools/list', params: { _meta: meta } }, { 'mcp-protocol-version': '2099-01-01', 'mcp-method': 'tools/list' });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: number; data: { supported: string[]; requested: string } } };
    expect(body.error.code).toBe(-32022);
    expect(body.error.data.supported).toContain(MODERN);
    expect(body.error.data.requested).toBe('2099-01-01');
  });

  it('refuses a modern version header without the envelope, and an envelope without capabilities', async () => {
    const a = await post({ jsonrpc: '2.0', id: 4, method: 'tools/list' }, { 'mcp-protocol-version': MODERN, 'mcp-method': 'tools/list' });
    expect(a.status).toBe(400);
    expect(((await a.json()) as { error: { code: number } }).error.code).toBe(-32602);
    const b = await post({ jsonrpc: '2.0', id: 5, method: 'tools/list', params: { _meta: { 'io.modelcontextprotocol/protocolVersion': MODERN } } }, { 'mcp-protocol-version': MODERN, 'mcp-method': 'tools/list' });
    expect(b.status).toBe(400);
    expect(((await b.json()) as { error: { code: number } }).error.code).toBe(-32602);
  });

  it('answers an unknown method with 404 and -32601, and a forged requestState with -32602', async () => {
    const a = await post({ jsonrpc: '2.0', id: 6, method: 'nope/nothing', params: { _meta: META } }, { 'mcp-protocol-version': MODERN, 'mcp-method': 'nope/nothing' });
    expect(a.status).toBe(404);
    expect(((await a.json()) as { error: { code: number } }).error.code).toBe(-32601);
    const b = await post(call('conf__test_sampling', { requestState: 'tollgate.mrtr.k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', inputResponses: {} }), headers('conf__test_sampling'));
    expect(((await b.json()) as { error: { code: number } }).error.code).toBe(-32602);
  });

  it('streams opted-in change notifications on subscriptions/listen', async () => {
    const controller = new AbortController();
    const res = await fetch(`${gw.url}/mcp`, {
      method: 'POST',
      signal: controller.signal,
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': MODERN, 'mcp-method': 'subscriptions/listen', ...gw.authHeaders() },
      body: JSON.stringify({ jsonrpc: '2.0', id: 'sub-1', method: 'subscriptions/listen', params: { notifications: { toolsListChanged: true }, _meta: META } }),
    });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let buffered = '';
    // Read the stream in the background; the checks below look at what arrived so far.
    const reading = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffered += decoder.decode(value, { stream: true });
      }
    })().catch(() => {});
    try {
      await eventually(() => buffered.includes('notifications/subscriptions/acknowledged'), 10_000, 'the acknowledgement');
      expect(buffered).toContain('"toolsListChanged":true');
      // The gateway attaches to the upstream streams after acknowledging: change a list upstream until it shows.
      await eventually(async () => {
        await classic.addTool(`listen-${Date.now()}`);
        await new Promise((r) => setTimeout(r, 100));
        return buffered.includes('notifications/tools/list_changed');
      }, 10_000, 'list_changed on the subscription stream');
      expect(buffered).toContain('"io.modelcontextprotocol/subscriptionId":"sub-1"');
    } finally {
      controller.abort();
      await reading;
    }
  });

  it('relays a session-era upstream\'s log messages only to a request that set a logLevel, at or above it', async () => {
    const logs = async (level: string | undefined, id: number): Promise<string[]> => {
      const meta = level === undefined ? META : { ...META, 'io.modelcontextprotocol/logLevel': level };
      const res = await post({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'conf__test_tool_with_logging', arguments: {}, _meta: meta } }, headers('conf__test_tool_with_logging'));
      expect(res.status).toBe(200);
      const body = await res.text();
      const messages = (res.headers.get('content-type') ?? '').includes('text/event-stream')
        ? body.split('\n').filter((l) => l.startsWith('data: ') && l.length > 6).map((l) => JSON.parse(l.slice(6)) as { id?: unknown; method?: string; params?: { level?: string } })
        : [JSON.parse(body) as { id?: unknown; method?: string; params?: { level?: string } }];
      expect(messages.some((m) => m.id === id), body).toBe(true);
      return messages.filter((m) => m.method === 'notifications/message').map((m) => String(m.params?.level));
    };
    expect(await logs('debug', 21)).not.toEqual([]);
    expect(await logs('info', 22)).not.toEqual([]);
    expect(await logs(undefined, 23)).toEqual([]);
    expect(await logs('error', 24)).toEqual([]);
    const bad = await post({ jsonrpc: '2.0', id: 25, method: 'tools/call', params: { name: 'conf__test_tool_with_logging', arguments: {}, _meta: { ...META, 'io.modelcontextprotocol/logLevel': 'loud' } } }, headers('conf__test_tool_with_logging'));
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: number } }).error.code).toBe(-32602);
  });

  it('answers a corpus of malformed 2026 requests with 4xx errors, never a crash', async () => {
    const h = { 'mcp-protocol-version': MODERN, 'mcp-method': 'tools/list' };
    const cases: Array<[unknown, Record<string, string>, number]> = [
      [{ jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: { 'io.modelcontextprotocol/protocolVersion': 123 } } }, h, 400],
      [{ jsonrpc: '2.0', id: 2, method: 'tools/list', params: { _meta: { ...META, 'io.modelcontextprotocol/clientCapabilities': [] } } }, h, 400],
      [{ jsonrpc: '2.0', id: 3, method: 'tools/list', params: { _meta: 'not an object' } }, h, 400],
      [{ jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'classic__add', _meta: META } }, { ...h, 'mcp-method': 'tools/call', 'mcp-name': 'x'.repeat(8000) }, 400],
      [{ jsonrpc: '2.0', id: 5, method: 'initialize', params: { _meta: META } }, { ...h, 'mcp-method': 'initialize' }, 404],
      [{ jsonrpc: '2.0', id: 6, method: 'tools/call', params: { name: 42, _meta: META } }, { ...h, 'mcp-method': 'tools/call' }, 200],
      [{ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'nobody__x', _meta: META } }, { ...h, 'mcp-method': 'tools/call', 'mcp-name': 'nobody__x' }, 200],
      [{ jsonrpc: '2.0', method: 'notifications/whatever', params: { _meta: META } }, h, 202],
      [[{ jsonrpc: '2.0', id: 8, method: 'tools/list', params: { _meta: META } }], h, 400],
    ];
    for (const [body, headers, status] of cases) {
      const res = await post(body, headers);
      expect(res.status, JSON.stringify(body).slice(0, 120)).toBe(status);
      const text = await res.text();
      if (status !== 202) expect(JSON.parse(text).error, text).toBeDefined();
    }
    const res = await fetch(`${gw.url}/mcp`, { headers: { accept: 'text/event-stream', 'last-event-id': '1_1', ...gw.authHeaders() } });
    expect(res.status).toBe(400);
    await res.text();
  });

  it('keeps serving after the bad inputs', async () => {
    expect(text(await v2.callTool({ name: 'classic__echo', arguments: { message: 'still here' } }))).toBe('still here');
    expect(text(await v1.callTool({ name: 'classic__echo', arguments: { message: 'still here' } }))).toBe('still here');
  });
});
