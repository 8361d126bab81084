/**
 * Authentication as clients and attackers see it, rule by rule from the specs, through a running gateway with real
 * keys and tokens signed by jose:
 * - SPIFFE JWT-SVID (spiffe/spiffe standards/JWT-SVID.md): the nine allowed algorithms and no other, `typ` JWT/JOSE,
 *   no JOSE header besides alg/kid/typ, `sub` a valid SPIFFE ID of the trust domain (SPIFFE-ID.md), `aud` and `exp`
 *   required; keys chosen by `kid` among the bundle's `use: "jwt-svid"` keys only (SPIFFE_Trust_Domain_and_Bundle.md
 *   4.2.2: keys of another or no use are ignored).
 * - RFC 6750: the Bearer scheme in any case; 401 without an error code when no bearer credentials came (none, or
 *   another scheme), 401 invalid_token for a bad token, 400 invalid_request for a malformed request (two
 *   Authorization headers, a token in the header and the query), 403 insufficient_scope with `scope`.
 * - RFC 9728 / MCP authorization (2025-06-18, 2025-11-25): `resource_metadata` on every 401, `scope` on the 401 of
 *   a route that requires scopes, metadata documents whose `resource` is the URL the client used.
 */
import { generateKeyPairSync, sign as rawSign, type KeyObject } from 'node:crypto';
import { get } from 'node:http';
import { discoverOAuthProtectedResourceMetadata, extractWWWAuthenticateParams, selectResourceURL } from '@modelcontextprotocol/sdk/client/auth.js';
import { exportJWK, SignJWT, type JWTHeaderParameters } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mcpBackend, route, startTestGateway, type TestGateway, withIdentity } from '../helpers/gateway.ts';
import { kserveBackend, kserveRoute } from '../helpers/kserve.ts';
import { modelsRoute, openaiBackend } from '../helpers/openai-gateway.ts';
import { b64url, nowS } from '../helpers/jwt.ts';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { rawPost, type RawResponse } from '../helpers/raw-http.ts';

const AUD = 'https://gw.test';
/** A second URL of the same gateway (another audience): clients that call it are answered under it. */
const ALT = 'https://gw-alt.test:8443';
const META = `${AUD}/.well-known/oauth-protected-resource`;
const ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512'] as const;

interface Key {
  readonly kid: string;
  readonly privateKey: KeyObject;
  readonly jwk: Record<string, unknown>;
}

async function makeKey(kid: string, type: 'rsa' | 'rsa1024' | 'P-256' | 'P-384' | 'P-521' | 'ed25519'): Promise<Key> {
  const pair =
    type === 'rsa' || type === 'rsa1024'
      ? generateKeyPairSync('rsa', { modulusLength: type === 'rsa' ? 2048 : 1024 })
      : type === 'ed25519'
        ? generateKeyPairSync('ed25519')
        : generateKeyPairSync('ec', { namedCurve: type });
  return { kid, privateKey: pair.privateKey, jwk: { ...(await exportJWK(pair.publicKey)), kid } };
}

let rsa: Key;
let p256: Key;
let p384: Key;
let p521: Key;
let ed: Key;
let sigUse: Key; // in the bundle with use "sig": not a JWT-SVID authority
let noUse: Key; // in the bundle without use: not a JWT-SVID authority either
let x509Use: Key; // use "x509-svid": an X.509 root, never a JWT key
let rsa1024: Key; // a jwt-svid key too short for jose (RSA under 2048 bits)
let fixture: FixtureServer;
let gw: TestGateway;

const claims = (over: Record<string, unknown> = {}): Record<string, unknown> => ({ sub: 'spiffe://a.test/agent', aud: [`${AUD}/mcp`], exp: nowS() + 300, iat: nowS(), ...over });

function keyFor(alg: string): Key {
  if (alg.startsWith('ES')) return alg === 'ES256' ? p256 : alg === 'ES384' ? p384 : p521;
  return rsa;
}

