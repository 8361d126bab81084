/**
 * What each MCP method means on the federated endpoint, checked with the official SDK client against official SDK
 * servers behind the gateway: two upstreams that share a tool name, a prompt name and a resource URI, and one that
 * is down. Sources: modelcontextprotocol/modelcontextprotocol docs/specification/2025-11-25/server/{tools,resources,
 * prompts}.mdx, server/utilities/{completion,logging,pagination}.mdx, basic/utilities/{progress,cancellation,
 * ping}.mdx, client/{sampling,elicitation,roots}.mdx, basic/index.mdx (_meta).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  CallToolResultSchema,
  CreateMessageRequestSchema,
  CreateTaskResultSchema,
  GetTaskResultSchema,
  ListTasksResultSchema,
  EmptyResultSchema,
  ListToolsResultSchema,
  LoggingMessageNotificationSchema,
  PromptListChangedNotificationSchema,
  ResourceUpdatedNotificationSchema,
  ToolListChangedNotificationSchema,
  type JSONRPCMessage,
  type LoggingMessageNotification,
} from '@modelcontextprotocol/sdk/types.js';
import { startModernServer, type ModernServer } from '../helpers/mcp-modern-server.ts';
import { startSpecServer, startTaskServer, type SpecServer } from '../helpers/mcp-spec-server.ts';
import { join } from 'node:path';
import { freePort } from '../helpers/net.ts';
import { EVERYTHING_STDIO, eventually, mcpBackend, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';

let alpha: SpecServer;
let beta: SpecServer;
let tasker: Awaited<ReturnType<typeof startTaskServer>>;
let modern: ModernServer;
/** An upstream of /late-mcp that is not running when the gateway starts (started by a test). */
let latePort: number;
let late: SpecServer | undefined;
let slow: SpecServer;
let gw: TestGateway;

interface Connected {
  readonly client: Client;
  /** Every message the client received, in order. */
  readonly inbox: JSONRPCMessage[];
  readonly sid: string;
}

async function connect(capabilities: Record<string, unknown>, setup?: (c: Client) => void, path = '/mcp'): Promise<Connected> {
  const client = new Client({ name: 'spec-client', version: '1.0.0' }, { capabilities });
  setup?.(client);
  const transport = new StreamableHTTPClientTransport(new URL(`${gw.url}${path}`), { requestInit: { headers: gw.authHeaders() } });
  await client.connect(transport);
  const inbox: JSONRPCMessage[] = [];
  const deliver = transport.onmessage!;
  transport.onmessage = (m: JSONRPCMessage) => {
    inbox.push(m);
    deliver(m);
  };
  return { client, inbox, sid: transport.sessionId! };
}

function text(r: unknown): string {
  return ((r as { content?: { text?: string }[] }).content ?? []).map((c) => c.text ?? '').join('');
}

function methodsIn(inbox: JSONRPCMessage[]): string[] {
  return inbox.map((m) => (m as { method?: string }).method ?? '').filter((m) => m !== '');
}

/** The requests `server` received for `method` since index `from`. */
function receivedBy(server: SpecServer, method: string, from = 0): Record<string, unknown>[] {
  return server.received.slice(from).filter((r) => r.method === method).map((r) => r.params);
}

async function listAll(c: Client, method: 'tools' | 'prompts' | 'resources'): Promise<{ names: string[]; pages: number }> {
  const names: string[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const params = cursor === undefined ? {} : { cursor };
    if (method === 'tools') {
      const r = await c.listTools(params);
      names.push(...r.tools.map((t) => t.name));
      cursor = r.nextCursor;
    } else if (method === 'prompts') {
      const r = await c.listPrompts(params);
      names.push(...r.prompts.map((p) => p.name));
      cursor = r.nextCursor;
    } else {
      const r = await c.listResources(params);
      names.push(...r.resources.map((x) => x.uri));
      cursor = r.nextCursor;
    }
    pages++;
  } while (cursor !== undefined);
  return { names, pages };
}

