/**
 * The body limit holds while a body streams in, not only when its length is declared: a chunked POST (no
 * Content-Length) that grows past `http.maxBodyBytes` is refused with 413 as soon as it crosses the limit, while
 * the client is still sending, even when the body would have been a valid request. Without that check the gateway
 * buffers whatever a caller sends (memory DoS) and the declared-length tests stay green.
 */
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { GATEWAY_YAML, mcpBackend, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';

const LIMIT = 64 * 1024;
/** What the client is ready to send: far beyond the limit, so an unchecked gateway visibly reads it all. */
const TOTAL = 16 * 1024 * 1024;
const CHUNK = 16 * 1024;
/** A route's own, smaller limit. */
const SMALL = 4 * 1024;

let fixture: FixtureServer;
let gw: TestGateway;

beforeAll(async () => {
  fixture = await startHttpMcpServer({ name: 'fixture' });
  gw = await startTestGateway(
    { 'mcp.yaml': mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']) + route('small', '/small', ['fixture'], { http: { maxBodyBytes: SMALL } }) },
    { gatewayYaml: GATEWAY_YAML.replace('spec:\n', `spec:\n  http: { maxBodyBytes: ${LIMIT} }\n`) },
  );
});

afterAll(async () => {
  await gw?.stop();
  await fixture?.close();
});

interface Streamed {
  readonly status: number;
  readonly body: string;
  /** Bytes the client had handed to the socket when the response head arrived. */
  readonly sentWhenAnswered: number;
  /** Whether the client got to the end of its body before the answer. */
  readonly finished: boolean;
}

/**
 * POSTs `head` + padding + `tail` as a chunked body (node:http sends Transfer-Encoding: chunked when no length is
 * set), a chunk per event-loop turn so that an early answer is seen while the body is still being sent.
 */
function streamPost(path: string, headers: Record<string, string>, head: string, tail: string): Promise<Streamed> {
  const u = new URL(path, gw.url);
  return new Promise((resolve, reject) => {
    let sent = 0;
    let answered: IncomingMessage | undefined;
    let finished = false;
    const req: ClientRequest = request(
      { host: u.hostname, port: u.port, path: `${u.pathname}${u.search}`, method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers } },
      (res) => {
        answered = res;
        const sentWhenAnswered = sent;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          req.destroy();
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), sentWhenAnswered, finished });
        });
        res.on('error', reject);
      },
    );
    req.on('error', (err) => {
      // The gateway may close the connection after answering; only an error before any answer is a failure.
      if (!answered) reject(err);
    });
    expect(req.getHeader('content-length')).toBeUndefined();
    const pad = Buffer.alloc(CHUNK, 'x');
    const pump = (): void => {
      if (answered || req.destroyed) return;
      if (sent === 0) {
        req.write(head);
        sent += head.length;
      } else if (sent + CHUNK + tail.length < TOTAL) {
        req.write(pad);
        sent += CHUNK;
      } else {
        finished = true;
        req.end(tail);
        sent += tail.length;
        return;
      }
      setImmediate(pump);
    };
    pump();
  });
}

/** POSTs a whole body in two writes without a length (chunked); resolves with the status and the response text. */
function chunkedPost(path: string, headers: Record<string, string>, body: string): Promise<{ status: number; text: string }> {
  const u = new URL(path, gw.url);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers } },
      (r) => {
        let text = '';
        r.on('data', (c: Buffer) => (text += c.toString()));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject);
    req.write(body.slice(0, 1000));
    req.end(body.slice(1000));
  });
}

