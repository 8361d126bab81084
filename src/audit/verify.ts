/**
 * `tollgate audit verify`: walks every segment in order and checks that the log is exactly what the gateway wrote:
 * consecutive segments, consecutive `seq`, each `prev` equal to the SHA-256 of the line before, each segment opening
 * with its signed head and closing with a signed seal, and every signature valid. Stops at the first bad record and
 * says which one and why.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { GENESIS, indexName, keyId, lineHash, publicKeyFromRaw, rawPublicKey, segmentName, verifyLine, type AuditRecord } from './format.ts';
import { listSegments, rebuildIndex } from './segments.ts';
import { readTail, TAIL_FILE } from './tail.ts';

export interface VerifyProblem {
  readonly segment: number;
  /** 1-based line in the segment file. */
  readonly line: number;
  readonly seq?: number | undefined;
  readonly reason: string;
}

export interface VerifyResult {
  readonly ok: boolean;
  readonly segments: number;
  readonly records: number;
  /** Key ids that signed the log. */
  readonly keys: readonly string[];
  /** True when signatures were checked against a key given by the operator, not only the one the log names. */
  readonly pinned: boolean;
  readonly problem?: VerifyProblem;
  /** The last segment when it is still open (the gateway is running, or crashed): records after its last signature. */
  readonly open?: { segment: number; unsignedRecords: number };
  /**
   * What an intact chain does not prove by itself and an operator must look at: seals made on recovery (the run
   * before did not shut down cleanly, or its open segment was cut), a tail marker naming records the log no longer
   * has (its end was deleted). `--strict` fails on any.
   */
  readonly findings?: readonly string[];
}

export interface VerifyOptions {
  /** The public key the log must be signed with (recommended: otherwise the key recorded in the log is trusted). */
  readonly publicKey?: KeyObject | undefined;
  /** Accept an unsealed last segment (a live log). */
  readonly allowOpen?: boolean;
}

