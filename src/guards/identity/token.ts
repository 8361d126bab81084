/**
 * Bearer token validation (the cold path; verified tokens are cached, see cache.ts).
 *
 * JWT-SVID standard rules apply to every issuer: JWS compact serialization only (a JWE is refused), `alg` among
 * RS/ES/PS 256/384/512 (so `none` and HS* - algorithm confusion with a public key - never reach a key), `exp`,
 * `sub` and `aud` required, `typ` checked when present, leeway on exp/nbf/iat; a JWT-SVID carries no header but
 * alg, kid and typ. The issuer is chosen before any key is touched: by `iss` for configured OIDC/Kubernetes
 * issuers, else by the trust domain of the SPIFFE ID in `sub`, and
 * only that issuer's keys are tried (never keys of another trust domain). A token is checked against one key only:
 * the one its `kid` names; a JWT-SVID without `kid` is refused as go-spiffe does ("token header missing key id"),
 * unless its trust domain allows it and has a single key; another issuer's token without `kid` is tried only when
 * exactly one key fits its alg. Signature and claim checks are jose's.
 */
import { errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type { Principal } from '../../core/call.ts';
import type { Issuer } from './issuers/issuer.ts';
import { ALLOWED_ALGS, type VerificationKey } from './keys.ts';
import { parseSpiffeId } from './spiffe-id.ts';

const ALLOWED = new Set(ALLOWED_ALGS);
/** The only JOSE header parameters a JWT-SVID may carry. */
const SVID_HEADERS: ReadonlySet<string> = new Set(['alg', 'kid', 'typ']);
const B64URL = /^[A-Za-z0-9_-]+$/;

/** Why a token was refused. `reason` is safe to show the caller (it never echoes the token). */
export class AuthFailure extends Error {
  override readonly name = 'AuthFailure';
  /** RFC 6750 error code for WWW-Authenticate. */
  readonly error: 'invalid_token' | 'invalid_request';
  /** The same token may pass in a moment (keys not loaded yet, a kid not fetched yet): not remembered as failed. */
  readonly transient: boolean;
  constructor(reason: string, error: 'invalid_token' | 'invalid_request' = 'invalid_token', transient = false) {
    super(reason);
    this.error = error;
    this.transient = transient;
  }
}

/** What a verified token proves; cached by token hash and shared by every call that presents it. */
export interface VerifiedToken {
  readonly principal: Principal;
  readonly issuer: Issuer;
  readonly audiences: readonly string[];
  readonly scopes: ReadonlySet<string>;
  /** exp in ms since epoch. */
  readonly expiresAt: number;
  /** The key that verified it: the token stays valid only while the issuer still publishes this key. */
  readonly key: VerificationKey;
}

/** The issuers in force, as the validator looks them up. */
export interface IssuerDirectory {
  /** SPIFFE trust domains by name. */
  readonly trustDomains: ReadonlyMap<string, Issuer>;
  /** OIDC and Kubernetes issuers by their `iss` value. */
  readonly byIss: ReadonlyMap<string, Issuer>;
}

export interface VerifyOptions {
  readonly clockSkewSeconds: number;
}

/** Verifies a bearer token (already size-checked) end to end; throws AuthFailure. */
export async function verifyToken(token: string, issuers: IssuerDirectory, opts: VerifyOptions): Promise<VerifiedToken> {
  const parts = token.split('.');
  if (parts.length === 5) throw new AuthFailure('encrypted tokens (JWE) are not accepted');
  if (parts.length !== 3) throw new AuthFailure('token is not a compact JWS (header.payload.signature)');
  for (const p of parts) if (!B64URL.test(p)) throw new AuthFailure('token is not base64url encoded');
  const header = decodeSegment(parts[0]!, 'header');
  const payload = decodeSegment(parts[1]!, 'payload');

  const alg = header.alg;
  if (typeof alg !== 'string' || !ALLOWED.has(alg)) throw new AuthFailure(`alg ${typeof alg === 'string' ? alg : '(missing)'} is not allowed`);
  if (header.enc !== undefined) throw new AuthFailure('encrypted tokens (JWE) are not accepted');
  const kid = header.kid;
  if (kid !== undefined && (typeof kid !== 'string' || kid === '' || kid.length > 256)) throw new AuthFailure('kid must be a non-empty string');

  const issuer = chooseIssuer(payload, issuers);
  if (issuer.kind === 'spiffe') {
    // JWT-SVID 2: "Any header not described here, registered or private, MUST NOT be included" (jku, x5u, jwk, crit...).
    for (const name of Object.keys(header)) if (!SVID_HEADERS.has(name)) throw new AuthFailure(`header parameter ${name} is not allowed in a JWT-SVID`);
  }
  const typ = header.typ;
  if (typ !== undefined && (typeof typ !== 'string' || !issuer.types.has(typ.toLowerCase()))) throw new AuthFailure(`typ ${String(typ)} is not accepted`);

  const keys = issuer.source.current;
  if (!keys) throw new AuthFailure(`no keys for ${describe(issuer)} are available yet`, 'invalid_token', true);
  let candidates = keys.candidates(kid, alg);
  if (kid === undefined) {
    if (issuer.missingKid === 'refuse') throw new AuthFailure('token header missing key id (kid)');
    if (issuer.missingKid === 'single' && keys.size !== 1) throw new AuthFailure(`token header missing key id (kid), and ${describe(issuer)} has ${keys.size} keys`);
    if (candidates.length > 1) throw new AuthFailure(`token header missing key id (kid), and several keys of ${describe(issuer)} fit alg ${alg}`);
  }
  if (candidates.length === 0) {
    // A provider may have rotated in a key we have not fetched yet (rate-limited by the source).
    if (kid !== undefined) issuer.source.refresh();
    throw new AuthFailure(kid === undefined ? `no key of ${describe(issuer)} fits alg ${alg}` : `unknown kid for ${describe(issuer)}`, 'invalid_token', kid !== undefined);
  }
  // One key per token: the kid names at most one in a sane bundle; several keys under one kid are not all tried.
  if (candidates.length > 1) candidates = candidates.slice(0, 1);

  let claims: JWTPayload | undefined;
  let used: VerificationKey | undefined;
  let lastError: unknown;
  for (const key of candidates) {
    try {
      const result = await jwtVerify(token, await key.cryptoKey(alg), {
        algorithms: [alg],
        requiredClaims: ['exp', 'sub', 'aud'],
        clockTolerance: opts.clockSkewSeconds,
        ...(issuer.iss !== undefined ? { issuer: issuer.iss } : {}),
      });
      claims = result.payload;
      used = key;
      break;
    } catch (err) {
      lastError = err;
      if (!(err instanceof joseErrors.JWSSignatureVerificationFailed)) break;
    }
  }
  if (!claims || !used) throw new AuthFailure(joseReason(lastError));
  // Not in RFC 7519, but go-spiffe refuses it too (go-jose's ErrIssuedInTheFuture): a token from the future means a
  // misconfigured issuer clock.
  if (typeof claims.iat === 'number' && claims.iat > Date.now() / 1000 + opts.clockSkewSeconds) throw new AuthFailure('token issued in the future (iat)');

  const audiences = audienceList(claims.aud);
  if (!audiences) throw new AuthFailure('aud must be a string or an array of strings');
  const principal = issuer.principal(claims);
  if (typeof principal === 'string') throw new AuthFailure(principal);
  return Object.freeze({ principal, issuer, audiences, scopes: scopesOf(claims), expiresAt: (claims.exp as number) * 1000, key: used });
}

function decodeSegment(segment: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    throw new AuthFailure(`token ${what} is not valid JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new AuthFailure(`token ${what} is not a JSON object`);
  return value as Record<string, unknown>;
}

function chooseIssuer(payload: Record<string, unknown>, issuers: IssuerDirectory): Issuer {
  if (typeof payload.iss === 'string') {
    const byIss = issuers.byIss.get(payload.iss);
    if (byIss) return byIss;
  }
  if (payload.sub === undefined) throw new AuthFailure('missing sub');
  const id = parseSpiffeId(payload.sub);
  if (!id) {
    throw new AuthFailure(typeof payload.iss === 'string' ? 'issuer is not trusted and sub is not a SPIFFE ID' : 'sub is not a SPIFFE ID');
  }
  const td = issuers.trustDomains.get(id.trustDomain);
  if (!td) throw new AuthFailure(`trust domain ${id.trustDomain} is not trusted`);
  return td;
}

function describe(issuer: Issuer): string {
  return issuer.kind === 'spiffe' ? `trust domain ${issuer.name}` : `issuer ${issuer.name}`;
}

function joseReason(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'token expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf') return 'token not yet valid (nbf)';
    if (err.reason === 'missing') return `missing ${err.claim}`;
    return `invalid ${err.claim} claim`;
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'signature verification failed';
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'alg is not allowed';
  if (err instanceof joseErrors.JOSENotSupported) return 'token uses an unsupported feature';
  if (err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JWTInvalid) return 'malformed token';
  return 'token could not be verified';
}

function audienceList(aud: unknown): readonly string[] | undefined {
  if (typeof aud === 'string') return Object.freeze([aud]);
  if (Array.isArray(aud) && aud.length > 0 && aud.every((a) => typeof a === 'string')) return Object.freeze([...(aud as string[])]);
  return undefined;
}

const NO_SCOPES: ReadonlySet<string> = new Set();

/** OAuth scopes: `scope` (space-separated, RFC 8693/9068) or `scp` (Entra ID: string or array). */
function scopesOf(claims: JWTPayload): ReadonlySet<string> {
  const out = new Set<string>();
  for (const v of [claims.scope, claims.scp]) {
    if (typeof v === 'string') for (const s of v.split(' ')) if (s) out.add(s);
    if (Array.isArray(v)) for (const s of v) if (typeof s === 'string' && s) out.add(s);
  }
  return out.size === 0 ? NO_SCOPES : out;
}
