/**
 * Identity through a running gateway: challenges (RFC 6750 / RFC 9728), anonymous routes only when said, scopes,
 * protected-resource metadata, sessions bound to their creator, no token passthrough, key rotation without
 * restart from a watched file and from an https_web bundle endpoint (refresh per spiffe_refresh_hint, last good
 * bundle kept), and the dev trust domain with `tollgate svid mint`.
 */
import { execFile } from 'node:child_process';
import { readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { connectClient, eventually, mcpBackend, route, startTestGateway, type TestGateway, withIdentity } from '../helpers/gateway.ts';
import { jwks, newSigner, nowS, signJwt, spiffeBundle } from '../helpers/jwt.ts';
import { startJsonServer, type JsonServer } from '../helpers/json-server.ts';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { rawPost } from '../helpers/raw-http.ts';

const AUD = 'https://gw.test';
/**
 * Time is the behaviour of rotation: bounds are generous multiples of the medians measured on the shared 2-core
 * machine (stated per constant), so a regression of seconds fails and load does not.
 */
/** Bundle file replaced -> new key accepted / old key refused: median 0.06 s; 5x is 0.3 s, floor 1.5 s (the poll is 30 s). */
const FILE_ROTATION_BOUND_MS = 1_500;
/** https_web with spiffe_refresh_hint 1 s: median 1.0 s (the hint dominates); bound 5x. */
const WEB_ROTATION_BOUND_MS = 5_000;
/** OIDC JWKS refetched on an unknown kid: median 0.035 s (0.25 s seen at load ~18); 5x is 0.2 s, floor 2 s. */
const OIDC_ROTATION_BOUND_MS = 2_000;
const META = `${AUD}/.well-known/oauth-protected-resource`;

const fileKey1 = newSigner('ES256', 'file-1');
const fileKey2 = newSigner('ES256', 'file-2');
const webKey1 = newSigner('ES256', 'web-1');
const webKey2 = newSigner('RS256', 'web-2');
const corp = newSigner('RS256', 'corp-1');
const corpNext = newSigner('ES256', 'corp-2');
const late = newSigner('ES256', 'late-1');

let fixture: FixtureServer;
let json: JsonServer;
let gw: TestGateway;
let corpIss: string;

/** Every resource of the test config (RFC 8707: a token is valid only for the resources its aud names). */
const ALL = ['/mcp', '/mcp/fixture', '/web', '/web/fixture', '/open', '/open/fixture', '/scoped', '/scoped/fixture'].map((p) => `${AUD}${p}`);
const svid = (signer: typeof fileKey1, sub: string, extra: Record<string, unknown> = {}): string =>
  signJwt(signer, { sub, aud: ALL, iat: nowS(), exp: nowS() + 300, ...extra });
const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

function writeAtomically(path: string, doc: unknown): void {
  writeFileSync(`${path}.tmp`, JSON.stringify(doc));
  renameSync(`${path}.tmp`, path);
}

beforeAll(async () => {
  fixture = await startHttpMcpServer({ name: 'fixture' });
  json = await startJsonServer();
  corpIss = `${json.url}/corp`;
  json.set('/corp/.well-known/openid-configuration', { issuer: corpIss, jwks_uri: `${json.url}/corp/jwks` });
  json.set('/corp/jwks', jwks([corp]));
  json.set('/web/bundle', spiffeBundle([webKey1], { spiffe_refresh_hint: 1 }));
  const gatewayYaml = withIdentity(`    audiences: [${AUD}]
    trustDomains:
      - { name: file.test, bundle: { file: file-bundle.json } }
      - { name: web.test, bundle: { https_web: { url: ${json.url}/web/bundle, allowInsecureHttp: true } } }
    oidc:
      - { name: corp, issuer: ${corpIss}, allowInsecureHttp: true, minRefreshSeconds: 1 }
`);
  gw = await startTestGateway(
    {
      'file-bundle.json': JSON.stringify(spiffeBundle([fileKey1])),
      'mcp.yaml':
        mcpBackend('fixture', { url: fixture.url }) +
        route('mcp', '/mcp', ['fixture']) +
        route('only-web', '/web', ['fixture'], { auth: { spiffe: { trustDomains: ['web.test'] } } }) +
        route('open', '/open', ['fixture'], { auth: { anonymous: true } }) +
        route('scoped', '/scoped', ['fixture'], { auth: { spiffe: false, oidc: ['corp'], scopes: ['mcp:tools'] } }),
    },
    { gatewayYaml },
  );
});

afterAll(async () => {
  await gw?.stop();
  await fixture?.close();
  await json?.close();
});

describe('challenges', () => {
  it('answers a request without credentials with 401 and only resource_metadata (RFC 6750 3.1)', async () => {
    const res = await rawPost(`${gw.url}/mcp`);
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe(`Bearer resource_metadata="${META}/mcp"`);
    expect(res.json().error?.data?.code).toBe('TG_UNAUTHENTICATED');
  });

  it('names the single-server resource for /mcp/<server>', async () => {
    const res = await rawPost(`${gw.url}/mcp/fixture`);
    expect(res.headers['www-authenticate']).toBe(`Bearer resource_metadata="${META}/mcp/fixture"`);
  });

  it('lets anonymous calls through only on the route that says so', async () => {
    expect((await rawPost(`${gw.url}/open`)).status).toBe(200);
    expect((await rawPost(`${gw.url}/web`)).status).toBe(401);
    // A token presented on an anonymous route must still be valid.
    const res = await rawPost(`${gw.url}/open`, { authorization: 'Bearer not.a.token' });
    expect(res.status).toBe(401);
  });

  it('refuses a token of a trusted trust domain on a route limited to another one', async () => {
    const res = await rawPost(`${gw.url}/web`, { authorization: `Bearer ${svid(fileKey1, 'spiffe://file.test/a')}` });
    expect(res.status).toBe(401);
    expect(res.json().error?.data?.reason).toMatch(/trust domain file.test are not accepted/);
    expect((await rawPost(`${gw.url}/web`, { authorization: `Bearer ${svid(webKey1, 'spiffe://web.test/a')}` })).status).toBe(200);
  });

  it('answers 403 insufficient_scope when the token lacks a required scope', async () => {
    const base = { iss: corpIss, sub: 'alice', aud: `${AUD}/scoped`, exp: nowS() + 300 };
    const res = await rawPost(`${gw.url}/scoped`, { authorization: `Bearer ${signJwt(corp, { ...base, scope: 'mcp:read' })}` });
    expect(res.status).toBe(403);
    expect(res.headers['www-authenticate']).toBe(`Bearer error="insufficient_scope", scope="mcp:tools", resource_metadata="${META}/scoped"`);
    expect(res.json().error?.data?.code).toBe('TG_INSUFFICIENT_SCOPE');
    expect((await rawPost(`${gw.url}/scoped`, { authorization: `Bearer ${signJwt(corp, { ...base, scope: 'mcp:read mcp:tools' })}` })).status).toBe(200);
    // Entra ID style `scp` array.
    expect((await rawPost(`${gw.url}/scoped`, { authorization: `Bearer ${signJwt(corp, { ...base, scp: ['mcp:tools'] })}` })).status).toBe(200);
  });

  it('accepts a token only on the resource its aud names (RFC 8707), not on the gateway base nor another resource', async () => {
    const on = async (path: string, aud: unknown): Promise<number> => (await rawPost(`${gw.url}${path}`, { authorization: `Bearer ${svid(fileKey1, 'spiffe://file.test/a', { aud })}` })).status;
    for (const aud of [`${AUD}/mcp`, `${AUD}/mcp/`, [`https://other.example`, `${AUD}/mcp`]]) expect(await on('/mcp', aud), JSON.stringify(aud)).toBe(200);
    for (const aud of [AUD, `${AUD}/mcp/fixture`, `${AUD}/scoped`, [`https://other.example`, AUD]]) expect(await on('/mcp', aud), JSON.stringify(aud)).toBe(401);
    expect(await on('/mcp/fixture', `${AUD}/mcp/fixture`)).toBe(200);
    expect(await on('/mcp/fixture', `${AUD}/mcp`)).toBe(401);
    const wrong = await rawPost(`${gw.url}/mcp/fixture`, { authorization: `Bearer ${svid(fileKey1, 'spiffe://file.test/a', { aud: `${AUD}/mcp` })}` });
    // The challenge names the metadata of the resource the token should have named.
    expect(wrong.headers['www-authenticate']).toContain(`resource_metadata="${META}/mcp/fixture"`);
  });
});

describe('RFC 9728 protected resource metadata', () => {
  it('describes each route and the gateway', async () => {
    const scoped = await fetch(`${gw.url}/.well-known/oauth-protected-resource/scoped`);
    expect(scoped.status).toBe(200);
    expect(await scoped.json()).toEqual({
      resource: `${AUD}/scoped`,
      bearer_methods_supported: ['header'],
      resource_name: 'Tollgate',
      authorization_servers: [corpIss],
      scopes_supported: ['mcp:tools'],
    });
    const single = (await (await fetch(`${gw.url}/.well-known/oauth-protected-resource/mcp/fixture`)).json()) as Record<string, unknown>;
    expect(single.resource).toBe(`${AUD}/mcp/fixture`);
    const root = (await (await fetch(`${gw.url}/.well-known/oauth-protected-resource`)).json()) as Record<string, unknown>;
    expect(root.resource).toBe(AUD);
    expect((await fetch(`${gw.url}/.well-known/oauth-protected-resource/nothing-here`)).status).toBe(404);
  });
});

describe('sessions and upstreams', () => {
  it('refuses a session created by identity A to identity B (404) and keeps serving A', async () => {
    const tokenA = svid(fileKey1, 'spiffe://file.test/agent-a');
    const tokenB = svid(fileKey1, 'spiffe://file.test/agent-b');
    const transport = new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp`), { requestInit: { headers: bearer(tokenA) } });
    const clientA = new Client({ name: 'a', version: '1' });
    await clientA.connect(transport);
    const sid = transport.sessionId!;
    expect(sid).toBeTruthy();

    const list = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' });
    const headers = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-06-18' };
    const asB = await rawPost(`${gw.url}/mcp`, { authorization: `Bearer ${tokenB}`, body: list, headers });
    expect(asB.status).toBe(404);
    expect(asB.json().error?.data?.code).toBe('TG_SESSION_IDENTITY_MISMATCH');
    const anonymous = await rawPost(`${gw.url}/mcp`, { body: list, headers });
    expect(anonymous.status).toBe(401);
    // A fresh token of A (another token, same identity) is still A.
    const asA = await rawPost(`${gw.url}/mcp`, { authorization: `Bearer ${svid(fileKey1, 'spiffe://file.test/agent-a', { jti: 'x' })}`, body: list, headers });
    expect(asA.status).toBe(200);
    const sum = await clientA.callTool({ name: 'fixture__add', arguments: { a: 1, b: 2 } });
    expect(sum.content).toEqual([{ type: 'text', text: '3' }]);
    await clientA.close();
  });

  it('never forwards the caller token upstream', async () => {
    const client = await connectClient(`${gw.url}/mcp`, { headers: bearer(svid(fileKey1, 'spiffe://file.test/a')) });
    await client.callTool({ name: 'fixture__echo', arguments: { message: 'hi' } });
    await client.close();
    expect(fixture.authorizations.length).toBeGreaterThan(0);
    expect(fixture.authorizations.filter((a) => a !== undefined)).toEqual([]);
  });

  it('verifies a token once: later calls are answered from the cache', async () => {
    const authority = gw.services.identity.authority!;
    const token = svid(fileKey1, 'spiffe://file.test/cached');
    const before = authority.cache.size;
    for (let i = 0; i < 5; i++) expect((await rawPost(`${gw.url}/mcp`, { authorization: `Bearer ${token}` })).status).toBe(200);
    expect(authority.cache.size).toBe(before + 1);
  });
});

describe('key rotation without restart', () => {
  it('follows a watched bundle file: a new key is accepted, a removed key stops being accepted', async () => {
    const file = join(gw.dir, 'file-bundle.json');
    const old = svid(fileKey1, 'spiffe://file.test/rot');
    const fresh = svid(fileKey2, 'spiffe://file.test/rot');
    expect((await rawPost(`${gw.url}/mcp`, { authorization: `Bearer ${old}` })).status).toBe(200);
    expect((await rawPost(`${gw.url}/mcp`, { authorization: `Bearer ${fresh}` })).status).toBe(401);

    writeAtomically(file, spiffeBundle([fileKey1, fileKey2], { spiffe_sequence: 2 }));
    const added = await eventually(async () => (await rawPost(`${gw.url}/mcp`, { authorization: `Bearer ${fresh}` })).status === 200, 10_000, 'new key accepted');
    // The old key is still published: its (cached) token stays valid.
    expect((await rawPost(`${gw.url}/mcp`, { authorization: `Bearer ${old}` })).status).toBe(200);

    writeAtomically(file, spiffeBundle([fileKey2], { spiffe_sequence: 3 }));
    const removed = await eventually(async () => (await rawPost(`${gw.url}/mcp`, { authorization: `Bearer ${old}` })).status === 401, 10_000, 'removed key refused');
    console.log(`key rotation (bundle file replaced -> new key accepted / removed key refused): ${added.toFixed(0)} / ${removed.toFixed(0)} ms`);
    expect(added).toBeLessThan(FILE_ROTATION_BOUND_MS);
    expect(removed).toBeLessThan(FILE_ROTATION_BOUND_MS);
    expect((await rawPost(`${gw.url}/mcp`, { authorization: `Bearer ${fresh}` })).status).toBe(200);

    // A broken file keeps the last good bundle: once the source has refused it, the rotated key still verifies.
    const source = gw.services.identity.authority!.issuers.trustDomains.get('file.test')!.source;
    expect(source.lastError).toBeUndefined();
    writeFileSync(file, '{ not json');
    await eventually(() => /not valid JSON/.test(source.lastError ?? ''), 5_000, 'the broken bundle file to be refused');
    expect((await rawPost(`${gw.url}/mcp`, { authorization: `Bearer ${svid(fileKey2, 'spiffe://file.test/after-broken')}` })).status).toBe(200);
  });

  it('follows an https_web endpoint per spiffe_refresh_hint, keeping the last good bundle when it fails', async () => {
    const k1 = svid(webKey1, 'spiffe://web.test/agent');
    const k2 = svid(webKey2, 'spiffe://web.test/agent');
    expect((await rawPost(`${gw.url}/web`, { authorization: `Bearer ${k1}` })).status).toBe(200);
    expect((await rawPost(`${gw.url}/web`, { authorization: `Bearer ${k2}` })).status).toBe(401);

    json.set('/web/bundle', spiffeBundle([webKey1, webKey2], { spiffe_refresh_hint: 1, spiffe_sequence: 2 }));
    const added = await eventually(async () => (await rawPost(`${gw.url}/web`, { authorization: `Bearer ${k2}` })).status === 200, 10_000, 'rotated-in key accepted');

    json.set('/web/bundle', spiffeBundle([webKey2], { spiffe_refresh_hint: 1, spiffe_sequence: 3 }));
    const removed = await eventually(async () => (await rawPost(`${gw.url}/web`, { authorization: `Bearer ${k1}` })).status === 401, 10_000, 'removed key refused');
    console.log(`key rotation (https_web, refresh hint 1 s -> new key accepted / removed key refused): ${added.toFixed(0)} / ${removed.toFixed(0)} ms`);
    expect(added).toBeLessThan(WEB_ROTATION_BOUND_MS);
    expect(removed).toBeLessThan(WEB_ROTATION_BOUND_MS);

    const hits = json.hits('/web/bundle');
    json.fail('/web/bundle');
    await eventually(() => json.hits('/web/bundle') > hits + 1, 6_000, 'refresh attempts against the failing endpoint');
    expect((await rawPost(`${gw.url}/web`, { authorization: `Bearer ${svid(webKey2, 'spiffe://web.test/later')}` })).status).toBe(200);
    json.set('/web/bundle', spiffeBundle([webKey2], { spiffe_refresh_hint: 1, spiffe_sequence: 3 }));
  });
});

describe('OIDC key rotation and live reload', () => {
  it('fetches the provider JWKS again when a token names a kid it has not seen (rate-limited)', async () => {
    const token = signJwt(corpNext, { iss: corpIss, sub: 'bob', aud: `${AUD}/scoped`, exp: nowS() + 300, scope: 'mcp:tools' });
    json.set('/corp/jwks', jwks([corp, corpNext]));
    const ms = await eventually(async () => (await rawPost(`${gw.url}/scoped`, { authorization: `Bearer ${token}` })).status === 200, 10_000, 'rotated OIDC key');
    console.log(`key rotation (OIDC JWKS, unknown kid -> refetch -> accepted): ${ms.toFixed(0)} ms`);
    expect(ms).toBeLessThan(OIDC_ROTATION_BOUND_MS);
    // A flood of unknown kids does not turn into a flood of JWKS fetches.
    const before = json.hits('/corp/jwks');
    const forged = signJwt(newSigner('ES256', 'nobody'), { iss: corpIss, sub: 'eve', aud: `${AUD}/scoped`, exp: nowS() + 300 });
    await Promise.all(Array.from({ length: 20 }, () => rawPost(`${gw.url}/scoped`, { authorization: `Bearer ${forged}` })));
    expect(json.hits('/corp/jwks') - before).toBeLessThanOrEqual(1);
  });

  it('applies a new trust domain and route auth on config reload, without restart', async () => {
    writeFileSync(join(gw.dir, 'late-bundle.json'), JSON.stringify(spiffeBundle([late])));
    const token = svid(late, 'spiffe://late.test/agent');
    expect((await rawPost(`${gw.url}/mcp`, { authorization: `Bearer ${token}` })).status).toBe(401);
    const yaml = readFileSync(join(gw.dir, 'gateway.yaml'), 'utf8').replace(
      '    trustDomains:\n',
      '    trustDomains:\n      - { name: late.test, bundle: { file: late-bundle.json } }\n',
    );
    gw.write('gateway.yaml', yaml);
    await eventually(async () => (await rawPost(`${gw.url}/mcp`, { authorization: `Bearer ${token}` })).status === 200, 5_000, 'new trust domain');
    // Sources that did not change kept their keys (and the file watcher) across the reload.
    expect((await rawPost(`${gw.url}/mcp`, { authorization: `Bearer ${svid(fileKey2, 'spiffe://file.test/after-reload')}` })).status).toBe(200);
    // A reload that names an unknown issuer is refused with file:line; the config in force stays.
    gw.write('bad.yaml', route('bad', '/bad', ['fixture'], { auth: { oidc: ['nobody'] } }));
    await eventually(() => gw.gateway.readiness().config.rejected !== undefined, 5_000, 'the reload to be refused');
    expect(gw.gateway.readiness().config.rejected!.issues[0]!.file).toMatch(/bad\.yaml$/);
    expect((await rawPost(`${gw.url}/bad`)).status).toBe(404);
    expect((await rawPost(`${gw.url}/mcp`, { authorization: `Bearer ${token}` })).status).toBe(200);
    const refusedAt = gw.gateway.state().snapshot.revision;
    rmSync(join(gw.dir, 'bad.yaml'));
    await eventually(() => gw.gateway.readiness().config.rejected === undefined && gw.gateway.state().snapshot.revision > refusedAt, 5_000, 'the config without bad.yaml');
  });
});

describe('dev trust domain', () => {
  let dev: TestGateway;
  beforeAll(async () => {
    dev = await startTestGateway({ 'mcp.yaml': mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']) });
  });
  afterAll(async () => dev?.stop());

  it('generates its key under the data dir (0600) and requires an SVID by default', async () => {
    const snapshot = dev.gateway.state().snapshot;
    const key = join(snapshot.dataDir, 'identity', 'dev-dev.tollgate.local.jwk');
    expect(statSync(key).mode & 0o777).toBe(0o600);
    expect((await rawPost(`${dev.url}/mcp`)).status).toBe(401);
  });

  it('accepts what `tollgate svid mint` prints, over MCP with the official SDK client', async () => {
    // The gateway listens on an ephemeral port: PORT tells the CLI, as it would tell `npm start`.
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [join(process.cwd(), 'bin/tollgate.mjs'), 'svid', 'mint', '--spiffe-id', 'spiffe://dev.tollgate.local/cli-agent', '--ttl', '5m', '--config', dev.dir],
      { env: { ...process.env, PORT: String(dev.address.port) } },
    );
    const token = stdout.trim();
    expect(token.split('.')).toHaveLength(3);
    const client = await connectClient(`${dev.url}/mcp`, { headers: bearer(token) });
    const sum = await client.callTool({ name: 'fixture__add', arguments: { a: 4, b: 5 } });
    expect(sum.content).toEqual([{ type: 'text', text: '9' }]);
    await client.close();
    // Tokens of the dev trust domain for another audience are refused.
    const wrongAud = dev.devToken(undefined, { audiences: ['https://elsewhere.example'] });
    expect((await rawPost(`${dev.url}/mcp`, { authorization: `Bearer ${wrongAud}` })).status).toBe(401);
  });

  it('refuses to mint outside the dev trust domain or beyond the max TTL', async () => {
    const run = (args: string[]) =>
      promisify(execFile)(process.execPath, [join(process.cwd(), 'bin/tollgate.mjs'), 'svid', 'mint', '--config', dev.dir, ...args]).then(
        () => 0,
        (err: { code?: number }) => err.code ?? -1,
      );
    expect(await run(['--spiffe-id', 'spiffe://prod.example/agent'])).not.toBe(0);
    expect(await run(['--spiffe-id', 'spiffe://dev.tollgate.local/agent', '--ttl', '30d'])).toBe(2);
    expect(await run([])).toBe(2);
  });
});
