/**
 * What an audit record keeps of a call's arguments: everything, minus values under sensitive names and the paths a
 * policy obligation names (`obligations.redact` or `obligations.audit.redact`: JSON pointers into the arguments as
 * the policy guard writes them, e.g. `/content`, or dotted paths `a.b`; or `true` / `"*"` for all of them).
 * Arguments larger than the configured bound are replaced by their size and hash.
 */
import { createHash } from 'node:crypto';
import type { Decision } from '../core/call.ts';
import type { AuditSpec } from './config.ts';

export const REDACTED = '[REDACTED]';
const MAX_DEPTH = 16;

export class ArgumentPolicy {
  readonly mode: AuditSpec['arguments']['mode'];
  readonly maxBytes: number;
  private readonly keys: RegExp | undefined;

  constructor(spec: AuditSpec['arguments']) {
    this.mode = spec.mode;
    this.maxBytes = spec.maxBytes;
    this.keys = spec.redactKeys.length === 0 ? undefined : new RegExp(`^(?:${spec.redactKeys.join('|')})$`, 'i');
  }

  /** The arguments as serialised JSON for the record, or undefined when none are kept. */
  serialise(args: unknown, decision: Decision | undefined): string | undefined {
    if (args === undefined || this.mode === 'omit') return undefined;
    const paths = obligationPaths(decision);
    let value: unknown;
    if (this.mode === 'redact' || paths === true) value = redactAll(args);
    else value = this.redact(args, paths, '', 0);
    const json = JSON.stringify(value);
    return json === undefined ? undefined : this.bound(json);
  }

  /** Serialised JSON as is, or its size and SHA-256 when larger than the bound. */
  bound(json: string): string {
    if (json.length <= this.maxBytes) return json;
    return JSON.stringify({ truncated: true, bytes: Buffer.byteLength(json), sha256: createHash('sha256').update(json).digest('hex') });
  }

  /** Copy-on-write walk: returns `value` itself when nothing under it needs redacting. */
  private redact(value: unknown, paths: readonly string[] | undefined, path: string, depth: number): unknown {
    if (typeof value !== 'object' || value === null) return value;
    if (depth > MAX_DEPTH) return REDACTED;
    if (Array.isArray(value)) {
      let out: unknown[] | undefined;
      for (let i = 0; i < value.length; i++) {
        const v = this.redact(value[i], paths, `${path}/${i}`, depth + 1);
        if (v !== value[i]) (out ??= value.slice())[i] = v;
      }
      return out ?? value;
    }
    let out: Record<string, unknown> | undefined;
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      const p = `${path}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`;
      const hidden = (this.keys !== undefined && this.keys.test(k)) || (paths !== undefined && paths.includes(p));
      const next = hidden ? REDACTED : this.redact(v, paths, p, depth + 1);
      if (next !== v) (out ??= { ...(value as Record<string, unknown>) })[k] = next;
    }
    return out ?? value;
  }
}

function redactAll(args: unknown): unknown {
  if (typeof args !== 'object' || args === null) return REDACTED;
  if (Array.isArray(args)) return args.map(() => REDACTED);
  return Object.fromEntries(Object.keys(args).map((k) => [k, REDACTED]));
}

/** Paths a decision's obligations ask to redact: a list, `true` for everything, or undefined. */
export function obligationPaths(decision: Decision | undefined): readonly string[] | true | undefined {
  const o = decision?.obligations;
  if (o === undefined) return undefined;
  const audit = o.audit as { redact?: unknown } | undefined;
  const r = o.redact ?? audit?.redact;
  if (r === true || r === '*') return true;
  const list = Array.isArray(r) ? r : typeof r === 'string' ? [r] : undefined;
  return list?.filter((x): x is string => typeof x === 'string').map(toPointer);
}

/** JSON pointers as they are; a dotted path `a.b.0` becomes `/a/b/0`. */
function toPointer(path: string): string {
  return path.startsWith('/') ? path : `/${path.split('.').map((k) => k.replace(/~/g, '~0').replace(/\//g, '~1')).join('/')}`;
}