async function sign(key: Key, payload: Record<string, unknown>, header: Partial<JWTHeaderParameters> & Record<string, unknown> = {}): Promise<string> {
  const alg = (header.alg as string | undefined) ?? (key === rsa || key === sigUse || key === noUse || key === x509Use || key === rsa1024 ? 'RS256' : key === ed ? 'EdDSA' : key === p384 ? 'ES384' : key === p521 ? 'ES512' : 'ES256');
  const h: Record<string, unknown> = { alg, kid: key.kid, typ: 'JWT', ...header };
  for (const k of Object.keys(h)) if (h[k] === undefined) delete h[k];
  return new SignJWT(payload).setProtectedHeader(h as JWTHeaderParameters).sign(key.privateKey);
}

const call = (path: string, token: string | undefined, extra: { authorization?: string | string[] } = {}): Promise<RawResponse> =>
  rawPost(`${gw.url}${path}`, { authorization: extra.authorization ?? (token === undefined ? undefined : `Bearer ${token}`) });

function challengeOf(res: RawResponse): string {
  return String(res.headers['www-authenticate'] ?? '');
}

function expectInvalidToken(res: RawResponse, reason?: RegExp, path = '/mcp'): void {
  expect(res.status, res.body).toBe(401);
  const c = challengeOf(res);
  expect(c).toMatch(/^Bearer /);
  expect(c).toContain('error="invalid_token"');
  expect(c).toContain(`resource_metadata="${META}${path}"`);
  expect(res.json().error?.data?.code).toBe('TG_INVALID_TOKEN');
  if (reason) expect(res.json().error?.data?.reason).toMatch(reason);
}

beforeAll(async () => {
  [rsa, p256, p384, p521, ed, sigUse, noUse, x509Use, rsa1024] = await Promise.all([
    makeKey('rsa', 'rsa'),
    makeKey('p256', 'P-256'),
    makeKey('p384', 'P-384'),
    makeKey('p521', 'P-521'),
    makeKey('ed', 'ed25519'),
    makeKey('sig-use', 'rsa'),
    makeKey('no-use', 'rsa'),
    makeKey('x509-use', 'rsa'),
    makeKey('rsa1024', 'rsa1024'),
  ]);
  fixture = await startHttpMcpServer({ name: 'fixture' });
  const bundle = {
    spiffe_sequence: 1,
    keys: [
      ...[rsa, p256, p384, p521, ed, rsa1024].map((k) => ({ ...k.jwk, use: 'jwt-svid' })),
      // A point that is not on P-256: importing it fails.
      { kty: 'EC', crv: 'P-256', kid: 'off-curve', use: 'jwt-svid', x: p256.jwk.x, y: p256.jwk.x },
      { ...sigUse.jwk, use: 'sig' },
      { ...noUse.jwk },
      { ...x509Use.jwk, use: 'x509-svid' },
    ],
  };
  const gatewayYaml = withIdentity(`    audiences: [${AUD}, "${ALT}"]
    trustDomains:
      - { name: a.test, bundle: { file: a-bundle.json } }
`);
  gw = await startTestGateway(
    {
      'a-bundle.json': JSON.stringify(bundle),
      'mcp.yaml':
        mcpBackend('fixture', { url: fixture.url }) +
        route('mcp', '/mcp', ['fixture']) +
        route('scoped', '/scoped', ['fixture'], { auth: { scopes: ['tools:call', 'tools:list'] } }) +
        route('open', '/open', ['fixture'], { auth: { anonymous: true } }),
      // Refused before anything is forwarded: no model server needs to run.
      'models.yaml':
        openaiBackend('llm', { url: 'http://127.0.0.1:9' }) +
        modelsRoute('llm', ['llm'], { models: [{ name: 'm', backend: 'llm', model: 'm' }] }) +
        kserveBackend('triton', { url: 'http://127.0.0.1:9' }) +
        kserveRoute('triton', ['triton']),
    },
    { gatewayYaml },
  );
});

afterAll(async () => {
  await gw?.stop();
  await fixture?.close();
});

