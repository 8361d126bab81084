/**
 * Issue 12, defect 7: the legacy HTTP+SSE channel is not bound to its owner.
 *
 * A victim opens a legacy (2024-11-05) SSE channel and initializes on it. An attacker who learnt the channel's
 * POST URL (`.../sse/message?sessionId=...`) posts to it without credentials, with a token of another trust domain,
 * and as another principal of the victim's trust domain. Each POST is refused on the POST itself (401 / 404), audited
 * with its code, and nothing reaches the victim's stream; the victim's own POSTs keep working.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createParser } from 'eventsource-parser';
import { startHttpMcpServer, type FixtureServer } from '../../helpers/mcp-http-server.ts';
import { mcpBackend, route } from '../../helpers/gateway.ts';
import { bearer, cleanRoots, codeOf, post, startSecureGateway, type SecureGateway } from './harness.ts';

let fixture: FixtureServer;
let gw: SecureGateway;

beforeAll(async () => {
  fixture = await startHttpMcpServer({ name: 'fixture' });
  gw = await startSecureGateway({ files: { 'mcp.yaml': mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']) } });
});

afterAll(async () => {
  await gw?.stop();
  await fixture?.close();
  cleanRoots();
});

/** A legacy SSE channel read raw: every `message` event's data as it arrives, and the endpoint to POST to. */
async function openChannel(token: string): Promise<{ endpoint: string; messages: Array<Record<string, unknown>>; close(): void }> {
  const controller = new AbortController();
  const res = await fetch(`${gw.url}/mcp/sse`, { headers: { accept: 'text/event-stream', ...bearer(token) }, signal: controller.signal });
  expect(res.status).toBe(200);
  const messages: Array<Record<string, unknown>> = [];
  let endpoint: string | undefined;
  const parser = createParser({
    onEvent: (e) => {
      if (e.event === 'endpoint') endpoint = e.data;
      else messages.push(JSON.parse(e.data) as Record<string, unknown>);
    },
  });
  const reader = res.body!.getReader();
  void (async () => {
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (done) return;
      parser.feed(decoder.decode(value, { stream: true }));
    }
  })();
  const until = Date.now() + 10_000;
  while (endpoint === undefined && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  if (endpoint === undefined) throw new Error('no endpoint event');
  return { endpoint: `${gw.url}${endpoint}`, messages, close: () => controller.abort() };
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('defect 7: legacy SSE channels belong to who opened them', () => {
  it('refuses anybody else\'s POST on the POST itself, writes nothing to the owner\'s stream, and keeps the owner served', async () => {
    const victimToken = gw.dev('victim');
    const channel = await openChannel(victimToken);
    const init = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 'old', version: '1' } } };
    expect((await post(channel.endpoint, init, bearer(victimToken))).status).toBe(202);
    await until(() => channel.messages.some((m) => m.id === 1), 'the initialize answer on the stream');

    // The attacks: a request whose answer (or error) would otherwise land on the victim's stream.
    const probe = (id: number) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'fixture__echo', arguments: { message: `attack ${id}` } } });
    const anonymous = await post(channel.endpoint, probe(666));
    expect(anonymous.status).toBe(401);
    expect(codeOf(anonymous.body)).toBe('TG_UNAUTHENTICATED');
    const badToken = await post(channel.endpoint, probe(667), { authorization: 'Bearer not-a-token' });
    expect(badToken.status).toBe(401);
    expect(codeOf(badToken.body)).toBe('TG_INVALID_TOKEN');
    const foreign = await post(channel.endpoint, probe(668), bearer(gw.partner('attacker')));
    expect(foreign.status).toBe(404);
    expect(codeOf(foreign.body)).toBe('TG_SESSION_IDENTITY_MISMATCH');
    const peer = await post(channel.endpoint, probe(669), bearer(gw.dev('mallory')));
    expect(peer.status).toBe(404);
    // An initialize by someone else cannot take the channel over either.
    expect((await post(channel.endpoint, { ...init, id: 670 }, bearer(gw.dev('mallory')))).status).toBe(404);

    for (const [code, principal] of [
      ['TG_UNAUTHENTICATED', undefined],
      ['TG_INVALID_TOKEN', undefined],
      ['TG_SESSION_IDENTITY_MISMATCH', 'spiffe://partner.test/attacker'],
      ['TG_SESSION_IDENTITY_MISMATCH', 'spiffe://dev.tollgate.local/mallory'],
    ] as const) {
      await gw.record((r) => r.operation === 'mcp/legacy-message' && r.code === code && r.principal === principal, `${code} refusal of ${principal ?? 'an anonymous caller'}`);
    }

    // The victim's own call works, and its stream carried nothing of the attacks.
    expect((await post(channel.endpoint, probe(2), bearer(victimToken))).status).toBe(202);
    await until(() => channel.messages.some((m) => m.id === 2), 'the victim call answer');
    expect(JSON.stringify(channel.messages.find((m) => m.id === 2))).toContain('attack 2');
    expect(channel.messages.filter((m) => typeof m.id === 'number' && m.id >= 666).map((m) => m.id)).toEqual([]);
    expect(JSON.stringify(channel.messages)).not.toMatch(/attack 66\d/);
    channel.close();
  });
});
