/**
 * The identity guard, first in the pipeline: takes the bearer token from `Authorization` (nowhere else), verifies
 * it (once: verified tokens are cached by hash, failed ones briefly too), checks the route accepts its issuer, that
 * its audience names the resource the request is for (policy.ts) and its scopes, and sets `call.principal`.
 * Synchronous on a cache hit, so a pipeline of synchronous guards stays synchronous.
 */
import type { Call, Principal } from '../../core/call.ts';
import type { GatewayError } from '../../core/errors.ts';
import type { Guard } from '../../core/pipeline.ts';
import { FailedTokenCache, VerifiedTokenCache } from './cache.ts';
import { insufficientScope, invalidToken, unauthenticated } from './challenge.ts';
import { acceptsIssuer, audienceFits, baseFor, metadataUrl, resourcePath, type Audiences, type RoutePolicy } from './policy.ts';
import { AuthFailure, verifyToken, type IssuerDirectory, type VerifiedToken } from './token.ts';

/** The principal of a call on a route that allows anonymous access and got no credentials. */
export const ANONYMOUS: Principal = Object.freeze({
  id: 'anonymous',
  issuer: 'anonymous',
  trustDomain: '',
  path: '',
  segments: Object.freeze([]),
  claims: Object.freeze({}),
  expiresAt: 0,
});

/** Counts of token verifications really run (a cached success or failure is not one). */
export interface TokenChecks {
  ok: number;
  failed: number;
}

/** What verifies tokens for one identity config: issuers, options, the cache, verifications under way. */
export class TokenAuthority {
  readonly issuers: IssuerDirectory;
  readonly cache: VerifiedTokenCache;
  readonly maxTokenBytes: number;
  readonly clockSkewSeconds: number;
  /** Base URLs of canonical resource URIs (the first one names RFC 9728 metadata documents). */
  readonly audiences: Audiences;
  /** Tokens that failed verification recently, by hash: a flood of one bad token costs a hash each, not a check. */
  readonly failures: FailedTokenCache;
  /** Token verifications really run (signature checks), by result: shared by the authorities of one service. */
  readonly checks: TokenChecks;
  private readonly inflight = new Map<string, Promise<VerifiedToken>>();

  constructor(init: { issuers: IssuerDirectory; maxTokenBytes: number; clockSkewSeconds: number; cacheEntries: number; audiences: Audiences; negative: { ttlSeconds: number; maxEntries: number }; checks?: TokenChecks }) {
    this.checks = init.checks ?? { ok: 0, failed: 0 };
    this.issuers = init.issuers;
    this.maxTokenBytes = init.maxTokenBytes;
    this.clockSkewSeconds = init.clockSkewSeconds;
    this.audiences = init.audiences;
    this.cache = new VerifiedTokenCache(init.cacheEntries, init.clockSkewSeconds);
    this.failures = new FailedTokenCache(init.negative.maxEntries, init.negative.ttlSeconds * 1000);
  }

  /** Base URL of RFC 9728 metadata documents. */
  get base(): string {
    return this.audiences.bases[0]!;
  }

  /** A verified token from the cache, or undefined (then call `verify`). */
  cached(key: string): VerifiedToken | undefined {
    return this.cache.get(key, Date.now());
  }

  /** Verifies a token (concurrent verifications of one token share the work) and caches it. */
  verify(key: string, token: string): Promise<VerifiedToken> {
    let pending = this.inflight.get(key);
    if (!pending) {
      pending = verifyToken(token, this.issuers, { clockSkewSeconds: this.clockSkewSeconds }).then(
        (v) => {
          this.checks.ok++;
          this.inflight.delete(key);
          this.cache.set(key, v);
          return v;
        },
        (err: unknown) => {
          this.checks.failed++;
          this.inflight.delete(key);
          // A transient failure (no keys yet, a kid not fetched yet) is not remembered: the next try may pass.
          if (err instanceof AuthFailure && !err.transient) this.failures.set(key, err);
          throw err;
        },
      );
      this.inflight.set(key, pending);
    }
    return pending;
  }
}

/** Extracts the token of `Bearer <token>`; undefined when the header is not a single Bearer credential. */
export function bearerToken(header: string): string | undefined {
  if (header.length < 8 || header.charCodeAt(6) !== 32) return undefined;
  const scheme = header.slice(0, 6);
  if (scheme !== 'Bearer' && scheme.toLowerCase() !== 'bearer') return undefined;
  const token = header.slice(7).trim();
  // Two Authorization headers arrive joined as "Bearer a, Bearer b" (see server/http.ts): refused here.
  if (token === '' || token.includes(' ') || token.includes(',')) return undefined;
  return token;
}

const QUERY_TOKEN = /(?:^|&)access_token=/;
/** A Bearer credential anywhere in the header (repeated headers arrive joined by ", "). */
const NAMES_BEARER = /(?:^|,)[ \t]*bearer(?:[ \t]|,|$)/i;