describe('JWT-SVID 2.1: alg', () => {
  for (const alg of ALGS) {
    it(`accepts ${alg}`, async () => {
      const res = await call('/mcp', await sign(keyFor(alg), claims(), { alg }));
      expect(res.status, res.body).toBe(200);
    });
  }

  it('refuses EdDSA, even with a jwt-svid Ed25519 key in the bundle', async () => {
    expectInvalidToken(await call('/mcp', await sign(ed, claims(), { alg: 'EdDSA' })), /alg EdDSA is not allowed/);
  });

  it('refuses HS256/384/512 and none, and an alg in the wrong case', async () => {
    const body = b64url(claims());
    for (const alg of ['HS256', 'HS384', 'HS512', 'none', 'es256', 'Rs256']) {
      const res = await call('/mcp', `${b64url({ alg, kid: 'p256', typ: 'JWT' })}.${body}.${b64url('sig')}`);
      expectInvalidToken(res, /alg .* is not allowed/);
    }
  });

  it('answers a control character or non-Latin-1 text in alg or typ with a clean 401 (the reason reaches a header)', async () => {
    const body = b64url(claims());
    for (const header of [{ alg: 'ES256\u0001' }, { alg: 'ES256\u2028x' }, { alg: '\u{1F4A5}' }, { alg: 'ES256', kid: 'p256', typ: 'J\u0000WT' }, { alg: 'ES256', kid: 'p256', typ: 'JWT\u00e9\u{1F4A5}' }]) {
      const res = await call('/mcp', `${b64url(header)}.${body}.${b64url('sig')}`);
      expectInvalidToken(res);
      // RFC 6750 3: error_description is %x20-21 / %x23-5B / %x5D-7E only.
      expect(challengeOf(res)).toMatch(/^[\x20-\x7e]*$/);
    }
    // A long alg is quoted in the reason, not copied whole into the header.
    const long = await call('/mcp', `${b64url({ alg: 'A'.repeat(6000) })}.${body}.${b64url('sig')}`);
    expectInvalidToken(long, /is not allowed/);
    expect(challengeOf(long).length).toBeLessThan(600);
    expect((await call('/mcp', await sign(p256, claims()))).status).toBe(200);
  });
});

describe('JWT-SVID 2.2-2.3: kid and typ, and no other header', () => {
  it('accepts typ JWT, typ JOSE and no typ', async () => {
    for (const typ of ['JWT', 'JOSE', undefined]) expect((await call('/mcp', await sign(p256, claims(), { typ }))).status, String(typ)).toBe(200);
  });

  it('refuses any other typ', async () => {
    for (const typ of ['at+jwt', 'application/at+jwt', 'JWE', 'secevent+jwt']) {
      expectInvalidToken(await call('/mcp', await sign(p256, claims(), { typ })), /typ .* is not accepted/);
    }
  });

  it('refuses a JWT-SVID carrying a JOSE header the standard does not describe (jku, x5u, jwk, x5c, cty, private)', async () => {
    const cases: Array<Record<string, unknown>> = [
      { jku: 'https://evil.example/jwks' },
      { x5u: 'https://evil.example/cert.pem' },
      { jwk: { kty: 'EC', crv: 'P-256', x: p256.jwk.x, y: p256.jwk.y } },
      { x5t: 'AAAA' },
      { cty: 'JWT' },
      { 'x-private': 1 },
    ];
    for (const extra of cases) {
      const res = await call('/mcp', await sign(p256, claims(), extra));
      expectInvalidToken(res, /header parameter .* is not allowed in a JWT-SVID/);
    }
  });

  it('selects the key by kid: a token naming one key and signed by another is refused', async () => {
    const token = await sign(p256, claims(), { kid: 'p384', alg: 'ES256' });
    expectInvalidToken(await call('/mcp', token));
  });

  it('a bundle key jose cannot use (RSA under 2048 bits, an EC point off the curve) refuses the token, cleanly', async () => {
    // jose will not sign with it either: signed by hand.
    const input = `${b64url({ alg: 'RS256', kid: 'rsa1024', typ: 'JWT' })}.${b64url(claims())}`;
    const short = `${input}.${rawSign('sha256', Buffer.from(input), rsa1024.privateKey).toString('base64url')}`;
    expectInvalidToken(await call('/mcp', short), /could not be verified/);
    expectInvalidToken(await call('/mcp', await sign(p256, claims(), { kid: 'off-curve' })), /could not be verified|signature verification failed/);
    expect((await call('/mcp', await sign(p256, claims()))).status).toBe(200);
  });

  it('uses only keys marked use "jwt-svid" (keys with use "sig", no use or "x509-svid" are ignored)', async () => {
    for (const key of [sigUse, noUse, x509Use]) {
      expectInvalidToken(await call('/mcp', await sign(key, claims())), /unknown kid/);
    }
  });
});

