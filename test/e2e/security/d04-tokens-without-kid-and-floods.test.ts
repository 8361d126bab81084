/**
 * Issue 12, defect 4: tokens without `kid`, floods of bad tokens, and bodies read before the caller is known.
 *
 * - A JWT-SVID with no `kid` header, correctly signed by the partner trust domain's only key, used to be tried
 *   against every key and accepted. Like go-spiffe ("token header missing key id") it is refused by default: 401
 *   TG_INVALID_TOKEN with WWW-Authenticate, audited; the same principal with a proper token still works.
 * - A flood replaying one bad token costs one signature check, not one per request (failed verifications are cached
 *   by token hash): tollgate_token_verifications_total{result="failed"} grows by one for 40 requests.
 * - An unauthenticated POST announcing a 64 MiB body is answered 401 after the gateway has seen only its headers and
 *   the first chunk: it authenticates before reading or parsing the body.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpMcpServer, type FixtureServer } from '../../helpers/mcp-http-server.ts';
import { connectClient, mcpBackend, route } from '../../helpers/gateway.ts';
import { newSigner, nowS, signJwt } from '../../helpers/jwt.ts';
import { bearer, cleanRoots, codeOf, post, PARTNER_TD, startSecureGateway, type SecureGateway } from './harness.ts';

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

const INIT = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'attacker', version: '1' } } };

async function failedChecks(): Promise<number> {
  const text = await (await fetch(`${gw.adminUrl ?? gw.url}/metrics`)).text();
  const m = /^tollgate_token_verifications_total\{result="failed"\} (\d+)/m.exec(text);
  if (m === null) throw new Error(`no tollgate_token_verifications_total in /metrics:\n${text.slice(0, 500)}`);
  return Number(m[1]);
}

async function victimWorks(): Promise<void> {
  const victim = await connectClient(`${gw.url}/mcp`, { headers: bearer(gw.partner('victim')) });
  const r = await victim.callTool({ name: 'fixture__echo', arguments: { message: 'still here' } });
  expect(JSON.stringify(r.content)).toContain('still here');
  await victim.close();
}

describe('defect 4: tokens without kid, bad-token floods, bodies before authentication', () => {
  it('refuses a correctly signed JWT-SVID without kid (401, WWW-Authenticate, audited)', async () => {
    const noKid = signJwt(gw.partnerSigner, { sub: `spiffe://${PARTNER_TD}/nokid`, aud: [`${gw.url}/mcp`], iat: nowS(), exp: nowS() + 600 }, { kid: undefined });
    expect(JSON.parse(Buffer.from(noKid.split('.')[0]!, 'base64url').toString())).not.toHaveProperty('kid');
    const r = await post(`${gw.url}/mcp`, INIT, bearer(noKid));
    expect(r.status).toBe(401);
    expect(codeOf(r.body)).toBe('TG_INVALID_TOKEN');
    expect(r.headers.get('www-authenticate')).toMatch(/^Bearer .*resource_metadata="[^"]+\/\.well-known\/oauth-protected-resource\/mcp"/);
    await gw.record((rec) => rec.code === 'TG_INVALID_TOKEN' && rec.status === 401 && rec.principal === undefined, 'the refusal of the kid-less token');
    // The same principal, with a token that names its key, is served.
    const withKid = await post(`${gw.url}/mcp`, INIT, bearer(gw.partner('nokid')));
    expect(withKid.status).toBe(200);
    await victimWorks();
  });

  it('checks a replayed bad token once, however often it comes', async () => {
    // Signed by a key the partner bundle does not hold, under the bundle key's kid: a signature check fails.
    const forged = signJwt({ ...gw.partnerSigner, privateKey: newSigner('ES256').privateKey }, { sub: `spiffe://${PARTNER_TD}/forger`, aud: [`${gw.url}/mcp`], iat: nowS(), exp: nowS() + 600 });
    const before = await failedChecks();
    const answers = await Promise.all(Array.from({ length: 40 }, () => post(`${gw.url}/mcp`, INIT, bearer(forged))));
    expect(answers.map((a) => a.status)).toEqual(Array(40).fill(401));
    expect(new Set(answers.map((a) => codeOf(a.body)))).toEqual(new Set(['TG_INVALID_TOKEN']));
    expect((await failedChecks()) - before).toBe(1);
    // Another bad token is checked once too.
    const other = signJwt({ ...gw.partnerSigner, privateKey: newSigner('ES256').privateKey }, { sub: `spiffe://${PARTNER_TD}/forger2`, aud: [`${gw.url}/mcp`], iat: nowS(), exp: nowS() + 600 });
    for (let i = 0; i < 5; i++) expect((await post(`${gw.url}/mcp`, INIT, bearer(other))).status).toBe(401);
    expect((await failedChecks()) - before).toBe(2);
    await victimWorks();
  });

  it('answers 401 to an unauthenticated 64 MiB POST before reading its body', async () => {
    const url = new URL(`${gw.url}/mcp`);
    const size = 64 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const { status, sent } = await new Promise<{ status: number; sent: number }>((resolve, reject) => {
      let sent = 0;
      const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'content-length': String(size) } });
      req.on('response', (res) => {
        res.resume();
        resolve({ status: res.statusCode!, sent });
        req.destroy();
      });
      req.on('error', (err) => (sent < size ? undefined : reject(err)));
      // Only the first chunk is written; the rest would follow only if the gateway kept reading (it must not wait for it).
      req.write(chunk);
      sent += chunk.length;
    });
    expect(status).toBe(401);
    expect(sent).toBe(chunk.length);
    await gw.record((rec) => rec.code === 'TG_UNAUTHENTICATED' && rec.status === 401, 'the refusal of the anonymous large POST');
    await victimWorks();
  });
});
