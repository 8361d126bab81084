/**
 * Hostile clients, each while a steady load of MCP calls runs (errors recorded by kind, recovery measured):
 * - slowloris: headers trickled byte by byte, a body trickled after its headers: cut at headersTimeoutMs /
 *   requestTimeoutMs (408), the load unaffected;
 * - a few thousand idle connections: the ones past maxConnections are closed at once, the others when they have sent
 *   no request within headersTimeoutMs; memory stays bounded; calls served again right after;
 * - clients that never read their answer (a streamed completion, a big MCP answer over SSE): cut off after
 *   slowClientMs / maxBufferedBytes, the upstream released, the gateway's RSS bounded;
 * - request smuggling (Content-Length with Transfer-Encoding, two Content-Lengths, obfuscated Transfer-Encoding):
 *   refused with 400, the connection closed, nothing reaches an upstream.
 */
import { createServer, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { listenLoopback } from '../helpers/net.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GATEWAY_YAML, eventually, mcpBackend, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { LLAMA, LLAMA_UPSTREAM, modelsRoute, openaiBackend } from '../helpers/openai-gateway.ts';
import { rawMcpSession, steadyLoad, type SteadyLoad } from '../helpers/steady-load.ts';
import { startVllm, type VllmServer } from '../helpers/vllm-server.ts';

const HEADERS_TIMEOUT_MS = 4_000;
const REQUEST_TIMEOUT_MS = 5_000;
const MAX_CONNECTIONS = 1_000;

let fixture: FixtureServer;
let sseFixture: FixtureServer;
let vllm: VllmServer;
let gw: TestGateway;
let port: number;
let firehose: Server;
/** Chunks the firehose backend wrote, and whether its last stream was closed by the gateway. */
let fire = { chunks: 0, closed: false };

/**
 * An OpenAI-format backend that streams completion chunks as fast as it may (it honours backpressure, as a real
 * server's socket does): the gateway must hold it back and cut the client that does not read.
 */
function startFirehose(): Promise<number> {
  firehose = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    fire = { chunks: 0, closed: false };
    res.on('close', () => (fire.closed = true));
    const chunk = Buffer.from(`data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: LLAMA_UPSTREAM, choices: [{ index: 0, delta: { content: 'x'.repeat(900) }, finish_reason: null }] })}\n\n`);
    const pump = (): void => {
      while (!res.destroyed) {
        fire.chunks++;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
    };
    pump();
  });
  return listenLoopback(firehose, 0);
}

beforeAll(async () => {
  fixture = await startHttpMcpServer({ name: 'fixture', json: true });
  sseFixture = await startHttpMcpServer({ name: 'ssefix' });
  vllm = await startVllm({ name: 'llm', models: [LLAMA_UPSTREAM] });
  const firePort = await startFirehose();
  gw = await startTestGateway(
    {
      'mcp.yaml': mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']),
      'sse.yaml': mcpBackend('ssefix', { url: sseFixture.url }) + route('sse', '/sse-mcp', ['ssefix']),
      'models.yaml':
        openaiBackend('llm', { url: vllm.url, healthCheck: { enabled: false } }) +
        modelsRoute('models', ['llm'], { models: [{ name: LLAMA, backend: 'llm', model: LLAMA_UPSTREAM }] }),
      'fire.yaml':
        openaiBackend('fire', { url: `http://127.0.0.1:${firePort}`, healthCheck: { enabled: false } }) +
        modelsRoute('fire', ['fire'], { models: [{ name: 'firehose', backend: 'fire', model: LLAMA_UPSTREAM }] }, '/fire/v1'),
    },
    {
      gatewayYaml: `${GATEWAY_YAML}  http: { headersTimeoutMs: ${HEADERS_TIMEOUT_MS}, requestTimeoutMs: ${REQUEST_TIMEOUT_MS}, maxConnections: ${MAX_CONNECTIONS}, maxBufferedBytes: 262144, slowClientMs: 1000 }\n`,
    },
  );
  port = Number(new URL(gw.url).port);
});

afterAll(async () => {
  await gw?.stop();
  await fixture?.close();
  await sseFixture?.close();
  await vllm?.stop();
  firehose?.close();
});

/** A steady load of echo calls in one MCP session, each on its own connection. */
async function echoLoad(workers = 2): Promise<SteadyLoad> {
  const s = await rawMcpSession(`${gw.url}/mcp`, gw.authHeaders());
  const load = steadyLoad(workers, (w, i) => s.call('fixture__echo', { message: `m${w}-${i}` }, `m${w}-${i}`), { maxCalls: 20_000, pauseMs: 10 });
  await load.more(10);
  return load;
}

