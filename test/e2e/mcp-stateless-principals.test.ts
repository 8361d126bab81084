/**
 * 2026-07-28 (stateless) callers are kept apart by principal, seen from outside with two real identities (dev
 * JWT-SVIDs) that describe themselves identically:
 * - a session-era upstream keeps state per upstream session: each principal gets its own, never the other's;
 * - a multi round-trip `requestState` is bound to the caller it was issued to: another principal replaying it is
 *   refused (-32602, TG_MCP_REQUEST_STATE_INVALID), its answer never reaches the upstream, and the rightful caller
 *   can still complete the exchange.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client as V2Client, StreamableHTTPClientTransport as V2Transport } from '@modelcontextprotocol/client';
import { startConformanceUpstream, type ConformanceUpstream } from '../helpers/conformance-server.ts';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { mcpBackend, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';

const MODERN = '2026-07-28';
const ALICE = 'spiffe://dev.tollgate.local/tenant-a/agent';
const BOB = 'spiffe://dev.tollgate.local/tenant-b/agent';

let fixture: FixtureServer;
let conf: ConformanceUpstream;
let gw: TestGateway;

beforeAll(async () => {
  [fixture, conf] = await Promise.all([startHttpMcpServer({ name: 'fixture', counter: true, asks: true }), startConformanceUpstream()]);
  gw = await startTestGateway({ 'mcp.yaml': mcpBackend('fixture', { url: fixture.url }) + mcpBackend('conf', { url: conf.url }) + route('mcp', '/mcp', ['fixture', 'conf']) });
});

afterAll(async () => {
  await gw?.stop();
  await Promise.all([fixture?.close(), conf?.close()]);
});

function text(r: unknown): string {
  return (((r as { content?: { text?: string }[] }).content) ?? []).map((c) => c.text ?? '').join('');
}

/** A v2 SDK client pinned to 2026-07-28; every instance describes itself the same way, only the identity differs. */
async function connectAs(spiffeId: string): Promise<V2Client> {
  const client = new V2Client({ name: 'same-client', version: '1.0.0' }, { capabilities: {}, versionNegotiation: { mode: { pin: MODERN } } });
  await client.connect(new V2Transport(new URL(`${gw.url}/mcp`), { requestInit: { headers: gw.authHeaders(spiffeId) } }));
  return client;
}

describe('stateless callers with two principals', () => {
  it('gives each principal its own upstream session state, and keeps it for that principal', async () => {
    const alice = await connectAs(ALICE);
    const bob = await connectAs(BOB);
    try {
      expect(alice.getNegotiatedProtocolVersion()).toBe(MODERN);
      const count = async (c: V2Client): Promise<string> => text(await c.callTool({ name: 'fixture__count', arguments: {} }));
      expect(await count(alice)).toBe('1');
      expect(await count(bob)).toBe('1');
      expect(await count(alice)).toBe('2');
      expect(await count(alice)).toBe('3');
      expect(await count(bob)).toBe('2');
      // A second connection of the same principal continues that principal's state (it is not per connection).
      const again = await connectAs(ALICE);
      try {
        expect(await count(again)).toBe('4');
      } finally {
        await again.close();
      }
    } finally {
      await alice.close();
      await bob.close();
    }
  });
});

