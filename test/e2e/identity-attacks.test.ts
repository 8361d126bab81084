/**
 * The attack corpus of issue 5, sent through a running gateway to each kind of issuer (a SPIFFE trust domain, an
 * OIDC provider with discovery + JWKS, a Kubernetes issuer), all with real keys and real signatures. Every case must
 * get a 401 (400 for a malformed request) with a Bearer challenge naming the RFC 9728 metadata, and the gateway must
 * keep serving.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectClient, mcpBackend, route, startTestGateway, type TestGateway, withIdentity } from '../helpers/gateway.ts';
import { b64url, jwks, newSigner, nowS, signHs256, signJwt, spiffeBundle, type Signer } from '../helpers/jwt.ts';
import { startJsonServer, type JsonServer } from '../helpers/json-server.ts';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { rawPost, type RawResponse } from '../helpers/raw-http.ts';

const AUD = 'https://gw.test';
const K8S_ISS = 'https://kubernetes.default.svc.cluster.local';

const tdA = newSigner('ES256');
const tdArsa = newSigner('RS256');
const tdB = newSigner('ES256'); // another trust domain's key: never trusted for a.test
const corp = newSigner('RS256');
const kube = newSigner('RS256');

let fixture: FixtureServer;
let json: JsonServer;
let gw: TestGateway;
let corpIss: string;

interface Profile {
  readonly name: string;
  readonly path: string;
  readonly signer: Signer;
  /** A key of some other issuer (must never verify this issuer's tokens). */
  readonly foreign: Signer;
  claims(): Record<string, unknown>;
  /** Issuer-specific cases: subject shapes that must be refused. */
  readonly badSubjects: ReadonlyArray<[string, Record<string, unknown>]>;
}

function profiles(): Profile[] {
  return [
    {
      name: 'SPIFFE trust domain',
      path: '/mcp',
      signer: tdA,
      foreign: tdB,
      claims: () => ({ sub: 'spiffe://a.test/agent', aud: [`${AUD}/mcp`], iat: nowS(), exp: nowS() + 300 }),
      badSubjects: [
        ['sub not a SPIFFE ID', { sub: 'agent' }],
        ['sub in another (untrusted) trust domain', { sub: 'spiffe://b.test/agent' }],
        ['sub a SPIFFE ID with a dot-segment', { sub: 'spiffe://a.test/../agent' }],
        ['sub a SPIFFE ID with a query', { sub: 'spiffe://a.test/agent?x=1' }],
      ],
    },
    {
      name: 'OIDC provider',
      path: '/oidc',
      signer: corp,
      foreign: kube,
      claims: () => ({ iss: corpIss, sub: 'user-1', aud: `${AUD}/oidc`, iat: nowS(), exp: nowS() + 300, scope: 'mcp' }),
      badSubjects: [
        ['another issuer in iss', { iss: 'https://evil.example' }],
        ['sub not a string', { sub: 42 }],
      ],
    },
    {
      name: 'Kubernetes issuer',
      path: '/k8s',
      signer: kube,
      foreign: corp,
      claims: () => ({ iss: K8S_ISS, sub: 'system:serviceaccount:agents:planner', aud: [`${AUD}/k8s`], iat: nowS(), exp: nowS() + 300 }),
      badSubjects: [
        ['sub not a service account', { sub: 'alice' }],
        ['sub a service account with a bad namespace', { sub: 'system:serviceaccount:Bad_NS:planner' }],
      ],
    },
  ];
}

/** `kind`: a bad token (401 invalid_token, the default), a malformed request (400 invalid_request) or no bearer credential (401, no error code). */
type Case = [label: string, send: (p: Profile) => Promise<RawResponse>, reason: RegExp, kind?: 'token' | 'request' | 'none'];

function withToken(make: (p: Profile) => string): (p: Profile) => Promise<RawResponse> {
  return (p) => rawPost(`${gw.url}${p.path}`, { authorization: `Bearer ${make(p)}` });
}

