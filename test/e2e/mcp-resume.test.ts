/**
 * Streams that survive a dropped connection (2025-11-25 resumability), both sides of the gateway, with the official
 * SDKs:
 * - upstream side: an SDK server with an event store closes its SSE response mid-call (`closeSSEStream`) and
 *   expects the client to come back with GET + Last-Event-ID after its `retry`; the gateway, as that client, does
 *   and delivers the final response to its caller (a 1.x client, and a v2 client pinned to 2026-07-28);
 * - gateway side: a client (1.x, and v2 in the session era) whose connection to the gateway breaks mid-call resumes
 *   through the gateway with Last-Event-ID and gets every progress notification and the result; the gateway's
 *   streams start with `retry` and a priming event, so a connection lost before the first message resumes too.
 * A TCP hop between client and gateway breaks the connections (`drop()`) and records what the client sent.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer as createTcpServer, connect, type Server as TcpServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { IncomingMessage } from 'node:http';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { InMemoryEventStore } from '@modelcontextprotocol/sdk/examples/shared/inMemoryEventStore.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { CallToolRequestSchema, ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { Client as V2Client, StreamableHTTPClientTransport as V2Transport } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { serveSdkSessions, type SdkSessions } from '../helpers/sdk-sessions.ts';
import { mcpBackend, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** An SDK server whose `interrupted` tool closes its SSE response after the first progress, then finishes. */
function interruptingServer(): Server {
  const server = new Server({ name: 'interrupting', version: '1.0.0' }, { capabilities: { tools: {} } });
  server.setRequestHandler(ListToolsRequestSchema, () => ({
    tools: [{ name: 'interrupted', description: 'Closes its SSE stream mid-call, then answers', inputSchema: { type: 'object', properties: {} } }],
  }));
  server.setRequestHandler(CallToolRequestSchema, async (req, extra) => {
    const token = req.params._meta?.progressToken;
    const progress = (n: number): Promise<void> =>
      token === undefined ? Promise.resolve() : extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: n, total: 2 } });
    await progress(1);
    if (!extra.closeSSEStream) throw new Error('no closeSSEStream: the transport has no event store');
    extra.closeSSEStream();
    // Sent while the client has no stream: kept by the event store, replayed when it resumes.
    await sleep(150);
    await progress(2);
    return { content: [{ type: 'text', text: 'finished after the stream was closed' }] };
  });
  return server;
}

/** A TCP hop in front of the gateway: `drop()` breaks every open connection; `sent`/`received`: bytes each way. */
interface Hop {
  readonly url: string;
  sent: string;
  received: string;
  drop(): number;
  close(): Promise<void>;
}

