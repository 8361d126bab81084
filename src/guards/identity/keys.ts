/**
 * Verification keys of one issuer (a SPIFFE trust domain's JWT bundle, an OIDC or Kubernetes JWKS).
 *
 * Built by hand rather than with jose's JWKS helpers: those only accept keys whose `use` is absent or `sig`, so a
 * SPIFFE bundle (`use: "jwt-svid"`) would match nothing, and they know nothing of spiffe_refresh_hint. Keys are
 * parsed synchronously; each is imported as a CryptoKey lazily, once per algorithm, on first use.
 */
import { createHash } from 'node:crypto';
import { importJWK, type CryptoKey, type JWK } from 'jose';

/** Signature algorithms the JWT-SVID standard allows; the only ones any issuer may use here. */
export const ALLOWED_ALGS: readonly string[] = Object.freeze(['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512']);
const ALLOWED = new Set(ALLOWED_ALGS);
const EC_ALG: Readonly<Record<string, string>> = { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512' };
const MAX_KEYS = 100;

/** Which keys of a JWKS verify tokens: SPIFFE bundles mark theirs `use: "jwt-svid"`; plain JWKS `sig` or nothing. */
export type KeyProfile = 'spiffe' | 'jwks';

/** One public key, with its CryptoKey per algorithm imported on demand. */
export class VerificationKey {
  readonly kid: string | undefined;
  readonly kty: 'RSA' | 'EC';
  /** The only algorithm this key may be used with, when the JWK or its curve pins one. */
  readonly alg: string | undefined;
  /** Stable identity of the key material (survives bundle refreshes). */
  readonly fingerprint: string;
  private readonly jwk: JWK;
  private readonly imported = new Map<string, Promise<CryptoKey>>();

  constructor(jwk: JWK, kty: 'RSA' | 'EC', alg: string | undefined, fingerprint: string) {
    this.jwk = jwk;
    this.kid = jwk.kid;
    this.kty = kty;
    this.alg = alg;
    this.fingerprint = fingerprint;
  }

  /** Whether a token signed with `alg` may be verified with this key. */
  accepts(alg: string): boolean {
    if (this.alg !== undefined) return this.alg === alg;
    return this.kty === 'RSA' ? alg.startsWith('RS') || alg.startsWith('PS') : false;
  }

  cryptoKey(alg: string): Promise<CryptoKey> {
    let key = this.imported.get(alg);
    if (!key) {
      key = importJWK(this.jwk, alg) as Promise<CryptoKey>;
      // A failed import is not cached: the next token retries.
      key.catch(() => this.imported.delete(alg));
      this.imported.set(alg, key);
    }
    return key;
  }
}

/** An immutable set of verification keys, as of one version of a bundle/JWKS. */
export class KeySet {
  readonly keys: readonly VerificationKey[];
  /** SPIFFE bundle `spiffe_refresh_hint` (seconds), when present. */
  readonly refreshHint: number | undefined;
  readonly sequence: number | undefined;
  /** Fingerprint of the whole set: an unchanged refresh keeps the same KeySet (and the verified-token cache). */
  readonly fingerprint: string;
  private readonly byKid = new Map<string, VerificationKey[]>();
  private readonly members: ReadonlySet<VerificationKey>;

  constructor(keys: VerificationKey[], refreshHint: number | undefined, sequence: number | undefined) {
    this.keys = Object.freeze(keys);
    this.refreshHint = refreshHint;
    this.sequence = sequence;
    this.members = new Set(keys);
    for (const k of keys) {
      if (k.kid === undefined) continue;
      const list = this.byKid.get(k.kid);
      if (list) list.push(k);
      else this.byKid.set(k.kid, [k]);
    }
    this.fingerprint = keys.map((k) => k.fingerprint).sort().join(',');
  }

  get size(): number {
    return this.keys.length;
  }

  /** Keys that may verify a token with this header: by kid when it has one, else every key fitting the alg. */
  candidates(kid: string | undefined, alg: string): VerificationKey[] {
    const pool = kid === undefined ? this.keys : (this.byKid.get(kid) ?? []);
    return pool.filter((k) => k.accepts(alg));
  }

  /** Whether this exact key is still in the set (a verified token stays valid only while its key is). */
  has(key: VerificationKey): boolean {
    return this.members.has(key);
  }
}

/** Thrown when a document is not a usable JWKS at all (the previous good set stays in force). */
export class BundleError extends Error {
  override readonly name = 'BundleError';
}

/**
 * Parses a JWKS / SPIFFE bundle document. Keys of unknown type or use (in a SPIFFE bundle: anything but jwt-svid),
 * private keys and malformed keys are skipped (the spec says to ignore them); `previous` lends its VerificationKey
 * objects to unchanged keys, so tokens verified with a key that survives a rotation stay cached.
 */
export function parseKeySet(doc: unknown, profile: KeyProfile, previous?: KeySet): { set: KeySet; skipped: number } {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new BundleError('bundle is not a JSON object');
  const d = doc as Record<string, unknown>;
  if (!Array.isArray(d.keys)) throw new BundleError('bundle has no "keys" array');
  if (d.keys.length > MAX_KEYS) throw new BundleError(`bundle has more than ${MAX_KEYS} keys`);
  const reuse = new Map<string, VerificationKey>();
  if (previous) for (const k of previous.keys) reuse.set(k.fingerprint, k);
  const keys: VerificationKey[] = [];
  let skipped = 0;
  const strict = profile === 'spiffe' && isSpiffeBundle(d);
  for (const raw of d.keys) {
    const key = parseKey(raw, profile, strict);
    if (!key) {
      skipped++;
      continue;
    }
    keys.push(reuse.get(key.fingerprint) ?? key);
  }
  const hint = typeof d.spiffe_refresh_hint === 'number' && d.spiffe_refresh_hint > 0 ? d.spiffe_refresh_hint : undefined;
  const sequence = typeof d.spiffe_sequence === 'number' ? d.spiffe_sequence : undefined;
  return { set: new KeySet(keys, hint, sequence), skipped };
}

/**
 * Whether a trust domain's document is a SPIFFE bundle (spiffe_* members, or keys marked with a SPIFFE use) rather
 * than a plain JWKS (what the Workload API's JWT bundles and some bundle files are). In a SPIFFE bundle only
 * `use: "jwt-svid"` keys are JWT authorities: any other use, `sig` or none included, is ignored (SPIFFE Trust Domain
 * and Bundle 4.2.2; go-spiffe's spiffebundle.Parse does the same).
 */
function isSpiffeBundle(d: Record<string, unknown>): boolean {
  if (d.spiffe_sequence !== undefined || d.spiffe_refresh_hint !== undefined) return true;
  return (d.keys as unknown[]).some((k) => typeof k === 'object' && k !== null && ((k as Record<string, unknown>).use === 'jwt-svid' || (k as Record<string, unknown>).use === 'x509-svid'));
}

function parseKey(raw: unknown, profile: KeyProfile, spiffeBundle: boolean): VerificationKey | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const k = raw as Record<string, unknown>;
  const use = k.use;
  if (spiffeBundle ? use !== 'jwt-svid' : profile === 'spiffe' ? !(use === 'jwt-svid' || use === 'sig' || use === undefined) : !(use === 'sig' || use === undefined)) return undefined;
  if (Array.isArray(k.key_ops) && !k.key_ops.includes('verify')) return undefined;
  if (k.d !== undefined || k.p !== undefined) return undefined; // a private key has no business in a bundle
  if (k.kid !== undefined && (typeof k.kid !== 'string' || k.kid === '')) return undefined;
  if (k.alg !== undefined && (typeof k.alg !== 'string' || !ALLOWED.has(k.alg))) return undefined;
  const kid = k.kid as string | undefined;
  const pinned = k.alg as string | undefined;
  if (k.kty === 'EC') {
    const curveAlg = typeof k.crv === 'string' ? (Object.hasOwn(EC_ALG, k.crv) ? EC_ALG[k.crv] : undefined) : undefined;
    if (!curveAlg || typeof k.x !== 'string' || typeof k.y !== 'string') return undefined;
    if (pinned !== undefined && pinned !== curveAlg) return undefined;
    const jwk: JWK = { kty: 'EC', crv: k.crv as string, x: k.x, y: k.y, ...(kid ? { kid } : {}) };
    return new VerificationKey(jwk, 'EC', curveAlg, fingerprint(['EC', k.crv as string, k.x, k.y, kid ?? '', curveAlg]));
  }
  if (k.kty === 'RSA') {
    if (typeof k.n !== 'string' || typeof k.e !== 'string') return undefined;
    if (pinned !== undefined && !(pinned.startsWith('RS') || pinned.startsWith('PS'))) return undefined;
    const jwk: JWK = { kty: 'RSA', n: k.n, e: k.e, ...(kid ? { kid } : {}) };
    return new VerificationKey(jwk, 'RSA', pinned, fingerprint(['RSA', k.n, k.e, kid ?? '', pinned ?? '']));
  }
  return undefined;
}

function fingerprint(parts: string[]): string {
  return createHash('sha256').update(parts.join('\n')).digest('base64url').slice(0, 22);
}