function corpus(): Case[] {
  const valid = (p: Profile): string => signJwt(p.signer, p.claims());
  const strip = (claims: Record<string, unknown>, key: string): Record<string, unknown> => {
    const c = { ...claims };
    delete c[key];
    return c;
  };
  return [
    ['alg none (empty signature)', withToken((p) => `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(p.claims())}.`), /not base64url/],
    ['alg none (with a signature)', withToken((p) => `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(p.claims())}.${b64url('sig')}`), /alg none is not allowed/],
    ['alg none re-labelled on a valid token', withToken((p) => { const [, body, sig] = valid(p).split('.'); return `${b64url({ alg: 'none', kid: p.signer.kid })}.${body}.${sig}`; }), /alg none is not allowed/],
    ['HS256 signed with the public key (PEM)', withToken((p) => signHs256(p.signer.publicKey.export({ type: 'spki', format: 'pem' }) as string, p.claims(), { kid: p.signer.kid })), /alg HS256 is not allowed/],
    ['HS256 signed with the public key (JWK JSON)', withToken((p) => signHs256(JSON.stringify(p.signer.jwk), p.claims(), { kid: p.signer.kid })), /alg HS256 is not allowed/],
    ['unknown kid', withToken((p) => signJwt(newSigner(p.signer.alg, 'no-such-kid'), p.claims())), /unknown kid/],
    ['key of another issuer / trust domain (its kid)', withToken((p) => signJwt(p.foreign, p.claims())), /unknown kid/],
    ['key of another issuer / trust domain (claiming our kid)', withToken((p) => signJwt(p.foreign, p.claims(), { kid: p.signer.kid, alg: p.foreign.alg })), /signature verification failed/],
    // A JWT-SVID without kid is refused outright (go-spiffe); an OIDC/Kubernetes one is tried against its one key.
    ['key of another issuer / trust domain (no kid)', withToken((p) => signJwt(p.foreign, p.claims(), { kid: undefined })), /signature verification failed|missing key id/],
    ['right key, alg of another key type', withToken((p) => { const [, body, sig] = valid(p).split('.'); return `${b64url({ alg: p.signer.alg.startsWith('ES') ? 'RS256' : 'ES256', kid: p.signer.kid })}.${body}.${sig}`; }), /unknown kid/],
    ['signature of another token', withToken((p) => { const [h, body] = valid(p).split('.'); const [, , sig] = signJwt(p.signer, { ...p.claims(), extra: 1 }).split('.'); return `${h}.${body}.${sig}`; }), /signature verification failed/],
    ['payload changed after signing', withToken((p) => { const [h, , sig] = valid(p).split('.'); return `${h}.${b64url({ ...p.claims(), sub: 'spiffe://a.test/admin' })}.${sig}`; }), /signature verification failed/],
    ['missing aud', withToken((p) => signJwt(p.signer, strip(p.claims(), 'aud'))), /missing aud/],
    ['wrong aud', withToken((p) => signJwt(p.signer, { ...p.claims(), aud: ['https://other.example'] })), /aud does not name this resource/],
    ['aud of the gateway but another path prefix trick', withToken((p) => signJwt(p.signer, { ...p.claims(), aud: `${AUD}.evil.example` })), /aud does not name this resource/],
    ['aud of the gateway itself (no shared audience)', withToken((p) => signJwt(p.signer, { ...p.claims(), aud: AUD })), /aud does not name this resource/],
    ['aud of another resource of the gateway', withToken((p) => signJwt(p.signer, { ...p.claims(), aud: `${AUD}/elsewhere` })), /aud does not name this resource/],
    ['aud not a string', withToken((p) => signJwt(p.signer, { ...p.claims(), aud: 7 })), /aud must be/],
    ['expired beyond the leeway', withToken((p) => signJwt(p.signer, { ...p.claims(), iat: nowS() - 3600, exp: nowS() - 120 })), /expired/],
    ['nbf in the future', withToken((p) => signJwt(p.signer, { ...p.claims(), nbf: nowS() + 600 })), /not yet valid/],
    ['missing exp', withToken((p) => signJwt(p.signer, strip(p.claims(), 'exp'))), /missing exp/],
    ['exp not a number', withToken((p) => signJwt(p.signer, { ...p.claims(), exp: String(nowS() + 300) })), /invalid exp/],
    ['missing sub', withToken((p) => signJwt(p.signer, strip(p.claims(), 'sub'))), /missing sub/],
    ['typ JWE', withToken((p) => signJwt(p.signer, p.claims(), { typ: 'JWE' })), /typ JWE is not accepted/],
    ['unknown crit header', withToken((p) => signJwt(p.signer, p.claims(), { crit: ['x-tollgate'], 'x-tollgate': true })), /unsupported feature|not allowed in a JWT-SVID/],
    ['b64=false (unencoded payload)', withToken((p) => signJwt(p.signer, p.claims(), { b64: false, crit: ['b64'] })), /malformed token|unsupported|not allowed in a JWT-SVID/],
    ['malformed base64', withToken(() => 'eyJhbGciOiJFUzI1NiJ9.@@@@.c2ln'), /not base64url/],
    ['malformed JSON header', withToken((p) => `${b64url('{"alg":"ES256",')}.${b64url(p.claims())}.${b64url('sig')}`), /header is not valid JSON/],
    ['malformed JSON payload', withToken(() => `${b64url({ alg: 'ES256', typ: 'JWT' })}.${b64url('{not json')}.${b64url('sig')}`), /payload is not valid JSON/],
    ['payload a JSON array', withToken(() => `${b64url({ alg: 'ES256', typ: 'JWT' })}.${b64url([1, 2])}.${b64url('sig')}`), /payload is not a JSON object/],
    ['two segments only', withToken((p) => valid(p).split('.').slice(0, 2).join('.')), /not a compact JWS/],
    ['oversize token (valid signature)', withToken((p) => signJwt(p.signer, { ...p.claims(), pad: 'x'.repeat(9_000) })), /larger than 8192 bytes/],
    ['a JWE (five segments)', withToken(() => `${b64url({ alg: 'RSA-OAEP-256', enc: 'A256GCM' })}.${b64url('k')}.${b64url('iv')}.${b64url('ct')}.${b64url('tag')}`), /JWE/],
    // Not a bearer credential at all (RFC 6750 3.1): 401, the challenge without an error code.
    ['token in the query string only', (p) => rawPost(`${gw.url}${p.path}?access_token=${valid(p)}`), /only in the Authorization header/, 'none'],
    ['Basic credentials', (p) => rawPost(`${gw.url}${p.path}`, { authorization: 'Basic dXNlcjpwYXNz' }), /scheme not supported/, 'none'],
    // A malformed request (RFC 6750 3.1 invalid_request): 400.
    ['token in the query string beside a valid header', (p) => rawPost(`${gw.url}${p.path}?x=1&access_token=${valid(p)}`, { authorization: `Bearer ${valid(p)}` }), /query string and in the Authorization header/, 'request'],
    ['duplicated Authorization headers (both valid)', (p) => rawPost(`${gw.url}${p.path}`, { authorization: [`Bearer ${valid(p)}`, `Bearer ${valid(p)}`] }), /expected one Authorization/, 'request'],
    ['duplicated Authorization headers (valid + other)', (p) => rawPost(`${gw.url}${p.path}`, { authorization: [`Bearer ${valid(p)}`, 'Basic dXNlcjpwYXNz'] }), /expected one Authorization/, 'request'],
    ['duplicated Authorization headers (other + valid)', (p) => rawPost(`${gw.url}${p.path}`, { authorization: ['Basic dXNlcjpwYXNz', `Bearer ${valid(p)}`] }), /expected one Authorization/, 'request'],
    ['Bearer without a token', (p) => rawPost(`${gw.url}${p.path}`, { authorization: 'Bearer ' }), /expected one Authorization/, 'request'],
    ['Bearer with two tokens', (p) => rawPost(`${gw.url}${p.path}`, { authorization: `Bearer ${valid(p)} ${valid(p)}` }), /expected one Authorization/, 'request'],
  ];
}

