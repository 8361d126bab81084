/**
 * Errors in MCP's own terms, through the gateway with a Rego policy in force, official SDK clients (both lines) and an
 * official SDK server upstream:
 * - an unknown method is -32601 and an unknown tool -32602, even though the policy denies both (nothing exists for it
 *   to protect);
 * - a tool the policy hides from the caller (its `visible` entrypoint, the rule that filters tools/list) is answered
 *   exactly like an unknown one: same code, same message shape, same data, on the federated mount and on one server;
 * - a visible tool the policy refuses for these arguments keeps the denial (-32062) and the policy's reason;
 * - errors of the upstream (a -32002 resource not found, a server-defined code with data) reach the client exactly as
 *   the upstream sent them, compared with the same request sent to the upstream directly.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client as V2Client, StreamableHTTPClientTransport as V2Transport } from '@modelcontextprotocol/client';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import {
  CallToolRequestSchema,
  EmptyResultSchema,
  ListResourcesRequestSchema,
  ListToolsRequestSchema,
  McpError,
  ReadResourceRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Call } from '../../src/core/call.ts';
import { GATEWAY_YAML, connectClient, mcpBackend, recordCalls, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { serveSdkSessions, type SdkSessions } from '../helpers/sdk-sessions.ts';

/** The policy: housekeeping open; tools `echo` and `fail` usable and listed (`secret` is neither); echo refuses LOUD. */
const POLICY = `package tollgate

housekeeping := {"initialize", "ping", "tools/list", "resources/list", "resources/read", "mcp/stream", "mcp/delete", "server/discover"}

shown := {"echo", "fail"}

refused if input.target.arguments.message == "LOUD"

default allow := false

allow if input.operation in housekeeping

allow if startswith(input.operation, "notifications/")

allow if {
	input.target.local in shown
	not refused
}

reason := "" if allow
else := "echo refuses LOUD messages" if refused
else := sprintf("%s is not granted", [input.operation])

decision := {"allow": allow, "reason": reason}

visible contains name if {
	some _, items in input.targets
	some local, name in items
	local in shown
}
`;

function upstreamServer(): Server {
  const server = new Server({ name: 'errors-upstream', version: '1.0.0' }, { capabilities: { tools: {}, resources: {} } });
  const tool = (name: string) => ({ name, inputSchema: { type: 'object' as const, properties: {} } });
  server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: [tool('echo'), tool('fail'), tool('secret')] }));
  server.setRequestHandler(CallToolRequestSchema, (req) => {
    const name = req.params.name;
    if (name === 'fail') throw new McpError(-32050, 'The upstream failed on purpose', { why: 'test', retryAfterMs: 5 });
    if (name === 'echo' || name === 'secret') return { content: [{ type: 'text', text: `${name}: ${String(req.params.arguments?.message)}` }] };
    throw new McpError(-32602, `Tool ${name} not found`);
  });
  server.setRequestHandler(ListResourcesRequestSchema, () => ({ resources: [{ uri: 'test://present', name: 'present' }] }));
  server.setRequestHandler(ReadResourceRequestSchema, (req) => {
    if (req.params.uri === 'test://present') return { contents: [{ uri: 'test://present', text: 'here' }] };
    throw new McpError(-32002, 'Resource not found', { uri: req.params.uri });
  });
  return server;
}

let upstream: SdkSessions;
let gw: TestGateway;
let policyDir: string;
let calls: Call[];
let federated: Client;
let single: Client;
let direct: Client;

async function failure(p: Promise<unknown>): Promise<{ code: number; message: string; data: unknown }> {
  try {
    await p;
  } catch (err) {
    if (err instanceof McpError) return { code: err.code, message: err.message, data: err.data };
    throw err;
  }
  throw new Error('expected an error');
}

beforeAll(async () => {
  upstream = await serveSdkSessions(upstreamServer);
  policyDir = mkdtempSync(join(tmpdir(), 'tollgate-errors-policy-'));
  mkdirSync(join(policyDir, 'tollgate'));
  writeFileSync(join(policyDir, 'tollgate/main.rego'), POLICY);
  gw = await startTestGateway(
    { 'mcp.yaml': mcpBackend('up', { url: upstream.url }) + route('mcp', '/mcp', ['up']) },
    { gatewayYaml: `${GATEWAY_YAML}  policy:\n    dir: ${JSON.stringify(policyDir)}\n` },
  );
  calls = recordCalls(gw);
  federated = await connectClient(`${gw.url}/mcp`);
  single = await connectClient(`${gw.url}/mcp/up`);
  direct = await connectClient(upstream.url, { anonymous: true });
});

afterAll(async () => {
  await Promise.all([federated?.close(), single?.close(), direct?.close()]);
  await gw?.stop();
  await upstream?.close();
  if (policyDir) rmSync(policyDir, { recursive: true, force: true });
});

