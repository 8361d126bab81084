/**
 * Server-to-client requests through the gateway: sampling, elicitation and roots/list sent by upstream tools reach
 * the SDK client that made the call, whose answers go back to the right upstream. Two federated upstreams number
 * their requests the same way (each session starts at 0), so the gateway must map ids per session.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CreateMessageRequestSchema, ElicitRequestSchema, ListRootsRequestSchema, LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { startConformanceUpstream, type ConformanceUpstream } from '../helpers/conformance-server.ts';
import { EVERYTHING_STDIO, eventually, mcpBackend, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';

let a: ConformanceUpstream;
let b: ConformanceUpstream;
let gw: TestGateway;
let client: Client;
const seenIds: Array<string | number> = [];
const logs: string[] = [];

function text(r: unknown): string {
  return (((r as { content?: { text?: string }[] }).content) ?? []).map((c) => c.text ?? '').join('');
}

beforeAll(async () => {
  [a, b] = await Promise.all([startConformanceUpstream(), startConformanceUpstream()]);
  gw = await startTestGateway({
    'mcp.yaml': mcpBackend('a', { url: a.url }) + mcpBackend('b', { url: b.url }) + mcpBackend('everything', EVERYTHING_STDIO) + route('mcp', '/mcp', ['a', 'b', 'everything']),
  });
  client = new Client({ name: 'answering-client', version: '1.0.0' }, { capabilities: { sampling: {}, elicitation: {}, roots: { listChanged: true } } });
  client.setRequestHandler(CreateMessageRequestSchema, async (req, extra) => {
    seenIds.push(extra.requestId);
    const prompt = (req.params.messages[0]?.content as { text?: string }).text ?? '';
    await new Promise((r) => setTimeout(r, 50)); // overlap the two upstreams' requests
    return { role: 'assistant', content: { type: 'text', text: `answer to ${prompt}` }, model: 'test', stopReason: 'endTurn' };
  });
  client.setRequestHandler(ElicitRequestSchema, async (req) => ({ action: 'accept', content: { response: `elicited: ${req.params.message}` } }));
  client.setRequestHandler(ListRootsRequestSchema, async () => ({ roots: [{ uri: 'file:///work/project', name: 'project' }] }));
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
    logs.push(String(n.params.data));
  });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp`), { requestInit: { headers: gw.authHeaders() } }));
});

afterAll(async () => {
  await client?.close();
  await gw?.stop();
  await Promise.all([a?.close(), b?.close()]);
});

describe('server-to-client requests', () => {
  it('routes sampling from two upstreams at once, ids mapped so they cannot collide', async () => {
    const [ra, rb] = await Promise.all([
      client.callTool({ name: 'a__test_sampling', arguments: { prompt: 'from a' } }),
      client.callTool({ name: 'b__test_sampling', arguments: { prompt: 'from b' } }),
    ]);
    expect(text(ra)).toBe('LLM response: answer to from a');
    expect(text(rb)).toBe('LLM response: answer to from b');
    // Both upstreams used their own first id; the client saw two distinct ones.
    expect(new Set(seenIds.slice(-2)).size).toBe(2);
  });

  it('round-trips an elicitation', async () => {
    const r = await client.callTool({ name: 'b__test_elicitation', arguments: { message: 'your name?' } });
    expect(text(r)).toBe('User response: action=accept, content={"response":"elicited: your name?"}');
  });

  it('delivers requests an upstream sends on its session stream (roots/list, sampling) over the GET stream', async () => {
    const roots = await client.callTool({ name: 'a__test_roots', arguments: {} });
    expect(text(roots)).toBe('roots: file:///work/project');
    const s = await client.callTool({ name: 'a__test_sampling_unrelated', arguments: { prompt: 'on the side' } });
    expect(text(s)).toBe('LLM response: answer to on the side');
  });

  it('relays the logging notifications of a call', async () => {
    await client.callTool({ name: 'a__test_tool_with_logging', arguments: {} });
    await eventually(() => logs.includes('Tool execution completed'), 3_000, 'log notifications');
    expect(logs).toEqual(expect.arrayContaining(['Tool execution started', 'Tool processing data']));
  });

  it('does not offer sampling tools of a shared stdio upstream (it is initialized without client capabilities)', async () => {
    const tools = (await client.listTools()).tools.map((t) => t.name);
    expect(tools).toContain('everything__echo');
    expect(tools).not.toContain('everything__trigger-sampling-request');
  });

  it('refuses an answer to a request nobody is waiting for (400), and keeps serving', async () => {
    const sid = (client.transport as StreamableHTTPClientTransport).sessionId!;
    const res = await fetch(`${gw.url}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25', ...gw.authHeaders() },
      body: JSON.stringify({ jsonrpc: '2.0', id: 'tg:999', result: { role: 'assistant', content: { type: 'text', text: 'forged' } } }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { data: { code: string } } }).error.data.code).toBe('TG_MCP_UNKNOWN_RESPONSE');
    const r = await client.callTool({ name: 'a__test_simple_text', arguments: {} });
    expect(text(r)).toBe('This is a simple text response for testing.');
  });
});
