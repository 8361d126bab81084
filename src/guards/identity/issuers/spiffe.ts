/** SPIFFE trust domains: bundle from a file, an https_web endpoint or the Workload API; `sub` is the SPIFFE ID. */
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import type { Principal } from '../../../core/call.ts';
import type { Logger } from '../../../telemetry/logger.ts';
import type { TrustDomainSpec } from '../config.ts';
import { parseSpiffeId } from '../spiffe-id.ts';
import { FileKeySource } from '../sources/file.ts';
import { HttpKeySource } from '../sources/http.ts';
import type { KeySource } from '../sources/source.ts';
import { WorkloadKeySource, type WorkloadBundleHub } from '../sources/workload.ts';
import { expiryMs, type Issuer } from './issuer.ts';

/** JWT-SVID standard: `typ`, if present, is JWT or JOSE. */
const SVID_TYPES: ReadonlySet<string> = new Set(['jwt', 'jose']);

export class SpiffeTrustDomain implements Issuer {
  readonly kind = 'spiffe' as const;
  readonly name: string;
  readonly iss = undefined;
  readonly audiences = undefined;
  readonly types = SVID_TYPES;
  readonly missingKid: 'refuse' | 'single';
  readonly source: KeySource;

  constructor(name: string, source: KeySource, allowMissingKid = false) {
    this.name = name;
    this.source = source;
    this.missingKid = allowMissingKid ? 'single' : 'refuse';
  }

  principal(claims: Readonly<Record<string, unknown>>): Principal | string {
    const id = parseSpiffeId(claims.sub);
    if (!id) return 'sub is not a SPIFFE ID';
    // Keys are chosen by the trust domain in `sub`; a mismatch here would mean a bug, so it is checked again.
    if (id.trustDomain !== this.name) return 'sub is not in the trust domain of the verifying key';
    return Object.freeze({
      id: id.id,
      issuer: 'spiffe',
      trustDomain: id.trustDomain,
      path: id.path,
      segments: Object.freeze(id.segments),
      claims: Object.freeze({ ...claims }),
      expiresAt: expiryMs(claims),
    });
  }
}

export interface SourceContext {
  readonly log: Logger;
  /** Config directory: relative file paths are resolved against it. */
  readonly configDir: string;
  /** The Workload API address in force (part of a workload_api source's identity). */
  readonly workloadSocket: string | undefined;
  /** The Workload API bundle stream, when a trust domain asks for it. */
  hub(): WorkloadBundleHub;
}

/** Fingerprint of a source's config: unchanged sources survive a config reload with their keys. */
export function specFingerprint(kind: string, spec: unknown, configDir: string): string {
  return createHash('sha256').update(`${kind}\n${configDir}\n${JSON.stringify(spec)}`).digest('base64url').slice(0, 22);
}

export function createTrustDomainSource(spec: TrustDomainSpec, ctx: SourceContext): KeySource {
  const b = spec.bundle;
  const fingerprint = specFingerprint('spiffe', b.workload_api ? [spec, ctx.workloadSocket] : spec, ctx.configDir);
  if (b.file !== undefined) {
    const path = resolve(ctx.configDir, b.file);
    return new FileKeySource({ label: `trust domain ${spec.name} (file ${path})`, fingerprint, profile: 'spiffe', log: ctx.log, path });
  }
  if (b.https_web !== undefined) {
    const web = b.https_web;
    return new HttpKeySource({
      label: `trust domain ${spec.name} (https_web ${web.url})`,
      fingerprint,
      profile: 'spiffe',
      log: ctx.log,
      locate: () => Promise.resolve(web.url),
      period: (set) => set.refreshHint ?? web.defaultRefreshSeconds,
      minPeriodSeconds: web.minRefreshSeconds,
      caFile: web.caFile === undefined ? undefined : resolve(ctx.configDir, web.caFile),
    });
  }
  return new WorkloadKeySource({ label: `trust domain ${spec.name} (Workload API)`, fingerprint, log: ctx.log, trustDomain: spec.name, hub: ctx.hub() });
}