describe('multi round-trip requestState bound to its caller', () => {
  const META = {
    'io.modelcontextprotocol/protocolVersion': MODERN,
    'io.modelcontextprotocol/clientCapabilities': { sampling: {} },
    'io.modelcontextprotocol/clientInfo': { name: 'same-client', version: '1.0.0' },
  };
  const NAME = 'conf__test_sampling';

  /** POSTs a 2026 tools/call as `spiffeId`; returns the HTTP status and the JSON-RPC response (JSON or SSE). */
  async function callAs(spiffeId: string, id: number, extra: Record<string, unknown>): Promise<{ status: number; msg: { result?: Record<string, unknown>; error?: { code: number; data?: { code?: string } } } }> {
    const res = await fetch(`${gw.url}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': MODERN,
        'mcp-method': 'tools/call',
        'mcp-name': NAME,
        ...gw.authHeaders(spiffeId),
      },
      body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: NAME, arguments: { prompt: 'whose turn?' }, _meta: META, ...extra } }),
    });
    const body = await res.text();
    const candidates = (res.headers.get('content-type') ?? '').includes('text/event-stream')
      ? body.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim())
      : [body];
    const msg = candidates.map((c) => JSON.parse(c) as { id?: unknown }).find((m) => m.id === id);
    if (!msg) throw new Error(`no response to ${id} in: ${body}`);
    return { status: res.status, msg: msg as never };
  }

  const answer = (who: string): Record<string, unknown> => ({ role: 'assistant', content: { type: 'text', text: `answered by ${who}` }, model: 'test', stopReason: 'endTurn' });

  it('refuses the requestState of one principal replayed by another; the rightful caller still completes', async () => {
    const first = await callAs(ALICE, 1, {});
    expect(first.status).toBe(200);
    expect(first.msg.result?.resultType).toBe('input_required');
    const requestState = first.msg.result!.requestState as string;
    const keys = Object.keys(first.msg.result!.inputRequests as Record<string, unknown>);
    expect(keys).toHaveLength(1);
    expect(typeof requestState).toBe('string');

    // Bob got hold of Alice's requestState (same route, same self-description, a valid identity of his own).
    const stolen = await callAs(BOB, 2, { requestState, inputResponses: { [keys[0]!]: answer('bob') } });
    expect(stolen.msg.error?.code).toBe(-32602);
    expect(stolen.msg.error?.data?.code).toBe('TG_MCP_REQUEST_STATE_INVALID');
    expect(stolen.msg.result).toBeUndefined();

    // Alice's exchange was neither consumed nor answered by Bob.
    const done = await callAs(ALICE, 3, { requestState, inputResponses: { [keys[0]!]: answer('alice') } });
    expect(done.msg.error).toBeUndefined();
    expect(done.msg.result?.resultType).toBe('complete');
    expect(text(done.msg.result)).toBe('LLM response: answered by alice');
  });

  it('takes a requestState once: replaying it after the exchange completed is refused', async () => {
    const first = await callAs(ALICE, 7, {});
    const requestState = first.msg.result!.requestState as string;
    const key = Object.keys(first.msg.result!.inputRequests as Record<string, unknown>)[0]!;
    const done = await callAs(ALICE, 8, { requestState, inputResponses: { [key]: answer('alice') } });
    expect(text(done.msg.result)).toBe('LLM response: answered by alice');
    const again = await Promise.race([
      callAs(ALICE, 9, { requestState, inputResponses: { [key]: answer('alice again') } }),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('a replayed requestState was taken (no answer)')), 10_000)),
    ]);
    expect(again.msg.error?.data?.code).toBe('TG_MCP_REQUEST_STATE_INVALID');
  });

  it('carries an exchange over several round trips (an upstream that asks twice)', async () => {
    const client = new V2Client({ name: 'same-client', version: '1.0.0' }, { capabilities: { elicitation: { form: {} } }, versionNegotiation: { mode: { pin: MODERN } } });
    const asked: string[] = [];
    client.setRequestHandler('elicitation/create', async (req) => {
      asked.push(req.params.message);
      return { action: 'accept', content: { answer: `answer ${asked.length}` } };
    });
    await client.connect(new V2Transport(new URL(`${gw.url}/mcp`), { requestInit: { headers: gw.authHeaders(ALICE) } }));
    try {
      expect(text(await client.callTool({ name: 'fixture__ask_twice', arguments: {} }))).toBe('first=answer 1; second=answer 2');
      expect(asked).toEqual(['first?', 'second?']);
    } finally {
      await client.close();
    }
  });

  it('never asks a client for input it did not declare: the upstream is refused instead (mrtr.mdx)', async () => {
    const ask = async (capabilities: Record<string, unknown>, id: number) => {
      const res = await fetch(`${gw.url}/mcp`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': MODERN, 'mcp-method': 'tools/call', 'mcp-name': 'fixture__ask_twice', ...gw.authHeaders(ALICE) },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id,
          method: 'tools/call',
          params: { name: 'fixture__ask_twice', arguments: {}, _meta: { 'io.modelcontextprotocol/protocolVersion': MODERN, 'io.modelcontextprotocol/clientCapabilities': capabilities, 'io.modelcontextprotocol/clientInfo': { name: 'caps', version: '1' } } },
        }),
      });
      const body = await res.text();
      const lines = (res.headers.get('content-type') ?? '').includes('text/event-stream') ? body.split('\n').filter((l) => l.startsWith('data:') && l.length > 6).map((l) => l.slice(5).trim()) : [body];
      return lines.map((l) => JSON.parse(l) as { id?: unknown; result?: Record<string, unknown>; error?: unknown }).find((m) => m.id === id)!;
    };
    // Declared: the upstream's elicitation comes back as input_required.
    expect((await ask({ elicitation: {} }, 41)).result?.resultType).toBe('input_required');
    // Not declared (none, or only URL mode for a form request): no input_required; the upstream's ask failed.
    for (const [caps, id] of [[{}, 42], [{ sampling: {} }, 43], [{ elicitation: { url: {} } }, 44]] as const) {
      const answer = await ask(caps, id);
      expect(answer.result?.resultType, JSON.stringify(caps)).not.toBe('input_required');
      expect(JSON.stringify(answer), JSON.stringify(caps)).not.toContain('inputRequests');
    }
  });

  it('refuses a requestState used for another tool, even by its own caller', async () => {
    const first = await callAs(ALICE, 4, {});
    const requestState = first.msg.result!.requestState as string;
    const key = Object.keys(first.msg.result!.inputRequests as Record<string, unknown>)[0]!;
    const res = await fetch(`${gw.url}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': MODERN, 'mcp-method': 'tools/call', 'mcp-name': 'conf__test_elicitation', ...gw.authHeaders(ALICE) },
      body: JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'conf__test_elicitation', arguments: { message: 'x' }, _meta: META, requestState, inputResponses: { [key]: answer('alice') } } }),
    });
    const msg = (await res.json()) as { error?: { code: number; data?: { code?: string } } };
    expect(msg.error?.data?.code).toBe('TG_MCP_REQUEST_STATE_INVALID');
    // Still Alice's to finish on the tool it was issued for.
    const done = await callAs(ALICE, 6, { requestState, inputResponses: { [key]: answer('alice') } });
    expect(text(done.msg.result)).toBe('LLM response: answered by alice');
  });

  it('refuses a requestState issued for tools/call when it comes back on prompts/get of the same name', async () => {
    const meta = { ...META, 'io.modelcontextprotocol/clientCapabilities': { elicitation: { form: {} } } };
    const NAME2 = 'fixture__ask_twice';
    const post = async (id: number, method: string, params: Record<string, unknown>): Promise<{ result?: Record<string, unknown>; error?: { code: number; data?: { code?: string } } }> => {
      const res = await fetch(`${gw.url}/mcp`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': MODERN, 'mcp-method': method, 'mcp-name': NAME2, ...gw.authHeaders(ALICE) },
        body: JSON.stringify({ jsonrpc: '2.0', id, method, params: { name: NAME2, _meta: meta, ...params } }),
      });
      const body = await res.text();
      const candidates = (res.headers.get('content-type') ?? '').includes('text/event-stream')
        ? body.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim())
        : [body];
      const msg = candidates.map((c) => JSON.parse(c) as { id?: unknown }).find((m) => m.id === id);
      if (!msg) throw new Error(`no response to ${id} in: ${body}`);
      return msg as never;
    };
    // The prompt exists under that name: without a requestState, prompts/get answers.
    expect((await post(20, 'prompts/get', {})).result?.messages).toBeDefined();
    const first = await post(21, 'tools/call', { arguments: {} });
    expect(first.result?.resultType).toBe('input_required');
    const requestState = first.result!.requestState as string;
    const key = Object.keys(first.result!.inputRequests as Record<string, unknown>)[0]!;
    const accept = (answer: string): Record<string, unknown> => ({ [key]: { action: 'accept', content: { answer } } });
    const wrong = await post(22, 'prompts/get', { requestState, inputResponses: accept('via prompts/get') });
    expect(wrong.error?.code).toBe(-32602);
    expect(wrong.error?.data?.code).toBe('TG_MCP_REQUEST_STATE_INVALID');
    expect(wrong.result).toBeUndefined();
    // Still the caller's to continue on tools/call.
    const next = await post(23, 'tools/call', { arguments: {}, requestState, inputResponses: accept('one') });
    expect(next.error).toBeUndefined();
    expect(next.result?.resultType).toBe('input_required');
  });
});
