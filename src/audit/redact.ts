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
/** Member names whose sensitivity is remembered (see sensitiveKey). */
const MAX_NAMES_SEEN = 4096;
/** Longer names (a caller's odd argument names) are tested each time, never kept. */
const MAX_NAME_REMEMBERED = 64;

/**
 * Values that are credentials whatever their name: a bearer credential, a JWT (three base64url parts, the first a
 * JSON header), a PEM private key. A string containing one is replaced whole.
 */
const SECRET_VALUE = /\bBearer\s+[A-Za-z0-9._~+/-]{8,}|\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*|-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/;

/** Whether a string value is (or contains) a credential. */
export function secretValue(v: string): boolean {
  return v.length >= 16 && SECRET_VALUE.test(v);
}

/**
 * A name pattern matches a whole name or a component of it (`db_password`, `dbPassword`, `x-api-key`,
 * `config.private_key`), not any substring (`max_tokens` is not `token`).
 */
function keyMatcher(patterns: readonly string[]): RegExp | undefined {
  if (patterns.length === 0) return undefined;
  return new RegExp(`(?:^|[_.\\-\\s])(?:${patterns.join('|')})(?:$|[_.\\-\\s])`, 'i');
}

/** `dbPassword` -> `db_Password`: camelCase components become separable. */
function components(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1_$2');
}

export class ArgumentPolicy {
  readonly mode: AuditSpec['arguments']['mode'];
  readonly maxBytes: number;
  private readonly keys: RegExp | undefined;
  private readonly seen = new Map<string, boolean>();

  constructor(spec: AuditSpec['arguments']) {
    this.mode = spec.mode;
    this.maxBytes = spec.maxBytes;
    this.keys = keyMatcher(spec.redactKeys);
  }

  /**
   * Whether a member of this name is always redacted (a sensitive name, at any depth). Remembered per name: records
   * repeat the same few member names (the policy input's, the tools' argument names), and the test is two regular
   * expressions. Bounded (4096 names of at most 64 characters; emptied when full).
   */
  sensitiveKey(name: string): boolean {
    if (this.keys === undefined) return false;
    if (name.length > MAX_NAME_REMEMBERED) return this.keys.test(components(name));
    let hit = this.seen.get(name);
    if (hit === undefined) {
      hit = this.keys.test(components(name));
      if (this.seen.size >= MAX_NAMES_SEEN) this.seen.clear();
      this.seen.set(name, hit);
    }
    return hit;
  }

  /**
   * What a decision record keeps of the policy's report (its input holds the call's arguments, and headers when the
   * policy config asks for them): the argument mode applies to every `arguments` member (omitted, values hidden, or
   * kept), sensitive names and credential values are redacted at any depth, and the whole is bounded.
   */
  serialiseDetail(detail: Readonly<Record<string, unknown>>): string {
    const json = JSON.stringify(this.scrub(detail, 0));
    return this.bound(json ?? '{}');
  }

  /**
   * Copy-on-write, like `redact`: a report with nothing to hide (the usual case) is serialised as it is, without a
   * copy of every object in it (this runs for every decision record).
   */
  private scrub(value: unknown, depth: number): unknown {
    if (typeof value === 'string') return secretValue(value) ? REDACTED : value;
    if (typeof value !== 'object' || value === null) return value;
    if (depth > MAX_DEPTH) return REDACTED;
    if (Array.isArray(value)) {
      let out: unknown[] | undefined;
      for (let i = 0; i < value.length; i++) {
        const v = this.scrub(value[i], depth + 1);
        if (v !== value[i]) (out ??= value.slice())[i] = v;
      }
      return out ?? value;
    }
    const rec = value as Record<string, unknown>;
    let out: Record<string, unknown> | undefined;
    for (const k in rec) {
      if (!Object.hasOwn(rec, k)) continue;
      const v = rec[k];
      if (k === 'arguments' && this.mode === 'omit') {
        out ??= { ...rec };
        delete out[k];
        continue;
      }
      const next = k === 'arguments' && this.mode === 'redact' ? redactAll(v) : this.sensitiveKey(k) ? REDACTED : this.scrub(v, depth + 1);
      // defineProperty: a member named `__proto__` (parsed from a caller's JSON) stays a member, never a prototype.
      if (next !== v) Object.defineProperty((out ??= { ...rec }), k, { value: next, enumerable: true, writable: true, configurable: true });
    }
    return out ?? value;
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
    if (typeof value === 'string') return secretValue(value) ? REDACTED : value;
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
      const hidden = this.sensitiveKey(k) || (paths !== undefined && paths.includes(p));
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
