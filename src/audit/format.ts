/**
 * The on-disk format of the audit log, shared by the writer, `audit verify` and `audit query`.
 *
 * A log is a directory of numbered segment files `segment-NNNNNNNN.jsonl`, one JSON record a line. Every record
 * carries `seq` (global, +1 each record) and `prev`, the SHA-256 of the previous record's line (64 zero digits before
 * the first), so changing, removing or reordering a line breaks the chain at the next one. Each segment starts with a
 * signed `open` record (the segment's head: its number, the signing key and the hash it continues from) and ends with
 * a signed `seal`; signed `checkpoint` records in between bound how much of an open segment is unsigned. A signature
 * covers the record's own bytes without its trailing `"sig"` member, and since `prev` commits to everything before,
 * each signature vouches for the whole log up to it. Sealed segments get a binary index (`.idx`) for queries.
 */
import { createHash, createPublicKey, hash, sign, verify, type KeyObject } from 'node:crypto';
import { traceKey, type IndexExtra } from './segindex.ts';

export const FORMAT_VERSION = 1;
export const GENESIS = '0'.repeat(64);
export const SEGMENT_RE = /^segment-(\d{8})\.jsonl$/;

export function segmentName(n: number): string {
  return `segment-${String(n).padStart(8, '0')}.jsonl`;
}
export function indexName(n: number): string {
  return `segment-${String(n).padStart(8, '0')}.idx`;
}

export type RecordKind = 'call' | 'decision' | 'open' | 'checkpoint' | 'seal';
/** Small integer codes used by the binary index. */
export const KIND_CODE: Readonly<Record<RecordKind, number>> = { call: 1, decision: 2, open: 3, checkpoint: 4, seal: 5 };
export const OUTCOME_CODES = ['', 'ok', 'error', 'denied', 'limited', 'unauthenticated', 'upstream_error', 'cancelled'] as const;
export function outcomeCode(outcome: string | undefined): number {
  const i = outcome === undefined ? 0 : OUTCOME_CODES.indexOf(outcome as (typeof OUTCOME_CODES)[number]);
  return i < 0 ? 0 : i;
}
/** Decision bits in the index flags byte (above the kind's 3 bits). */
export const DECISION_ALLOW = 1 << 4;
export const DECISION_DENY = 2 << 4;

/** SHA-256 of one record line (without its newline), hex. */
export function lineHash(line: string): string {
  return hash('sha256', line, 'hex');
}

const SIG_SUFFIX = /,"sig":"([A-Za-z0-9_-]+)"\}$/;

/** Appends an Ed25519 signature over the serialised record (which must be a JSON object without `sig`). */
export function signLine(json: string, key: KeyObject): string {
  const sig = sign(null, Buffer.from(json), key).toString('base64url');
  return `${json.slice(0, -1)},"sig":"${sig}"}`;
}

/** The bytes a signed line's signature covers and the signature, or undefined when the line carries none. */
export function splitSignature(line: string): { signed: string; sig: Buffer } | undefined {
  const m = SIG_SUFFIX.exec(line);
  if (!m) return undefined;
  return { signed: `${line.slice(0, m.index)}}`, sig: Buffer.from(m[1]!, 'base64url') };
}

export function verifyLine(line: string, key: KeyObject): boolean {
  const parts = splitSignature(line);
  if (!parts) return false;
  try {
    return verify(null, Buffer.from(parts.signed), key, parts.sig);
  } catch {
    return false;
  }
}

/** Raw 32-byte Ed25519 public key, base64url (what `open` records carry). */
export function rawPublicKey(key: KeyObject): string {
  const jwk = key.export({ format: 'jwk' });
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') throw new Error('audit signing key must be Ed25519');
  return jwk.x;
}

export function publicKeyFromRaw(x: string): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
}

/** Short, stable key id: the first 16 hex digits of SHA-256 over the raw public key. */
export function keyId(publicKey: KeyObject): string {
  return createHash('sha256').update(Buffer.from(rawPublicKey(publicKey), 'base64url')).digest('hex').slice(0, 16);
}

/** What every record has; the other members depend on the kind. */
export interface RecordHead {
  readonly seq: number;
  readonly prev: string;
  readonly kind: RecordKind;
  readonly time: string;
}

/** A call or decision record as read back (members absent when unknown). */
export interface AuditRecord extends RecordHead {
  readonly segment?: number;
  readonly call?: string;
  readonly trace?: string;
  readonly principal?: string;
  readonly route?: string;
  readonly protocol?: string;
  readonly operation?: string;
  readonly target?: { kind: string; name: string; server?: string };
  readonly upstream?: string;
  readonly session?: string;
  readonly rpc?: string | number;
  readonly decision?: { id: string; allow: boolean; reason?: string };
  readonly limit?: unknown;
  readonly usage?: Record<string, number>;
  readonly status?: number;
  readonly outcome?: string;
  readonly code?: string;
  readonly ms?: number;
  readonly args?: unknown;
  readonly [key: string]: unknown;
}

/** Index columns of a parsed record (used when an index is rebuilt from the lines, and to scan open segments). */
export function indexFieldsOf(rec: AuditRecord): { timeMs: number; principal: string | undefined; target: string | undefined; flags: number; outcome: number; extra: IndexExtra } {
  const kind = KIND_CODE[rec.kind] ?? 0;
  const d = rec.decision;
  const flags = kind | (d === undefined ? 0 : d.allow ? DECISION_ALLOW : DECISION_DENY);
  const u = kind === KIND_CODE.call ? rec.usage : undefined;
  const extra = indexExtra(typeof rec.trace === 'string' ? rec.trace : undefined, u?.inputTokens, u?.outputTokens, u?.cost);
  return { timeMs: Date.parse(rec.time), principal: rec.principal, target: rec.target?.name, flags, outcome: outcomeCode(rec.outcome), extra };
}

/** The v3 index columns of a record: its trace key, tokens (input + output) and cost. */
export function indexExtra(trace: string | undefined, inputTokens: unknown, outputTokens: unknown, cost: unknown): IndexExtra {
  const n = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : 0);
  return { trace: traceKey(trace), tokens: n(inputTokens) + n(outputTokens), cost: n(cost) };
}