function post(body: unknown, sid: string): Promise<Response> {
  return fetch(`${gw.url}/mcp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25', ...gw.authHeaders() },
    body: JSON.stringify(body),
  });
}

beforeAll(async () => {
  [alpha, beta, tasker] = await Promise.all([startSpecServer({ name: 'alpha', pageSize: 2, extra: 3 }), startSpecServer({ name: 'beta', pageSize: 3, extra: 5 }), startTaskServer()]);
  modern = await startModernServer();
  slow = await startSpecServer({ name: 'slow', pageSize: 0, extra: 0, listDelayMs: 3_000 });
  latePort = await freePort();
  gw = await startTestGateway({
    'mcp.yaml':
      mcpBackend('alpha', { url: alpha.url }) +
      mcpBackend('beta', { url: beta.url }) +
      mcpBackend('down', { url: 'http://127.0.0.1:9/mcp', timeouts: { connectMs: 300, initializeMs: 600 } }) +
      route('mcp', '/mcp', ['alpha', 'beta', 'down']) +
      mcpBackend('tasker', { url: tasker.url }) +
      mcpBackend('everything', EVERYTHING_STDIO) +
      mcpBackend('modern', { url: modern.url }) +
      route('tasks', '/tasks-mcp', ['tasker', 'everything', 'modern']) +
      mcpBackend('shared', { stdio: { command: process.execPath, args: [join(process.cwd(), 'test/helpers/stdio-level-server.ts')] } }) +
      route('shared', '/shared-mcp', ['shared', 'beta']) +
      mcpBackend('slow', { url: slow.url }) +
      route('slow', '/slow-mcp', ['slow', 'beta']) +
      mcpBackend('early', { url: alpha.url }) +
      mcpBackend('late', { url: `http://127.0.0.1:${latePort}/mcp`, timeouts: { connectMs: 300, initializeMs: 600 } }) +
      route('late', '/late-mcp', ['early', 'late']),
  });
});

afterAll(async () => {
  await gw?.stop();
  await Promise.all([alpha?.close(), beta?.close(), tasker?.close(), modern?.close(), late?.close(), slow?.close()]);
});

describe('initialize', () => {
  it('merges the upstreams\' capabilities and instructions under the gateway\'s own serverInfo', async () => {
    const { client } = await connect({});
    try {
      expect(client.getServerVersion()?.name).toBe('tollgate');
      const caps = client.getServerCapabilities()!;
      expect(caps.tools).toMatchObject({ listChanged: true });
      expect(caps.prompts).toMatchObject({ listChanged: true });
      expect(caps.resources).toMatchObject({ listChanged: true, subscribe: true });
      expect(caps.logging).toEqual({});
      expect(caps.completions).toEqual({});
      expect(client.getInstructions()).toContain('alpha instructions');
      expect(client.getInstructions()).toContain('beta instructions');
      await expect(client.ping()).resolves.toEqual({});
    } finally {
      await client.close();
    }
  });
});

