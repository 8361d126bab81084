/**
 * Kubernetes projected service-account tokens (audience-bound, `serviceAccountToken.audience` in the pod spec):
 * keys from the cluster issuer's JWKS (URL or file). `system:serviceaccount:<ns>:<sa>` maps to the path
 * `/ns/<ns>/sa/<sa>` (the layout SPIRE's Kubernetes registrations use), id `k8s://<name>/ns/<ns>/sa/<sa>`.
 */
import { resolve } from 'node:path';
import type { Principal } from '../../../core/call.ts';
import type { KubernetesIssuerSpec } from '../config.ts';
import { FileKeySource } from '../sources/file.ts';
import { HttpKeySource } from '../sources/http.ts';
import type { KeySource } from '../sources/source.ts';
import { ConfiguredIssuer, expiryMs, qualifiedId } from './issuer.ts';
import { specFingerprint, type SourceContext } from './spiffe.ts';

const K8S_TYPES: ReadonlySet<string> = new Set(['jwt']);
const SA_SUBJECT = /^system:serviceaccount:([a-z0-9]([-a-z0-9]*[a-z0-9])?):([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$/;

export class KubernetesIssuer extends ConfiguredIssuer {
  readonly kind = 'kubernetes' as const;
  readonly types = K8S_TYPES;

  principal(claims: Readonly<Record<string, unknown>>): Principal | string {
    const m = typeof claims.sub === 'string' ? SA_SUBJECT.exec(claims.sub) : null;
    if (!m) return 'sub is not a Kubernetes service account';
    const namespace = m[1]!;
    const account = m[3]!;
    const path = `/ns/${namespace}/sa/${account}`;
    return Object.freeze({
      id: qualifiedId('kubernetes', this.name, path),
      issuer: 'kubernetes',
      trustDomain: this.name,
      path,
      segments: Object.freeze(['ns', namespace, 'sa', account]),
      claims: Object.freeze({ ...claims }),
      expiresAt: expiryMs(claims),
    });
  }
}

export function createKubernetesSource(spec: KubernetesIssuerSpec, ctx: SourceContext): KeySource {
  const fingerprint = specFingerprint('kubernetes', spec, ctx.configDir);
  const label = `Kubernetes issuer ${spec.name} (${spec.issuer})`;
  if (spec.jwks.file !== undefined) {
    return new FileKeySource({ label, fingerprint, profile: 'jwks', log: ctx.log, path: resolve(ctx.configDir, spec.jwks.file) });
  }
  const url = spec.jwks.url!;
  return new HttpKeySource({
    label,
    fingerprint,
    profile: 'jwks',
    log: ctx.log,
    locate: () => Promise.resolve(url),
    period: () => spec.refreshSeconds,
    minPeriodSeconds: spec.minRefreshSeconds,
    caFile: spec.jwks.caFile === undefined ? undefined : resolve(ctx.configDir, spec.jwks.caFile),
  });
}
