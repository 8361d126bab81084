/**
 * What a policy's answer means: the decision entrypoint returns a boolean, or an object
 * `{allow, reason?, obligations?}` (OPA-Envoy's `{allowed, body?}` is accepted too); anything else is an error and
 * the call fails closed. The visible entrypoint returns the set (an array in JSON) of visible target names.
 */

/** Obligations other guards honour; policies may add their own keys (passed through to call.decision). */
export interface Obligations {
  /** Rate-limit class the limits guard applies to this call. */
  readonly rate_class?: string;
  /** Multiplier applied to the call's cost by the limits guard. */
  readonly cost_multiplier?: number;
  /** JSON pointers into target.arguments to erase from the audit record and the decision log (e.g. "/password"). */
  readonly redact?: readonly string[];
  readonly [key: string]: unknown;
}

export interface PolicyDecision {
  readonly allow: boolean;
  readonly reason: string | undefined;
  readonly obligations: Obligations | undefined;
}

const ALLOW: PolicyDecision = Object.freeze({ allow: true, reason: undefined, obligations: undefined });
const DENY: PolicyDecision = Object.freeze({ allow: false, reason: undefined, obligations: undefined });

/** Interprets the decision entrypoint's value; returns an error message (string) when it is not a decision. */
export function interpretDecision(value: unknown): PolicyDecision | string {
  if (value === true) return ALLOW;
  if (value === false) return DENY;
  if (value === undefined) return 'decision is undefined for this input (give the rule a default value)';
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return `decision must be a boolean or an object, got ${typeName(value)}`;
  const v = value as Record<string, unknown>;
  const allow = 'allow' in v ? v.allow : v.allowed;
  if (typeof allow !== 'boolean') return `decision.allow must be a boolean, got ${typeName(allow)}`;
  let reason: string | undefined;
  const r = v.reason ?? (typeof v.body === 'string' ? v.body : undefined);
  if (typeof r === 'string') reason = r === '' ? undefined : r;
  else if (Array.isArray(r) && r.every((x) => typeof x === 'string')) reason = r.length > 0 ? r.join('; ') : undefined;
  else if (r !== undefined) return `decision.reason must be a string, got ${typeName(r)}`;
  const o = v.obligations;
  if (o !== undefined && (typeof o !== 'object' || o === null || Array.isArray(o))) return `decision.obligations must be an object, got ${typeName(o)}`;
  const obligations = o as Obligations | undefined;
  if (obligations?.redact !== undefined && !(Array.isArray(obligations.redact) && obligations.redact.every((p) => typeof p === 'string' && p.startsWith('/')))) {
    return 'decision.obligations.redact must be an array of JSON pointers';
  }
  if (obligations !== undefined && Object.keys(obligations).length === 0) return { allow, reason, obligations: undefined };
  return { allow, reason, obligations };
}

/** Interprets the visible entrypoint's value: the set of visible names. */
export function interpretVisible(value: unknown): ReadonlySet<string> | string {
  if (value === undefined) return 'visible is undefined for this input (make it a partial set rule, which is never undefined)';
  if (!Array.isArray(value)) return `visible must be a set of names, got ${typeName(value)}`;
  const set = new Set<string>();
  for (const x of value) {
    if (typeof x !== 'string') return `visible must contain names (strings), got ${typeName(x)}`;
    set.add(x);
  }
  return set;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (v === undefined) return 'nothing';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}
