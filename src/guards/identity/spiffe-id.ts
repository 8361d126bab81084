/**
 * SPIFFE ID parsing per the SPIFFE-ID standard (section 2): `spiffe://<trust-domain>/<path>`, trust domain of
 * [a-z0-9._-], path segments of [a-zA-Z0-9._-] (no empty, "." or ".." segment), no query, fragment, port or user
 * info, at most 2048 bytes. Hand-written (no URL parser) so that nothing is normalised behind our back.
 */

export interface SpiffeId {
  readonly id: string;
  readonly trustDomain: string;
  /** '' for the trust domain's own ID, else '/seg/seg'. */
  readonly path: string;
  readonly segments: readonly string[];
}

const TD_CHAR = /^[a-z0-9._-]+$/;
const SEGMENT_CHAR = /^[a-zA-Z0-9._-]+$/;
const PREFIX = 'spiffe://';

/** Parses a SPIFFE ID; returns undefined when it is not a valid one. */
export function parseSpiffeId(value: unknown): SpiffeId | undefined {
  if (typeof value !== 'string' || value.length > 2048 || !value.startsWith(PREFIX)) return undefined;
  const rest = value.slice(PREFIX.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  if (trustDomain === '' || !TD_CHAR.test(trustDomain)) return undefined;
  if (slash === -1) return { id: value, trustDomain, path: '', segments: [] };
  const path = rest.slice(slash);
  const segments = path.slice(1).split('/');
  for (const s of segments) {
    if (s === '' || s === '.' || s === '..' || !SEGMENT_CHAR.test(s)) return undefined;
  }
  return { id: value, trustDomain, path, segments };
}
