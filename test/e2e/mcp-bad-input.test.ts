/**
 * A corpus of bad requests against the MCP endpoint: each gets the spec's JSON-RPC error and HTTP status, and the
 * gateway keeps serving a normal call afterwards.
 */
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { GATEWAY_YAML, connectClient, mcpBackend, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';

let fixture: FixtureServer;
let gw: TestGateway;
let sid: string;

const ACCEPT = 'application/json, text/event-stream';

async function post(body: string | Buffer, headers: Record<string, string> = {}, path = '/mcp') {
  const res = await request(`${gw.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: ACCEPT, ...gw.authHeaders(), ...headers },
    body,
  });
  const text = await res.body.text();
  let json: { id?: unknown; error?: { code: number; message: string; data?: { code?: string } }; result?: unknown } | undefined;
  try {
    json = JSON.parse(text) as typeof json;
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, json, text };
}

const withSession = (h: Record<string, string> = {}) => ({ 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25', ...h });

beforeAll(async () => {
  fixture = await startHttpMcpServer({ name: 'fixture' });
  gw = await startTestGateway(
    { 'mcp.yaml': mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']) },
    { gatewayYaml: GATEWAY_YAML.replace('spec:\n', 'spec:\n  http: { maxBodyBytes: 4096, allowedOrigins: ["https://app.example"] }\n') },
  );
  const res = await request(`${gw.url}/mcp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: ACCEPT, ...gw.authHeaders() },
    body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'corpus', version: '1' } } }),
  });
  expect(res.statusCode).toBe(200);
  sid = String(res.headers['mcp-session-id']);
  await res.body.dump();
});

afterAll(async () => {
  await gw?.stop();
  await fixture?.close();
});