describe('body limit on a streamed (chunked) body', () => {
  it('refuses a chunked session-era request with 413 once it crosses the limit, while it is still being sent', async () => {
    // Valid JSON-RPC all the way: only the size is wrong, so nothing but the limit can refuse it.
    const head = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'big', version: '1' }, pad: '' } }).slice(0, -3);
    const r = await streamPost('/mcp', gw.authHeaders(), head, '"}}');
    expect(r.status).toBe(413);
    expect((JSON.parse(r.body) as { error: { code: number; data: { code: string } } }).error).toMatchObject({ code: -32600, data: { code: 'TG_PAYLOAD_TOO_LARGE' } });
    expect(r.finished).toBe(false);
    expect(r.sentWhenAnswered).toBeLessThan(TOTAL / 2);
  });

  it('refuses a chunked 2026-07-28 request the same way', async () => {
    const meta = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {}, 'io.modelcontextprotocol/clientInfo': { name: 'big', version: '1' } };
    const head = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list', params: { _meta: meta, pad: '' } }).slice(0, -3);
    const r = await streamPost('/mcp', { ...gw.authHeaders(), 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/list' }, head, '"}}');
    expect(r.status).toBe(413);
    expect(r.finished).toBe(false);
  });

  it('refuses a chunked message POST of the legacy HTTP+SSE transport the same way', async () => {
    const controller = new AbortController();
    const stream = await fetch(`${gw.url}/mcp/sse`, { headers: { accept: 'text/event-stream', ...gw.authHeaders() }, signal: controller.signal });
    expect(stream.status).toBe(200);
    try {
      const reader = stream.body!.getReader();
      let text = '';
      while (!/event: endpoint\r?\ndata: (\S+)/.test(text)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended before the endpoint event: ${text}`);
        text += new TextDecoder().decode(value);
      }
      const endpoint = /event: endpoint\r?\ndata: (\S+)/.exec(text)![1]!;
      const head = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 'big', version: '1' }, pad: '' } }).slice(0, -3);
      const r = await streamPost(endpoint, gw.authHeaders(), head, '"}}');
      expect(r.status).toBe(413);
      expect(r.finished).toBe(false);
    } finally {
      controller.abort();
    }
  });

  it("applies a route's own smaller limit to a streamed body", async () => {
    // Over the route's 4 KiB, well under the Gateway's 64 KiB: only the route's limit refuses it.
    const meta = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {}, 'io.modelcontextprotocol/clientInfo': { name: 'big', version: '1' } };
    const body = JSON.stringify({ jsonrpc: '2.0', id: 4, method: 'tools/list', params: { _meta: meta, pad: 'z'.repeat(3 * SMALL) } });
    const headers = { ...gw.authHeaders(), 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/list' };
    expect((await chunkedPost('/small', headers, body)).status).toBe(413);
    expect((await chunkedPost('/mcp', headers, body)).status).toBe(200);
  });

  it('refuses a declared Content-Length over the limit at once, before any of the body arrives', async () => {
    const u = new URL('/mcp', gw.url);
    const r = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(
        { host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'content-length': String(LIMIT + 1), ...gw.authHeaders() } },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => {
            req.destroy();
            resolve({ status: res.statusCode ?? 0, text });
          });
        },
      );
      req.on('error', (err) => reject(err));
      // A few bytes of a body that claims LIMIT + 1: only the declared length can decide now.
      req.write('{"jsonrpc":');
    });
    expect(r.status).toBe(413);
    expect((JSON.parse(r.text) as { error: { message: string } }).error.message).toContain(`exceeds ${LIMIT} bytes`);
  });

  it('takes a body of exactly the limit, declared or streamed', async () => {
    const meta = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {}, 'io.modelcontextprotocol/clientInfo': { name: 'exact', version: '1' } };
    const shell = JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/list', params: { _meta: meta, pad: '' } });
    const body = shell.replace('"pad":""', `"pad":"${'p'.repeat(LIMIT - Buffer.byteLength(shell))}"`);
    expect(Buffer.byteLength(body)).toBe(LIMIT);
    const headers = { ...gw.authHeaders(), 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/list' };
    expect((await chunkedPost('/mcp', headers, body)).status).toBe(200);
    const declared = await fetch(`${gw.url}/mcp`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers }, body });
    expect(declared.status).toBe(200);
    await declared.text();
    // One byte more is refused, streamed, with the limit named.
    const over = await chunkedPost('/mcp', headers, body.replace('"pad":"', '"pad":"p'));
    expect(over.status).toBe(413);
    expect((JSON.parse(over.text) as { error: { message: string } }).error.message).toContain(`exceeds ${LIMIT} bytes`);
  });

  it('still serves a chunked body under the limit', async () => {
    const meta = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {}, 'io.modelcontextprotocol/clientInfo': { name: 'small', version: '1' } };
    const body = JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'fixture__echo', arguments: { message: 'y'.repeat(LIMIT / 2) }, _meta: meta } });
    const res = await chunkedPost('/mcp', { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': 'fixture__echo', ...gw.authHeaders() }, body);
    expect(res.status).toBe(200);
    expect(res.text).toContain('y'.repeat(100));
  });
});
