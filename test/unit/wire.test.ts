/**
 * The shared wire formats (src/wire/): JSON-RPC framing that MCP and A2A both use, SSE writing and reading
 * (eventsource-parser), each protocol's error shape, and the forwarder's header allow-lists.
 */
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Errors, GatewayError } from '../../src/core/errors.ts';
import { HeaderPolicy } from '../../src/upstream/headers.ts';
import { a2aErrorInfo, a2aJsonRpcErrorResponse, a2aRestErrorBody, httpErrorBody, openAiErrorBody, writeJsonRpcError, writeKServeError } from '../../src/wire/errors.ts';
import { RpcParseError, addResultMember, classifyBatch, parseMessage } from '../../src/wire/jsonrpc.ts';
import { SseWriter, encodeEvent, readSse, type EventSourceMessage } from '../../src/wire/sse.ts';

describe('JSON-RPC framing', () => {
  it('parses and classifies one message, keeping the parsed value', () => {
    const { message, value } = parseMessage(Buffer.from('{"jsonrpc":"2.0","id":7,"method":"tasks/get","params":{"id":"t"}}'));
    expect(message.kind).toBe('request');
    expect((value as { id: number }).id).toBe(7);
    expect(parseMessage('{"jsonrpc":"2.0","method":"notifications/x"}').message.kind).toBe('notification');
    expect(parseMessage('{"jsonrpc":"2.0","id":null,"error":{"code":1,"message":"m"}}').message.kind).toBe('response');
  });

  it('refuses bad JSON with a parse error, and a bad envelope under the id it could read', () => {
    expect(() => parseMessage('{nope')).toThrow(RpcParseError);
    try {
      parseMessage('{nope');
    } catch (err) {
      expect((err as RpcParseError).error.def).toBe(Errors.PARSE_ERROR);
      expect((err as RpcParseError).id).toBeNull();
    }
    try {
      parseMessage('{"jsonrpc":"1.0","id":"a","method":"m"}');
    } catch (err) {
      expect((err as RpcParseError).error.def).toBe(Errors.INVALID_REQUEST);
      expect((err as RpcParseError).id).toBe('a');
    }
  });

  it('classifies batches member by member (JSON-RPC 2.0 section 6)', () => {
    const { batch, items } = classifyBatch([{ jsonrpc: '2.0', id: 1, method: 'a' }, { jsonrpc: '2.0', method: 'n' }, { id: 2 }, [1]]);
    expect(batch).toBe(true);
    expect(items.map((i) => i.kind)).toEqual(['request', 'notification', 'invalid', 'invalid']);
    expect(items[2]).toMatchObject({ kind: 'invalid', id: 2 });
    expect(() => classifyBatch([])).toThrow(/empty batch/);
    expect(classifyBatch({ jsonrpc: '2.0', id: 1, method: 'a' })).toMatchObject({ batch: false, items: [{ kind: 'request' }] });
  });

  it('adds a member to a serialized result without touching the rest', () => {
    expect(addResultMember('{"jsonrpc":"2.0","id":1,"result":{"a":1}}', 'k', '"v"')).toBe('{"jsonrpc":"2.0","id":1,"result":{"k":"v","a":1}}');
    expect(addResultMember('{"jsonrpc":"2.0","id":1,"result":{}}', 'k', '1')).toBe('{"jsonrpc":"2.0","id":1,"result":{"k":1}}');
    expect(addResultMember('{"jsonrpc":"2.0","id":1,"error":{"code":1}}', 'k', '1')).toBe('{"jsonrpc":"2.0","id":1,"error":{"code":1}}');
  });
});