describe('bad input on /mcp', () => {
  const cases: Array<{ name: string; body: string | (() => string | Buffer); headers?: () => Record<string, string>; path?: string; status: number; rpc: number; code: string }> = [
    { name: 'malformed JSON', body: '{"jsonrpc":"2.0",', headers: withSession, status: 400, rpc: -32700, code: 'TG_PARSE_ERROR' },
    { name: 'empty body', body: '', headers: withSession, status: 400, rpc: -32700, code: 'TG_PARSE_ERROR' },
    { name: 'JSON string instead of object', body: '"hello"', headers: withSession, status: 400, rpc: -32600, code: 'TG_INVALID_REQUEST' },
    { name: 'null', body: 'null', headers: withSession, status: 400, rpc: -32600, code: 'TG_INVALID_REQUEST' },
    { name: 'wrong jsonrpc version', body: '{"jsonrpc":"1.0","id":1,"method":"ping"}', headers: withSession, status: 400, rpc: -32600, code: 'TG_INVALID_REQUEST' },
    { name: 'object id', body: '{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}', headers: withSession, status: 400, rpc: -32600, code: 'TG_INVALID_REQUEST' },
    { name: 'non-string method', body: '{"jsonrpc":"2.0","id":1,"method":42}', headers: withSession, status: 400, rpc: -32600, code: 'TG_INVALID_REQUEST' },
    { name: 'array params', body: '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":[1]}', headers: withSession, status: 400, rpc: -32600, code: 'TG_INVALID_REQUEST' },
    { name: 'batch', body: '[{"jsonrpc":"2.0","id":1,"method":"ping"}]', headers: withSession, status: 400, rpc: -32600, code: 'TG_BATCH_NOT_SUPPORTED' },
    { name: 'deeply nested JSON', body: () => '['.repeat(1500) + ']'.repeat(1500), headers: withSession, status: 400, rpc: -32600, code: 'TG_BATCH_NOT_SUPPORTED' },
    { name: 'unknown method', body: '{"jsonrpc":"2.0","id":7,"method":"tools/destroy"}', headers: withSession, status: 200, rpc: -32601, code: 'TG_METHOD_NOT_FOUND' },
    { name: 'unknown tool', body: '{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"nobody__x","arguments":{}}}', headers: withSession, status: 200, rpc: -32602, code: 'TG_MCP_UNKNOWN_TOOL' },
    { name: 'unknown tool with a stolen session id and no credentials', body: '{"jsonrpc":"2.0","id":81,"method":"tools/call","params":{"name":"nobody__x","arguments":{}}}', headers: () => withSession({ authorization: 'Bearer not-a-token' }), status: 401, rpc: -32060, code: 'TG_INVALID_TOKEN' },
    { name: 'tools/call without name', body: '{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{}}', headers: withSession, status: 200, rpc: -32602, code: 'TG_INVALID_PARAMS' },
    { name: 'forged cursor', body: '{"jsonrpc":"2.0","id":10,"method":"tools/list","params":{"cursor":"not-a-cursor"}}', headers: withSession, status: 200, rpc: -32602, code: 'TG_MCP_INVALID_CURSOR' },
    { name: 'oversized body', body: () => JSON.stringify({ jsonrpc: '2.0', id: 11, method: 'tools/call', params: { name: 'fixture__echo', arguments: { message: 'x'.repeat(10_000) } } }), headers: withSession, status: 413, rpc: -32600, code: 'TG_PAYLOAD_TOO_LARGE' },
    { name: 'missing session id', body: '{"jsonrpc":"2.0","id":12,"method":"tools/list"}', status: 400, rpc: -32600, code: 'TG_MCP_SESSION_REQUIRED' },
    { name: 'unknown session id', body: '{"jsonrpc":"2.0","id":13,"method":"tools/list"}', headers: () => ({ 'mcp-session-id': 'forged-session' }), status: 404, rpc: -32001, code: 'TG_MCP_SESSION_NOT_FOUND' },
    { name: 'unsupported protocol version', body: '{"jsonrpc":"2.0","id":14,"method":"tools/list"}', headers: () => withSession({ 'mcp-protocol-version': '1999-01-01' }), status: 400, rpc: -32600, code: 'TG_MCP_UNSUPPORTED_PROTOCOL_VERSION' },
    { name: 'wrong content type', body: '{"jsonrpc":"2.0","id":15,"method":"ping"}', headers: () => withSession({ 'content-type': 'text/plain' }), status: 415, rpc: -32600, code: 'TG_UNSUPPORTED_MEDIA_TYPE' },
    { name: 'Accept without event-stream', body: '{"jsonrpc":"2.0","id":16,"method":"ping"}', headers: () => withSession({ accept: 'application/json' }), status: 406, rpc: -32600, code: 'TG_NOT_ACCEPTABLE' },
    { name: 'foreign Origin', body: '{"jsonrpc":"2.0","id":17,"method":"ping"}', headers: () => withSession({ origin: 'https://evil.example' }), status: 403, rpc: -32600, code: 'TG_ORIGIN_FORBIDDEN' },
    { name: 'initialize without clientInfo', body: '{"jsonrpc":"2.0","id":18,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}', status: 200, rpc: -32602, code: 'TG_INVALID_PARAMS' },
    { name: 'unknown server path', body: '{"jsonrpc":"2.0","id":19,"method":"ping"}', path: '/mcp/nope', status: 404, rpc: -32601, code: 'TG_MCP_UNKNOWN_SERVER' },
    { name: 'session used on another endpoint', body: '{"jsonrpc":"2.0","id":20,"method":"tools/list"}', headers: withSession, path: '/mcp/fixture', status: 404, rpc: -32001, code: 'TG_MCP_SESSION_NOT_FOUND' },
    { name: 'invalid UTF-8', body: () => Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), headers: withSession, status: 400, rpc: -32700, code: 'TG_PARSE_ERROR' },
    { name: 'Accept with wildcards of other types only', body: '{"jsonrpc":"2.0","id":21,"method":"ping"}', headers: () => withSession({ accept: 'image/*, audio/*' }), status: 406, rpc: -32600, code: 'TG_NOT_ACCEPTABLE' },
    // The error names the tool: multi-byte characters must not cut the answer short (Content-Length in bytes).
    { name: 'unknown tool with a non-ASCII name', body: '{"jsonrpc":"2.0","id":22,"method":"tools/call","params":{"name":"nobody__café☃","arguments":{}}}', headers: withSession, status: 200, rpc: -32602, code: 'TG_MCP_UNKNOWN_TOOL' },
  ];

  for (const c of cases) {
    it(`${c.name} -> HTTP ${c.status}, JSON-RPC ${c.rpc}`, async () => {
      const body = typeof c.body === 'function' ? c.body() : c.body;
      const r = await post(body, c.headers?.() ?? {}, c.path);
      expect(r.status).toBe(c.status);
      expect(r.json?.error?.code).toBe(c.rpc);
      expect(r.json?.error?.data?.code).toBe(c.code);
      expect(typeof r.json?.error?.message).toBe('string');
    });
  }

  it('accepts Accept values that allow the types by wildcard', async () => {
    for (const accept of ['application/*, text/*', '*/*', 'application/json, text/*']) {
      const r = await post('{"jsonrpc":"2.0","id":23,"method":"ping"}', withSession({ accept }));
      expect(r.status, accept).toBe(200);
    }
  });

  it('keeps the id of a request whose error is in-band', async () => {
    const r = await post('{"jsonrpc":"2.0","id":"abc","method":"tools/destroy"}', withSession());
    expect(r.json?.id).toBe('abc');
  });

  it('refuses other HTTP methods and session-less GET/DELETE', async () => {
    const put = await request(`${gw.url}/mcp`, { method: 'PUT', body: '{}', headers: gw.authHeaders() });
    expect(put.statusCode).toBe(405);
    expect(put.headers.allow).toContain('POST');
    await put.body.dump();
    const get = await request(`${gw.url}/mcp`, { method: 'GET', headers: { accept: 'text/event-stream', ...gw.authHeaders() } });
    expect(get.statusCode).toBe(400);
    await get.body.dump();
    const del = await request(`${gw.url}/mcp`, { method: 'DELETE', headers: { 'mcp-session-id': 'nope', ...gw.authHeaders() } });
    expect(del.statusCode).toBe(404);
    await del.body.dump();
    // Without credentials nothing is said about the method or the session: 401 first.
    const anonymous = await request(`${gw.url}/mcp`, { method: 'PUT', body: '{}' });
    expect(anonymous.statusCode).toBe(401);
    await anonymous.body.dump();
  });

  it('survives a client that disconnects mid-body and mid-response', async () => {
    const { connect } = await import('node:net');
    const url = new URL(gw.url);
    await new Promise<void>((resolve) => {
      const s = connect(Number(url.port), url.hostname, () => {
        s.write(`POST /mcp HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\naccept: ${ACCEPT}\r\nmcp-session-id: ${sid}\r\ncontent-length: 500\r\n\r\n{"jsonrpc":`);
        setTimeout(() => {
          s.destroy();
          resolve();
        }, 50);
      });
    });
    const controller = new AbortController();
    const slow = request(`${gw.url}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: ACCEPT, ...gw.authHeaders(), ...withSession() },
      body: JSON.stringify({ jsonrpc: '2.0', id: 30, method: 'tools/call', params: { name: 'fixture__slow', arguments: { steps: 5 }, _meta: { progressToken: 'p' } } }),
      signal: controller.signal,
    });
    const res = await slow;
    setTimeout(() => controller.abort(), 150);
    await expect(res.body.text()).rejects.toThrow();
  });

  it('still serves a normal call after the whole corpus', async () => {
    const client = await connectClient(`${gw.url}/mcp`);
    try {
      const r = await client.callTool({ name: 'fixture__add', arguments: { a: 20, b: 22 } });
      expect(r.content).toEqual([{ type: 'text', text: '42' }]);
    } finally {
      await client.close();
    }
    const health = await request(`${gw.url}/healthz`);
    expect(health.statusCode).toBe(200);
    await health.body.dump();
  });
});