describe('JWT-SVID 3: claims', () => {
  it('sub must be a SPIFFE ID of the trust domain (SPIFFE-ID 2.1-2.3)', async () => {
    const bad = [
      'spiffe://A.test/agent', // trust domain in upper case
      'SPIFFE://a.test/agent', // scheme in upper case
      'spiffe://a.test:8443/agent', // port
      'spiffe://user@a.test/agent', // userinfo
      'spiffe://a.test/agent?x=1', // query
      'spiffe://a.test/agent#frag', // fragment
      'spiffe://a.test/agent/', // trailing slash
      'spiffe://a.test//agent', // empty segment
      'spiffe://a.test/./agent', // dot segment
      'spiffe://a.test/agent/..', // dot-dot segment
      'spiffe://a.test/ag%20ent', // percent-encoding
      'spiffe://a.test/agént', // non-ASCII
      'spiffe:///agent', // no trust domain
      'spiffe://b.test/agent', // another trust domain
      `spiffe://a.test/${'x'.repeat(2100)}`, // longer than 2048 bytes
      'https://a.test/agent',
    ];
    for (const sub of bad) expectInvalidToken(await call('/mcp', await sign(p256, claims({ sub }))));
    for (const sub of [42, ['spiffe://a.test/agent'], null]) expectInvalidToken(await call('/mcp', await sign(p256, claims({ sub }))));
    for (const sub of ['spiffe://a.test', 'spiffe://a.test/Agent_1.x-y/ns/default']) {
      expect((await call('/mcp', await sign(p256, claims({ sub })))).status, sub).toBe(200);
    }
  });

  it('aud is required, must hold our value, may hold others', async () => {
    const { aud: _omit, ...noAud } = claims();
    expectInvalidToken(await call('/mcp', await sign(p256, noAud)), /missing aud/);
    for (const aud of [[], '', ['https://elsewhere.example'], 7, [7]]) expectInvalidToken(await call('/mcp', await sign(p256, claims({ aud }))));
    expect((await call('/mcp', await sign(p256, claims({ aud: `${AUD}/mcp` })))).status).toBe(200);
    expect((await call('/mcp', await sign(p256, claims({ aud: ['https://elsewhere.example', `${AUD}/mcp`] })))).status).toBe(200);
  });

  it('exp is required and must not be in the past (beyond a small leeway)', async () => {
    const { exp: _omit, ...noExp } = claims();
    expectInvalidToken(await call('/mcp', await sign(p256, noExp)), /missing exp/);
    expectInvalidToken(await call('/mcp', await sign(p256, claims({ exp: nowS() - 3600 }))), /expired/);
    expect((await call('/mcp', await sign(p256, claims({ exp: nowS() - 2 })))).status).toBe(200);
  });

  it('iat in the future beyond the leeway is refused, as go-spiffe (go-jose) does; a little skew is not', async () => {
    expectInvalidToken(await call('/mcp', await sign(p256, claims({ iat: nowS() + 3600 }))), /issued in the future/);
    expect((await call('/mcp', await sign(p256, claims({ iat: nowS() + 5 })))).status).toBe(200);
  });
});