describe('SSE', () => {
  it('encodes ids, event types and multi-line data so that a reader gets them back', async () => {
    const text = encodeEvent({ data: 'line 1\nline 2\r\nline 3', id: '4', event: 'update' }) + encodeEvent({ data: '{"a":1}' }) + ': keepalive\n\nretry: 1500\n\n';
    expect(text.startsWith('event: update\nid: 4\ndata: line 1\ndata: line 2\ndata: line 3\n\n')).toBe(true);
    const events: EventSourceMessage[] = [];
    const comments: string[] = [];
    const retries: number[] = [];
    // Fed in awkward pieces: a reader must not depend on chunk boundaries.
    const pieces = text.match(/[\s\S]{1,5}/g)!.map((p) => Buffer.from(p));
    await readSse(Readable.from(pieces), (e) => void events.push(e), { onComment: (c) => comments.push(c), onRetry: (r) => retries.push(r) });
    expect(events).toEqual([
      { id: '4', event: 'update', data: 'line 1\nline 2\nline 3' },
      { id: undefined, event: undefined, data: '{"a":1}' },
    ]);
    expect(comments).toEqual(['keepalive']);
    expect(retries).toEqual([1500]);
  });

  it('stops reading when told to, and refuses an event over the size bound', async () => {
    const seen: string[] = [];
    const body = Readable.from([Buffer.from('data: 1\n\ndata: 2\n\ndata: 3\n\n')]);
    await readSse(body, (e) => {
      seen.push(e.data);
      return e.data === '2';
    });
    expect(seen).toEqual(['1', '2']);
    expect(body.destroyed).toBe(true);
    await expect(readSse(Readable.from([Buffer.from(`data: ${'x'.repeat(200)}`)]), () => {}, { maxEventChars: 100 })).rejects.toThrow();
  });

  describe('the writer on a real response', () => {
    let server: Server;
    let url: string;
    beforeAll(async () => {
      server = createServer((_req, res) => {
        const sse = new SseWriter(res, { 'x-stream': 'yes' }, 0, { retryMs: 2000 });
        sse.send('{"jsonrpc":"2.0","method":"m"}', '1_1');
        sse.event({ data: 'plain' });
        sse.comment('a\nb');
        sse.end();
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));

    it('writes the stream headers, retry, events and comments', async () => {
      const { res, body } = await new Promise<{ res: IncomingMessage; body: string }>((resolve, reject) => {
        request(url, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => resolve({ res, body }));
        })
          .on('error', reject)
          .end();
      });
      expect(res.headers['content-type']).toBe('text/event-stream');
      expect(res.headers['x-stream']).toBe('yes');
      expect(body).toBe('retry: 2000\n\nevent: message\nid: 1_1\ndata: {"jsonrpc":"2.0","method":"m"}\n\ndata: plain\n\n: a b\n\n');
    });
  });
});