describe('lists and the calls that follow them', () => {
  let c: Connected;
  beforeAll(async () => {
    c = await connect({});
  });
  afterAll(async () => {
    await c.client.close();
  });

  it('gives every item of every upstream exactly once to a client following nextCursor', async () => {
    for (const kind of ['tools', 'prompts', 'resources'] as const) {
      const { names, pages } = await listAll(c.client, kind);
      const expected = [...alpha[kind].map((n) => (kind === 'resources' ? `tollgate://alpha/${n}` : `alpha__${n}`)), ...beta[kind].map((n) => (kind === 'resources' ? `tollgate://beta/${n}` : `beta__${n}`))];
      expect(names.toSorted(), kind).toEqual(expected.toSorted());
      expect(pages, kind).toBe(Math.max(Math.ceil(alpha[kind].length / 2), Math.ceil(beta[kind].length / 3)));
    }
  });

  it('calls a tool and gets a prompt on its own upstream, by the name that upstream gave it', async () => {
    const from = alpha.received.length;
    const fromB = beta.received.length;
    expect(text(await c.client.callTool({ name: 'alpha__same', arguments: {} }))).toBe('alpha:same');
    expect(text(await c.client.callTool({ name: 'beta__same', arguments: {} }))).toBe('beta:same');
    const p = await c.client.getPrompt({ name: 'beta__same', arguments: { who: 'ada' } });
    expect(p.messages[0]!.content).toEqual({ type: 'text', text: 'beta:same:ada' });
    expect(receivedBy(alpha, 'tools/call', from).map((r) => r.name)).toEqual(['same']);
    expect(receivedBy(beta, 'tools/call', fromB).map((r) => r.name)).toEqual(['same']);
    expect(receivedBy(beta, 'prompts/get', fromB).map((r) => r.name)).toEqual(['same']);
    expect(receivedBy(alpha, 'prompts/get', from)).toEqual([]);
  });

  it('reads the same upstream URI on each upstream under its own public URI', async () => {
    const from = alpha.received.length;
    const a = await c.client.readResource({ uri: 'tollgate://alpha/shared://readme' });
    const b = await c.client.readResource({ uri: 'tollgate://beta/shared://readme' });
    expect(a.contents[0]).toMatchObject({ uri: 'tollgate://alpha/shared://readme', text: 'alpha read shared://readme' });
    expect(b.contents[0]).toMatchObject({ uri: 'tollgate://beta/shared://readme', text: 'beta read shared://readme' });
    expect(receivedBy(alpha, 'resources/read', from)).toEqual([{ uri: 'shared://readme' }]);
  });

  it('lists resource templates under public URIs that expand to readable public URIs', async () => {
    const { resourceTemplates } = await c.client.listResourceTemplates();
    expect(resourceTemplates.map((t) => t.uriTemplate).toSorted()).toEqual(['tollgate://alpha/alpha://doc/{id}', 'tollgate://beta/beta://doc/{id}']);
    const from = beta.received.length;
    const read = await c.client.readResource({ uri: 'tollgate://beta/beta://doc/42' });
    expect(read.contents[0]).toMatchObject({ uri: 'tollgate://beta/beta://doc/42', text: 'beta read beta://doc/42' });
    expect(receivedBy(beta, 'resources/read', from)).toEqual([{ uri: 'beta://doc/42' }]);
  });

  it('completes a prompt argument and a template argument on the owner, with the owner\'s name and URI', async () => {
    const from = alpha.received.length;
    const fromB = beta.received.length;
    const p = await c.client.complete({ ref: { type: 'ref/prompt', name: 'alpha__same' }, argument: { name: 'who', value: 'a' } });
    expect(p.completion.values).toEqual(['alpha:same:a']);
    const r = await c.client.complete({ ref: { type: 'ref/resource', uri: 'tollgate://beta/beta://doc/{id}' }, argument: { name: 'id', value: '4' } });
    expect(r.completion.values).toEqual(['beta:beta://doc/{id}:4']);
    expect(receivedBy(alpha, 'completion/complete', from)).toEqual([{ ref: { type: 'ref/prompt', name: 'same' }, argument: { name: 'who', value: 'a' } }]);
    expect(receivedBy(beta, 'completion/complete', fromB)).toEqual([{ ref: { type: 'ref/resource', uri: 'beta://doc/{id}' }, argument: { name: 'id', value: '4' } }]);
  });

  it('gives resource links and embedded resources of a tool result and of a prompt under public URIs the client can read', async () => {
    const r = await c.client.callTool({ name: 'alpha__links', arguments: {} });
    const content = r.content as Array<{ type: string; uri?: string; resource?: { uri: string } }>;
    expect(content[0]).toMatchObject({ type: 'resource_link', uri: 'tollgate://alpha/alpha://doc/1' });
    expect(content[1]!.resource!.uri).toBe('tollgate://alpha/alpha://doc/1');
    const read = await c.client.readResource({ uri: content[0]!.uri! });
    expect(read.contents[0]).toMatchObject({ text: 'alpha read alpha://doc/1' });
    const p = await c.client.getPrompt({ name: 'beta__embed' });
    expect(p.messages.map((m) => m.content)).toEqual([
      { type: 'resource', resource: { uri: 'tollgate://beta/beta://doc/1', mimeType: 'text/plain', text: 'embedded' } },
      { type: 'resource_link', uri: 'tollgate://beta/beta://doc/1', name: 'doc-1' },
    ]);
  });

  it('answers a forged cursor, and a cursor of another list, with -32602 and asks no upstream', async () => {
    const from = alpha.received.length;
    const forged = Buffer.from(JSON.stringify({ v: 1, c: { alpha: 'p2' } })).toString('base64url');
    await expect(c.client.listTools({ cursor: forged })).rejects.toMatchObject({ code: -32602 });
    await expect(c.client.listTools({ cursor: 'not-a-cursor' })).rejects.toMatchObject({ code: -32602 });
    const first = await c.client.listTools();
    expect(first.nextCursor).toBeDefined();
    await expect(c.client.listPrompts({ cursor: first.nextCursor! })).rejects.toMatchObject({ code: -32602 });
    expect(receivedBy(alpha, 'tools/list', from).filter((p) => p.cursor !== undefined)).toEqual([]);
    expect(receivedBy(alpha, 'prompts/list', from)).toEqual([]);
  });

  it('does not take one session\'s cursor in another', async () => {
    const first = await c.client.listTools();
    const other = await connect({});
    try {
      await expect(other.client.listTools({ cursor: first.nextCursor! })).rejects.toMatchObject({ code: -32602 });
    } finally {
      await other.client.close();
    }
  });

  it('answers a list with the upstreams that are up, and names the one that is not in the result\'s _meta', async () => {
    const r = await c.client.request({ method: 'tools/list', params: {} }, ListToolsResultSchema);
    expect(r.tools.some((t) => t.name.startsWith('alpha__'))).toBe(true);
    expect(r._meta?.['dev.tollgate/unavailable']).toEqual(['down']);
  });

  it('passes the request\'s _meta to every upstream it fans a list out to, and a call\'s _meta both ways', async () => {
    const from = alpha.received.length;
    const fromB = beta.received.length;
    // A fresh session: the list is not answered from the session's cache.
    const other = await connect({});
    try {
      await other.client.request({ method: 'tools/list', params: { _meta: { 'example.test/trace': 't1' } } }, ListToolsResultSchema);
      expect(receivedBy(alpha, 'tools/list', from)[0]?._meta).toEqual({ 'example.test/trace': 't1' });
      expect(receivedBy(beta, 'tools/list', fromB)[0]?._meta).toEqual({ 'example.test/trace': 't1' });
      const r = await other.client.callTool({ name: 'alpha__same', arguments: {}, _meta: { 'example.test/trace': 't2' } });
      expect(receivedBy(alpha, 'tools/call', from).at(-1)?._meta).toEqual({ 'example.test/trace': 't2' });
      expect(r._meta).toEqual({ 'example.test/from': 'alpha' });
    } finally {
      await other.client.close();
    }
  });
});

