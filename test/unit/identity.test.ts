/**
 * Unit tests of the identity pieces: SPIFFE ID parsing, bundle parsing (SPIFFE `use`, skipped keys), the bearer
 * header parser, the verified-token cache, direct token verification, the dev trust domain, config validation with
 * file:line, and the upstream credential interceptor.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfigDir } from '../../src/config/load.ts';
import { VerifiedTokenCache } from '../../src/guards/identity/cache.ts';
import { loadOrCreateDevAuthority, mintDevSvid, parseTtl } from '../../src/guards/identity/dev.ts';
import { bearerToken } from '../../src/guards/identity/guard.ts';
import { SpiffeTrustDomain } from '../../src/guards/identity/issuers/spiffe.ts';
import { parseKeySet } from '../../src/guards/identity/keys.ts';
import { StaticKeySource } from '../../src/guards/identity/sources/source.ts';
import { parseSpiffeId } from '../../src/guards/identity/spiffe-id.ts';
import { AuthFailure, verifyToken, type IssuerDirectory } from '../../src/guards/identity/token.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { withCredential } from '../../src/upstream/credentials.ts';
import { newSigner, nowS, signJwt, spiffeBundle } from '../helpers/jwt.ts';

const log = createLogger('silent');
const tmp = mkdtempSync(join(tmpdir(), 'tollgate-unit-identity-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function directory(signers: ReturnType<typeof newSigner>[], td = 'a.test', allowMissingKid = false): { dir: IssuerDirectory; source: StaticKeySource } {
  const source = new StaticKeySource({ label: td, fingerprint: td, profile: 'spiffe', log, doc: spiffeBundle(signers) });
  source.start();
  return { dir: { trustDomains: new Map([[td, new SpiffeTrustDomain(td, source, allowMissingKid)]]), byIss: new Map() }, source };
}

describe('parseSpiffeId', () => {
  it('accepts valid IDs and splits them', () => {
    expect(parseSpiffeId('spiffe://example.org/ns/prod/sa/agent')).toEqual({
      id: 'spiffe://example.org/ns/prod/sa/agent',
      trustDomain: 'example.org',
      path: '/ns/prod/sa/agent',
      segments: ['ns', 'prod', 'sa', 'agent'],
    });
    expect(parseSpiffeId('spiffe://example.org')?.path).toBe('');
  });

  it.each([
    'spiffe://Example.org/a', // uppercase trust domain
    'spiffe://example.org/', // trailing slash
    'spiffe://example.org//a',
    'spiffe://example.org/a/./b',
    'spiffe://example.org/a/../b',
    'spiffe://example.org/a?b=c',
    'spiffe://example.org/a#b',
    'spiffe://user@example.org/a',
    'spiffe://example.org:443/a',
    'spiffe:///a',
    'SPIFFE://example.org/a',
    'https://example.org/a',
    `spiffe://example.org/${'a'.repeat(2048)}`,
    'spiffe://example.org/a b',
    'spiffe://example.org/%41',
  ])('refuses %s', (id) => expect(parseSpiffeId(id)).toBeUndefined());

  it('refuses non-strings', () => {
    expect(parseSpiffeId(42)).toBeUndefined();
    expect(parseSpiffeId(undefined)).toBeUndefined();
  });
});

describe('parseKeySet', () => {
  const ec = newSigner('ES256', 'ec');
  const rsa = newSigner('RS256', 'rsa');

  it('keeps jwt-svid keys of a SPIFFE bundle and ignores x509-svid, unknown and private keys', () => {
    const { set, skipped } = parseKeySet(
      {
        keys: [
          { ...ec.jwk, use: 'jwt-svid' },
          { ...rsa.jwk, use: 'x509-svid' },
          { kty: 'OKP', crv: 'Ed25519', x: 'abc', kid: 'ed', use: 'jwt-svid' },
          { ...(ec.privateKey.export({ format: 'jwk' }) as object), kid: 'priv', use: 'jwt-svid' },
          { kty: 'oct', k: 'c2VjcmV0', kid: 'hmac' },
          { ...rsa.jwk, kid: 'rsa-enc', use: 'enc' },
          'not a key',
        ],
        spiffe_refresh_hint: 60,
        spiffe_sequence: 7,
      },
      'spiffe',
    );
    expect(set.keys.map((k) => k.kid)).toEqual(['ec']);
    expect(skipped).toBe(6);
    expect(set.refreshHint).toBe(60);
    expect(set.sequence).toBe(7);
  });

  it('a plain JWKS keeps sig keys and refuses jwt-svid ones', () => {
    const { set } = parseKeySet({ keys: [{ ...ec.jwk, use: 'sig' }, { ...rsa.jwk, use: 'jwt-svid' }] }, 'jwks');
    expect(set.keys.map((k) => k.kid)).toEqual(['ec']);
  });

  it('pins EC keys to their curve and honours a JWK alg', () => {
    const { set } = parseKeySet({ keys: [ec.jwk, { ...rsa.jwk, alg: 'PS256' }] }, 'jwks');
    expect(set.candidates('ec', 'ES256')).toHaveLength(1);
    expect(set.candidates('ec', 'ES384')).toHaveLength(0);
    expect(set.candidates('rsa', 'RS256')).toHaveLength(0);
    expect(set.candidates('rsa', 'PS256')).toHaveLength(1);
    expect(set.candidates(undefined, 'PS256')).toHaveLength(1);
  });

  it('refuses documents that are not a JWKS', () => {
    expect(() => parseKeySet([], 'spiffe')).toThrow(/not a JSON object/);
    expect(() => parseKeySet({ keys: 'x' }, 'spiffe')).toThrow(/no "keys" array/);
    expect(() => parseKeySet({ keys: new Array(101).fill(ec.jwk) }, 'spiffe')).toThrow(/more than 100/);
  });

  it('reuses unchanged keys across refreshes and fingerprints the set', () => {
    const first = parseKeySet({ keys: [ec.jwk] }, 'jwks').set;
    const again = parseKeySet({ keys: [ec.jwk] }, 'jwks', first).set;
    expect(again.fingerprint).toBe(first.fingerprint);
    const grown = parseKeySet({ keys: [ec.jwk, rsa.jwk] }, 'jwks', first).set;
    expect(grown.has(first.keys[0]!)).toBe(true);
    expect(parseKeySet({ keys: [rsa.jwk] }, 'jwks', grown).set.has(first.keys[0]!)).toBe(false);
  });
});

describe('bearerToken', () => {
  it.each([
    ['Bearer abc.def.ghi', 'abc.def.ghi'],
    ['bearer abc.def.ghi', 'abc.def.ghi'],
    ['BEARER abc.def.ghi ', 'abc.def.ghi'],
  ])('%s', (header, token) => expect(bearerToken(header)).toBe(token));

  it.each(['Bearer', 'Bearer ', 'Basic abc', 'Bearerabc.def', 'Bearer a b', 'Bearer a, Bearer b', 'Token abc'])('refuses %j', (header) =>
    expect(bearerToken(header)).toBeUndefined(),
  );
});

describe('verifyToken and the cache', () => {
  const a1 = newSigner('ES256', 'a1');
  const a2 = newSigner('ES256');

  it('verifies with the key of the kid; refuses a JWT-SVID without kid unless allowed for a one-key bundle', async () => {
    const { dir } = directory([a1, a2]);
    const claims = { sub: 'spiffe://a.test/x', aud: 'aud', exp: nowS() + 60 };
    const v = await verifyToken(signJwt(a1, claims), dir, { clockSkewSeconds: 0 });
    expect(v.principal).toMatchObject({ id: 'spiffe://a.test/x', issuer: 'spiffe', trustDomain: 'a.test', path: '/x', segments: ['x'] });
    expect(v.audiences).toEqual(['aud']);
    // go-spiffe: "token header missing key id", whatever the bundle.
    await expect(verifyToken(signJwt(a2, claims, { kid: undefined }), dir, { clockSkewSeconds: 0 })).rejects.toThrow(/missing key id/);
    // allowMissingKid: only while the bundle holds exactly one key, and then only that key is tried.
    await expect(verifyToken(signJwt(a2, claims, { kid: undefined }), directory([a1, a2], 'a.test', true).dir, { clockSkewSeconds: 0 })).rejects.toThrow(/has 2 keys/);
    const single = directory([a2], 'a.test', true).dir;
    const noKid = await verifyToken(signJwt(a2, claims, { kid: undefined }), single, { clockSkewSeconds: 0 });
    expect(noKid.key.kid).toBe(a2.kid);
    await expect(verifyToken(signJwt(newSigner(), claims, { kid: undefined }), single, { clockSkewSeconds: 0 })).rejects.toThrow(AuthFailure);
  });

  it('honours the clock leeway on exp', async () => {
    const { dir } = directory([a1]);
    const token = signJwt(a1, { sub: 'spiffe://a.test/x', aud: 'aud', exp: nowS() - 10 });
    await expect(verifyToken(token, dir, { clockSkewSeconds: 0 })).rejects.toThrow('token expired');
    await expect(verifyToken(token, dir, { clockSkewSeconds: 30 })).resolves.toBeDefined();
  });

  it('caches until exp, drops entries whose key left the bundle, evicts the oldest when full', async () => {
    const { dir, source } = directory([a1]);
    const token = signJwt(a1, { sub: 'spiffe://a.test/x', aud: 'aud', exp: nowS() + 60 });
    const v = await verifyToken(token, dir, { clockSkewSeconds: 0 });
    const cache = new VerifiedTokenCache(2, 0);
    const key = VerifiedTokenCache.key(token);
    expect(key).not.toContain(token.slice(0, 20));
    cache.set(key, v);
    expect(cache.get(key, Date.now())).toBe(v);
    expect(cache.get(key, v.expiresAt + 1)).toBeUndefined();
    cache.set(key, v);
    cache.set('b', v);
    cache.set('c', v);
    expect(cache.size).toBe(2);
    expect(cache.get(key, Date.now())).toBeUndefined();
    // Rotation: the verifying key removed from the source -> the cached token is no longer valid.
    (source as unknown as { publish(doc: unknown): boolean }).publish(spiffeBundle([a2]));
    expect(cache.get('b', Date.now())).toBeUndefined();
  });

  it('evicts the least recently used entry: a flood of new tokens does not push out a caller in use', async () => {
    const { dir } = directory([a1]);
    const v = await verifyToken(signJwt(a1, { sub: 'spiffe://a.test/x', aud: 'aud', exp: nowS() + 60 }), dir, { clockSkewSeconds: 0 });
    const cache = new VerifiedTokenCache(3, 0);
    cache.set('busy', v);
    cache.set('idle', v);
    cache.set('other', v);
    // The busy caller presents its token again: it becomes the youngest entry.
    expect(cache.get('busy', Date.now())).toBe(v);
    cache.set('new-1', v);
    cache.set('new-2', v);
    expect(cache.get('idle', Date.now())).toBeUndefined();
    expect(cache.get('other', Date.now())).toBeUndefined();
    expect(cache.get('busy', Date.now())).toBe(v);
    expect(cache.size).toBe(3);
    // Setting a key that is present replaces it without evicting anyone.
    cache.set('new-1', v);
    expect(cache.size).toBe(3);
    expect(cache.get('new-2', Date.now())).toBe(v);
  });
});

describe('dev trust domain', () => {
  it('creates one key (0600) even when several processes race, and mints SVIDs of its trust domain only', () => {
    const dataDir = join(tmp, 'data');
    const first = loadOrCreateDevAuthority(dataDir, 'dev.tollgate.local');
    const second = loadOrCreateDevAuthority(dataDir, 'dev.tollgate.local');
    expect(second.kid).toBe(first.kid);
    expect(JSON.parse(readFileSync(first.keyFile, 'utf8')).d).toBeDefined();
    expect(first.bundle.keys[0]).not.toHaveProperty('d');
    const token = mintDevSvid(first, { spiffeId: 'spiffe://dev.tollgate.local/a', audiences: ['x'], ttlSeconds: 60 });
    const header = JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()) as Record<string, string>;
    expect(header).toEqual({ alg: 'ES256', kid: first.kid, typ: 'JWT' });
    expect(() => mintDevSvid(first, { spiffeId: 'spiffe://other/a', audiences: ['x'], ttlSeconds: 60 })).toThrow(/not in the dev trust domain/);
    expect(() => mintDevSvid(first, { spiffeId: 'spiffe://dev.tollgate.local/a', audiences: [], ttlSeconds: 60 })).toThrow(/audience/);
  });

  it('parses TTLs', () => {
    expect(parseTtl('90')).toBe(90);
    expect(parseTtl('15m')).toBe(900);
    expect(parseTtl('2h')).toBe(7200);
    expect(() => parseTtl('1 week')).toThrow();
  });
});

describe('identity config', () => {
  function load(files: Record<string, string>): ConfigError | undefined {
    const dir = join(tmp, `cfg-${Math.random().toString(36).slice(2)}`);
    mkdirSync(dir);
    for (const [f, t] of Object.entries(files)) writeFileSync(join(dir, f), t);
    try {
      loadConfigDir(dir);
      return undefined;
    } catch (err) {
      if (err instanceof ConfigError) return err;
      throw err;
    }
  }
  const gateway = (identity: string) => `apiVersion: tollgate.dev/v1alpha1\nkind: Gateway\nmetadata: { name: g }\nspec:\n  identity:\n${identity}`;
  const routeYaml = (auth: string) =>
    `apiVersion: tollgate.dev/v1alpha1\nkind: Backend\nmetadata: { name: b }\nspec: { protocol: mcp, url: "http://127.0.0.1:1/mcp" }\n---\napiVersion: tollgate.dev/v1alpha1\nkind: Route\nmetadata: { name: r }\nspec:\n  auth: ${auth}\n  rules:\n    - matches: [{ path: { value: /mcp } }]\n      backendRefs: [{ name: b }]\n`;

  it('refuses a plain-http bundle endpoint unless explicitly allowed', () => {
    const err = load({ 'g.yaml': gateway('    trustDomains:\n      - { name: a.test, bundle: { https_web: { url: "http://b.example/bundle" } } }\n') });
    expect(err?.message).toMatch(/g\.yaml:\d+:\d+: .*https_web bundle endpoints must be https/);
    expect(load({ 'g.yaml': gateway('    trustDomains:\n      - { name: a.test, bundle: { https_web: { url: "http://b.example/bundle", allowInsecureHttp: true } } }\n') })).toBeUndefined();
  });

  it('points at the line of a route that names an unknown issuer or trust domain', () => {
    const err = load({ 'g.yaml': gateway('    oidc: []\n'), 'r.yaml': routeYaml('{ oidc: [corp], spiffe: { trustDomains: [nowhere.test] } }') });
    expect(err?.issues.map((i) => `${i.file.split('/').pop()}:${i.line}: ${i.message}`)).toEqual([
      'r.yaml:10: spec.auth: trust domain nowhere.test is not configured in the Gateway\'s identity section',
      'r.yaml:10: spec.auth: unknown OIDC issuer "corp"',
    ]);
  });

  it('refuses a backend with both an identity and an Authorization header, and bad trust domain names', () => {
    const backend = `apiVersion: tollgate.dev/v1alpha1\nkind: Backend\nmetadata: { name: b }\nspec:\n  protocol: mcp\n  url: "http://127.0.0.1:1/mcp"\n  identity: { audience: x }\n  headers: [{ name: Authorization, valueFrom: { env: HOME } }]\n`;
    expect(load({ 'b.yaml': backend })?.message).toMatch(/identity and an Authorization header/);
    expect(load({ 'g.yaml': gateway('    trustDomains:\n      - { name: Bad_TD, bundle: { file: x.json } }\n') })?.message).toMatch(/SPIFFE trust domain name/);
  });
});

describe('upstream credential interceptor', () => {
  it('sets the current credential on every request, replacing any other Authorization', async () => {
    const seen: IncomingHttpHeaders[] = [];
    const server = createServer((req, res) => {
      seen.push(req.headers);
      res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const pool = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    let value: string | undefined = 'Bearer one';
    const d = withCredential(pool, { ready: () => Promise.resolve(), authorization: () => value });
    try {
      await (await d.request({ method: 'GET', path: '/', headers: { authorization: 'Bearer caller', x: '1' } })).body.dump();
      value = 'Bearer two';
      await (await d.request({ method: 'GET', path: '/', headers: ['Authorization', 'Bearer caller', 'x', '2'] })).body.dump();
      value = undefined;
      await (await d.request({ method: 'GET', path: '/' })).body.dump();
    } finally {
      await pool.close();
      server.close();
    }
    expect(seen.map((h) => h.authorization)).toEqual(['Bearer one', 'Bearer two', undefined]);
    expect(seen[1]!.x).toBe('2');
  });
});
