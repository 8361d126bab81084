/**
 * Issue 12, defect 5: the audience was not bound to the resource.
 *
 * A token minted for `/mcp/a` used to be accepted on `/mcp/b` and on `/mcp`. Per the MCP authorization spec (RFC 8707
 * resource indicators, RFC 9728 metadata) it now is valid only for the resource it names: elsewhere it gets 401 with
 * `WWW-Authenticate: Bearer ... resource_metadata="<that resource's metadata>"`, and the metadata names the exact
 * resource; the refusal is audited and the token keeps working where it belongs. The default audience follows the
 * listener (PORT), not a fixed http://127.0.0.1:8080; a token naming only the gateway itself (a shared audience) is
 * refused unless `identity.sharedAudience` is on.
 */
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpMcpServer, type FixtureServer } from '../../helpers/mcp-http-server.ts';
import { connectClient, mcpBackend, route } from '../../helpers/gateway.ts';
import { nowS, signJwt } from '../../helpers/jwt.ts';
import { bearer, cleanRoots, codeOf, gatewayYaml, post, PARTNER_TD, startSecureGateway, type SecureGateway } from './harness.ts';

let a: FixtureServer;
let b: FixtureServer;
let gw: SecureGateway;
let port: number;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

function files(): Record<string, string> {
  return { 'mcp.yaml': mcpBackend('a', { url: a.url }) + mcpBackend('b', { url: b.url }) + route('mcp', '/mcp', ['a', 'b']) };
}

beforeAll(async () => {
  a = await startHttpMcpServer({ name: 'a' });
  b = await startHttpMcpServer({ name: 'b' });
  port = await freePort();
  gw = await startSecureGateway({ files: files(), env: { PORT: String(port) } });
});

afterAll(async () => {
  await gw?.stop();
  await a?.close();
  await b?.close();
  cleanRoots();
});

const INIT = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'c', version: '1' } } };

async function refused(path: string, token: string, what: string): Promise<void> {
  const r = await post(`${gw.url}${path}`, INIT, bearer(token));
  expect(r.status, what).toBe(401);
  expect(codeOf(r.body)).toBe('TG_INVALID_TOKEN');
  const challenge = r.headers.get('www-authenticate') ?? '';
  const metadata = /resource_metadata="([^"]+)"/.exec(challenge)?.[1];
  expect(metadata, challenge).toBe(`${gw.url}/.well-known/oauth-protected-resource${path}`);
  const doc = (await (await fetch(metadata!)).json()) as { resource: string };
  expect(doc.resource).toBe(`${gw.url}${path}`);
}

describe('defect 5: audience bound to the resource', () => {
  it('listens where PORT says, and names its resources after it', () => {
    expect(gw.url).toBe(`http://127.0.0.1:${port}`);
  });

  it('accepts a token for /mcp/a only on /mcp/a: /mcp/b and /mcp get 401 pointing at their own metadata, audited', async () => {
    const forA = gw.partner('agent', '/mcp/a');
    await refused('/mcp/b', forA, 'a token for /mcp/a on /mcp/b');
    await refused('/mcp', forA, 'a token for /mcp/a on /mcp');
    await gw.record((r) => r.code === 'TG_INVALID_TOKEN' && r.route === 'mcp' && r.status === 401, 'the refusal of the token on another resource');
    // The dev trust domain is held to the same rule.
    await refused('/mcp/b', gw.dev('agent', '/mcp/a'), 'a dev token for /mcp/a on /mcp/b');
    // Where it belongs it works.
    const client = await connectClient(`${gw.url}/mcp/a`, { headers: bearer(forA) });
    expect(JSON.stringify((await client.callTool({ name: 'echo', arguments: { message: 'on a' } })).content)).toContain('on a');
    await client.close();
  });

  it('refuses a token minted for the old fixed default audience (http://127.0.0.1:8080/mcp) and one naming only the gateway', async () => {
    const stale = signJwt(gw.partnerSigner, { sub: `spiffe://${PARTNER_TD}/agent`, aud: ['http://127.0.0.1:8080/mcp'], iat: nowS(), exp: nowS() + 600 });
    await refused('/mcp', stale, 'the fixed 8080 audience');
    const shared = signJwt(gw.partnerSigner, { sub: `spiffe://${PARTNER_TD}/agent`, aud: [gw.url], iat: nowS(), exp: nowS() + 600 });
    await refused('/mcp', shared, 'the gateway-wide audience with sharedAudience off (the default)');
    const victim = await connectClient(`${gw.url}/mcp`, { headers: bearer(gw.partner('victim')) });
    expect((await victim.listTools()).tools.length).toBeGreaterThan(0);
    await victim.close();
  });

  it('accepts the gateway-wide audience only where ops turned identity.sharedAudience on', async () => {
    const yaml = gatewayYaml().replace('  identity:\n', '  identity:\n    sharedAudience: true\n');
    expect(yaml).toContain('sharedAudience: true');
    const shared = await startSecureGateway({ files: { ...files(), 'gateway.yaml': yaml } });
    try {
      const token = signJwt(shared.partnerSigner, { sub: `spiffe://${PARTNER_TD}/agent`, aud: [shared.url], iat: nowS(), exp: nowS() + 600 });
      const client = await connectClient(`${shared.url}/mcp/b`, { headers: bearer(token) });
      expect((await client.listTools()).tools.length).toBeGreaterThan(0);
      await client.close();
    } finally {
      await shared.stop();
    }
  });
});

describe('anonymous initialize (a deploy helper saw 200)', () => {
  it.each([{}, undefined, { protocolVersion: '2025-06-18' }])('refuses an anonymous initialize with params %j: 401 with the metadata challenge, audited', async (params) => {
    for (const path of ['/mcp', '/mcp/a']) {
      const r = await post(`${gw.url}${path}`, { jsonrpc: '2.0', id: 1, method: 'initialize', ...(params === undefined ? {} : { params }) });
      expect(r.status, path).toBe(401);
      expect(codeOf(r.body)).toBe('TG_UNAUTHENTICATED');
      expect(r.headers.get('www-authenticate')).toContain(`resource_metadata="${gw.url}/.well-known/oauth-protected-resource${path}"`);
      expect(r.headers.get('mcp-session-id')).toBeNull();
    }
    await gw.record((rec) => rec.code === 'TG_UNAUTHENTICATED' && rec.status === 401, 'the anonymous initialize refusal');
  });

  it('refuses it in the 2026-07-28 era too (headers of the stateless revision, empty params)', async () => {
    for (const path of ['/mcp', '/mcp/a']) {
      const r = await post(`${gw.url}${path}`, { jsonrpc: '2.0', id: 1, method: 'initialize', params: {} }, { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'initialize' });
      expect(r.status, path).toBe(401);
      expect(r.headers.get('mcp-session-id')).toBeNull();
      const get = await fetch(`${gw.url}${path}`, { headers: { accept: 'text/event-stream' } });
      expect(get.status, `GET ${path}`).toBe(401);
      await get.body?.cancel();
    }
  });
});