describe('cancellation', () => {
  it('cancels a list fanned out to the upstreams: each upstream is told under its own request id, and the client gets no response', async () => {
    const c = await connect({}, undefined, '/slow-mcp');
    try {
      const controller = new AbortController();
      const pending = c.client.listTools(undefined, { signal: controller.signal });
      setTimeout(() => controller.abort('not needed any more'), 300);
      await expect(pending).rejects.toThrow();
      await eventually(() => slow.cancelledLists.length > 0, 3_000, 'the slow upstream to see the cancellation');
      expect(slow.cancelledLists[0]).toMatch(/^tollgate-/);
      await new Promise((r) => setTimeout(r, 3_200)); // past the upstream's delay: any answer would have come by now
      expect(c.inbox.filter((m) => 'result' in m && 'tools' in (m as { result: object }).result)).toEqual([]);
    } finally {
      await c.client.close();
    }
  });
});

describe('notifications', () => {
  it('re-emits an upstream\'s prompts list_changed and drops the session\'s cached prompt list', async () => {
    let changed = 0;
    const c = await connect({}, (client) => client.setNotificationHandler(PromptListChangedNotificationSchema, () => void changed++));
    try {
      await listAll(c.client, 'prompts');
      const asked = receivedBy(beta, 'prompts/list').length;
      await listAll(c.client, 'prompts');
      expect(receivedBy(beta, 'prompts/list').length).toBe(asked); // cached
      await eventually(async () => {
        await beta.promptsChanged();
        await new Promise((r) => setTimeout(r, 100));
        return changed > 0;
      }, 10_000, 'prompts list_changed');
      await listAll(c.client, 'prompts');
      expect(receivedBy(beta, 'prompts/list').length).toBeGreaterThan(asked);
    } finally {
      await c.client.close();
    }
  });

  it('drops the session\'s cached list on a list_changed sent on a call\'s own stream', async () => {
    let changed = 0;
    const c = await connect({}, (client) => client.setNotificationHandler(ToolListChangedNotificationSchema, () => void changed++));
    try {
      await listAll(c.client, 'tools');
      const added = text(await c.client.callTool({ name: 'beta__grow', arguments: {} }));
      expect(changed).toBeGreaterThan(0);
      const { names } = await listAll(c.client, 'tools');
      expect(names).toContain(`beta__${added}`);
    } finally {
      await c.client.close();
    }
  });

  it('tells the client when an upstream that was down joins its session, and relays that upstream\'s notifications', async () => {
    let toolsChanged = 0;
    const updates: string[] = [];
    const c = await connect({}, (client) => {
      client.setNotificationHandler(ToolListChangedNotificationSchema, () => void toolsChanged++);
      client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void updates.push(n.params.uri));
    }, '/late-mcp');
    try {
      const before = await c.client.listTools();
      expect(before._meta?.['dev.tollgate/unavailable']).toEqual(['late']);
      late = await startSpecServer({ name: 'late', pageSize: 0, extra: 0, port: latePort });
      // The session tries the upstream again (a list asks every upstream) and, once it is in, says the lists changed.
      await eventually(async () => {
        await c.client.listTools();
        return toolsChanged > 0;
      }, 10_000, 'tools list_changed when the late upstream joins');
      expect((await c.client.listTools()).tools.map((t) => t.name)).toContain('late__same');
      await c.client.subscribeResource({ uri: 'tollgate://late/shared://readme' });
      await eventually(async () => {
        await late!.updated('shared://readme');
        await new Promise((r) => setTimeout(r, 100));
        return updates.length > 0;
      }, 10_000, 'resources/updated from the late upstream');
      expect(updates[0]).toBe('tollgate://late/shared://readme');
    } finally {
      await c.client.close();
    }
  });

  it('delivers resources/updated only to the session that subscribed, under the URI it subscribed to', async () => {
    const updates: string[] = [];
    const otherUpdates: string[] = [];
    const sub = await connect({}, (client) => client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void updates.push(n.params.uri)));
    const other = await connect({}, (client) => client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void otherUpdates.push(n.params.uri)));
    try {
      const from = alpha.received.length;
      await sub.client.subscribeResource({ uri: 'tollgate://alpha/shared://readme' });
      expect(receivedBy(alpha, 'resources/subscribe', from)).toEqual([{ uri: 'shared://readme' }]);
      expect(alpha.subscribedSessions('shared://readme')).toBe(1);
      await eventually(async () => {
        await alpha.updated('shared://readme');
        await new Promise((r) => setTimeout(r, 100));
        return updates.length > 0;
      }, 10_000, 'resources/updated');
      expect(updates[0]).toBe('tollgate://alpha/shared://readme');
      await beta.updated('shared://readme'); // nobody subscribed there
      await new Promise((r) => setTimeout(r, 200));
      expect(new Set(updates)).toEqual(new Set(['tollgate://alpha/shared://readme']));
      expect(otherUpdates).toEqual([]);
      // The upstream forgets its sessions (a restart): the gateway's new upstream session is subscribed again.
      await alpha.dropSessions();
      updates.length = 0;
      await eventually(async () => {
        await alpha.updated('shared://readme');
        await new Promise((r) => setTimeout(r, 100));
        return updates.length > 0;
      }, 10_000, 'resources/updated after the upstream forgot the session');
      expect(updates[0]).toBe('tollgate://alpha/shared://readme');
      const before = receivedBy(alpha, 'resources/unsubscribe').length;
      await sub.client.unsubscribeResource({ uri: 'tollgate://alpha/shared://readme' });
      expect(receivedBy(alpha, 'resources/unsubscribe').slice(before)).toEqual([{ uri: 'shared://readme' }]);
      expect(alpha.subscribedSessions('shared://readme')).toBe(0);
    } finally {
      await Promise.all([sub.client.close(), other.client.close()]);
    }
  });

  it('does not let one client set the level of a stdio upstream every client shares', async () => {
    const setter = await connect({}, undefined, '/shared-mcp');
    const other = await connect({}, undefined, '/shared-mcp');
    try {
      const from = beta.received.length;
      await setter.client.setLoggingLevel('emergency');
      expect(receivedBy(beta, 'logging/setLevel', from)).toEqual([{ level: 'emergency' }]);
      expect(text(await other.client.callTool({ name: 'shared__level', arguments: {} }))).toBe('unset');
    } finally {
      await Promise.all([setter.client.close(), other.client.close()]);
    }
  });

  it('sets the level on every upstream, refuses a level that is not one, and sends nothing below it whatever the upstream sends', async () => {
    const logs: LoggingMessageNotification['params'][] = [];
    const c = await connect({}, (client) => client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void logs.push(n.params)));
    try {
      const from = alpha.received.length;
      const fromB = beta.received.length;
      await c.client.setLoggingLevel('warning');
      expect(receivedBy(alpha, 'logging/setLevel', from)).toEqual([{ level: 'warning' }]);
      expect(receivedBy(beta, 'logging/setLevel', fromB)).toEqual([{ level: 'warning' }]);
      await expect(c.client.request({ method: 'logging/setLevel', params: { level: 'loud' } }, EmptyResultSchema)).rejects.toMatchObject({ code: -32602 });
      // The GET stream is open (the SDK client opens it after initialize): wait for the session stream's messages.
      await eventually(async () => {
        logs.length = 0;
        await c.client.callTool({ name: 'alpha__log', arguments: {} });
        await new Promise((r) => setTimeout(r, 150));
        return logs.some((l) => String(l.data).startsWith('alpha session'));
      }, 10_000, 'session stream log messages');
      const seen = logs.map((l) => String(l.data));
      expect(seen.filter((d) => d.startsWith('alpha call'))).toEqual(['warning', 'error', 'critical', 'alert', 'emergency'].map((l) => `alpha call ${l}`));
      // Each message names the upstream it came from in its logger.
      expect(logs.find((l) => l.data === 'alpha call error')?.logger).toBe('alpha/core');
      expect(logs.find((l) => l.data === 'alpha session error')?.logger).toBe('alpha');
      // The upstream forgets its session (a restart): the gateway's new upstream session still sends nothing below warning.
      await alpha.dropSessions();
      logs.length = 0;
      await c.client.callTool({ name: 'alpha__log', arguments: {} });
      await new Promise((r) => setTimeout(r, 300));
      expect(logs.map((l) => l.level).filter((l) => l === 'debug' || l === 'info' || l === 'notice')).toEqual([]);
    } finally {
      await c.client.close();
    }
  });
});

