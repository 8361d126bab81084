/**
 * Session ids as sealed tokens, and what is refused: a session used by another identity (real dev JWT-SVIDs
 * through the identity guard), an expired session, a deleted one, resumability (Last-Event-ID replay of a broken
 * stream) and event ids out of range.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createParser } from 'eventsource-parser';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { mcpBackend, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import type { McpProtocol } from '../../src/protocols/mcp/index.ts';

let fixture: FixtureServer;
let gw: TestGateway;
let url: string;

const JSON_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

/** Credentials of a dev-trust-domain workload. */
function as(who: string): Record<string, string> {
  return gw.authHeaders(`spiffe://dev.tollgate.local/${who}`);
}

async function initialize(principal: string): Promise<string> {
  const res = await fetch(`${url}/mcp`, {
    method: 'POST',
    headers: { ...JSON_HEADERS, ...as(principal) },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }),
  });
  expect(res.status).toBe(200);
  await res.text();
  return res.headers.get('mcp-session-id')!;
}

function rpc(sid: string, body: unknown, extra: Record<string, string> = {}): Promise<Response> {
  return fetch(`${url}/mcp`, { method: 'POST', headers: { ...JSON_HEADERS, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25', ...extra }, body: JSON.stringify(body) });
}

/** Reads SSE events until `stop` says so (or the stream ends); returns [id, data] pairs. */
async function events(res: Response, stop: (data: string) => boolean): Promise<Array<[string | undefined, string]>> {
  const out: Array<[string | undefined, string]> = [];
  let done = false;
  const parser = createParser({
    onEvent: (e) => {
      if (done) return;
      out.push([e.id, e.data]);
      if (stop(e.data)) done = true;
    },
  });
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  while (!done) {
    const { value, done: end } = await reader.read();
    if (end) break;
    parser.feed(decoder.decode(value, { stream: true }));
  }
  await reader.cancel().catch(() => {});
  return out;
}

beforeAll(async () => {
  fixture = await startHttpMcpServer({ name: 'fixture' });
  gw = await startTestGateway(
    { 'mcp.yaml': mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']) },
    {
      gatewayYaml: `apiVersion: tollgate.dev/v1alpha1
kind: Gateway
metadata: { name: test }
spec:
  listener: { host: 127.0.0.1, port: 0 }
  shutdown: { drainMs: 500 }
  mcp: { sessionTtlMs: 1500, replay: { events: 4, ttlMs: 60000 } }
`,
    },
  );
  url = gw.url;
});

afterAll(async () => {
  await gw?.stop();
  await fixture?.close();
});

describe('sessions bound to identity', () => {
  it('refuses a session used by another identity (404, as if it did not exist)', async () => {
    const sid = await initialize('alice');
    const ok = await rpc(sid, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, as('alice'));
    expect(ok.status).toBe(200);
    await ok.text();
    const mallory = await rpc(sid, { jsonrpc: '2.0', id: 3, method: 'tools/list' }, as('mallory'));
    expect(mallory.status).toBe(404);
    expect(((await mallory.json()) as { error: { data: { code: string } } }).error.data.code).toBe('TG_SESSION_IDENTITY_MISMATCH');
    // No credentials at all: refused before the session is even looked at.
    const anon = await rpc(sid, { jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'fixture__echo', arguments: { message: 'x' } } });
    expect(anon.status).toBe(401);
    // A session rebuilt from its id on another replica is bound the same way (the principal is sealed inside).
    // Forget it here, as a replica that never saw it.
    (gw.gateway.adapter('mcp') as McpProtocol).adapter.sessions.delete(sid);
    const rebuiltForMallory = await rpc(sid, { jsonrpc: '2.0', id: 5, method: 'tools/list' }, as('mallory'));
    expect(rebuiltForMallory.status).toBe(404);
    const rebuiltForAlice = await rpc(sid, { jsonrpc: '2.0', id: 6, method: 'tools/list' }, as('alice'));
    expect(rebuiltForAlice.status).toBe(200);
    await rebuiltForAlice.text();
  });

  it('refuses an expired session id with 404 (the client re-initializes)', async () => {
    const sid = await initialize('bob');
    await new Promise((r) => setTimeout(r, 1600));
    const res = await rpc(sid, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, as('bob'));
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { data: { code: string } } }).error.data.code).toBe('TG_MCP_SESSION_EXPIRED');
  });

  it('does not continue a deleted session on this replica', async () => {
    const sid = await initialize('carol');
    const del = await fetch(`${url}/mcp`, { method: 'DELETE', headers: { 'mcp-session-id': sid, ...as('carol') } });
    expect(del.status).toBe(200);
    const res = await rpc(sid, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, as('carol'));
    expect(res.status).toBe(404);
  });
});

describe('resumability', () => {
  it('replays a broken request stream after Last-Event-ID, then the rest of it live', async () => {
    const sid = await initialize('dave');
    const h = as('dave');
    const call = await rpc(sid, { jsonrpc: '2.0', id: 10, method: 'tools/call', params: { name: 'fixture__slow', arguments: { steps: 5 }, _meta: { progressToken: 'p' } } }, h);
    expect(call.headers.get('content-type')).toContain('text/event-stream');
    // The stream starts with its priming event (an id, no data); read up to the first progress, then break it.
    const first = await events(call, (d) => d !== '');
    expect(first[0]).toEqual([expect.stringMatching(/^\d+_0$/), '']);
    const second = first;
    const lastId = second.at(-1)![0]!;
    expect(lastId).toMatch(/^\d+_\d+$/);
    const resumed = await fetch(`${url}/mcp`, { headers: { accept: 'text/event-stream', 'mcp-session-id': sid, 'last-event-id': lastId, ...h } });
    expect(resumed.status).toBe(200);
    const rest = await events(resumed, (d) => d.includes('"result"'));
    const final = rest.at(-1)![1];
    expect(JSON.parse(final)).toMatchObject({ id: 10, result: { content: [{ type: 'text', text: 'done after 5 steps' }] } });
    const progress = rest.filter(([, d]) => d.includes('notifications/progress')).map(([, d]) => (JSON.parse(d) as { params: { progress: number } }).params.progress);
    // Nothing lost, nothing repeated: the events after the last one read.
    const seenFirst = (JSON.parse(second.at(-1)![1]) as { params: { progress: number } }).params.progress;
    expect(progress).toEqual([1, 2, 3, 4, 5].filter((p) => p > seenFirst));
  });

  it('refuses event ids out of range with 400', async () => {
    const sid = await initialize('erin');
    const h = as('erin');
    for (const id of ['999_1', 'garbage', '1_999999']) {
      const res = await fetch(`${url}/mcp`, { headers: { accept: 'text/event-stream', 'mcp-session-id': sid, 'last-event-id': id, ...h } });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { data: { code: string } } }).error.data.code).toBe('TG_MCP_EVENT_ID_OUT_OF_RANGE');
    }
    // A stream whose early events fell out of the bounded buffer (4 events) cannot be replayed from its start.
    const call = await rpc(sid, { jsonrpc: '2.0', id: 11, method: 'tools/call', params: { name: 'fixture__slow', arguments: { steps: 6 }, _meta: { progressToken: 'q' } } }, h);
    const all = await events(call, (d) => d.includes('"result"'));
    const firstId = all[0]![0]!;
    const [stream] = firstId.split('_');
    const res = await fetch(`${url}/mcp`, { headers: { accept: 'text/event-stream', 'mcp-session-id': sid, 'last-event-id': `${stream}_0`, ...h } });
    expect(res.status).toBe(400);
  });
});