export function verifyLog(dir: string, opts: VerifyOptions = {}): VerifyResult {
  const segments = listSegments(dir);
  const pinnedRaw = opts.publicKey ? rawPublicKey(opts.publicKey) : undefined;
  const keys = new Set<string>();
  let records = 0;
  let prev = GENESIS;
  let seq = 0;
  const fail = (segment: number, line: number, s: number | undefined, reason: string): VerifyResult => ({
    ok: false,
    segments: segments.length,
    records,
    keys: [...keys],
    pinned: pinnedRaw !== undefined,
    problem: { segment, line, seq: s, reason },
  });
  if (segments.length === 0) return fail(0, 0, undefined, `no audit segments in ${dir}`);
  if (segments[0] !== 1) return fail(segments[0]!, 0, undefined, `segment 1 is missing: the log starts at segment ${segments[0]} (earlier segments were removed)`);

  // Where the previous record was, to name it when a broken link points at it.
  let lastLine = 0;
  let lastSegment = 0;
  const findings: string[] = [];
  const tailLine = readTail(dir);
  const tailSeq = tailLine === undefined ? undefined : seqOf(tailLine);
  let tailFound = false;
  let lastKey: KeyObject | undefined;
  for (let si = 0; si < segments.length; si++) {
    const n = segments[si]!;
    if (si > 0 && n !== segments[si - 1]! + 1) return fail(segments[si - 1]! + 1, 0, undefined, `segment ${segments[si - 1]! + 1} is missing (deleted)`);
    const text = readFileSync(join(dir, segmentName(n)), 'utf8');
    const lines = text.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    if (lines.length === 0) return fail(n, 0, undefined, `segment ${n} is empty`);
    let key: KeyObject | undefined;
    let sinceSigned = 0;
    let sealed = false;
    for (let li = 0; li < lines.length; li++) {
      const line = lines[li]!;
      const at = li + 1;
      let rec: AuditRecord;
      try {
        rec = JSON.parse(line) as AuditRecord;
        if (typeof rec !== 'object' || rec === null || typeof rec.seq !== 'number' || typeof rec.prev !== 'string') throw new Error('not a record');
      } catch {
        return fail(n, at, seq, `line is not a valid audit record (edited or torn)`);
      }
      if (sealed) return fail(n, at, rec.seq, `record after the segment's seal (records were appended or moved after sealing)`);
      if (rec.seq !== seq) {
        return fail(n, at, rec.seq, rec.seq > seq
          ? `expected seq ${seq}, found ${rec.seq}: record(s) ${seq}..${rec.seq - 1} were removed or reordered`
          : `expected seq ${seq}, found ${rec.seq}: records were reordered or duplicated`);
      }
      if (rec.prev !== prev) {
        // Either the previous line changed (this record's prev is intact) or this record's own prev was edited: the
        // next line tells which, since it still holds the hash of this line as originally written.
        const next = li + 1 < lines.length ? prevOf(lines[li + 1]!) : undefined;
        if (next !== undefined && next !== lineHash(line)) {
          return fail(n, at, rec.seq, `record seq ${rec.seq} was modified: its prev hash does not match the record before it, and its own hash no longer matches the one the next record holds`);
        }
        return fail(lastSegment, lastLine, seq - 1, `record seq ${seq - 1} was modified: its hash no longer matches the prev hash recorded by seq ${seq} (segment ${n} line ${at})`);
      }
      if (li === 0) {
        if (rec.kind !== 'open' || rec.segment !== n) return fail(n, at, rec.seq, `segment ${n} does not start with its signed open record`);
        const pub = typeof rec.pub === 'string' ? rec.pub : undefined;
        if (pub === undefined) return fail(n, at, rec.seq, 'open record names no public key');
        if (pinnedRaw !== undefined && pub !== pinnedRaw) return fail(n, at, rec.seq, `segment ${n} is signed with key ${String(rec.key)}, not the pinned key ${keyId(opts.publicKey!)}`);
        try {
          key = opts.publicKey ?? publicKeyFromRaw(pub);
        } catch {
          return fail(n, at, rec.seq, 'open record carries an invalid public key');
        }
        keys.add(keyId(key));
        if (!verifyLine(line, key)) return fail(n, at, rec.seq, 'bad signature on the segment head (open record)');
        sinceSigned = 0;
      } else if (rec.kind === 'open') {
        return fail(n, at, rec.seq, 'open record in the middle of a segment');
      } else if (rec.kind === 'checkpoint' || rec.kind === 'seal') {
        if (rec.segment !== n) return fail(n, at, rec.seq, `${rec.kind} names segment ${String(rec.segment)}, found in segment ${n}`);
        if (!verifyLine(line, key!)) return fail(n, at, rec.seq, `bad signature on ${rec.kind} record`);
        if (rec.kind === 'seal') {
          if (rec.records !== li) return fail(n, at, rec.seq, `seal counts ${String(rec.records)} records before it, segment has ${li}`);
          if (rec.recovered === true) {
            findings.push(`segment ${n} was sealed on recovery at the next start, not at shutdown (a crash, a kill, or its tail was cut${typeof rec.truncatedBytes === 'number' ? `; ${rec.truncatedBytes} torn bytes cut` : ''})`);
          }
          if (rec.continued === true && si === segments.length - 1) {
            return fail(n + 1, 0, rec.seq + 1, `segment ${n + 1} is missing: segment ${n}'s seal says the log continued (the log's tail was deleted)`);
          }
          sealed = true;
        }
        sinceSigned = 0;
      } else {
        sinceSigned++;
      }
      if (rec.seq === tailSeq && line === tailLine) tailFound = true;
      lastKey = key;
      prev = lineHash(line);
      seq++;
      records++;
      lastLine = at;
      lastSegment = n;
    }
    // The index is derived data, not signed: check it still describes this segment, so counts from it are right.
    const idx = join(dir, indexName(n));
    if (existsSync(idx) && !rebuildIndex(n, lines).toBuffer().equals(readFileSync(idx))) {
      return fail(n, 0, undefined, `index ${indexName(n)} does not match segment ${n} (stale or altered): delete it and queries scan the segment instead`);
    }
    if (!sealed) {
      const isLast = si === segments.length - 1;
      if (!isLast) return fail(n, lines.length, seq - 1, `segment ${n} is not sealed but later segments exist (its seal was removed)`);
      if (!opts.allowOpen) {
        return fail(n, lines.length, seq - 1, `segment ${n} is not sealed: the gateway is running or crashed, or the log's tail was cut (${sinceSigned} records after the last signature; use --allow-open for a live log)`);
      }
      tailFindings(findings, tailLine, tailSeq, tailFound, seq - 1, lastKey);
      return { ok: true, segments: segments.length, records, keys: [...keys], pinned: pinnedRaw !== undefined, open: { segment: n, unsignedRecords: sinceSigned }, findings };
    }
  }
  tailFindings(findings, tailLine, tailSeq, tailFound, seq - 1, lastKey);
  return { ok: true, segments: segments.length, records, keys: [...keys], pinned: pinnedRaw !== undefined, findings };
}

/** What the tail marker says about the end of the log. */
function tailFindings(findings: string[], line: string | undefined, tailSeq: number | undefined, found: boolean, lastSeq: number, key: KeyObject | undefined): void {
  if (line === undefined) {
    findings.push(`no ${TAIL_FILE} marker: whether records were deleted from the log's end cannot be told (it was removed, or the log predates it)`);
    return;
  }
  if (found) return;
  if (tailSeq === undefined || key === undefined || !verifyLine(line, key)) {
    findings.push(`the ${TAIL_FILE} marker is not a line signed by the log's key (altered or replaced)`);
    return;
  }
  if (tailSeq > lastSeq) findings.push(`the log's tail is missing: ${TAIL_FILE} (signed) names seq ${tailSeq}, the log ends at seq ${lastSeq} (records or segments were deleted)`);
  else findings.push(`the ${TAIL_FILE} marker names seq ${tailSeq}, but the log holds another line there (the log was rewritten from that point)`);
}

function seqOf(line: string): number | undefined {
  try {
    const s = (JSON.parse(line) as { seq?: unknown }).seq;
    return typeof s === 'number' ? s : undefined;
  } catch {
    return undefined;
  }
}

function prevOf(line: string): string | undefined {
  try {
    const p = (JSON.parse(line) as { prev?: unknown }).prev;
    return typeof p === 'string' ? p : undefined;
  } catch {
    return undefined;
  }
}