describe('server-to-client requests', () => {
  it('never relays a request for a capability the client did not declare; the upstream gets an error', async () => {
    const bare = await connect({});
    try {
      const r = await bare.client.callTool({ name: 'alpha__sample_raw', arguments: {} });
      expect(r.isError).toBe(true);
      expect(text(r)).toMatch(/^refused: -32601/);
      expect(methodsIn(bare.inbox)).not.toContain('sampling/createMessage');
    } finally {
      await bare.client.close();
    }
    // Form-mode elicitation only (elicitation: {}): a URL-mode request is refused.
    const form = await connect({ elicitation: {} });
    try {
      const r = await form.client.callTool({ name: 'beta__elicit_url_raw', arguments: {} });
      expect(r.isError).toBe(true);
      expect(methodsIn(form.inbox)).not.toContain('elicitation/create');
    } finally {
      await form.client.close();
    }
  });

  it('passes an upstream\'s cancellation of its request to the client under the id the client saw', async () => {
    let aborted = false;
    const c = await connect({ sampling: {} }, (client) =>
      client.setRequestHandler(CreateMessageRequestSchema, (_req, extra) => {
        return new Promise((resolve) => {
          const timer = setTimeout(() => resolve({ role: 'assistant', content: { type: 'text', text: 'late' }, model: 'm' }), 2_000);
          extra.signal.addEventListener('abort', () => {
            aborted = true;
            clearTimeout(timer);
            resolve({ role: 'assistant', content: { type: 'text', text: 'aborted' }, model: 'm' });
          });
        });
      }),
    );
    try {
      const r = await c.client.callTool({ name: 'alpha__sample_then_cancel', arguments: {} });
      expect(text(r)).toBe('gave up');
      await eventually(() => aborted, 3_000, 'the client handler to see the cancellation');
      const cancelled = c.inbox.find((m) => (m as { method?: string }).method === 'notifications/cancelled') as unknown as { params: { requestId: unknown } };
      const asked = c.inbox.find((m) => (m as { method?: string }).method === 'sampling/createMessage') as unknown as { id: unknown };
      expect(cancelled.params.requestId).toBe(asked.id);
    } finally {
      await c.client.close();
    }
  });

  it('sends the client\'s progress on an upstream\'s request to that upstream alone, under its own token', async () => {
    const c = await connect({ sampling: {} }, (client) =>
      client.setRequestHandler(CreateMessageRequestSchema, async (req, extra) => {
        const token = req.params._meta?.progressToken;
        if (token !== undefined) {
          for (const progress of [1, 2]) await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress, total: 2 } });
        }
        return { role: 'assistant', content: { type: 'text', text: 'done' }, model: 'm' };
      }),
    );
    try {
      // beta has an upstream session of this client open too (it would get a broadcast).
      await c.client.callTool({ name: 'beta__same', arguments: {} });
      const r = await c.client.callTool({ name: 'alpha__sample_progress', arguments: {} });
      expect(text(r)).toBe('answer: done');
      await eventually(() => alpha.progress.length === 2, 3_000, 'alpha to get the progress');
      expect(alpha.progress).toEqual([1, 2]);
      await new Promise((r) => setTimeout(r, 200));
      expect(beta.strayProgress).toEqual([]);
      expect(alpha.strayProgress).toEqual([]);
    } finally {
      await c.client.close();
    }
  });

  it('never asks a client for input a 2026 upstream wants (input_required) when it did not declare the capability', async () => {
    const c = await connect({}, undefined, '/tasks-mcp/modern');
    try {
      // The SDK v2 upstream reads the client's capabilities in the envelope the gateway sends, and refuses (-32021).
      await expect(c.client.callTool({ name: 'confirm', arguments: { action: 'deploy' } })).rejects.toMatchObject({ code: -32021 });
      expect(methodsIn(c.inbox)).not.toContain('elicitation/create');
    } finally {
      await c.client.close();
    }
  });

  it('takes the answer only from the session that was asked', async () => {
    const intruder = await connect({ sampling: {} });
    let forgedStatus = 0;
    const c = await connect({ sampling: {} }, (client) =>
      client.setRequestHandler(CreateMessageRequestSchema, async (_req, extra) => {
        const forged = await post({ jsonrpc: '2.0', id: extra.requestId, result: { role: 'assistant', content: { type: 'text', text: 'forged' }, model: 'm' } }, intruder.sid);
        forgedStatus = forged.status;
        return { role: 'assistant', content: { type: 'text', text: 'genuine' }, model: 'm' };
      }),
    );
    try {
      const r = await c.client.callTool({ name: 'beta__sample_who', arguments: {} });
      expect(forgedStatus).toBe(400);
      expect(text(r)).toBe('answer: genuine');
    } finally {
      await Promise.all([c.client.close(), intruder.client.close()]);
    }
  });
});

