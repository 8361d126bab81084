/**
 * What the console shows of an audit record: a plain, bounded object without anything secret. The audit log already
 * carries no session id (a fingerprint) and redacted arguments; the console still drops the session fingerprint,
 * JSON-RPC ids and chain members, and scrubs arguments and policy input again (names that hold secrets, values that
 * look like credentials) so that a record written under a laxer config never puts a secret on a page.
 */
import type { AuditRecord } from '../audit/format.ts';

export interface RecordView {
  readonly seq: number;
  readonly kind: 'call' | 'decision';
  readonly time: string;
  readonly call: string | undefined;
  readonly trace: string | undefined;
  readonly principal: string | undefined;
  readonly route: string | undefined;
  readonly protocol: string | undefined;
  readonly operation: string | undefined;
  readonly target: string | undefined;
  readonly upstream: string | undefined;
  readonly model: string | undefined;
  readonly allow: boolean | undefined;
  readonly reason: string | undefined;
  readonly status: number | undefined;
  readonly outcome: string | undefined;
  readonly code: string | undefined;
  readonly ms: number | undefined;
  readonly inputTokens: number | undefined;
  readonly outputTokens: number | undefined;
  readonly cost: number | undefined;
  /** The limits guard's note (decision, limits applied), when the call was limited. */
  readonly limit: string | undefined;
  /** Arguments of a call, or the (masked) policy input of a decision, scrubbed; JSON text, bounded. */
  readonly input: string | undefined;
  readonly policyRevision: string | undefined;
}

const SECRET_NAME = /(authori[sz]ation|cookie|token|secret|passw(or)?d|api[-_]?key|session|credential|private[-_]?key)/i;
const SECRET_VALUE = /(^bearer\s+\S+)|(eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.)|(-----BEGIN [A-Z ]*PRIVATE KEY-----)/i;
const MAX_INPUT = 4096;
const MAX_DEPTH = 8;

/** A deep copy with secret-looking names and values replaced by "[redacted]". */
export function scrub(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return SECRET_VALUE.test(value) ? '[redacted]' : value;
  if (value === null || typeof value !== 'object') return value;
  if (depth >= MAX_DEPTH) return '[...]';
  if (Array.isArray(value)) return value.slice(0, 100).map((v) => scrub(v, depth + 1));
  const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  let n = 0;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (++n > 100) break;
    out[k] = SECRET_NAME.test(k) ? '[redacted]' : scrub(v, depth + 1);
  }
  return out;
}

function text(v: unknown, max = 512): string | undefined {
  if (typeof v !== 'string') return undefined;
  return v.length > max ? `${v.slice(0, max)}…` : v;
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function bounded(v: unknown): string | undefined {
  if (v === undefined) return undefined;
  const s = JSON.stringify(scrub(v));
  if (s === undefined) return undefined;
  return s.length > MAX_INPUT ? `${s.slice(0, MAX_INPUT)}…` : s;
}

function limitNote(v: unknown): string | undefined {
  if (typeof v === 'string') return text(v, 128);
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  const parts: string[] = [];
  if (typeof o.decision === 'string') parts.push(o.decision);
  if (typeof o.refused === 'string') parts.push(`by ${o.refused}`);
  else if (Array.isArray(o.limits)) parts.push(o.limits.filter((x) => typeof x === 'string').slice(0, 5).join(', '));
  return parts.length === 0 ? undefined : text(parts.join(' '), 256);
}

/** The console's view of a call or decision record; undefined for other kinds. */
export function viewOf(rec: AuditRecord): RecordView | undefined {
  if (rec.kind !== 'call' && rec.kind !== 'decision') return undefined;
  const usage = rec.usage as Record<string, unknown> | undefined;
  const model = rec.model as Record<string, unknown> | string | undefined;
  const policy = rec.policy as Record<string, unknown> | undefined;
  return {
    seq: rec.seq,
    kind: rec.kind,
    time: text(rec.time, 64) ?? '',
    call: text(rec.call, 128),
    trace: typeof rec.trace === 'string' && /^[0-9a-f]{32}$/.test(rec.trace) ? rec.trace : undefined,
    principal: text(rec.principal),
    route: text(rec.route, 128),
    protocol: text(rec.protocol, 32),
    operation: text(rec.operation, 128),
    target: text(rec.target?.name),
    upstream: text(rec.upstream, 128),
    model: typeof model === 'string' ? text(model, 128) : text(model?.response ?? model?.request, 128),
    allow: rec.decision?.allow,
    reason: text(rec.decision?.reason, 1024),
    status: num(rec.status),
    outcome: text(rec.outcome, 32),
    code: text(rec.code, 64),
    ms: num(rec.ms),
    inputTokens: num(usage?.inputTokens),
    outputTokens: num(usage?.outputTokens),
    cost: num(usage?.cost),
    limit: limitNote(rec.limit),
    input: rec.kind === 'call' ? bounded(rec.args) : bounded(policy?.input),
    policyRevision: text(policy?.revision, 128),
  };
}

/** Parses a record line into its view (undefined for lines that are not call or decision records). */
export function viewOfLine(line: string): RecordView | undefined {
  try {
    return viewOf(JSON.parse(line) as AuditRecord);
  } catch {
    return undefined;
  }
}