async function tcpHop(target: string): Promise<Hop> {
  const t = new URL(target);
  const pairs = new Set<[Socket, Socket]>();
  const hop: Hop = {
    url: '',
    sent: '',
    received: '',
    drop: () => {
      const n = pairs.size;
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      pairs.clear();
      return n;
    },
    close: () => new Promise((r) => server.close(() => r())),
  };
  const server: TcpServer = createTcpServer((client) => {
    const up = connect(Number(t.port), t.hostname);
    const pair: [Socket, Socket] = [client, up];
    pairs.add(pair);
    client.on('data', (c: Buffer) => (hop.sent += c.toString('latin1')));
    up.on('data', (c: Buffer) => (hop.received += c.toString('latin1')));
    client.pipe(up);
    up.pipe(client);
    const end = (): void => {
      pairs.delete(pair);
      client.destroy();
      up.destroy();
    };
    client.on('close', end);
    up.on('close', end);
    client.on('error', end);
    up.on('error', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  (hop as { url: string }).url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return hop;
}

let interrupting: SdkSessions;
const upstreamGets: Array<string | undefined> = [];
let fixture: FixtureServer;
let gw: TestGateway;
let hop: Hop;

beforeAll(async () => {
  interrupting = await serveSdkSessions(interruptingServer, {
    eventStore: () => new InMemoryEventStore(),
    retryInterval: 100,
    onRequest: (req: IncomingMessage) => {
      if (req.method === 'GET') upstreamGets.push(req.headers['last-event-id'] as string | undefined);
    },
  });
  fixture = await startHttpMcpServer({ name: 'fixture' });
  gw = await startTestGateway(
    { 'mcp.yaml': mcpBackend('closer', { url: interrupting.url }) + mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['closer', 'fixture'], { auth: { anonymous: true } }) },
    {},
  );
  hop = await tcpHop(gw.url);
});

afterAll(async () => {
  await hop?.close();
  await gw?.stop();
  await interrupting?.close();
  await fixture?.close();
});

describe('upstream side: an upstream that closes its SSE stream mid-call', () => {
  it('is resumed with GET + Last-Event-ID after its retry; the 1.x client gets the progress and the result', async () => {
    const client = new Client({ name: 'resume-1x', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp`)));
    try {
      const before = upstreamGets.filter((h) => h !== undefined).length;
      const progress: number[] = [];
      const r = await client.callTool({ name: 'closer__interrupted', arguments: {} }, undefined, { onprogress: (p) => progress.push(p.progress), timeout: 20_000 });
      expect(r.content).toEqual([{ type: 'text', text: 'finished after the stream was closed' }]);
      expect(progress).toEqual([1, 2]);
      // The gateway came back for the broken stream, naming the last event it had.
      expect(upstreamGets.filter((h) => h !== undefined).length).toBeGreaterThan(before);
    } finally {
      await client.close();
    }
  });

  it('the same for a v2 client pinned to 2026-07-28 (stateless downstream, session-era upstream)', async () => {
    const client = new V2Client({ name: 'resume-v2', version: '1.0.0' }, { capabilities: {}, versionNegotiation: { mode: { pin: '2026-07-28' } } });
    await client.connect(new V2Transport(new URL(`${gw.url}/mcp`)));
    try {
      const r = await client.callTool({ name: 'closer__interrupted', arguments: {} }, { timeout: 20_000 });
      expect(r.content).toEqual([{ type: 'text', text: 'finished after the stream was closed' }]);
    } finally {
      await client.close();
    }
  });
});

/** Calls fixture__slow (a progress every 100 ms) through the hop; breaks the connection after `dropAfter` progress. */
async function droppedCall(callTool: (onprogress: (p: { progress: number }) => void) => Promise<{ content?: unknown }>, dropAfter: number): Promise<{ text: string; progress: number[]; dropped: number }> {
  const progress: number[] = [];
  let dropped = 0;
  const r = await callTool((p) => {
    progress.push(p.progress);
    if (progress.length === dropAfter) dropped = hop.drop();
  });
  return { text: (r.content as Array<{ text: string }>)[0]!.text, progress, dropped };
}

describe('gateway side: a client whose connection breaks mid-call resumes through the gateway', () => {
  const reconnection = { initialReconnectionDelay: 100, maxReconnectionDelay: 1000, reconnectionDelayGrowFactor: 1.5, maxRetries: 5 };

  it('1.x client: Last-Event-ID, every progress notification once, then the result', async () => {
    const client = new Client({ name: 'drop-1x', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${hop.url}/mcp`), { reconnectionOptions: reconnection }));
    try {
      hop.sent = '';
      const r = await droppedCall((onprogress) => client.callTool({ name: 'fixture__slow', arguments: { steps: 6 } }, undefined, { onprogress, timeout: 20_000 }) as Promise<{ content?: unknown }>, 2);
      expect(r.dropped).toBeGreaterThan(0);
      expect(r.text).toBe('done after 6 steps');
      expect(r.progress).toEqual([1, 2, 3, 4, 5, 6]);
      expect(hop.sent).toMatch(/^GET \/mcp HTTP\/1\.1$/m);
      expect(hop.sent).toMatch(/^last-event-id: \d+_\d+\r$/im);
    } finally {
      await client.close().catch(() => {});
    }
  });

  it('v2 client (session era): the same', async () => {
    const client = new V2Client({ name: 'drop-v2', version: '1.0.0' }, { capabilities: {} });
    await client.connect(new V2Transport(new URL(`${hop.url}/mcp`), { reconnectionOptions: reconnection }));
    try {
      hop.sent = '';
      const r = await droppedCall((onprogress) => client.callTool({ name: 'fixture__slow', arguments: { steps: 6 } }, { onprogress, timeout: 20_000 }) as Promise<{ content?: unknown }>, 3);
      expect(r.dropped).toBeGreaterThan(0);
      expect(r.text).toBe('done after 6 steps');
      expect(r.progress).toEqual([1, 2, 3, 4, 5, 6]);
      expect(hop.sent).toMatch(/^last-event-id: \d+_\d+\r$/im);
    } finally {
      await client.close().catch(() => {});
    }
  });

  it('the stream starts with retry and a priming event: a connection lost before the first message resumes from it', async () => {
    hop.received = '';
    const client = new Client({ name: 'drop-early', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${hop.url}/mcp`), { reconnectionOptions: reconnection }));
    try {
      // The session's GET stream is primed too: let it open first, so the priming seen below is the call's.
      for (let i = 0; i < 2000 && !/\ndata: \n\n/.test(hop.received); i++) await sleep(1);
      hop.sent = '';
      hop.received = '';
      const progress: number[] = [];
      const call = client.callTool({ name: 'fixture__slow', arguments: { steps: 4 } }, undefined, { onprogress: (p) => progress.push(p.progress), timeout: 20_000 });
      call.catch(() => {}); // awaited below; a failed assertion before that must not leave it unhandled
      // The first progress comes 100 ms after the call: break the connection once the call's stream head arrived
      // (what comes back after the tools/call went out; the session's GET stream was opened at connect).
      for (let i = 0; i < 500 && !/"method":"tools\/call"/.test(hop.sent); i++) await sleep(1);
      const from = hop.received.length;
      for (let i = 0; i < 500 && !/\ndata: \n\n/.test(hop.received.slice(from)); i++) await sleep(1);
      const head = hop.received.slice(from);
      // (chunked encoding: the two events may sit in separate chunks) retry first, then the priming event.
      expect(head).toMatch(/retry: 1000\n\n[\s\S]*id: \d+_0\ndata: \n\n/);
      await sleep(20); // what the hop saw has reached the client
      const beforeFirst = progress.length === 0;
      expect(hop.drop()).toBeGreaterThan(0);
      const r = await call;
      expect((r.content as Array<{ text: string }>)[0]!.text).toBe('done after 4 steps');
      expect(progress).toEqual([1, 2, 3, 4]);
      // Resumed from the priming event's id (`<stream>_0`) when the break came before any message.
      if (beforeFirst) expect(hop.sent).toMatch(/^last-event-id: \d+_0\r$/im);
    } finally {
      await client.close().catch(() => {});
    }
  });
});

describe("the conformance suite's client-side sse-retry scenario, through the gateway", () => {
  it('passes: the gateway (as the suite server\'s client) reconnects with GET + Last-Event-ID after the retry it was given', async () => {
    const cli = join(process.cwd(), 'node_modules/@modelcontextprotocol/conformance/dist/index.js');
    const client = `${process.execPath} ${join(process.cwd(), 'test/helpers/conformance-client-through-gateway.ts')}`;
    const output = await new Promise<string>((resolve) => {
      execFile(process.execPath, [cli, 'client', '--scenario', 'sse-retry', '--command', client], { timeout: 120_000, maxBuffer: 8 * 1024 * 1024 }, (_err, stdout, stderr) =>
        resolve(`${stdout}\n${stderr}`),
      );
    });
    const checks = Object.fromEntries([...output.matchAll(/\[(client-[a-z-]+)\s*\]\s*\S*(SUCCESS|FAILURE|WARNING)/g)].map((m) => [m[1]!, m[2]!]));
    mkdirSync('test-results', { recursive: true });
    writeFileSync('test-results/mcp-conformance-client.json', `${JSON.stringify({ scenario: 'sse-retry', through: 'gateway (anonymous single-server route)', checks }, null, 2)}\n`);
    expect(checks, output.slice(-3000)).toEqual({
      'client-sse-graceful-reconnect': 'SUCCESS',
      'client-sse-retry-timing': 'SUCCESS',
      'client-sse-last-event-id': 'SUCCESS',
    });
    expect(output).toContain('OVERALL: PASSED');
  }, 150_000);
});