describe('a 2026-07-28 client of the federated endpoint', () => {
  const META = {
    'io.modelcontextprotocol/protocolVersion': '2026-07-28',
    'io.modelcontextprotocol/clientCapabilities': {},
    'io.modelcontextprotocol/clientInfo': { name: 'raw-2026', version: '1' },
  };
  async function list(cursor: string | undefined, headers: Record<string, string> = gw.authHeaders()): Promise<{ result?: { tools: { name: string }[]; nextCursor?: string; _meta?: Record<string, unknown> }; error?: { code: number } }> {
    const res = await fetch(`${gw.url}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/list', ...headers },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: { ...(cursor !== undefined && { cursor }), _meta: META } }),
    });
    return (await res.json()) as never;
  }

  it('follows the merged cursor to every tool once, the envelope not passed on as the client\'s _meta, and refuses another principal\'s cursor', async () => {
    const from = alpha.received.length;
    const names: string[] = [];
    let cursor: string | undefined;
    let first: string | undefined;
    do {
      const r = await list(cursor);
      expect(r.error).toBeUndefined();
      names.push(...r.result!.tools.map((t) => t.name));
      expect(r.result!._meta?.['dev.tollgate/unavailable']).toEqual(cursor === undefined ? ['down'] : undefined);
      cursor = r.result!.nextCursor;
      first ??= cursor;
    } while (cursor !== undefined);
    expect(names.filter((n) => n.startsWith('alpha__'))).toHaveLength(new Set(names.filter((n) => n.startsWith('alpha__'))).size);
    expect(names).toContain('alpha__tool-3');
    expect(names).toContain('beta__tool-5');
    for (const p of receivedBy(alpha, 'tools/list', from)) expect(Object.keys((p._meta as object | undefined) ?? {}).filter((k) => k.startsWith('io.modelcontextprotocol/'))).toEqual([]);
    const other = await list(first, { authorization: `Bearer ${gw.devToken('spiffe://dev.tollgate.local/someone-else')}` });
    expect(other.error?.code).toBe(-32602);
  });
});

describe('tasks (2025-11-25) on a single-server endpoint', () => {
  it('passes tasks/get, tasks/result and tasks/list to the one upstream whose initialize declared tasks', async () => {
    const c = await connect({}, undefined, '/tasks-mcp/tasker');
    try {
      expect(c.client.getServerCapabilities()?.tasks).toBeDefined();
      const created = await c.client.request({ method: 'tools/call', params: { name: 'delay', arguments: { ms: 100 }, task: { ttl: 60_000 } } }, CreateTaskResultSchema);
      const taskId = created.task.taskId;
      const got = await c.client.request({ method: 'tasks/get', params: { taskId } }, GetTaskResultSchema);
      expect(got.taskId).toBe(taskId);
      const listed = await c.client.request({ method: 'tasks/list', params: {} }, ListTasksResultSchema);
      expect(listed.tasks.map((t) => t.taskId)).toContain(taskId);
      await eventually(async () => (await c.client.request({ method: 'tasks/get', params: { taskId } }, GetTaskResultSchema)).status === 'completed', 5_000, 'the task to complete');
      const result = await c.client.request({ method: 'tasks/result', params: { taskId } }, CallToolResultSchema);
      expect(text(result)).toBe('slept 100');
    } finally {
      await c.client.close();
    }
  });

  it('offers no tasks of a stdio upstream, whose one process every client shares (tasks/list would show all of theirs)', async () => {
    const c = await connect({}, undefined, '/tasks-mcp/everything');
    try {
      expect(c.client.getServerVersion()?.name).toBe('mcp-servers/everything');
      expect(c.client.getServerCapabilities()?.tasks).toBeUndefined();
      await expect(c.client.request({ method: 'tasks/list', params: {} }, ListTasksResultSchema)).rejects.toMatchObject({ code: -32601 });
    } finally {
      await c.client.close();
    }
  });
});

