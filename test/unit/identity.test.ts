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
import type { OidcIssuerSpec } from '../../src/guards/identity/config.ts';
import { bearerToken, TokenAuthority } from '../../src/guards/identity/guard.ts';
import { OidcIssuer } from '../../src/guards/identity/issuers/oidc.ts';
import { SpiffeTrustDomain } from '../../src/guards/identity/issuers/spiffe.ts';
import { parseKeySet } from '../../src/guards/identity/keys.ts';
import { StaticKeySource } from '../../src/guards/identity/sources/source.ts';
import { parseSpiffeId } from '../../src/guards/identity/spiffe-id.ts';
import { AuthFailure, verifyToken, type IssuerDirectory } from '../../src/guards/identity/token.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { withCredential } from '../../src/upstream/credentials.ts';
import { jwks, newSigner, nowS, signJwt, spiffeBundle } from '../helpers/jwt.ts';

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

  it('a SPIFFE bundle trusts only jwt-svid keys: use sig or no use is ignored (Trust Domain and Bundle 4.2.2)', () => {
    const p384 = newSigner('ES384', 'p384');
    for (const marker of [{ spiffe_sequence: 3 }, { spiffe_refresh_hint: 60 }, {}]) {
      const { set, skipped } = parseKeySet({ keys: [{ ...ec.jwk, use: 'jwt-svid' }, { ...rsa.jwk, use: 'sig' }, { ...p384.jwk }], ...marker }, 'spiffe');
      expect(set.keys.map((k) => k.kid), JSON.stringify(marker)).toEqual(['ec']);
      expect(skipped).toBe(2);
    }
    // A plain JWKS given for a trust domain (the Workload API's JWT bundles carry no use) keeps sig and unmarked keys.
    const { set } = parseKeySet({ keys: [{ ...rsa.jwk, use: 'sig' }, { ...p384.jwk }, { ...ec.jwk, use: 'enc' }] }, 'spiffe');
    expect(set.keys.map((k) => k.kid)).toEqual(['rsa', 'p384']);
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

describe('verifyToken: header, key and claim rules (real keys, real signatures)', () => {
  const k = newSigner('ES256', 'k1');
  const claims = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ sub: 'spiffe://a.test/x', aud: 'aud', exp: nowS() + 60, ...extra });
  const opts = { clockSkewSeconds: 0 };

  it('refuses a kid that is empty, not a string or longer than 256 characters; 256 is a kid like any other', async () => {
    const { dir } = directory([k]);
    for (const kid of ['', 7, 'k'.repeat(257)]) {
      await expect(verifyToken(signJwt(k, claims(), { kid }), dir, opts)).rejects.toThrow(new AuthFailure('kid must be a non-empty string'));
    }
    await expect(verifyToken(signJwt(k, claims(), { kid: 'k'.repeat(256) }), dir, opts)).rejects.toThrow(new AuthFailure('unknown kid for trust domain a.test', 'invalid_token', true));
  });

  it('refuses a JWT-SVID without kid even when its trust domain has a single key (allowMissingKid off), and a token without exp', async () => {
    const { dir } = directory([k]);
    await expect(verifyToken(signJwt(k, claims(), { kid: undefined }), dir, opts)).rejects.toThrow(new AuthFailure('token header missing key id (kid)'));
    await expect(verifyToken(signJwt(k, { sub: 'spiffe://a.test/x', aud: 'aud' }), dir, opts)).rejects.toThrow(new AuthFailure('missing exp'));
  });

  it('refuses a compact token whose header names an encryption (a JWE header on three segments)', async () => {
    const { dir } = directory([k]);
    await expect(verifyToken(signJwt(k, claims(), { enc: 'A256GCM' }), dir, opts)).rejects.toThrow(new AuthFailure('encrypted tokens (JWE) are not accepted'));
  });

  it('accepts the typ values of its issuer in any case, and refuses others', async () => {
    const { dir } = directory([k]);
    for (const typ of ['JWT', 'jwt', 'JOSE']) await expect(verifyToken(signJwt(k, claims(), { typ }), dir, opts)).resolves.toBeDefined();
    await expect(verifyToken(signJwt(k, claims(), { typ: undefined }), dir, opts)).resolves.toBeDefined();
    await expect(verifyToken(signJwt(k, claims(), { typ: 'at+jwt' }), dir, opts)).rejects.toThrow(new AuthFailure('typ at+jwt is not accepted'));
    await expect(verifyToken(signJwt(k, claims(), { typ: 1 }), dir, opts)).rejects.toThrow(new AuthFailure('typ 1 is not accepted'));
  });

  it('a trust domain whose keys are not loaded yet: a transient failure (not remembered), then the token passes', async () => {
    const source = new StaticKeySource({ label: 'a.test', fingerprint: 'a.test', profile: 'spiffe', log, doc: spiffeBundle([k]) });
    const dir: IssuerDirectory = { trustDomains: new Map([['a.test', new SpiffeTrustDomain('a.test', source, false)]]), byIss: new Map() };
    const token = signJwt(k, claims());
    const early = await verifyToken(token, dir, opts).catch((e: unknown) => e);
    expect(early).toEqual(new AuthFailure('no keys for trust domain a.test are available yet', 'invalid_token', true));
    expect((early as AuthFailure).transient).toBe(true);
    source.start();
    await expect(verifyToken(token, dir, opts)).resolves.toMatchObject({ principal: { id: 'spiffe://a.test/x' } });
  });

  it('an unknown kid is transient (the key may not be fetched yet); a bad signature is not', async () => {
    const { dir } = directory([k]);
    const unknown = await verifyToken(signJwt(newSigner('ES256', 'later'), claims()), dir, opts).catch((e: unknown) => e);
    expect(unknown).toEqual(new AuthFailure('unknown kid for trust domain a.test', 'invalid_token', true));
    expect((unknown as AuthFailure).transient).toBe(true);
    const forged = await verifyToken(signJwt(newSigner('ES256', 'k1'), claims()), dir, opts).catch((e: unknown) => e);
    expect(forged).toEqual(new AuthFailure('signature verification failed'));
    expect((forged as AuthFailure).transient).toBe(false);
    expect((forged as AuthFailure).error).toBe('invalid_token');
  });

  it('the token authority remembers a failure, but not a transient one: a kid published later is accepted', async () => {
    const later = newSigner('ES256', 'later');
    const source = new StaticKeySource({ label: 'a.test', fingerprint: 'a.test', profile: 'spiffe', log, doc: spiffeBundle([k]) });
    source.start();
    const issuers: IssuerDirectory = { trustDomains: new Map([['a.test', new SpiffeTrustDomain('a.test', source, false)]]), byIss: new Map() };
    const audiences = { bases: ['https://gw.test'], gateway: new Set(['https://gw.test']), sharedAudience: false };
    const authority = new TokenAuthority({ issuers, maxTokenBytes: 8192, clockSkewSeconds: 0, cacheEntries: 10, audiences, negative: { ttlSeconds: 60, maxEntries: 10 } });
    const token = signJwt(later, claims());
    const key = VerifiedTokenCache.key(token);
    await expect(authority.verify(key, token)).rejects.toThrow('unknown kid');
    expect(authority.failures.get(key, Date.now())).toBeUndefined();
    expect(authority.checks).toEqual({ ok: 0, failed: 1 });
    (source as unknown as { publish(doc: unknown): boolean }).publish(spiffeBundle([k, later]));
    const v = await authority.verify(key, token);
    expect(v.principal.id).toBe('spiffe://a.test/x');
    expect(authority.cached(key)).toBe(v);
    expect(authority.checks).toEqual({ ok: 1, failed: 1 });
    const bad = signJwt(newSigner('ES256', 'k1'), claims());
    const badKey = VerifiedTokenCache.key(bad);
    await expect(authority.verify(badKey, bad)).rejects.toThrow('signature verification failed');
    expect(authority.failures.get(badKey, Date.now())?.message).toBe('signature verification failed');
  });

  it('an issuer chosen by iss (OIDC): a token without kid is tried only when exactly one key fits its alg', async () => {
    const one = newSigner('ES256', 'one');
    const two = newSigner('ES256', 'two');
    const rsa = newSigner('RS256', 'rsa');
    const make = (signers: ReturnType<typeof newSigner>[]): IssuerDirectory => {
      const source = new StaticKeySource({ label: 'corp', fingerprint: 'corp', profile: 'jwks', log, doc: jwks(signers) });
      source.start();
      const issuer = new OidcIssuer({ name: 'corp', issuer: 'https://idp.test', subjectClaim: 'sub' } as OidcIssuerSpec, source);
      return { trustDomains: new Map(), byIss: new Map([['https://idp.test', issuer]]) };
    };
    const oidc = (extra: Record<string, unknown> = {}) => ({ iss: 'https://idp.test', sub: 'alice', aud: 'aud', exp: nowS() + 60, ...extra });
    const v = await verifyToken(signJwt(one, oidc(), { kid: undefined }), make([one, rsa]), opts);
    expect(v.principal).toMatchObject({ id: 'oidc://corp/alice', issuer: 'oidc', trustDomain: 'corp' });
    expect(v.key.kid).toBe('one');
    await expect(verifyToken(signJwt(one, oidc(), { kid: undefined }), make([one, two]), opts)).rejects.toThrow(
      new AuthFailure('token header missing key id (kid), and several keys of issuer corp fit alg ES256'),
    );
    await expect(verifyToken(signJwt(one, oidc(), { kid: undefined, alg: 'ES384' }), make([one, rsa]), opts)).rejects.toThrow(new AuthFailure('no key of issuer corp fits alg ES384'));
    // Another iss than the one configured: not this issuer's token (and its sub is no SPIFFE ID).
    await expect(verifyToken(signJwt(one, oidc({ iss: 'https://evil.test' })), make([one]), opts)).rejects.toThrow(new AuthFailure('issuer is not trusted and sub is not a SPIFFE ID'));
  });

  it('refuses tokens whose sub names no trusted issuer, and says which rule', async () => {
    const { dir } = directory([k]);
    await expect(verifyToken(signJwt(k, claims({ sub: 'x' })), dir, opts)).rejects.toThrow(new AuthFailure('sub is not a SPIFFE ID'));
    await expect(verifyToken(signJwt(k, claims({ sub: undefined })), dir, opts)).rejects.toThrow(new AuthFailure('missing sub'));
    await expect(verifyToken(signJwt(k, claims({ iss: 'https://nobody.test', sub: undefined })), dir, opts)).rejects.toThrow(new AuthFailure('missing sub'));
    await expect(verifyToken(signJwt(k, claims({ sub: 'spiffe://b.test/x' })), dir, opts)).rejects.toThrow(new AuthFailure('trust domain b.test is not trusted'));
  });

  it('reads audiences (a string or a non-empty list of strings), scopes (scope and scp) and the expiry', async () => {
    const { dir } = directory([k]);
    const exp = nowS() + 60;
    const v = await verifyToken(signJwt(k, claims({ aud: ['a', 'b'], exp, scope: 'read  write', scp: ['admin', 7, ''] })), dir, opts);
    expect(v.audiences).toEqual(['a', 'b']);
    expect([...v.scopes].sort()).toEqual(['admin', 'read', 'write']);
    expect(v.expiresAt).toBe(exp * 1000);
    expect((await verifyToken(signJwt(k, claims({ scp: 'one two' })), dir, opts)).scopes).toEqual(new Set(['one', 'two']));
    expect((await verifyToken(signJwt(k, claims()), dir, opts)).scopes.size).toBe(0);
    for (const aud of [[], ['a', 1]]) {
      await expect(verifyToken(signJwt(k, claims({ aud })), dir, opts)).rejects.toThrow(new AuthFailure('aud must be a string or an array of strings'));
    }
  });
});
