/**
 * MCP federation end to end: the official SDK client talks to the gateway, which federates server-everything over
 * stdio and an SDK server over Streamable HTTP (paginated tools/list) started here.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { ToolListChangedNotificationSchema, type Tool } from '@modelcontextprotocol/sdk/types.js';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { EVERYTHING_STDIO, connectClient, eventually, mcpBackend, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';

let fixture: FixtureServer;
let gw: TestGateway;
let client: Client;

async function allTools(c: Client): Promise<{ tools: Tool[]; pages: number }> {
  const tools: Tool[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const page = await c.listTools(cursor === undefined ? {} : { cursor });
    tools.push(...page.tools);
    cursor = page.nextCursor;
    pages++;
  } while (cursor !== undefined);
  return { tools, pages };
}

beforeAll(async () => {
  fixture = await startHttpMcpServer({ name: 'fixture', extraTools: 26, pageSize: 10 });
  gw = await startTestGateway({
    'mcp.yaml':
      mcpBackend('everything', EVERYTHING_STDIO) +
      mcpBackend('fixture', { url: fixture.url }) +
      mcpBackend('down', { url: 'http://127.0.0.1:9/mcp', timeouts: { connectMs: 500, initializeMs: 1000 } }) +
      route('mcp', '/mcp', ['everything', 'fixture', 'down']),
  });
  // Secure by default: the gateway (no identity section) trusts its dev trust domain only; callers present an SVID.
  client = await connectClient(`${gw.url}/mcp`, { headers: gw.authHeaders() });
  await expect(connectClient(`${gw.url}/mcp`, { anonymous: true })).rejects.toThrow(/TG_UNAUTHENTICATED/);
});

afterAll(async () => {
  await client?.close();
  await gw?.stop();
  await fixture?.close();
});

describe('federated /mcp', () => {
  it('merges capabilities and reports the gateway as the server', () => {
    expect(client.getServerVersion()?.name).toBe('tollgate');
    const caps = client.getServerCapabilities();
    expect(caps?.tools).toBeDefined();
    expect(caps?.prompts).toBeDefined();
    expect(caps?.resources).toBeDefined();
    expect(client.getInstructions()).toContain('## fixture');
  });

  it('lists tools of both upstreams, namespaced, across pages of the paginated upstream', async () => {
    const { tools, pages } = await allTools(client);
    const names = tools.map((t) => t.name);
    expect(names).toContain('everything__echo');
    expect(names).toContain('fixture__add');
    expect(names).toContain('fixture__tool-25');
    // 30 fixture tools at 10 a page: 3 merged pages, plus none from the unreachable upstream.
    expect(pages).toBe(3);
    expect(names.filter((n) => n.startsWith('fixture__'))).toHaveLength(30);
    expect(names.some((n) => n.startsWith('down__'))).toBe(false);
    expect(new Set(names).size).toBe(names.length);
    for (const n of names) expect(n).toMatch(/^[A-Za-z0-9_.-]{1,128}$/);
  });

  it('calls tools on the owning upstream with the original name', async () => {
    const sum = await client.callTool({ name: 'fixture__add', arguments: { a: 2, b: 40 } });
    expect(sum.content).toEqual([{ type: 'text', text: '42' }]);
    const echo = await client.callTool({ name: 'everything__echo', arguments: { message: 'through the gateway' } });
    expect(echo.content).toEqual([{ type: 'text', text: 'Echo: through the gateway' }]);
  });

  it('answers an unknown tool with -32602 and keeps serving', async () => {
    await expect(client.callTool({ name: 'nobody__nothing', arguments: {} })).rejects.toMatchObject({ code: -32602 });
    await expect(client.callTool({ name: 'no-separator', arguments: {} })).rejects.toMatchObject({ code: -32602 });
    const sum = await client.callTool({ name: 'fixture__add', arguments: { a: 1, b: 1 } });
    expect(sum.content).toEqual([{ type: 'text', text: '2' }]);
  });

  it('reads resources and gets prompts from both upstreams by their federated names', async () => {
    const resources = (await client.listResources()).resources;
    const fixtureDoc = resources.find((r) => r.uri === 'tollgate://fixture/fixture://doc/1');
    expect(fixtureDoc).toBeDefined();
    const read = await client.readResource({ uri: fixtureDoc!.uri });
    expect(read.contents[0]).toMatchObject({ uri: 'tollgate://fixture/fixture://doc/1', text: 'content of fixture://doc/1' });
    const everythingRes = resources.find((r) => r.uri.startsWith('tollgate://everything/'));
    expect(everythingRes).toBeDefined();
    const read2 = await client.readResource({ uri: everythingRes!.uri });
    expect(read2.contents[0]?.uri).toBe(everythingRes!.uri);

    const prompts = (await client.listPrompts()).prompts.map((p) => p.name);
    expect(prompts).toContain('fixture__greet');
    expect(prompts).toContain('everything__simple-prompt');
    const greet = await client.getPrompt({ name: 'fixture__greet', arguments: { who: 'Ada' } });
    expect(greet.messages[0]?.content).toEqual({ type: 'text', text: 'Hello Ada' });
    await expect(client.readResource({ uri: 'fixture://doc/1' })).rejects.toMatchObject({ code: -32002 });
  });

  it('relays progress notifications from both an HTTP and a stdio upstream', async () => {
    const seen: number[] = [];
    const r = await client.callTool({ name: 'fixture__slow', arguments: { steps: 3 } }, undefined, {
      onprogress: (p) => seen.push(p.progress),
    });
    expect(r.content).toEqual([{ type: 'text', text: 'done after 3 steps' }]);
    expect(seen).toEqual([1, 2, 3]);

    const seen2: number[] = [];
    await client.callTool({ name: 'everything__trigger-long-running-operation', arguments: { duration: 0.3, steps: 3 } }, undefined, {
      onprogress: (p) => seen2.push(p.progress),
    });
    expect(seen2).toEqual([1, 2, 3]);
  });

  it('passes a cancellation to the upstream that runs the request', async () => {
    const before = fixture.cancelled.length;
    const controller = new AbortController();
    const pending = client.callTool({ name: 'fixture__slow', arguments: { steps: 30 } }, undefined, { signal: controller.signal });
    setTimeout(() => controller.abort('user gave up'), 250);
    await expect(pending).rejects.toThrow();
    await eventually(() => fixture.cancelled.length > before, 5_000, 'upstream to see the cancellation');
    const sum = await client.callTool({ name: 'fixture__add', arguments: { a: 3, b: 4 } });
    expect(sum.content).toEqual([{ type: 'text', text: '7' }]);
  });

  it('keeps a session\'s merged list: listing again asks no upstream, another session gets its own', async () => {
    const first = await allTools(client);
    const asked = fixture.lists.count;
    const again = await allTools(client);
    expect(again.tools.map((t) => t.name)).toEqual(first.tools.map((t) => t.name));
    expect(fixture.lists.count).toBe(asked);
    // Per session, never shared: a new session's first list goes to the upstream.
    const other = await connectClient(`${gw.url}/mcp`, { headers: gw.authHeaders() });
    try {
      await allTools(other);
      expect(fixture.lists.count).toBeGreaterThan(asked);
    } finally {
      await other.close();
    }
  });

  it('re-emits list_changed from an upstream and serves the new tool', async () => {
    let changed = 0;
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
      changed++;
    });
    // The SDK client opens its GET stream after initialize; give the gateway a moment to attach upstream streams.
    await eventually(async () => {
      await fixture.addTool(`late-${Date.now()}`);
      await new Promise((r) => setTimeout(r, 100));
      return changed > 0;
    }, 10_000, 'list_changed to reach the client');
    // The session's cached list was dropped by the list_changed: the new tool is listed at once.
    const { tools } = await allTools(client);
    expect(tools.some((t) => t.name.startsWith('fixture__late-'))).toBe(true);
  });

  it('reports the unreachable upstream in /readyz without failing the others', async () => {
    const res = await fetch(`${gw.adminUrl}/readyz`);
    const body = (await res.json()) as { upstreams: Record<string, { up: boolean; detail?: string }> };
    expect(body.upstreams.down?.up).toBe(false);
    expect(body.upstreams.fixture?.up).toBe(true);
    expect(body.upstreams.everything?.up).toBe(true);
    const strict = await fetch(`${gw.adminUrl}/readyz?strict`);
    expect(strict.status).toBe(503);
  });
});

describe('single server at /mcp/<name>', () => {
  it('exposes one upstream with its own names and server info', async () => {
    const single = await connectClient(`${gw.url}/mcp/fixture`, { headers: gw.authHeaders() });
    try {
      expect(single.getServerVersion()?.name).toBe('fixture');
      const { tools } = await allTools(single);
      expect(tools.map((t) => t.name)).toContain('add');
      expect(tools.some((t) => t.name.includes('__'))).toBe(false);
      const sum = await single.callTool({ name: 'add', arguments: { a: 5, b: 5 } });
      expect(sum.content).toEqual([{ type: 'text', text: '10' }]);
    } finally {
      await single.close();
    }
  });

  it('refuses an unknown server name with 404', async () => {
    const res = await fetch(`${gw.url}/mcp/nope`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...gw.authHeaders() },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
    });
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { data: { code: string } } }).error.data.code).toBe('TG_MCP_UNKNOWN_SERVER');
  });
});
