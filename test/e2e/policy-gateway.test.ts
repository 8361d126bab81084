/**
 * Policy through the gateway with the official SDK client and real SVIDs (signed by the gateway's dev trust
 * domain, here named example.org): the committed default bundle (bundles/tollgate.tar.gz) decides. Allowed calls
 * pass, a tool the caller may not see is answered like an unknown one (-32602), argument rules stop calls of visible
 * tools before the upstream sees them (-32062 with the policy's reason), and tools/list shows each identity only
 * what it may call.
 */
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { Client as V2Client, StreamableHTTPClientTransport as V2Transport } from '@modelcontextprotocol/client';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DecisionEvent } from '../../src/guards/policy/decision-log.ts';
import { EVERYTHING_STDIO, GATEWAY_YAML, connectClient, mcpBackend, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startToolServer, type ToolServer } from '../helpers/tool-server.ts';

const SUPPORT = 'spiffe://example.org/agents/support';
const OPS = 'spiffe://example.org/agents/ops';
const INTERN = 'spiffe://example.org/agents/intern';

let gw: TestGateway;
let files: ToolServer;
let db: ToolServer;
let support: Client;
let ops: Client;
const events: DecisionEvent[] = [];

async function refusal(p: Promise<unknown>): Promise<McpError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof McpError) return err;
    throw err;
  }
  throw new Error('expected the call to be refused');
}

function text(result: unknown): string {
  return ((result as { content: Array<{ text: string }> }).content[0]!).text;
}

beforeAll(async () => {
  files = await startToolServer('files', { read_file: ['path'], list_directory: ['path', 'paths'], write_file: ['path', 'content'] });
  db = await startToolServer('db', { query: ['sql'] });
  const gatewayYaml = `${GATEWAY_YAML}  identity:
    dev: { enabled: true, trustDomain: example.org }
  policy:
    bundle: ${JSON.stringify(join(process.cwd(), 'bundles/tollgate.tar.gz'))}
    decisionLog: { mask: [/target/arguments/content] }
`;
  gw = await startTestGateway(
    {
      'mcp.yaml':
        mcpBackend('everything', EVERYTHING_STDIO) +
        mcpBackend('files', { url: files.url }) +
        mcpBackend('db', { url: db.url }) +
        route('mcp', '/mcp', ['everything', 'files', 'db']),
    },
    { gatewayYaml },
  );
  gw.services.policy.decisionLog.subscribe((e) => events.push(e));
  support = await connectClient(`${gw.url}/mcp`, { headers: gw.authHeaders(SUPPORT) });
  ops = await connectClient(`${gw.url}/mcp`, { headers: gw.authHeaders(OPS) });
});

afterAll(async () => {
  await support?.close();
  await ops?.close();
  await gw?.stop();
  await files?.close();
  await db?.close();
});

