/**
 * The legacy HTTP+SSE transport (2024-11-05) both ways: an old client (SDK SSEClientTransport) through the gateway,
 * and an old upstream (server-everything in `sse` mode, a real child process) behind it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { startConformanceUpstream, type ConformanceUpstream } from '../helpers/conformance-server.ts';
import { connectClient, eventually, mcpBackend, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { freePort } from '../helpers/net.ts';

let everything: ChildProcess;
let conf: ConformanceUpstream;
let gw: TestGateway;
let port: number;

/** An old client's transport presenting the gateway's dev SVID on its GET stream and its POSTs. */
function sse(url: string): SSEClientTransport {
  const headers = gw.authHeaders();
  return new SSEClientTransport(new URL(url), {
    requestInit: { headers },
    eventSourceInit: { fetch: (u, init) => fetch(u, { ...init, headers: { ...(init?.headers as Record<string, string>), ...headers } }) },
  });
}

function text(r: unknown): string {
  return (((r as { content?: { text?: string }[] }).content) ?? []).map((c) => c.text ?? '').join('');
}

beforeAll(async () => {
  port = await freePort();
  everything = spawn(process.execPath, [join(process.cwd(), 'node_modules/@modelcontextprotocol/server-everything/dist/index.js'), 'sse'], {
    env: { ...process.env, PORT: String(port) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  everything.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  await eventually(() => stderr.includes('running on port'), 15_000, 'server-everything (sse) to listen');
  conf = await startConformanceUpstream();
  gw = await startTestGateway({
    'mcp.yaml':
      mcpBackend('old', { transport: 'sse', url: `http://127.0.0.1:${port}/sse`, timeouts: { initializeMs: 5000 } }) +
      mcpBackend('conf', { url: conf.url }) +
      route('mcp', '/mcp', ['old', 'conf']),
  });
});

afterAll(async () => {
  await gw?.stop();
  await conf?.close();
  everything?.kill('SIGTERM');
});

describe('legacy SSE upstream', () => {
  it('federates a legacy HTTP+SSE server for a Streamable HTTP client', async () => {
    const client = await connectClient(`${gw.url}/mcp`);
    try {
      const names = (await client.listTools()).tools.map((t) => t.name);
      expect(names).toContain('old__echo');
      expect(names).toContain('conf__test_simple_text');
      expect(text(await client.callTool({ name: 'old__echo', arguments: { message: 'over legacy sse' } }))).toBe('Echo: over legacy sse');
      const progress: number[] = [];
      await client.callTool({ name: 'old__trigger-long-running-operation', arguments: { duration: 0.3, steps: 3 } }, undefined, { onprogress: (p) => progress.push(p.progress) });
      expect(progress).toEqual([1, 2, 3]);
    } finally {
      await client.close();
    }
  });

  it('routes each progress notification to the request whose token it carries, compared as a value', async () => {
    // Each POST's response stream, as the client received it (tee'd off the SDK's own reading).
    const streams: Promise<string>[] = [];
    const transport = new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp`), {
      requestInit: { headers: gw.authHeaders() },
      fetch: async (u, init) => {
        const r = await fetch(u, init);
        if (init?.method !== 'POST' || r.body === null || !(r.headers.get('content-type') ?? '').startsWith('text/event-stream')) return r;
        const [mine, theirs] = r.body.tee();
        streams.push(new Response(mine).text());
        return new Response(theirs, { status: r.status, headers: r.headers });
      },
    });
    const client = new Client({ name: 'progress', version: '1' });
    await client.connect(transport);
    try {
      // Two calls at once: the SDK's progress tokens are their request ids (small numbers), which a substring test
      // finds in the other call's `"progress":N` too.
      const long = { name: 'old__trigger-long-running-operation', arguments: { duration: 0.4, steps: 4 } };
      await Promise.all([client.callTool(long, undefined, { onprogress: () => {} }), client.callTool(long, undefined, { onprogress: () => {} })]);
      let checked = 0;
      for (const text of await Promise.all(streams)) {
        const messages = text.split('\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6)) as { id?: unknown; method?: string; params?: { progressToken?: unknown } });
        const result = messages.find((m) => m.id !== undefined && m.method === undefined);
        const tokens = messages.filter((m) => m.method === 'notifications/progress').map((m) => m.params?.progressToken);
        if (result === undefined || tokens.length === 0) continue;
        expect(tokens).toEqual(tokens.map(() => result.id));
        checked++;
      }
      expect(checked).toBe(2);
    } finally {
      await client.close();
    }
  });

  it('relays the legacy upstream\'s sampling request to the client', async () => {
    const client = new Client({ name: 'sampler', version: '1' }, { capabilities: { sampling: {} } });
    client.setRequestHandler(CreateMessageRequestSchema, async () => ({ role: 'assistant', content: { type: 'text', text: 'sampled via sse' }, model: 'm', stopReason: 'endTurn' }));
    const { StreamableHTTPClientTransport } = await import('@modelcontextprotocol/sdk/client/streamableHttp.js');
    await client.connect(new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp/old`), { requestInit: { headers: gw.authHeaders() } }));
    try {
      const r = await client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'hello' } });
      expect(text(r)).toContain('sampled via sse');
    } finally {
      await client.close();
    }
  });
});