beforeAll(async () => {
  fixture = await startHttpMcpServer({ name: 'fixture' });
  json = await startJsonServer();
  corpIss = `${json.url}/corp`;
  json.set('/corp/.well-known/openid-configuration', { issuer: corpIss, jwks_uri: `${json.url}/corp/jwks`, id_token_signing_alg_values_supported: ['RS256'] });
  json.set('/corp/jwks', jwks([corp]));
  json.set('/k8s/jwks', jwks([kube]));
  const gatewayYaml = withIdentity(`    audiences: [${AUD}]
    trustDomains:
      - { name: a.test, bundle: { file: a-bundle.json } }
    oidc:
      - { name: corp, issuer: ${corpIss}, allowInsecureHttp: true }
    kubernetes:
      - { name: cluster, issuer: ${K8S_ISS}, jwks: { url: ${json.url}/k8s/jwks, allowInsecureHttp: true } }
`);
  gw = await startTestGateway(
    {
      'a-bundle.json': JSON.stringify(spiffeBundle([tdA, tdArsa])),
      'mcp.yaml':
        mcpBackend('fixture', { url: fixture.url }) +
        route('spiffe', '/mcp', ['fixture']) +
        route('oidc', '/oidc', ['fixture'], { auth: { spiffe: false, oidc: ['corp'] } }) +
        route('k8s', '/k8s', ['fixture'], { auth: { spiffe: false, kubernetes: ['cluster'] } }),
    },
    { gatewayYaml },
  );
});