interface RawConn {
  readonly socket: Socket;
  data: string;
  readonly closed: Promise<number>;
}

function open(): Promise<RawConn> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const t0 = performance.now();
    const c: RawConn = {
      socket,
      data: '',
      closed: new Promise((r) => socket.once('close', () => r(performance.now() - t0))),
    };
    socket.on('data', (d: Buffer) => (c.data += d.toString('latin1')));
    socket.on('error', () => {});
    socket.once('connect', () => resolve(c));
    socket.once('error', reject);
  });
}

function rss(): number {
  return process.memoryUsage().rss;
}

describe('slowloris', () => {
  it('cuts a client trickling its headers at headersTimeoutMs, and one trickling its body at requestTimeoutMs; the load carries on', async () => {
    const load = await echoLoad();
    try {
      const t0 = performance.now();
      const headers = await open();
      const body = await open();
      const request = 'POST /mcp HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n';
      body.socket.write(`${request}authorization: ${gw.authHeaders().authorization}\r\naccept: application/json, text/event-stream\r\n\r\n{`);
      let i = 0;
      const drip = setInterval(() => {
        if (!headers.socket.destroyed) headers.socket.write(request[i++ % request.length]!);
        if (!body.socket.destroyed) body.socket.write(' ');
      }, 100);
      try {
        const [hMs, bMs] = await Promise.all([headers.closed, body.closed]);
        // Node checks every connectionsCheckingInterval (1 s here): cut within timeout + a check + scheduling.
        expect(hMs).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 50);
        expect(hMs).toBeLessThan(HEADERS_TIMEOUT_MS + 3_000);
        expect(bMs).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 50);
        expect(bMs).toBeLessThan(REQUEST_TIMEOUT_MS + 3_000);
        expect(headers.data).toMatch(/^HTTP\/1\.1 408/);
        expect(body.data).toMatch(/^HTTP\/1\.1 408/);
      } finally {
        clearInterval(drip);
      }
      await load.more(10);
      const kinds = load.kinds(t0);
      expect(Object.keys(kinds), JSON.stringify(kinds)).toEqual(['ok']);
      console.log(`[resil] slowloris: load during ${JSON.stringify(kinds)}`);
    } finally {
      await load.stop();
    }
  });
});

describe('idle connections', () => {
  it(`3000 idle connections: never more than maxConnections (${MAX_CONNECTIONS}) held, past it closed at once, the rest after headersTimeoutMs; calls served again after`, async () => {
    const load = await echoLoad(1);
    const conns: RawConn[] = [];
    try {
      const rss0 = rss();
      let drops = 0;
      let most = 0;
      const onDrop = (): void => void drops++;
      gw.server.server.on('drop', onDrop);
      const sampler = setInterval(() => gw.server.server.getConnections((_, n) => (most = Math.max(most, n))), 20);
      const t0 = performance.now();
      let opened = 0;
      let rssPeak = 0;
      let allClosed = 0;
      try {
        // Opened in bursts of 250 at once (under the listen backlog), as a flood would.
        for (let i = 0; i < 12; i++) conns.push(...(await Promise.all(Array.from({ length: 250 }, () => open()))));
        opened = performance.now();
        rssPeak = rss();
        // Every one is closed by the gateway (we never close them): past the cap at once, the others at the timeout.
        await Promise.all(conns.map((c) => c.closed));
        allClosed = performance.now();
      } finally {
        clearInterval(sampler);
        gw.server.server.off('drop', onDrop);
      }
      expect(drops).toBeGreaterThan(0);
      // Connections the test's own load opened count too: a little slack over the cap.
      expect(most).toBeLessThanOrEqual(MAX_CONNECTIONS + 5);
      expect(allClosed - opened).toBeLessThan(HEADERS_TIMEOUT_MS + 4_000);
      await eventually(() => load.recoveredAfter(allClosed, 5) !== undefined, 10_000, 'calls served again');
      const recovery = load.recoveredAfter(allClosed, 5)!;
      const kinds = load.kinds(t0);
      // While the cap was reached, new connections (the load's too) were refused by the kernel or closed: never a
      // wrong answer, never a hang.
      expect(Object.keys(kinds).filter((k) => k !== 'ok' && !k.startsWith('throw-'))).toEqual([]);
      console.log(
        `[resil] idle connections: 3000 opened in ${(opened - t0).toFixed(0)} ms, at most ${most} held, ${drops} dropped at the cap, all closed by the gateway ${(allClosed - t0).toFixed(0)} ms; load ${JSON.stringify(kinds)}; recovery ${recovery.toFixed(0)} ms; RSS +${((rssPeak - rss0) / 1e6).toFixed(1)} MB (test process and gateway)`,
      );
    } finally {
      for (const c of conns) c.socket.destroy();
      await load.stop();
    }
  });
});