describe('legacy SSE client', () => {
  it('serves an SSEClientTransport client at <mount>/sse (federated) and <mount>/<server>/sse', async () => {
    const client = new Client({ name: 'old-client', version: '1.0.0' });
    await client.connect(sse(`${gw.url}/mcp/sse`));
    try {
      expect(client.getServerVersion()?.name).toBe('tollgate');
      const names = (await client.listTools()).tools.map((t) => t.name);
      expect(names).toEqual(expect.arrayContaining(['old__echo', 'conf__test_simple_text']));
      expect(text(await client.callTool({ name: 'conf__test_simple_text', arguments: {} }))).toBe('This is a simple text response for testing.');
      const progress: number[] = [];
      const r = await client.callTool({ name: 'conf__test_tool_with_progress', arguments: {} }, undefined, { onprogress: (p) => progress.push(p.progress) });
      expect(progress).toEqual([0, 50, 100]);
      expect(text(r)).not.toBe('');
      // Old client, old server, through the gateway.
      expect(text(await client.callTool({ name: 'old__echo', arguments: { message: 'old to old' } }))).toBe('Echo: old to old');
    } finally {
      await client.close();
    }
    const single = new Client({ name: 'old-client', version: '1.0.0' });
    await single.connect(sse(`${gw.url}/mcp/conf/sse`));
    try {
      expect(single.getServerVersion()?.name).toBe('conformance-upstream');
      expect(text(await single.callTool({ name: 'test_simple_text', arguments: {} }))).toBe('This is a simple text response for testing.');
    } finally {
      await single.close();
    }
  });

  it('round-trips sampling for a legacy SSE client', async () => {
    const client = new Client({ name: 'old-sampler', version: '1.0.0' }, { capabilities: { sampling: {} } });
    client.setRequestHandler(CreateMessageRequestSchema, async () => ({ role: 'assistant', content: { type: 'text', text: 'old client answers' }, model: 'm', stopReason: 'endTurn' }));
    await client.connect(sse(`${gw.url}/mcp/sse`));
    try {
      expect(text(await client.callTool({ name: 'conf__test_sampling', arguments: { prompt: 'x' } }))).toBe('LLM response: old client answers');
    } finally {
      await client.close();
    }
  });

  it('refuses an unauthenticated legacy stream before opening it', async () => {
    const res = await fetch(`${gw.url}/mcp/sse`, { headers: { accept: 'text/event-stream' } });
    expect(res.status).toBe(401);
    expect(res.headers.get('content-type')).toContain('application/json');
  });

  it('refuses a POST to an unknown channel with 404', async () => {
    const res = await fetch(`${gw.url}/mcp/sse/message?sessionId=nope`, { method: 'POST', headers: { 'content-type': 'application/json', ...gw.authHeaders() }, body: '{"jsonrpc":"2.0","id":1,"method":"ping"}' });
    expect(res.status).toBe(404);
  });
});