describe('unknown methods and tools', () => {
  it('answers an unknown method with -32601, not the policy denial', async () => {
    for (const client of [federated, single]) {
      const err = await failure(client.request({ method: 'tools/destroy', params: {} } as never, EmptyResultSchema));
      expect(err.code).toBe(-32601);
      expect(err.message).toBe('MCP error -32601: Method not found: tools/destroy');
    }
    // The audit/metrics record says what happened: the policy refused it.
    expect(calls.filter((c) => c.operation === 'tools/destroy').map((c) => [c.outcome, c.decision?.allow])).toEqual([
      ['denied', false],
      ['denied', false],
    ]);
  });

  it('answers an unknown tool with -32602 on the federated mount and on one server', async () => {
    expect(await failure(federated.callTool({ name: 'up__nope', arguments: {} }))).toEqual({
      code: -32602,
      message: 'MCP error -32602: Unknown tool: up__nope',
      data: { code: 'TG_MCP_UNKNOWN_TOOL' },
    });
    expect(await failure(single.callTool({ name: 'nope', arguments: {} }))).toEqual({
      code: -32602,
      message: 'MCP error -32602: Unknown tool: nope',
      data: { code: 'TG_MCP_UNKNOWN_TOOL' },
    });
  });
});

describe('a tool hidden by policy', () => {
  it('is not listed, and a call to it cannot be told from a call to a tool that does not exist', async () => {
    expect((await federated.listTools()).tools.map((t) => t.name).sort()).toEqual(['up__echo', 'up__fail']);
    expect((await direct.listTools()).tools.map((t) => t.name)).toContain('secret');
    for (const [client, prefix] of [
      [federated, 'up__'],
      [single, ''],
    ] as const) {
      const hidden = await failure(client.callTool({ name: `${prefix}secret`, arguments: { message: 'x' } }));
      const unknown = await failure(client.callTool({ name: `${prefix}n0such`, arguments: { message: 'x' } }));
      expect(hidden.code).toBe(-32602);
      expect({ ...hidden, message: hidden.message.replace('secret', 'NAME') }).toEqual({ ...unknown, message: unknown.message.replace('n0such', 'NAME') });
    }
  });

  it('is answered the same way to a 2026-07-28 client', async () => {
    const v2 = new V2Client({ name: 'v2', version: '1.0.0' }, { versionNegotiation: { mode: { pin: '2026-07-28' } } });
    await v2.connect(new V2Transport(new URL(`${gw.url}/mcp`), { requestInit: { headers: gw.authHeaders() } }));
    try {
      const hidden = await v2.callTool({ name: 'up__secret', arguments: {} }).then(
        () => undefined,
        (e: unknown) => e as { code?: number; message?: string },
      );
      const unknown = await v2.callTool({ name: 'up__n0such', arguments: {} }).then(
        () => undefined,
        (e: unknown) => e as { code?: number; message?: string },
      );
      expect(hidden?.code).toBe(-32602);
      expect(hidden?.message?.replace('secret', 'NAME')).toBe(unknown?.message?.replace('n0such', 'NAME'));
    } finally {
      await v2.close();
    }
  });

  it('is still recorded as a policy denial', () => {
    const c = calls.filter((x) => x.target?.name === 'up__secret').at(0)!;
    expect(c.outcome).toBe('denied');
    expect(c.error?.def.code).toBe('TG_MCP_UNKNOWN_TOOL');
    expect(c.decision).toMatchObject({ allow: false, reason: 'tools/call is not granted' });
  });
});

describe('2026-07-28 clients of a session-era upstream', () => {
  it('get -32601 for the methods that revision removed, and the cache hints resources/read must carry', async () => {
    const v2 = new V2Client({ name: 'v2', version: '1.0.0' }, { versionNegotiation: { mode: { pin: '2026-07-28' } } });
    await v2.connect(new V2Transport(new URL(`${gw.url}/mcp/up`), { requestInit: { headers: gw.authHeaders() } }));
    try {
      // The v2 SDK client does not even send them in this revision: raw requests with the per-request envelope.
      const meta = {
        'io.modelcontextprotocol/protocolVersion': '2026-07-28',
        'io.modelcontextprotocol/clientCapabilities': {},
        'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
      };
      for (const [method, params] of [
        ['ping', {}],
        ['logging/setLevel', { level: 'info' }],
        ['resources/subscribe', { uri: 'test://present' }],
        ['resources/unsubscribe', { uri: 'test://present' }],
      ] as const) {
        const res = await fetch(`${gw.url}/mcp/up`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2026-07-28', 'mcp-method': method, ...gw.authHeaders() },
          body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params: { ...params, _meta: meta } }),
        });
        expect(res.status, method).toBe(404);
        expect(((await res.json()) as { error: { code: number; message: string } }).error).toMatchObject({ code: -32601, message: `Method not found: ${method} (removed in 2026-07-28)` });
      }
      const read = (await v2.readResource({ uri: 'test://present' })) as Record<string, unknown>;
      expect(read).toMatchObject({ ttlMs: 0, cacheScope: 'private', contents: [{ uri: 'test://present', text: 'here' }] });
    } finally {
      await v2.close();
    }
  });
});