describe('error shapes', () => {
  const limited = new GatewayError(Errors.RATE_LIMITED, 'Rate limit exceeded for you', { data: { retryAfterMs: 1000 }, headers: { 'retry-after': '1' } });

  it('OpenAI: {error:{message,type,param,code}}', () => {
    expect(JSON.parse(openAiErrorBody(limited))).toEqual({ error: { message: 'Rate limit exceeded for you', type: 'rate_limit_error', param: null, code: 'TG_RATE_LIMITED' } });
    expect(JSON.parse(openAiErrorBody(new GatewayError(Errors.INVALID_PARAMS, 'bad max_tokens', { data: { param: 'max_tokens' } })))).toMatchObject({
      error: { type: 'invalid_request_error', param: 'max_tokens' },
    });
    expect(JSON.parse(openAiErrorBody(new GatewayError(Errors.UPSTREAM_UNAVAILABLE))).error.type).toBe('server_error');
  });

  it('A2A REST: google.rpc.Status with the stable code as ErrorInfo reason', () => {
    expect(JSON.parse(a2aRestErrorBody(limited))).toEqual({
      error: {
        code: 429,
        status: 'RESOURCE_EXHAUSTED',
        message: 'Rate limit exceeded for you',
        details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'TG_RATE_LIMITED', domain: 'tollgate.dev', metadata: { retryAfterMs: '1000' } }],
      },
    });
  });

  it('A2A: an error of the A2A specification carries its reason in the domain a2a-protocol.org, the stable code in metadata', () => {
    const notFound = new GatewayError(Errors.A2A_TASK_NOT_FOUND, 'Task t1 not found');
    const info = { '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'TASK_NOT_FOUND', domain: 'a2a-protocol.org', metadata: { code: 'TG_A2A_TASK_NOT_FOUND' } };
    expect(JSON.parse(a2aRestErrorBody(notFound))).toEqual({ error: { code: 404, status: 'NOT_FOUND', message: 'Task t1 not found', details: [info] } });
    expect(JSON.parse(a2aJsonRpcErrorResponse(7, notFound))).toEqual({ jsonrpc: '2.0', id: 7, error: { code: -32001, message: 'Task t1 not found', data: [info] } });
    const version = new GatewayError(Errors.A2A_VERSION_NOT_SUPPORTED, 'no', { data: { supported: ['1.0', '0.3'] } });
    expect(a2aErrorInfo(version)).toMatchObject({ reason: 'VERSION_NOT_SUPPORTED', metadata: { code: 'TG_A2A_VERSION_NOT_SUPPORTED', supported: '["1.0","0.3"]' } });
    // Every A2A error code of the registry (-32001..-32009) has its reason; other errors keep the gateway's shape.
    for (const def of Object.values(Errors)) if (def.rpc <= -32001 && def.rpc >= -32009 && def.code.startsWith('TG_A2A_')) expect(a2aErrorInfo(new GatewayError(def)).domain, def.code).toBe('a2a-protocol.org');
    expect(JSON.parse(a2aJsonRpcErrorResponse(1, limited)).error.data).toEqual({ code: 'TG_RATE_LIMITED', retryAfterMs: 1000 });
  });

  it('plain HTTP: {error:{code,message}}', () => {
    expect(JSON.parse(httpErrorBody(new GatewayError(Errors.PAYLOAD_TOO_LARGE)))).toEqual({ error: { code: 'TG_PAYLOAD_TOO_LARGE', message: 'Request body exceeds the configured limit' } });
  });

  describe('written on a real response', () => {
    let server: Server;
    let url: string;
    beforeAll(async () => {
      server = createServer((req, res) => {
        if (req.url === '/jsonrpc') writeJsonRpcError(res, 3, limited);
        else if (req.url === '/jsonrpc-transport') writeJsonRpcError(res, null, new GatewayError(Errors.PARSE_ERROR));
        else writeKServeError(res, new GatewayError(Errors.UPSTREAM_TIMEOUT, 'Upstream triton timed out'));
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));

    it('JSON-RPC: in-band errors answering a request are HTTP 200, transport errors keep their status', async () => {
      const inBand = await fetch(`${url}/jsonrpc`);
      expect(inBand.status).toBe(200);
      expect(inBand.headers.get('retry-after')).toBe('1');
      expect(await inBand.json()).toEqual({ jsonrpc: '2.0', id: 3, error: { code: -32064, message: 'Rate limit exceeded for you', data: { code: 'TG_RATE_LIMITED', retryAfterMs: 1000 } } });
      const transport = await fetch(`${url}/jsonrpc-transport`);
      expect(transport.status).toBe(400);
      expect(await transport.json()).toMatchObject({ id: null, error: { code: -32700 } });
    });

    it('KServe: {"error": message, "code": stable code} with the HTTP status', async () => {
      const res = await fetch(`${url}/kserve`);
      expect(res.status).toBe(504);
      expect(await res.json()).toEqual({ error: 'Upstream triton timed out', code: 'TG_UPSTREAM_TIMEOUT' });
    });
  });
});

describe('header allow-lists', () => {
  const policy = new HeaderPolicy({ request: ['content-type', 'x-a2a-*', 'a2a-version'], response: ['content-type'] });

  it('copies only listed caller headers, never hop-by-hop ones, never the caller credentials', () => {
    expect(
      policy.requestHeaders({
        'content-type': 'application/json',
        'x-a2a-extensions': 'e',
        'a2a-version': '1.0',
        authorization: 'Bearer caller',
        cookie: 'c',
        connection: 'keep-alive, x-a2a-hop',
        'x-a2a-hop': 'gone',
        'transfer-encoding': 'chunked',
        host: 'gw',
        'content-length': '5',
        'x-other': 'o',
      }),
    ).toEqual({ 'content-type': 'application/json', 'x-a2a-extensions': 'e', 'a2a-version': '1.0' });
    expect(policy.responseHeaders({ 'content-type': 'text/plain', 'set-cookie': ['s'], 'keep-alive': 'timeout=5', server: 'x' })).toEqual({ 'content-type': 'text/plain' });
  });

  it('refuses an allow-list that would forward credentials or hop-by-hop headers', () => {
    expect(() => new HeaderPolicy({ request: ['authorization'], response: [] })).toThrow(/credentials/);
    expect(() => new HeaderPolicy({ request: ['co*'], response: [] })).toThrow(/credentials/);
    expect(() => new HeaderPolicy({ request: [], response: ['transfer-encoding'] })).toThrow(/hop-by-hop/);
    expect(() => new HeaderPolicy({ request: ['X-Upper'], response: [] })).toThrow(/lowercase/);
  });
});