describe('RFC 6750 and the MCP authorization spec: challenges', () => {
  it('no credentials: 401, Bearer challenge with resource_metadata and no error code', async () => {
    const res = await call('/mcp', undefined);
    expect(res.status).toBe(401);
    expect(challengeOf(res)).toBe(`Bearer resource_metadata="${META}/mcp"`);
    expect(res.json().error?.data?.code).toBe('TG_UNAUTHENTICATED');
  });

  it('the Bearer scheme is case-insensitive', async () => {
    const token = await sign(p256, claims());
    for (const scheme of ['Bearer', 'bearer', 'BEARER', 'bEaReR']) {
      expect((await call('/mcp', undefined, { authorization: `${scheme} ${token}` })).status, scheme).toBe(200);
    }
  });

  it('another scheme is no bearer credential: 401 with the challenge and no error code (RFC 6750 3.1)', async () => {
    for (const authorization of ['Basic dXNlcjpwYXNz', 'Digest username="u"', 'DPoP abc', 'Bearerx abc']) {
      const res = await call('/mcp', undefined, { authorization });
      expect(res.status, authorization).toBe(401);
      expect(challengeOf(res)).toBe(`Bearer resource_metadata="${META}/mcp"`);
      expect(res.json().error?.data?.code).toBe('TG_UNAUTHENTICATED');
    }
  });

  it('a token only in the query string is not a credential (MCP: never in the URI): 401 with the challenge', async () => {
    const res = await rawPost(`${gw.url}/mcp?access_token=${await sign(p256, claims())}`);
    expect(res.status).toBe(401);
    expect(challengeOf(res)).toBe(`Bearer resource_metadata="${META}/mcp"`);
    expect(res.body).not.toContain('eyJ');
  });

  it('a malformed authorization request is 400 invalid_request (RFC 6750 3.1, MCP error table)', async () => {
    const token = await sign(p256, claims());
    const cases: Array<[string, () => Promise<RawResponse>]> = [
      ['two Authorization headers', () => call('/mcp', undefined, { authorization: [`Bearer ${token}`, `Bearer ${token}`] })],
      ['Bearer and Basic headers', () => call('/mcp', undefined, { authorization: [`Bearer ${token}`, 'Basic dXNlcjpwYXNz'] })],
      ['header and query token', () => rawPost(`${gw.url}/mcp?access_token=${token}`, { authorization: `Bearer ${token}` })],
      ['Bearer with no token', () => call('/mcp', undefined, { authorization: 'Bearer ' })],
      ['Bearer with two tokens', () => call('/mcp', undefined, { authorization: `Bearer ${token} ${token}` })],
    ];
    for (const [label, send] of cases) {
      const res = await send();
      expect(res.status, label).toBe(400);
      const c = challengeOf(res);
      expect(c, label).toMatch(/^Bearer error="invalid_request"/);
      expect(c, label).toContain(`resource_metadata="${META}/mcp"`);
      expect(res.json().error?.data?.code, label).toBe('TG_INVALID_AUTH_REQUEST');
      expect(res.body).not.toContain('eyJ');
    }
  });

  it('names the required scopes in the 401 of a route that requires them (MCP 2025-11-25)', async () => {
    const none = await call('/scoped', undefined);
    expect(none.status).toBe(401);
    expect(challengeOf(none)).toBe(`Bearer resource_metadata="${META}/scoped", scope="tools:call tools:list"`);
    const bad = await call('/scoped', await sign(p256, claims({ aud: `${AUD}/scoped`, exp: nowS() - 3600, scope: 'tools:call tools:list' })));
    expect(bad.status).toBe(401);
    expect(challengeOf(bad)).toContain('error="invalid_token"');
    expect(challengeOf(bad)).toContain('scope="tools:call tools:list"');
  });

  it('insufficient scope: 403 with error, scope and resource_metadata; enough scope passes', async () => {
    const res = await call('/scoped', await sign(p256, claims({ aud: `${AUD}/scoped`, scope: 'tools:call' })));
    expect(res.status).toBe(403);
    const c = challengeOf(res);
    expect(c).toContain('error="insufficient_scope"');
    expect(c).toContain('scope="tools:call tools:list"');
    expect(c).toContain(`resource_metadata="${META}/scoped"`);
    expect(res.json().error?.data?.code).toBe('TG_INSUFFICIENT_SCOPE');
    expect((await call('/scoped', await sign(p256, claims({ aud: `${AUD}/scoped`, scope: 'tools:list tools:call' })))).status).toBe(200);
  });

  it('an anonymous route still refuses a bad token, and a malformed request', async () => {
    expect((await call('/open', undefined)).status).toBe(200);
    expect((await call('/open', 'not.a.token')).status).toBe(401);
    expect((await call('/open', undefined, { authorization: ['Bearer a.b.c', 'Bearer a.b.c'] })).status).toBe(400);
  });
});

