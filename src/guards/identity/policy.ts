/**
 * Per-route authentication policy, compiled once per config snapshot: which issuers a route accepts, the protected
 * resources it serves (RFC 8707 / RFC 9728: the route's mount, and for MCP each `<mount>/<server>`), required scopes,
 * and whether anonymous calls are allowed (only when the route says so).
 *
 * A token is valid only for the resource it was issued for: its `aud` must name the canonical URI of the resource
 * the request is for (`<base><resource path>`, for any of the gateway's base URLs). Naming the gateway itself is
 * enough only when `identity.sharedAudience` is on (off by default); an issuer with its own `audiences` is held to
 * those instead.
 */
import type { RouteSpec } from '../../config/schema.ts';
import type { CallRequest } from '../../core/call.ts';
import type { IdentitySpec } from './config.ts';
import type { Issuer } from './issuers/issuer.ts';

export const METADATA_PATH = '/.well-known/oauth-protected-resource';

export interface RoutePolicy {
  readonly route: string;
  readonly anonymous: boolean;
  readonly spiffe: ReadonlySet<string>;
  readonly oidc: ReadonlySet<string>;
  readonly kubernetes: ReadonlySet<string>;
  readonly scopes: readonly string[];
  /** Paths of the protected resources this route serves, longest first ('' is the root). */
  readonly resources: readonly string[];
  /** `iss` of the OIDC issuers the route accepts (RFC 9728 authorization_servers). */
  readonly authorizationServers: readonly string[];
}

/** Where the gateway is reached: the URLs resources are named under, and what a shared audience may name. */
export interface Audiences {
  /** Base URLs (no trailing slash) of canonical resource URIs; the first names metadata documents. */
  readonly bases: readonly string[];
  /** The gateway's own audiences (accepted alone only with sharedAudience). */
  readonly gateway: ReadonlySet<string>;
  readonly sharedAudience: boolean;
}

/** The base URLs among the gateway's audiences (http(s) URLs, no trailing slash); at least one. */
export function resourceBases(audiences: readonly string[]): string[] {
  const urls = audiences.filter((a) => a.startsWith('https://') || a.startsWith('http://')).map((a) => a.replace(/\/+$/, ''));
  return urls.length > 0 ? urls : [(audiences[0] ?? '').replace(/\/+$/, '')];
}

export function compileRoutePolicy(name: string, spec: RouteSpec, identity: IdentitySpec, trustDomains: readonly string[], resources: Iterable<string>): RoutePolicy {
  const auth = spec.auth;
  const spiffe = auth?.spiffe === false ? [] : (auth?.spiffe?.trustDomains ?? trustDomains);
  const oidc = auth?.oidc ?? [];
  return Object.freeze({
    route: name,
    anonymous: auth?.anonymous === true,
    spiffe: new Set(spiffe),
    oidc: new Set(oidc),
    kubernetes: new Set(auth?.kubernetes ?? []),
    scopes: Object.freeze([...(auth?.scopes ?? [])]),
    resources: Object.freeze([...new Set(resources)].sort((a, b) => b.length - a.length)),
    authorizationServers: Object.freeze(identity.oidc.filter((o) => oidc.includes(o.name)).map((o) => o.issuer)),
  });
}

/** Whether a route accepts tokens of this issuer. */
export function acceptsIssuer(policy: RoutePolicy, issuer: Issuer): boolean {
  switch (issuer.kind) {
    case 'spiffe':
      return policy.spiffe.has(issuer.name);
    case 'oidc':
      return policy.oidc.has(issuer.name);
    case 'kubernetes':
      return policy.kubernetes.has(issuer.name);
  }
}

/** The path of the protected resource a request is for: the adapter's word, else the longest resource it is under. */
export function resourcePath(policy: RoutePolicy, request: CallRequest): string {
  if (request.resource !== undefined && policy.resources.includes(request.resource)) return request.resource;
  const raw = request.path;
  const q = raw.indexOf('?');
  const path = q === -1 ? raw : raw.slice(0, q);
  for (const r of policy.resources) if (r === '' || path === r || path.startsWith(`${r}/`)) return r;
  return policy.resources[policy.resources.length - 1] ?? '';
}

/** Whether a token's audiences name this resource (or, with sharedAudience, the gateway). */
export function audienceFits(tokenAudiences: readonly string[], resource: string, a: Audiences): boolean {
  for (const raw of tokenAudiences) {
    const aud = raw.length > 1 && raw.endsWith('/') ? raw.replace(/\/+$/, '') : raw;
    for (const b of a.bases) if (aud === `${b}${resource}`) return true;
    if (a.sharedAudience && (a.gateway.has(raw) || a.gateway.has(aud))) return true;
  }
  return false;
}

/**
 * The base URL a request reached the gateway under: the configured base whose host[:port] is the request's Host,
 * else the first. Only ever one of the configured bases (a Host header is never echoed), so that a client of any
 * of the gateway's URLs gets metadata whose `resource` is the URL it called (RFC 9728 3.3).
 */
export function baseFor(bases: readonly string[], host: string | undefined): string {
  if (host !== undefined && bases.length > 1) {
    const want = host.toLowerCase();
    for (const b of bases) {
      const start = b.indexOf('://') + 3;
      const end = b.indexOf('/', start);
      if (b.slice(start, end === -1 ? undefined : end).toLowerCase() === want) return b;
    }
  }
  return bases[0]!;
}

/** The RFC 9728 metadata URL of a resource (built from config, never from the request). */
export function metadataUrl(base: string, resource: string): string {
  return `${base}${METADATA_PATH}${resource}`;
}
