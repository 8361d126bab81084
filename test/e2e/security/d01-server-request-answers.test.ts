/**
 * Issue 12, defect 1: unauthenticated answers to server-to-client requests.
 *
 * A tool of a real SDK upstream asks the victim's client for a sampling completion through the gateway. While the
 * victim has not answered yet, an attacker who learnt the victim's session id posts a forged answer: without
 * credentials, as a principal of another trust domain, as another principal of the victim's own trust domain, and the
 * victim's own principal answering an id that was never sent. Every one is refused and audited, the relayed id is
 * unguessable, and the victim's own answer is the one the tool gets.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { startConformanceUpstream, type ConformanceUpstream } from '../../helpers/conformance-server.ts';
import { mcpBackend, route } from '../../helpers/gateway.ts';
import { bearer, cleanRoots, codeOf, post, startSecureGateway, type SecureGateway } from './harness.ts';

let conf: ConformanceUpstream;
let gw: SecureGateway;

beforeAll(async () => {
  conf = await startConformanceUpstream();
  gw = await startSecureGateway({ files: { 'mcp.yaml': mcpBackend('conf', { url: conf.url }) + route('mcp', '/mcp', ['conf']) } });
});

afterAll(async () => {
  await gw?.stop();
  await conf?.close();
  cleanRoots();
});

function text(r: unknown): string {
  return ((r as { content?: { text?: string }[] }).content ?? []).map((c) => c.text ?? '').join('');
}

describe('defect 1: answers to server-to-client requests', () => {
  it('takes an answer only from the session\'s own principal, for an id it relayed, and the id is unguessable', async () => {
    const victimToken = gw.dev('victim');
    let relayedId: string | number | undefined;
    let onSeen!: () => void;
    const seen = new Promise<void>((r) => (onSeen = r));
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const victim = new Client({ name: 'victim', version: '1.0.0' }, { capabilities: { sampling: {} } });
    victim.setRequestHandler(CreateMessageRequestSchema, async (_req, extra) => {
      relayedId = extra.requestId;
      onSeen();
      await released;
      return { role: 'assistant', content: { type: 'text', text: 'the victim answered' }, model: 'victim-model', stopReason: 'endTurn' };
    });
    const transport = new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp`), { requestInit: { headers: bearer(victimToken) } });
    await victim.connect(transport);
    const sid = transport.sessionId!;
    const pending = victim.callTool({ name: 'conf__test_sampling', arguments: { prompt: 'hello' } });
    await seen;

    // The relayed id is random (128 bits), not a counter an attacker can enumerate.
    expect(String(relayedId)).toMatch(/^tg-[A-Za-z0-9_-]{22}$/);

    const forged = { jsonrpc: '2.0', id: relayedId, result: { role: 'assistant', content: { type: 'text', text: 'the attacker answered' }, model: 'evil', stopReason: 'endTurn' } };
    const session = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };

    const anonymous = await post(`${gw.url}/mcp`, forged, session);
    expect(anonymous.status).toBe(401);
    expect(codeOf(anonymous.body)).toBe('TG_UNAUTHENTICATED');
    expect(anonymous.headers.get('www-authenticate')).toContain('resource_metadata=');

    const foreign = await post(`${gw.url}/mcp`, forged, { ...session, ...bearer(gw.partner('attacker')) });
    expect(foreign.status).toBe(404);
    expect(codeOf(foreign.body)).toBe('TG_SESSION_IDENTITY_MISMATCH');

    const peer = await post(`${gw.url}/mcp`, forged, { ...session, ...bearer(gw.dev('mallory')) });
    expect(peer.status).toBe(404);
    expect(codeOf(peer.body)).toBe('TG_SESSION_IDENTITY_MISMATCH');

    const stray = await post(`${gw.url}/mcp`, { ...forged, id: 'tg-AAAAAAAAAAAAAAAAAAAAAA' }, { ...session, ...bearer(victimToken) });
    expect(stray.status).toBe(400);
    expect(codeOf(stray.body)).toBe('TG_MCP_UNKNOWN_RESPONSE');

    // Each refusal is in the audit log with its reason code (and the principal, once known).
    await gw.record((r) => r.outcome === 'unauthenticated' && r.code === 'TG_UNAUTHENTICATED' && r.principal === undefined, 'the anonymous answer');
    await gw.record((r) => r.operation === 'mcp/response' && r.code === 'TG_SESSION_IDENTITY_MISMATCH' && r.principal === 'spiffe://partner.test/attacker', 'the foreign answer');
    await gw.record((r) => r.operation === 'mcp/response' && r.code === 'TG_SESSION_IDENTITY_MISMATCH' && r.principal === 'spiffe://dev.tollgate.local/mallory', 'the peer answer');
    await gw.record((r) => r.operation === 'mcp/response' && r.code === 'TG_MCP_UNKNOWN_RESPONSE' && r.principal === 'spiffe://dev.tollgate.local/victim', 'the stray answer');

    // The victim's own answer is the one the upstream gets, and the session goes on.
    release();
    expect(text(await pending)).toBe('LLM response: the victim answered');
    await gw.record((r) => r.operation === 'mcp/response' && r.outcome === 'ok' && r.principal === 'spiffe://dev.tollgate.local/victim', 'the victim answer');
    expect(text(await victim.callTool({ name: 'conf__test_simple_text', arguments: {} }))).toBe('This is a simple text response for testing.');
    await victim.close();
  });
});
