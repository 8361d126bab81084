/**
 * An issuer Tollgate accepts tokens from: a SPIFFE trust domain, an OIDC provider or a Kubernetes cluster. Each
 * has its key source and maps verified claims to the one `Principal` shape policy, limits and audit see.
 */
import type { Principal } from '../../../core/call.ts';
import type { KeySource } from '../sources/source.ts';

export type IssuerKind = 'spiffe' | 'oidc' | 'kubernetes';

export interface Issuer {
  readonly kind: IssuerKind;
  /** Trust domain name (SPIFFE) or the configured issuer name (OIDC, Kubernetes). */
  readonly name: string;
  /** The `iss` claim tokens must carry (OIDC, Kubernetes); SPIFFE JWT-SVIDs are chosen by their `sub`. */
  readonly iss: string | undefined;
  /** Audiences this issuer's tokens are checked against instead of the gateway's (when configured). */
  readonly audiences: ReadonlySet<string> | undefined;
  /** `typ` header values accepted when the header is present (lowercase). */
  readonly types: ReadonlySet<string>;
  /**
   * How a token without `kid` is treated: `refuse` (SPIFFE, as go-spiffe: "token header missing key id"), `single`
   * (tried only when the key set holds exactly one key: a SPIFFE trust domain's allowMissingKid), or `unique`
   * (tried only against the one key fitting its alg, never against several: OIDC and Kubernetes, as jose does).
   */
  readonly missingKid: 'refuse' | 'single' | 'unique';
  readonly source: KeySource;
  /** Maps verified claims to a principal; returns a reason string when the claims do not fit this issuer. */
  principal(claims: Readonly<Record<string, unknown>>): Principal | string;
}

/** The principal `id` for a non-SPIFFE issuer: `<kind>://<issuer name><path>`, never confusable with spiffe://. */
export function qualifiedId(kind: 'oidc' | 'kubernetes', name: string, path: string): string {
  return `${kind === 'oidc' ? 'oidc' : 'k8s'}://${name}${path}`;
}

export function expiryMs(claims: Readonly<Record<string, unknown>>): number {
  return typeof claims.exp === 'number' ? claims.exp * 1000 : 0;
}

/** OIDC and Kubernetes issuers: configured by name, chosen by `iss`, optionally with their own audiences. */
export abstract class ConfiguredIssuer implements Issuer {
  abstract readonly kind: 'oidc' | 'kubernetes';
  abstract readonly types: ReadonlySet<string>;
  readonly name: string;
  readonly iss: string;
  readonly audiences: ReadonlySet<string> | undefined;
  readonly missingKid = 'unique' as const;
  readonly source: KeySource;

  constructor(spec: { name: string; issuer: string; audiences?: readonly string[] | undefined }, source: KeySource) {
    this.name = spec.name;
    this.iss = spec.issuer;
    this.audiences = spec.audiences ? new Set(spec.audiences) : undefined;
    this.source = source;
  }

  abstract principal(claims: Readonly<Record<string, unknown>>): Principal | string;
}