describe('clients that never read', () => {
  it('a streamed completion nobody reads is cut off after slowClientMs; the gateway memory stays bounded', async () => {
    const load = await echoLoad(1);
    try {
      const c = await open();
      const rss0 = rss();
      const body = JSON.stringify({ model: 'firehose', messages: [{ role: 'user', content: 'go' }], stream: true });
      c.socket.write(
        `POST /fire/v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: ${gw.authHeaders().authorization}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      // Read the status line, then never again.
      await eventually(() => c.data.includes('200 OK'), 5_000, 'stream started');
      c.socket.pause();
      const t0 = performance.now();
      await eventually(() => gw.server.slowClientsCut > 0, 15_000, 'slow client cut off');
      const cutMs = performance.now() - t0;
      const growth = rss() - rss0;
      // Bounded: backpressure held the backend back (what it wrote fits in the sockets' buffers), and it was let go.
      await eventually(() => fire.closed, 5_000, 'backend stream closed by the gateway');
      const sent = fire.chunks * 1_000;
      expect(sent).toBeLessThan(64 * 1024 * 1024);
      expect(growth).toBeLessThan(64 * 1024 * 1024);
      await eventually(() => gw.server.inFlight === 0 || gw.server.inFlight === 1, 5_000, 'exchange released');
      c.socket.destroy();
      await load.more(5);
      expect(Object.keys(load.kinds())).toEqual(['ok']);
      console.log(`[resil] never-read completion stream: cut after ${cutMs.toFixed(0)} ms, backend wrote ${(sent / 1e6).toFixed(1)} MB before backpressure held it, RSS +${(growth / 1e6).toFixed(1)} MB`);
    } finally {
      await load.stop();
    }
  });

  it('a big MCP answer over SSE nobody reads is cut off once more than maxBufferedBytes wait', async () => {
    const s = await rawMcpSession(`${gw.url}/sse-mcp`, gw.authHeaders());
    const c = await open();
    const cutBefore = gw.server.slowClientsCut;
    const body = JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'ssefix__big', arguments: { kb: 16_384 } } });
    c.socket.write(
      `POST /sse-mcp HTTP/1.1\r\nhost: x\r\nauthorization: ${gw.authHeaders().authorization}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\nmcp-session-id: ${s.id}\r\nmcp-protocol-version: 2025-06-18\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    c.socket.pause();
    await eventually(() => gw.server.slowClientsCut > cutBefore, 15_000, 'slow SSE client cut off');
    // The gateway let go of it (the paused client itself only sees the close once it reads again).
    await eventually(() => gw.server.inFlight === 0, 5_000, 'response released');
    c.socket.destroy();
    // The session is still usable on a fresh connection.
    expect(await s.call('ssefix__echo', { message: 'fine' }, 'fine')).toBe('ok');
  });
});

describe('request smuggling', () => {
  const attempts: Array<[string, string]> = [
    ['Content-Length with Transfer-Encoding', 'content-length: 4\r\ntransfer-encoding: chunked\r\n'],
    ['two different Content-Lengths', 'content-length: 4\r\ncontent-length: 40\r\n'],
    ['Transfer-Encoding with a space before the colon', 'transfer-encoding : chunked\r\ncontent-length: 4\r\n'],
    ['Transfer-Encoding folded onto the next line', 'transfer-encoding:\r\n chunked\r\n'],
    ['Transfer-Encoding not ending in chunked', 'transfer-encoding: chunked, identity\r\n'],
  ];
  for (const [name, header] of attempts) {
    it(`refuses ${name} with 400 and closes the connection; nothing reaches an upstream`, async () => {
      const seen = vllm.seen.length;
      const c = await open();
      const smuggled = 'GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n';
      c.socket.write(
        `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: ${gw.authHeaders().authorization}\r\ncontent-type: application/json\r\n${header}\r\n0\r\n\r\n${smuggled}`,
      );
      await c.closed;
      expect(c.data).toMatch(/^HTTP\/1\.1 400 /);
      // One answer only: the smuggled request was never parsed as a second one.
      expect(c.data.match(/HTTP\/1\.1 /g)).toHaveLength(1);
      expect(vllm.seen.length).toBe(seen);
    });
  }
});
