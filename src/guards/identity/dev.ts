/**
 * The embedded development trust domain: an ES256 key Tollgate generates on first start under its data dir
 * (`<dataDir>/identity/dev-<trust domain>.jwk`, mode 0600, never committed: .tollgate/ is git-ignored), whose public
 * half is the trust domain's bundle, and `mintDevSvid` which `tollgate svid mint` uses to issue JWT-SVIDs the
 * running dev gateway accepts. Creation is atomic (link), so concurrent first starts agree on one key.
 */
import { createHash, createPrivateKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { join } from 'node:path';
import { readOrCreate } from '../../config/generated-file.ts';
import { parseSpiffeId } from './spiffe-id.ts';

export interface DevAuthority {
  readonly trustDomain: string;
  readonly keyFile: string;
  readonly kid: string;
  /** The trust domain's SPIFFE bundle (public key only). */
  readonly bundle: { keys: Array<Record<string, string>>; spiffe_sequence: number };
  readonly privateKey: KeyObject;
}

/** Loads the dev trust domain key from the data dir, generating it the first time. */
export function loadOrCreateDevAuthority(dataDir: string, trustDomain: string): DevAuthority {
  const dir = join(dataDir, 'identity');
  const keyFile = join(dir, `dev-${trustDomain}.jwk`);
  const text = readOrCreate(keyFile, () => JSON.stringify(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' })), 0o600);
  const jwk = JSON.parse(text) as { kty: string; crv: string; x: string; y: string; d: string };
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || !jwk.d) throw new Error(`${keyFile} is not an EC P-256 private JWK`);
  const privateKey = createPrivateKey({ key: jwk, format: 'jwk' });
  const kid = createHash('sha256').update(JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y })).digest('base64url');
  return {
    trustDomain,
    keyFile,
    kid,
    bundle: { keys: [{ kty: 'EC', crv: jwk.crv, x: jwk.x, y: jwk.y, kid, use: 'jwt-svid' }], spiffe_sequence: 1 },
    privateKey,
  };
}

export interface MintOptions {
  readonly spiffeId: string;
  readonly audiences: readonly string[];
  readonly ttlSeconds: number;
  readonly now?: number;
}

/** Issues a JWT-SVID (ES256, typ JWT) signed with the dev trust domain's key. */
export function mintDevSvid(authority: DevAuthority, opts: MintOptions): string {
  const id = parseSpiffeId(opts.spiffeId);
  if (!id) throw new Error(`${opts.spiffeId} is not a valid SPIFFE ID`);
  if (id.trustDomain !== authority.trustDomain) {
    throw new Error(`${opts.spiffeId} is not in the dev trust domain ${authority.trustDomain}`);
  }
  if (opts.audiences.length === 0) throw new Error('at least one audience is needed');
  if (!(opts.ttlSeconds > 0)) throw new Error('ttl must be positive');
  const iat = Math.floor((opts.now ?? Date.now()) / 1000);
  const header = { alg: 'ES256', kid: authority.kid, typ: 'JWT' };
  const claims = { sub: id.id, aud: opts.audiences.length === 1 ? opts.audiences[0] : [...opts.audiences], iat, exp: iat + Math.floor(opts.ttlSeconds) };
  const input = `${b64(JSON.stringify(header))}.${b64(JSON.stringify(claims))}`;
  const signature = sign('sha256', Buffer.from(input), { key: authority.privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

function b64(text: string): string {
  return Buffer.from(text).toString('base64url');
}

/** Parses a TTL: seconds as a number, or `<n>s|m|h|d`. */
export function parseTtl(text: string): number {
  const m = /^(\d+)([smhd]?)$/.exec(text.trim());
  if (!m) throw new Error(`invalid ttl ${text} (use e.g. 300, 90s, 15m, 1h)`);
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
}