export class IdentityGuard implements Guard {
  readonly name = 'identity';
  readonly authenticates = true;
  private readonly authority: TokenAuthority;
  private readonly policies: ReadonlyMap<string, RoutePolicy>;
  /**
   * Calls this guard has admitted already: `Pipeline.authenticate` runs the guard before the body is read and
   * `admit` runs it again; the second run of one call (same guard, so same route policy and token) costs a lookup
   * instead of another hash of the token.
   */
  private readonly admitted = new WeakSet<Call>();

  constructor(authority: TokenAuthority, policies: ReadonlyMap<string, RoutePolicy>) {
    this.authority = authority;
    this.policies = policies;
  }

  admit(call: Call): void | Promise<void> {
    if (call.principal !== undefined && this.admitted.has(call)) return;
    const policy = this.policies.get(call.route.name);
    if (policy === undefined) throw this.fail(undefined, call, new AuthFailure('route has no identity policy'));
    const path = call.request.path;
    const q = path.indexOf('?');
    const header = call.request.headers.authorization;
    // RFC 6750 allows a query-string token; MCP forbids it (it ends up in logs and Referer headers). Alone it is no
    // credential we take (401, RFC 6750 3.1); beside the header it is two methods at once (400 invalid_request).
    if (q !== -1 && QUERY_TOKEN.test(path.slice(q + 1))) {
      if (header === undefined) throw unauthenticated(this.metadata(policy, call), policy.scopes, 'Tokens are accepted only in the Authorization header: send Authorization: Bearer <token>');
      throw this.fail(policy, call, new AuthFailure('a token in the query string and in the Authorization header', 'invalid_request'));
    }
    if (header === undefined) {
      if (policy.anonymous) {
        call.principal = ANONYMOUS;
        return;
      }
      throw unauthenticated(this.metadata(policy, call), policy.scopes);
    }
    const token = bearerToken(header);
    if (token === undefined) {
      // Another scheme (Basic, DPoP...) is no bearer credential: a 401 challenge without an error code (RFC 6750 3.1).
      if (!NAMES_BEARER.test(header)) throw unauthenticated(this.metadata(policy, call), policy.scopes, 'Authorization scheme not supported: send Authorization: Bearer <token>');
      throw this.fail(policy, call, new AuthFailure('expected one Authorization: Bearer <token> header', 'invalid_request'));
    }
    if (token.length > this.authority.maxTokenBytes) throw this.fail(policy, call, new AuthFailure(`token is larger than ${this.authority.maxTokenBytes} bytes`));
    const key = VerifiedTokenCache.key(token);
    const hit = this.authority.cached(key);
    if (hit !== undefined) return this.accept(policy, hit, call);
    const failed = this.authority.failures.get(key, Date.now());
    if (failed !== undefined) throw this.fail(policy, call, failed);
    return this.authority.verify(key, token).then(
      (verified) => this.accept(policy, verified, call),
      (err: unknown) => {
        throw this.fail(policy, call, err instanceof AuthFailure ? err : new AuthFailure('token could not be verified'));
      },
    );
  }

  private accept(policy: RoutePolicy, v: VerifiedToken, call: Call): void {
    if (!acceptsIssuer(policy, v.issuer)) {
      throw this.fail(policy, call, new AuthFailure(`tokens of ${v.issuer.kind === 'spiffe' ? 'trust domain' : 'issuer'} ${v.issuer.name} are not accepted on this route`));
    }
    const resource = resourcePath(policy, call.request);
    const own = v.issuer.audiences;
    if (own !== undefined) {
      // The operator pinned this issuer's audiences (an IdP that cannot mint per-resource audiences).
      if (!v.audiences.some((a) => own.has(a))) throw this.fail(policy, call, new AuthFailure(`aud does not name an audience accepted for ${v.issuer.name}`));
    } else if (!audienceFits(v.audiences, resource, this.authority.audiences)) {
      throw this.fail(policy, call, new AuthFailure(`aud does not name this resource (${baseFor(this.authority.audiences.bases, call.request.headers.host)}${resource})`));
    }
    for (const scope of policy.scopes) {
      if (!v.scopes.has(scope)) throw insufficientScope(this.metadata(policy, call), policy.scopes);
    }
    call.principal = v.principal;
    this.admitted.add(call);
  }

  /** The metadata URL of the resource the request is for, under the base URL the request came in by. */
  private metadata(policy: RoutePolicy, call: Call): string {
    return metadataUrl(baseFor(this.authority.audiences.bases, call.request.headers.host), resourcePath(policy, call.request));
  }

  private fail(policy: RoutePolicy | undefined, call: Call, failure: AuthFailure): GatewayError {
    const url = policy ? this.metadata(policy, call) : metadataUrl(baseFor(this.authority.audiences.bases, call.request.headers.host), '');
    return invalidToken(url, failure, policy?.scopes);
  }
}
