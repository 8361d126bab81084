/**
 * What a call is keyed by, and the counter keys built from it.
 *
 * Key layout: `<prefix><family>:{<tag>}:<limit>:<dim>=<value>,...[:<window>]`, family `r` (rate) or `b` (budget),
 * dimensions in canonical order, values percent-encoded (so a value can never close the hash tag, add a separator
 * or a glob character) and hashed when long. The `{tag}` is the Redis Cluster hash tag: every key of one decision
 * carries the same one (limits.partition), so the decision is one script on one shard.
 */
import { createHash } from 'node:crypto';
import type { Call, Principal } from '../../core/call.ts';
import { DIMENSIONS, type Dimension, type LimitsSpec } from './config.ts';

/** The values of every dimension for one call (undefined: the call has none, so limits keyed by it do not apply). */
export type Facts = Readonly<Record<Dimension, string | undefined>>;

/** Maps a principal to its team: a claim first, else a pattern over its SPIFFE ID path. */
export class TeamResolver {
  private readonly claim: string | undefined;
  private readonly path: RegExp | undefined;

  constructor(spec: LimitsSpec['teams']) {
    this.claim = spec.claim;
    if (spec.spiffePath === undefined) this.path = undefined;
    else {
      const [before, after] = spec.spiffePath.split('{team}') as [string, string];
      const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      const tail = after.endsWith('/*') ? `${esc(after.slice(0, -2))}(?:/.*)?` : esc(after);
      this.path = new RegExp(`^${esc(before)}([^/]+)${tail}$`);
    }
  }

  teamOf(call: Call): string | undefined {
    return call.principal === undefined ? undefined : this.teamOfPrincipal(call.principal);
  }

  /** The team of a principal: its team claim first, else its SPIFFE path. */
  teamOfPrincipal(p: Pick<Principal, 'claims' | 'issuer' | 'path'>): string | undefined {
    if (this.claim !== undefined) {
      const v = p.claims[this.claim];
      if (typeof v === 'string' && v !== '') return v;
    }
    if (this.path !== undefined && p.issuer === 'spiffe') {
      const m = this.path.exec(p.path);
      if (m !== null) return m[1];
    }
    return undefined;
  }
}

export function factsOf(call: Call, teams: TeamResolver): Facts {
  const t = call.target;
  // tool and model only once the adapter resolved the name to a backend (Target.server): never a made-up name.
  const resolved = t !== undefined && t.server !== undefined;
  const rateClass = call.decision?.obligations?.rate_class;
  return {
    principal: call.principal?.id,
    team: teams.teamOf(call),
    route: call.route.name,
    upstream: call.upstream,
    tool: resolved && t.kind === 'tool' ? `${t.server}/${t.local ?? t.name}` : undefined,
    model: resolved && t.kind === 'model' ? t.name : undefined,
    rate_class: typeof rateClass === 'string' && rateClass !== '' ? rateClass : undefined,
    // An A2A skill only once the adapter found it on the agent's card (or `*`: a message naming no skill).
    skill: resolved && t.kind === 'skill' ? `${t.server}/${t.local ?? t.name}` : undefined,
  };
}

/** Recently encoded values (principals and teams repeat call after call); cleared when full. */
const encoded = new Map<string, string>();
const ENCODED_MAX = 10_000;

/** Percent-encodes all but [A-Za-z0-9._~/-]; values over 128 characters become a SHA-256 (base64url) instead. */
export function encodeValue(v: string): string {
  let e = encoded.get(v);
  if (e === undefined) {
    e = encode(v);
    if (encoded.size >= ENCODED_MAX) encoded.clear();
    encoded.set(v, e);
  }
  return e;
}

function encode(v: string): string {
  const e = v.replace(/[^A-Za-z0-9._~/-]/g, (c) => {
    const bytes = Buffer.from(c, 'utf8');
    let out = '';
    for (const b of bytes) out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
    return out;
  });
  return e.length <= 128 ? e : `h:${createHash('sha256').update(v).digest('base64url')}`;
}

export function decodeValue(e: string): string {
  if (e.startsWith('h:')) return `(hashed ${e.slice(2, 10)}...)`;
  try {
    return decodeURIComponent(e);
  } catch {
    return e;
  }
}

/** Dimensions in canonical order (the order of DIMENSIONS), so one set of dims always gives one key. */
export function canonical(dims: readonly Dimension[]): Dimension[] {
  return DIMENSIONS.filter((d) => dims.includes(d));
}

/** `dim=value,...` for a call, or undefined when the call lacks one of the dimensions. */
export function dimsPart(dims: readonly Dimension[], facts: Facts): string | undefined {
  if (dims.length === 0) return '-';
  let out = '';
  for (let i = 0; i < dims.length; i++) {
    const v = facts[dims[i]!];
    if (v === undefined) return undefined;
    out += `${i === 0 ? '' : ','}${dims[i]}=${encodeValue(v)}`;
  }
  return out;
}

/** Parses a `dim=value,...` part back into readable values. */
export function parseDims(part: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (part === '-') return out;
  for (const kv of part.split(',')) {
    const i = kv.indexOf('=');
    if (i > 0) out[kv.slice(0, i)] = decodeValue(kv.slice(i + 1));
  }
  return out;
}

/** The hash tag of a call's keys under a partition, or undefined when the call lacks the partition's dimension. */
export function tagOf(partition: LimitsSpec['partition'], facts: Facts): string | undefined {
  if (partition === 'global') return 'tollgate';
  const v = facts[partition];
  return v === undefined ? undefined : `${partition === 'principal' ? 'p' : 't'}:${encodeValue(v)}`;
}

export function rateKey(prefix: string, tag: string, limit: string, dims: string): string {
  return `${prefix}r:{${tag}}:${limit}:${dims}`;
}

export function budgetKey(prefix: string, tag: string, budget: string, dims: string, window: string, unit: 't' | 'c'): string {
  return `${prefix}b:{${tag}}:${budget}:${dims}:${window}:${unit}`;
}
