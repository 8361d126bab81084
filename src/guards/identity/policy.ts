/**
 * Per-route authentication policy, compiled once per config snapshot: which issuers a route accepts, the audiences
 * its tokens may carry (the gateway's canonical URIs and the route's own resource URIs), required scopes, and
 * whether anonymous calls are allowed (only when the route says so).
 */
import type { RouteSpec } from '../../config/schema.ts';
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
  /** Audiences a token used on this route may carry (issuers with their own audiences use those instead). */
  readonly audiences: ReadonlySet<string>;
  /** The route's match paths, longest first (to name the resource a request is for). */
  readonly paths: readonly string[];
  /** `iss` of the OIDC issuers the route accepts (RFC 9728 authorization_servers). */
  readonly authorizationServers: readonly string[];
}

/** The canonical base URL resources are named under: the first audience that is an http(s) URL. */
export function resourceBase(audiences: readonly string[]): string {
  const url = audiences.find((a) => a.startsWith('https://') || a.startsWith('http://')) ?? audiences[0] ?? '';
  return url.replace(/\/+$/, '');
}

export function compileRoutePolicy(
  name: string,
  spec: RouteSpec,
  identity: IdentitySpec,
  trustDomains: readonly string[],
  audiences: readonly string[],
  base: string,
): RoutePolicy {
  const auth = spec.auth;
  const spiffe = auth?.spiffe === false ? [] : (auth?.spiffe?.trustDomains ?? trustDomains);
  const paths = new Set<string>();
  const accepted = new Set(audiences);
  for (const rule of spec.rules) {
    for (const m of rule.matches) {
      const p = m.path.value.length > 1 ? m.path.value.replace(/\/+$/, '') : '';
      paths.add(p);
      accepted.add(`${base}${p}`);
      // Single-server views of a federated mount (/mcp/<backend>) are resources of their own.
      for (const ref of rule.backendRefs) accepted.add(`${base}${p}/${ref.name}`);
    }
  }
  const oidc = auth?.oidc ?? [];
  return Object.freeze({
    route: name,
    anonymous: auth?.anonymous === true,
    spiffe: new Set(spiffe),
    oidc: new Set(oidc),
    kubernetes: new Set(auth?.kubernetes ?? []),
    scopes: Object.freeze([...(auth?.scopes ?? [])]),
    audiences: accepted,
    paths: Object.freeze([...paths].sort((a, b) => b.length - a.length)),
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

/** The RFC 9728 metadata URL for a request path on this route (built from config, never from the request). */
export function metadataUrl(policy: RoutePolicy, base: string, requestPath: string): string {
  const q = requestPath.indexOf('?');
  const path = q === -1 ? requestPath : requestPath.slice(0, q);
  for (const p of policy.paths) {
    if (p === '' || path === p || path.startsWith(`${p}/`)) {
      const rest = path.slice(p.length);
      // /mcp/<backend>: name the single-server resource when <backend> is a plain name of this route.
      const extra = /^\/[a-z0-9-]{1,63}$/.test(rest) && policy.audiences.has(`${base}${p}${rest}`) ? rest : '';
      return `${base}${METADATA_PATH}${p}${extra}`;
    }
  }
  return `${base}${METADATA_PATH}`;
}