describe('the same challenges in every protocol', () => {
  type Body = { error?: { code?: string }; code?: string };
  const post = (path: string, headers: Record<string, string | string[]>): Promise<Response> => {
    const h = new Headers({ 'content-type': 'application/json' });
    for (const [k, v] of Object.entries(headers)) for (const one of [v].flat()) h.append(k, one);
    return fetch(`${gw.url}${path}`, { method: 'POST', headers: h, body: '{}' });
  };

  for (const [label, path, code] of [
    ['OpenAI', '/v1/chat/completions', (b: Body) => b.error?.code],
    ['KServe', '/v2/models/m/infer', (b: Body) => b.code],
  ] as const) {
    it(`${label}: 401 with the challenge, invalid_token, 400 invalid_request, in the protocol's error shape`, async () => {
      const none = await post(path, {});
      expect(none.status).toBe(401);
      expect(none.headers.get('www-authenticate')).toBe(`Bearer resource_metadata="${META}${path.slice(0, 3)}"`);
      expect(code((await none.json()) as Body)).toBe('TG_UNAUTHENTICATED');
      const bad = await post(path, { authorization: `Bearer ${await sign(p256, claims({ aud: `${AUD}/mcp` }))}` });
      expect(bad.status).toBe(401);
      expect(bad.headers.get('www-authenticate')).toMatch(/^Bearer error="invalid_token", error_description="aud does not name this resource/);
      expect(code((await bad.json()) as Body)).toBe('TG_INVALID_TOKEN');
      const twice = await post(path, { authorization: ['Bearer a.b.c', 'Bearer a.b.c'] });
      expect(twice.status).toBe(400);
      expect(twice.headers.get('www-authenticate')).toMatch(/^Bearer error="invalid_request"/);
      expect(code((await twice.json()) as Body)).toBe('TG_INVALID_AUTH_REQUEST');
    });
  }
});

describe('RFC 9728 protected resource metadata', () => {
  it('the resource_metadata of every challenge serves a document whose resource is the resource the client called', async () => {
    for (const path of ['/mcp', '/mcp/fixture', '/scoped']) {
      const res = await call(path, undefined);
      const url = /resource_metadata="([^"]+)"/.exec(challengeOf(res))?.[1];
      expect(url).toBe(`${META}${path}`);
      const doc = await fetch(`${gw.url}${new URL(url!).pathname}`);
      expect(doc.status).toBe(200);
      expect(doc.headers.get('content-type')).toMatch(/^application\/json/);
      const body = (await doc.json()) as Record<string, unknown>;
      expect(body.resource).toBe(`${AUD}${path}`);
      expect(body.bearer_methods_supported).toEqual(['header']);
      expect(typeof body.resource_name).toBe('string');
    }
    const scoped = (await (await fetch(`${gw.url}/.well-known/oauth-protected-resource/scoped`)).json()) as Record<string, unknown>;
    expect(scoped.scopes_supported).toEqual(['tools:call', 'tools:list']);
  });

  it('a client of another of the gateway URLs gets challenges and metadata under that URL (RFC 9728 3.3), never under an unknown Host', async () => {
    const getDoc = (path: string, host: string): Promise<Record<string, unknown>> =>
      new Promise((resolve, reject) => {
        const u = new URL(gw.url);
        get({ host: u.hostname, port: u.port, path, headers: { host } }, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve(JSON.parse(text) as Record<string, unknown>));
        }).on('error', reject);
      });
    const altHost = new URL(ALT).host;
    const res = await rawPost(`${gw.url}/mcp`, { headers: { host: altHost } });
    expect(res.status).toBe(401);
    expect(challengeOf(res)).toBe(`Bearer resource_metadata="${ALT}/.well-known/oauth-protected-resource/mcp"`);
    expect((await getDoc('/.well-known/oauth-protected-resource/mcp', altHost)).resource).toBe(`${ALT}/mcp`);
    expect((await getDoc('/.well-known/oauth-protected-resource/mcp', 'GW-ALT.test:8443')).resource).toBe(`${ALT}/mcp`);
    // A token for the resource under either URL is accepted.
    expect((await call('/mcp', await sign(p256, claims({ aud: `${ALT}/mcp` })))).status).toBe(200);
    // An unknown Host is never echoed: the first configured URL is used.
    const evil = await rawPost(`${gw.url}/mcp`, { headers: { host: 'evil.example' } });
    expect(challengeOf(evil)).toBe(`Bearer resource_metadata="${META}/mcp"`);
    expect((await getDoc('/.well-known/oauth-protected-resource/mcp', 'evil.example')).resource).toBe(`${AUD}/mcp`);
    expect((await getDoc('/.well-known/oauth-protected-resource/mcp', 'gw-alt.test')).resource).toBe(`${AUD}/mcp`);
  });

  it('answers 404 for a path that is not a protected resource', async () => {
    for (const p of ['/nothing', '/mcp/unknown-server', '/mcp/fixture/deeper']) {
      expect((await fetch(`${gw.url}/.well-known/oauth-protected-resource${p}`)).status, p).toBe(404);
    }
  });
});

