/**
 * Who may use the console: a caller with a valid token (verified by the gateway's own identity service: SPIFFE
 * JWT-SVIDs, OIDC, Kubernetes) whose audience names the console (`<base>/console`, or an issuer's pinned audiences)
 * and who is an administrator (`admin.principals`, or one of `admin.groups` in the token's groups claim). Nothing is
 * anonymous: no token is 401, a non-administrator is 403 on every page and API, and neither sees any data.
 *
 * The token comes from `Authorization: Bearer` (a reverse proxy or a script) or from the HttpOnly cookie the login
 * form sets (a browser), never from the query string; it is never written into a page.
 */
import type { Context, MiddlewareHandler } from 'hono';
import { getCookie } from 'hono/cookie';
import type { Principal } from '../core/call.ts';
import { Errors } from '../core/errors.ts';
import { VerifiedTokenCache } from '../guards/identity/cache.ts';
import { bearerToken, type TokenAuthority } from '../guards/identity/guard.ts';
import { audienceFits } from '../guards/identity/policy.ts';
import type { VerifiedToken } from '../guards/identity/token.ts';
import type { AdminSpec } from '../server/admin-config.ts';

export const COOKIE = 'tg_console';
export const RESOURCE = '/console';

export type AuthResult = { ok: true; principal: Principal; expiresAt: number } | { ok: false; status: 401 | 403; code: string; reason: string };

export interface AdminAuthOptions {
  readonly authority: () => TokenAuthority | undefined;
  readonly spec: () => AdminSpec;
}

function matches(pattern: string, id: string): boolean {
  return pattern.endsWith('*') ? id.startsWith(pattern.slice(0, -1)) : id === pattern;
}

/** Is this verified principal an administrator under `spec`? */
export function isAdmin(spec: AdminSpec, p: Principal): boolean {
  if (p.issuer === 'anonymous') return false;
  if (spec.principals.some((pattern) => matches(pattern, p.id))) return true;
  const claim = p.claims[spec.groupsClaim];
  const groups = Array.isArray(claim) ? claim.filter((g): g is string => typeof g === 'string') : typeof claim === 'string' ? [claim] : [];
  return groups.some((g) => spec.groups.includes(g));
}

/** Verifies a token and checks it names the console and belongs to an administrator. */
export async function authenticate(token: string | undefined, opts: AdminAuthOptions): Promise<AuthResult> {
  if (token === undefined) return { ok: false, status: 401, code: Errors.UNAUTHENTICATED.code, reason: 'Authentication required' };
  const authority = opts.authority();
  if (authority === undefined || token.length > authority.maxTokenBytes) return { ok: false, status: 401, code: Errors.INVALID_TOKEN.code, reason: 'Invalid token' };
  const key = VerifiedTokenCache.key(token);
  let v: VerifiedToken | undefined = authority.cached(key);
  if (v === undefined) {
    if (authority.failures.get(key, Date.now()) !== undefined) return { ok: false, status: 401, code: Errors.INVALID_TOKEN.code, reason: 'Invalid token' };
    try {
      v = await authority.verify(key, token);
    } catch {
      return { ok: false, status: 401, code: Errors.INVALID_TOKEN.code, reason: 'Invalid token' };
    }
  }
  const own = v.issuer.audiences;
  const fits = own !== undefined ? v.audiences.some((a) => own.has(a)) : audienceFits(v.audiences, RESOURCE, authority.audiences);
  if (!fits) return { ok: false, status: 401, code: Errors.INVALID_TOKEN.code, reason: `aud does not name the console (${authority.base}${RESOURCE})` };
  if (!isAdmin(opts.spec(), v.principal)) return { ok: false, status: 403, code: Errors.ADMIN_FORBIDDEN.code, reason: Errors.ADMIN_FORBIDDEN.message };
  return { ok: true, principal: v.principal, expiresAt: v.expiresAt };
}

/** The request's token: the Authorization header first, else the console cookie. */
export function requestToken(c: Context): string | undefined {
  const header = c.req.header('authorization');
  if (header !== undefined) return bearerToken(header) ?? '';
  return getCookie(c, COOKIE);
}

/**
 * Middleware for every console route but the login form: refuses with 401/403 (HTML for pages, JSON for the API)
 * before any handler runs, and sets `admin` on the context.
 */
export function requireAdmin(opts: AdminAuthOptions, refuse: (c: Context, r: Extract<AuthResult, { ok: false }>) => Response | Promise<Response>): MiddlewareHandler {
  return async (c, next) => {
    const r = await authenticate(requestToken(c), opts);
    if (!r.ok) return refuse(c, r);
    c.set('admin' as never, r.principal.id as never);
    c.set('adminExpiresAt' as never, r.expiresAt as never);
    await next();
  };
}