describe('policy through the gateway (default policies, real SVIDs)', () => {
  it('lets a granted call through', async () => {
    const r = await support.callTool({ name: 'everything__echo', arguments: { message: 'hello' } });
    expect(text(r)).toContain('hello');
  });

  it('answers a call to a tool the caller may not see like a call to a tool that does not exist (-32602)', async () => {
    const err = await refusal(support.callTool({ name: 'everything__get-env', arguments: {} }));
    const unknown = await refusal(support.callTool({ name: 'everything__no-such-tool', arguments: {} }));
    expect(err.code).toBe(-32602);
    expect(err.message).toBe('MCP error -32602: Unknown tool: everything__get-env');
    expect(err.data).toEqual({ code: 'TG_MCP_UNKNOWN_TOOL' });
    expect({ code: unknown.code, message: unknown.message.replace('no-such-tool', 'get-env'), data: unknown.data }).toEqual({ code: err.code, message: err.message, data: err.data });
    // The decision log still has the denial, with the policy's reason.
    const event = events.findLast((e) => e.path === 'tollgate/decision' && (e.input as { target?: { name?: string } }).target?.name === 'everything__get-env');
    expect(event).toMatchObject({ allow: false, reason: 'spiffe://example.org/agents/support may not use tool everything__get-env' });
    expect((event!.input as { principal: { id: string } }).principal.id).toBe(SUPPORT);
    expect(event!.bundles.tollgate?.revision).toMatch(/^src-/);
  });

  it('answers a hidden tool with the same error over raw JSON-RPC (HTTP 200, in band)', async () => {
    const headers = { ...gw.authHeaders(SUPPORT), 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    const init = await fetch(`${gw.url}/mcp`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }),
    });
    const session = init.headers.get('mcp-session-id')!;
    await init.text();
    const res = await fetch(`${gw.url}/mcp`, {
      method: 'POST',
      headers: { ...headers, 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'everything__get-env', arguments: {} } }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { id: number; error: { code: number; message: string; data: Record<string, unknown> } };
    expect(body.id).toBe(7);
    expect(body.error).toEqual({ code: -32602, message: 'Unknown tool: everything__get-env', data: { code: 'TG_MCP_UNKNOWN_TOOL' } });
  });

  it('enforces argument rules before the upstream sees the call (a visible tool keeps the denial and its reason)', async () => {
    const ok = await ops.callTool({ name: 'files__read_file', arguments: { path: '/srv/shared/report.txt' } });
    expect(text(ok)).toContain('/srv/shared/report.txt');
    const before = files.calls.length;
    const outside = await refusal(ops.callTool({ name: 'files__read_file', arguments: { path: '/srv/shared/../../etc/passwd' } }));
    expect(outside.message).toBe('MCP error -32062: files__read_file: path /srv/shared/../../etc/passwd is outside /srv/shared/');
    expect(files.calls.length).toBe(before);

    expect(text(await ops.callTool({ name: 'db__query', arguments: { sql: 'SELECT count(*) FROM orders' } }))).toContain('SELECT');
    const drop = await refusal(ops.callTool({ name: 'db__query', arguments: { sql: 'drop table orders' } }));
    expect(drop.message).toBe('MCP error -32062: db__query: DROP statements are not allowed');
    expect(db.calls.map(([, a]) => a.sql)).toEqual(['SELECT count(*) FROM orders']);
  });

  it('filters tools/list per identity: each sees only what it may call', async () => {
    const supportTools = (await support.listTools()).tools.map((t) => t.name).sort();
    const opsTools = (await ops.listTools()).tools.map((t) => t.name).sort();
    expect(supportTools).toEqual(['everything__echo', 'everything__get-sum', 'everything__get-tiny-image']);
    expect(opsTools).toEqual(['db__query', 'files__list_directory', 'files__read_file']);
    const list = events.filter((e) => e.path === 'tollgate/visible').at(-1)!;
    expect((list.input as { kind: string }).kind).toBe('tool');
    const prompts = (await support.listPrompts()).prompts.map((p) => p.name);
    expect(prompts).toEqual(['everything__simple-prompt']);
  });

  it('a caller with no grant cannot even open a session', async () => {
    const err = await connectClient(`${gw.url}/mcp`, { headers: gw.authHeaders(INTERN) }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toContain('spiffe://example.org/agents/intern has no grant');
  });

  it('masks the decision log as configured and as the policy asks (redactions)', async () => {
    await ops.callTool({ name: 'files__read_file', arguments: { path: '/srv/shared/a', api_key: 'sk-live-123' } }).catch(() => undefined);
    const e = events.filter((x) => x.path === 'tollgate/decision' && (x.input as { target?: { local?: string } }).target?.local === 'read_file').at(-1)!;
    expect(e.erased).toContain('/target/arguments/api_key');
    expect(JSON.stringify(e.input)).not.toContain('sk-live-123');
  });

  it('serves a stateless (2026-07-28) client under the same policy: discover, filtered list, granted and denied calls', async () => {
    const v2 = new V2Client({ name: 'v2-support', version: '1.0.0' }, { versionNegotiation: { mode: { pin: '2026-07-28' } } });
    await v2.connect(new V2Transport(new URL(`${gw.url}/mcp`), { requestInit: { headers: gw.authHeaders(SUPPORT) } }));
    try {
      const names = (await v2.listTools()).tools.map((t) => t.name).sort();
      expect(names).toEqual(['everything__echo', 'everything__get-sum', 'everything__get-tiny-image']);
      const r = await v2.callTool({ name: 'everything__echo', arguments: { message: 'stateless' } });
      expect(JSON.stringify(r)).toContain('stateless');
      await expect(v2.callTool({ name: 'everything__get-env', arguments: {} })).rejects.toThrow(/Unknown tool: everything__get-env/);
    } finally {
      await v2.close();
    }
  });
});