describe('what the MCP SDK client makes of it (default audience: the listener URL)', () => {
  let own: TestGateway;
  beforeAll(async () => {
    own = await startTestGateway(
      {
        'a-bundle.json': JSON.stringify({ spiffe_sequence: 1, keys: [{ ...p256.jwk, use: 'jwt-svid' }] }),
        'mcp.yaml':
          mcpBackend('fixture', { url: fixture.url }) +
          route('scoped', '/scoped', ['fixture'], { auth: { scopes: ['tools:call'] } }) +
          route('root', '/', ['fixture'], { auth: { scopes: ['root:all'] } }),
      },
      { gatewayYaml: withIdentity('    trustDomains:\n      - { name: a.test, bundle: { file: a-bundle.json } }\n') },
    );
  });
  afterAll(async () => own?.stop());

  it('finds the metadata from the challenge and from the well-known fallback, accepts its resource, and the token for it works', async () => {
    const server = new URL(`${own.url}/scoped`);
    const res = await fetch(server, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{}' });
    expect(res.status).toBe(401);
    const { resourceMetadataUrl, scope, error } = extractWWWAuthenticateParams(res);
    expect(error).toBeUndefined();
    expect(scope).toBe('tools:call');
    expect(resourceMetadataUrl?.href).toBe(`${own.url}/.well-known/oauth-protected-resource/scoped`);
    const fromHeader = await discoverOAuthProtectedResourceMetadata(server, { resourceMetadataUrl });
    const fromFallback = await discoverOAuthProtectedResourceMetadata(server);
    expect(fromFallback).toEqual(fromHeader);
    expect(fromHeader.resource).toBe(server.href);
    expect(fromHeader.scopes_supported).toEqual(['tools:call']);
    // The SDK refuses metadata whose resource does not match the server URL; this one it takes.
    const resource = await selectResourceURL(server, {} as never, fromHeader);
    expect(resource?.href).toBe(server.href);
    const token = await sign(p256, claims({ aud: fromHeader.resource, scope: scope! }));
    const ok = await rawPost(server.href, { authorization: `Bearer ${token}` });
    expect(ok.status, ok.body).toBe(200);
  });

  it('a route mounted at the root is described by the root metadata document (RFC 9728 3.1: no path, no suffix)', async () => {
    const res = await rawPost(`${own.url}/`);
    expect(res.status).toBe(401);
    expect(challengeOf(res)).toBe(`Bearer resource_metadata="${own.url}/.well-known/oauth-protected-resource", scope="root:all"`);
    const doc = await discoverOAuthProtectedResourceMetadata(new URL(`${own.url}/`));
    expect(doc.resource).toBe(own.url);
    expect(doc.scopes_supported).toEqual(['root:all']);
  });
});

describe('the gateway is unharmed', () => {
  it('still serves a valid token, and never passed a caller token upstream', async () => {
    expect((await call('/mcp', await sign(p256, claims()))).status).toBe(200);
    expect(fixture.authorizations.length).toBeGreaterThan(0);
    expect(fixture.authorizations.every((a) => a === undefined)).toBe(true);
  });
});
