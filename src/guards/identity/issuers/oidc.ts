/**
 * Enterprise OIDC providers (Entra ID, Okta, Keycloak...): keys from the JWKS named by the discovery document
 * (`<issuer>/.well-known/openid-configuration`, whose `issuer` must equal the configured one, OIDC Discovery 4.3).
 * The principal is `oidc://<name>/<subject>`, trust domain = the configured issuer name.
 */
import { resolve } from 'node:path';
import type { Dispatcher } from 'undici';
import type { Principal } from '../../../core/call.ts';
import type { OidcIssuerSpec } from '../config.ts';
import { fetchJson } from '../fetch-json.ts';
import { HttpKeySource } from '../sources/http.ts';
import type { KeySource } from '../sources/source.ts';
import { ConfiguredIssuer, expiryMs, qualifiedId } from './issuer.ts';
import { specFingerprint, type SourceContext } from './spiffe.ts';

/** Access tokens (RFC 9068 `at+jwt`) and ID-token-shaped JWTs. */
const OIDC_TYPES: ReadonlySet<string> = new Set(['jwt', 'at+jwt', 'application/at+jwt']);

export class OidcIssuer extends ConfiguredIssuer {
  readonly kind = 'oidc' as const;
  readonly types = OIDC_TYPES;
  private readonly subjectClaim: string;

  constructor(spec: OidcIssuerSpec, source: KeySource) {
    super(spec, source);
    this.subjectClaim = spec.subjectClaim;
  }

  principal(claims: Readonly<Record<string, unknown>>): Principal | string {
    const subject = claims[this.subjectClaim];
    if (typeof subject !== 'string' || subject === '' || subject.length > 1024) return `${this.subjectClaim} claim missing or not a string`;
    const path = `/${encodeURIComponent(subject)}`;
    return Object.freeze({
      id: qualifiedId('oidc', this.name, path),
      issuer: 'oidc',
      trustDomain: this.name,
      path,
      segments: Object.freeze([subject]),
      claims: Object.freeze({ ...claims }),
      expiresAt: expiryMs(claims),
    });
  }
}

export function createOidcSource(spec: OidcIssuerSpec, ctx: SourceContext): KeySource {
  const caFile = spec.caFile === undefined ? undefined : resolve(ctx.configDir, spec.caFile);
  const discovery = `${spec.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
  // Discovery runs before every JWKS fetch (one small GET per refresh), so a provider that moves its keys is
  // followed without keeping state about it.
  const locate = async (dispatcher: Dispatcher | undefined): Promise<string> => {
    const doc = (await fetchJson(discovery, dispatcher)) as Record<string, unknown> | null;
    if (!doc || typeof doc !== 'object') throw new Error(`${discovery}: not a discovery document`);
    if (doc.issuer !== spec.issuer) throw new Error(`${discovery}: issuer ${String(doc.issuer)} does not match the configured ${spec.issuer}`);
    const uri = doc.jwks_uri;
    if (typeof uri !== 'string' || !(uri.startsWith('https://') || (spec.allowInsecureHttp && uri.startsWith('http://')))) {
      throw new Error(`${discovery}: jwks_uri missing or not https`);
    }
    return uri;
  };
  return new HttpKeySource({
    label: `OIDC issuer ${spec.name} (${spec.issuer})`,
    fingerprint: specFingerprint('oidc', spec, ctx.configDir),
    profile: 'jwks',
    log: ctx.log,
    locate,
    period: () => spec.refreshSeconds,
    minPeriodSeconds: spec.minRefreshSeconds,
    caFile,
  });
}