describe('a visible tool refused for these arguments', () => {
  it('keeps the denial code and the policy reason', async () => {
    expect((await federated.callTool({ name: 'up__echo', arguments: { message: 'quiet' } })).content).toEqual([{ type: 'text', text: 'echo: quiet' }]);
    const err = await failure(federated.callTool({ name: 'up__echo', arguments: { message: 'LOUD' } }));
    expect(err.code).toBe(-32062);
    expect(err.message).toBe('MCP error -32062: echo refuses LOUD messages');
    expect(err.data).toMatchObject({ code: 'TG_POLICY_DENIED' });
  });

  it('a 2026-07-28 client gets the denial outside the range that revision reserves (-31062), the stable code in data', async () => {
    // 2026-07-28 basic/index, Error Codes: -32020..-32099 hold only the codes that revision defines.
    const meta = {
      'io.modelcontextprotocol/protocolVersion': '2026-07-28',
      'io.modelcontextprotocol/clientCapabilities': {},
      'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
    };
    const post = async (message: string, auth = true): Promise<{ status: number; error: { code: number; message: string; data?: { code?: string } } | undefined }> => {
      const res = await fetch(`${gw.url}/mcp`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': '2026-07-28',
          'mcp-method': 'tools/call',
          'mcp-name': 'up__echo',
          ...(auth ? gw.authHeaders() : {}),
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'up__echo', arguments: { message }, _meta: meta } }),
      });
      const text = await res.text();
      const json = text.startsWith('{') ? (JSON.parse(text) as { error?: { code: number; message: string; data?: { code?: string } } }) : undefined;
      return { status: res.status, error: json?.error };
    };
    const denied = await post('LOUD');
    expect(denied.status).toBe(200);
    expect(denied.error).toMatchObject({ code: -31062, message: 'echo refuses LOUD messages', data: { code: 'TG_POLICY_DENIED' } });
    // Allowed, for contrast: the same request answers.
    expect((await post('quiet')).error).toBeUndefined();
    // Refused before the body is read (no credentials): the era is the header's, the code moved the same way.
    const anonymous = await post('quiet', false);
    expect(anonymous.status).toBe(401);
    expect(anonymous.error).toMatchObject({ code: -31060, data: { code: 'TG_UNAUTHENTICATED' } });
  });
});

describe('upstream errors', () => {
  it('passes a -32002 resource-not-found through exactly (single server and federated)', async () => {
    const want = await failure(direct.readResource({ uri: 'test://missing' }));
    // (The SDK server puts its own "MCP error -32002:" prefix into the message on the wire.)
    expect(want).toMatchObject({ code: -32002, message: expect.stringContaining('Resource not found'), data: { uri: 'test://missing' } });
    expect(await failure(single.readResource({ uri: 'test://missing' }))).toEqual(want);
    expect(await failure(federated.readResource({ uri: 'tollgate://up/test://missing' }))).toEqual(want);
  });

  it('gives a 2026-07-28 client -32602 for an unknown resource, never the retired -32002 (upstream or gateway)', async () => {
    const meta = {
      'io.modelcontextprotocol/protocolVersion': '2026-07-28',
      'io.modelcontextprotocol/clientCapabilities': {},
      'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
    };
    const read = async (path: string, uri: string) => {
      const res = await fetch(`${gw.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'resources/read', 'mcp-name': uri, ...gw.authHeaders() },
        body: JSON.stringify({ jsonrpc: '2.0', id: 'r', method: 'resources/read', params: { uri, _meta: meta } }),
      });
      return ((await res.json()) as { id: unknown; error: { code: number; message: string; data?: Record<string, unknown> } });
    };
    // The upstream's own -32002 (a session-era server), on one server and federated: the code changes, nothing else.
    for (const [path, uri] of [['/mcp/up', 'test://missing'], ['/mcp', 'tollgate://up/test://missing']] as const) {
      const answer = await read(path, uri);
      expect(answer.id).toBe('r');
      expect(answer.error, path).toMatchObject({ code: -32602, message: expect.stringContaining('Resource not found'), data: { uri: 'test://missing' } });
    }
    // The gateway's own answer for a resource of no server.
    expect((await read('/mcp', 'tollgate://nobody/x')).error).toMatchObject({ code: -32602, data: { code: 'TG_MCP_RESOURCE_NOT_FOUND' } });
  });

  it("passes a server-defined error code with its data through exactly", async () => {
    const want = await failure(direct.callTool({ name: 'fail', arguments: {} }));
    expect(want).toMatchObject({ code: -32050, message: expect.stringContaining('The upstream failed on purpose'), data: { why: 'test', retryAfterMs: 5 } });
    expect(await failure(single.callTool({ name: 'fail', arguments: {} }))).toEqual(want);
    expect(await failure(federated.callTool({ name: 'up__fail', arguments: {} }))).toEqual(want);
  });
});