afterAll(async () => {
  await gw?.stop();
  await fixture?.close();
  await json?.close();
});

function expectRefused(res: RawResponse, p: Profile, reason?: RegExp, kind: 'token' | 'request' | 'none' = 'token'): void {
  expect(res.status, res.body).toBe(kind === 'request' ? 400 : 401);
  const challenge = String(res.headers['www-authenticate']);
  expect(challenge).toMatch(/^Bearer /);
  expect(challenge).toContain(`resource_metadata="${AUD}/.well-known/oauth-protected-resource${p.path}"`);
  if (kind === 'none') {
    expect(challenge).not.toContain('error=');
    expect(res.json().error?.data?.code).toBe('TG_UNAUTHENTICATED');
    if (reason) expect(res.json().error?.message).toMatch(reason);
  } else {
    expect(challenge).toContain(kind === 'request' ? 'error="invalid_request"' : 'error="invalid_token"');
    expect(res.json().error?.data?.code).toBe(kind === 'request' ? 'TG_INVALID_AUTH_REQUEST' : 'TG_INVALID_TOKEN');
    if (reason) expect(res.json().error?.data?.reason).toMatch(reason);
  }
  // Nothing of the token is echoed back.
  expect(res.body).not.toContain('eyJ');
}

for (const p of profiles()) {
  describe(`attack corpus against the ${p.name}`, () => {
    it('accepts the valid token (control)', async () => {
      const res = await rawPost(`${gw.url}${p.path}`, { authorization: `Bearer ${signJwt(p.signer, p.claims())}` });
      expect(res.status, res.body).toBe(200);
    });

    for (const [label, send, reason, kind] of corpus()) {
      it(`refuses: ${label}`, async () => expectRefused(await send(p), p, reason, kind));
    }

    for (const [label, claims] of p.badSubjects) {
      it(`refuses: ${label}`, async () => {
        const res = await rawPost(`${gw.url}${p.path}`, { authorization: `Bearer ${signJwt(p.signer, { ...p.claims(), ...claims })}` });
        expectRefused(res, p);
      });
    }

    it('refuses a valid token of this issuer on a route that does not accept it', async () => {
      const other = p.path === '/mcp' ? '/oidc' : '/mcp';
      const res = await rawPost(`${gw.url}${other}`, { authorization: `Bearer ${signJwt(p.signer, p.claims())}` });
      expect(res.status).toBe(401);
      expect(res.json().error?.data?.code).toBe('TG_INVALID_TOKEN');
    });
  });
}

describe('after the corpus', () => {
  it('still serves MCP with every issuer (official SDK client)', async () => {
    for (const p of profiles()) {
      const client = await connectClient(`${gw.url}${p.path}`, { headers: { authorization: `Bearer ${signJwt(p.signer, p.claims())}` } });
      const sum = await client.callTool({ name: 'fixture__add', arguments: { a: 20, b: 22 } });
      expect(sum.content).toEqual([{ type: 'text', text: '42' }]);
      await client.close();
    }
  });

  it('accepts the RSA key of the same trust domain and a token within the clock leeway', async () => {
    const token = signJwt(tdArsa, { sub: 'spiffe://a.test/rsa', aud: `${AUD}/mcp`, exp: nowS() - 5 });
    expect((await rawPost(`${gw.url}/mcp`, { authorization: `Bearer ${token}` })).status).toBe(200);
    const ps = signJwt(tdArsa, { sub: 'spiffe://a.test/pss', aud: `${AUD}/mcp`, exp: nowS() + 60 }, { alg: 'PS256' });
    // The RSA key carries no alg: PS256 with it is allowed by the JWT-SVID algorithm list.
    expect((await rawPost(`${gw.url}/mcp`, { authorization: `Bearer ${ps}` })).status).toBe(200);
  });

  it('never passed a caller token to the upstream', () => {
    expect(fixture.authorizations.length).toBeGreaterThan(0);
    expect(fixture.authorizations.every((a) => a === undefined)).toBe(true);
  });
});
