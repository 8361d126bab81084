/**
 * Identity on the hot path: what a call pays to be authenticated, cold (signature verified: ES256 and RS256
 * JWT-SVIDs through jose) and cached (the guard's hash + Map lookup + route checks), with the SHA-256 of the token
 * as a baseline. Standalone: `node bench/micro/identity.ts` prints us/op for each.
 */
import { generateKeyPairSync, hash, sign } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Call } from '../../src/core/call.ts';
import type { RouteSpec } from '../../src/config/schema.ts';
import { routeAuthSpec, identitySpec } from '../../src/guards/identity/config.ts';
import { IdentityGuard, TokenAuthority } from '../../src/guards/identity/guard.ts';
import { SpiffeTrustDomain } from '../../src/guards/identity/issuers/spiffe.ts';
import { compileRoutePolicy } from '../../src/guards/identity/policy.ts';
import { StaticKeySource } from '../../src/guards/identity/sources/source.ts';
import { verifyToken, type IssuerDirectory } from '../../src/guards/identity/token.ts';
import { createLogger } from '../../src/telemetry/logger.ts';

/** The bench runner's contract (bench/micro.ts). */
interface MicroBench {
  name: string;
  setup?(): Promise<void> | void;
  fn(): unknown;
  iterations?: number;
}

const AUD = 'https://gw.bench/mcp';
const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

function keyPair(kind: 'ES256' | 'RS256', kid: string) {
  const pair = kind === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...(pair.publicKey.export({ format: 'jwk' }) as Record<string, string>), kid, use: 'jwt-svid' };
  const mint = (sub: string): string => {
    const input = `${b64({ alg: kind, kid, typ: 'JWT' })}.${b64({ sub, aud: [AUD], iat: 1, exp: Math.floor(Date.now() / 1000) + 86_400 })}`;
    const sig = kind === 'ES256' ? sign('sha256', Buffer.from(input), { key: pair.privateKey, dsaEncoding: 'ieee-p1363' }) : sign('sha256', Buffer.from(input), pair.privateKey);
    return `${input}.${sig.toString('base64url')}`;
  };
  return { jwk, mint };
}

const es = keyPair('ES256', 'es');
const rs = keyPair('RS256', 'rs');
const log = createLogger('silent');
const source = new StaticKeySource({ label: 'bench.test', fingerprint: 'bench', profile: 'spiffe', log, doc: { keys: [es.jwk, rs.jwk] } });
source.start();
const issuers: IssuerDirectory = { trustDomains: new Map([['bench.test', new SpiffeTrustDomain('bench.test', source)]]), byIss: new Map() };
const esToken = es.mint('spiffe://bench.test/agents/planner');
const rsToken = rs.mint('spiffe://bench.test/agents/planner');

const spec = { auth: routeAuthSpec.parse({}), rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/mcp' }, headers: [] }], backendRefs: [{ name: 'b' }] }] } as RouteSpec;
const policy = compileRoutePolicy('mcp', spec, identitySpec.parse({}), ['bench.test'], ['/mcp']);
const authority = new TokenAuthority({
  issuers,
  maxTokenBytes: 8192,
  clockSkewSeconds: 30,
  cacheEntries: 10_000,
  audiences: { bases: ['https://gw.bench'], gateway: new Set(['https://gw.bench']), sharedAudience: false },
  negative: { ttlSeconds: 10, maxEntries: 10_000 },
});
const guard = new IdentityGuard(authority, new Map([['mcp', policy]]));
const call = new Call({
  id: 'bench',
  protocol: 'mcp',
  operation: 'tools/call',
  route: { name: 'mcp', spec },
  request: { method: 'POST', path: '/mcp', headers: { authorization: `Bearer ${esToken}` }, remoteAddress: '127.0.0.1' },
});

export const benches: MicroBench[] = [
  { name: 'sha256 of a JWT-SVID (cache key baseline)', fn: () => hash('sha256', esToken, 'base64') },
  { name: 'verify cold ES256 JWT-SVID (jose, no cache)', fn: () => verifyToken(esToken, issuers, { clockSkewSeconds: 30 }), iterations: 2_000 },
  { name: 'verify cold RS256 JWT-SVID (jose, no cache)', fn: () => verifyToken(rsToken, issuers, { clockSkewSeconds: 30 }), iterations: 2_000 },
  {
    name: 'identity guard admit, cached token (sync)',
    setup: async () => {
      await guard.admit(call);
    },
    fn: () => guard.admit(call),
  },
];

/** Standalone run: sequential ops, warm-up first, us/op. */
async function standalone(): Promise<void> {
  for (const b of benches) {
    await b.setup?.();
    const n = b.iterations ?? 100_000;
    const run = async (count: number): Promise<void> => {
      for (let i = 0; i < count; i++) {
        const r = b.fn();
        if (r instanceof Promise) await r;
      }
    };
    await run(Math.min(500, n));
    const t0 = process.hrtime.bigint();
    await run(n);
    const us = Number(process.hrtime.bigint() - t0) / 1e3 / n;
    process.stdout.write(`${b.name.padEnd(48)} ${us.toFixed(3).padStart(9)} us/op  (${n} ops)\n`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await standalone();
