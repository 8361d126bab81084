/**
 * `tollgate audit query`: finds records by principal, target (tool), time range, decision and outcome.
 *
 * Sealed segments are searched through their binary index: the header's time range and principal/target
 * dictionaries skip whole segments, then only the needed columns are read (a few bytes per record) and only the
 * matching lines are read from the segment and parsed. Every candidate line is checked again against the filter, so
 * the index (derived, unsigned data) can narrow a search but never invent a result. The open segment (and any segment
 * whose index is missing) is scanned line by line.
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { DECISION_ALLOW, DECISION_DENY, KIND_CODE, OUTCOME_CODES, indexFieldsOf, indexName, segmentName, type AuditRecord, type RecordKind } from './format.ts';
import { IndexReader, traceKey } from './segindex.ts';
import { listSegments } from './segments.ts';

export interface QueryFilter {
  /** Exact principal id, or a prefix ending in `*`. */
  readonly principal?: string | undefined;
  /** Exact target (tool) name, or a prefix ending in `*`. */
  readonly target?: string | undefined;
  /** Inclusive lower bound, ms since epoch. */
  readonly since?: number | undefined;
  /** Exclusive upper bound, ms since epoch. */
  readonly until?: number | undefined;
  readonly decision?: 'allow' | 'deny' | undefined;
  readonly outcome?: string | undefined;
  /** Record kinds to return (default: call and decision). */
  readonly kinds?: readonly RecordKind[] | undefined;
  /** Exact trace id (32 hex digits): one task's chain across protocols. */
  readonly trace?: string | undefined;
}

export interface QueryStats {
  segments: number;
  skipped: number;
  scanned: number;
  candidates: number;
  matched: number;
}

/** Hits at most this many bytes apart are read in one go, up to RUN_MAX bytes a read. */
const RUN_GAP = 8 * 1024;
const RUN_MAX = 4 * 1024 * 1024;

/** A compiled string matcher: exact, or prefix when the pattern ends in `*`. */
export function matcher(pattern: string | undefined): ((v: string | undefined) => boolean) | undefined {
  if (pattern === undefined) return undefined;
  if (pattern.endsWith('*')) {
    const prefix = pattern.slice(0, -1);
    return (v) => v !== undefined && v.startsWith(prefix);
  }
  return (v) => v === pattern;
}

class Compiled {
  readonly principal: ((v: string | undefined) => boolean) | undefined;
  readonly target: ((v: string | undefined) => boolean) | undefined;
  readonly since: number;
  readonly until: number;
  readonly kindMask: number;
  readonly decisionBits: number;
  readonly outcome: number;
  readonly trace: string | undefined;
  readonly traceKey: number;

  constructor(f: QueryFilter) {
    this.trace = f.trace;
    this.traceKey = traceKey(f.trace);
    this.principal = matcher(f.principal);
    this.target = matcher(f.target);
    this.since = f.since ?? Number.NEGATIVE_INFINITY;
    this.until = f.until ?? Number.POSITIVE_INFINITY;
    let mask = 0;
    for (const k of f.kinds ?? ['call', 'decision']) mask |= 1 << KIND_CODE[k];
    this.kindMask = mask;
    this.decisionBits = f.decision === undefined ? 0 : f.decision === 'allow' ? DECISION_ALLOW : DECISION_DENY;
    this.outcome = f.outcome === undefined ? -1 : OUTCOME_CODES.indexOf(f.outcome as (typeof OUTCOME_CODES)[number]);
    if (f.outcome !== undefined && this.outcome < 0) throw new Error(`unknown outcome ${f.outcome} (one of ${OUTCOME_CODES.filter(Boolean).join(', ')})`);
  }

  /** The exact test on a parsed record. */
  matches(rec: AuditRecord): boolean {
    const f = indexFieldsOf(rec);
    return (
      (this.kindMask & (1 << (f.flags & 7))) !== 0 &&
      f.timeMs >= this.since &&
      f.timeMs < this.until &&
      (this.decisionBits === 0 || (f.flags & 0x30) === this.decisionBits) &&
      (this.outcome < 0 || f.outcome === this.outcome) &&
      (this.principal === undefined || this.principal(f.principal)) &&
      (this.target === undefined || this.target(f.target)) &&
      (this.trace === undefined || rec.trace === this.trace)
    );
  }
}

/** Codes (dictionary index + 1) of the dictionary entries a matcher accepts, as a lookup table. */
function codesOf(dict: readonly string[], m: (v: string | undefined) => boolean): Uint8Array | undefined {
  const table = new Uint8Array(dict.length + 1);
  let any = false;
  for (let i = 0; i < dict.length; i++) {
    if (m(dict[i])) {
      table[i + 1] = 1;
      any = true;
    }
  }
  return any ? table : undefined;
}

/**
 * Yields matching record lines (as stored) in log order. `stats` is filled as the search goes.
 */
export function* queryLog(dir: string, filter: QueryFilter, stats: QueryStats = { segments: 0, skipped: 0, scanned: 0, candidates: 0, matched: 0 }): Generator<string> {
  const q = new Compiled(filter);
  for (const n of listSegments(dir)) {
    stats.segments++;
    const index = IndexReader.open(join(dir, indexName(n)));
    if (index === undefined) {
      yield* scanSegment(join(dir, segmentName(n)), q, stats);
      continue;
    }
    try {
      yield* searchIndexed(join(dir, segmentName(n)), index, q, stats);
    } finally {
      index.close();
    }
  }
}

/**
 * Counts matching records. Sealed segments are counted from their index alone (no line is read), so counting half a
 * million matches costs what selecting them does; `audit verify` checks that each index agrees with its segment.
 */
export function countLog(dir: string, filter: QueryFilter, stats: QueryStats = { segments: 0, skipped: 0, scanned: 0, candidates: 0, matched: 0 }): number {
  const q = new Compiled(filter);
  let total = 0;
  for (const n of listSegments(dir)) {
    stats.segments++;
    const index = IndexReader.open(join(dir, indexName(n)));
    if (index === undefined) {
      for (const _ of scanSegment(join(dir, segmentName(n)), q, stats)) total++;
      continue;
    }
    try {
      const hits = selectIndexed(index, q, stats);
      if (hits !== undefined) total += hits.length;
    } finally {
      index.close();
    }
  }
  stats.matched = total;
  return total;
}

function* scanSegment(path: string, q: Compiled, stats: QueryStats): Generator<string> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return;
  }
  stats.scanned++;
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const line = text.slice(start, end);
    start = end + 1;
    // A trace id is unique enough that a substring test rules out nearly every line before it is parsed.
    if (q.trace !== undefined && !line.includes(q.trace)) continue;
    stats.candidates++;
    let rec: AuditRecord;
    try {
      rec = JSON.parse(line) as AuditRecord;
    } catch {
      continue;
    }
    if (q.matches(rec)) {
      stats.matched++;
      yield line;
    }
  }
}

/** Positions (in file order) of the records the index says match, or undefined when the header rules them all out. */
function selectIndexed(index: IndexReader, q: Compiled, stats: QueryStats): number[] | undefined {
  const h = index.header;
  // Call and decision records only: their own time range (signed records carry the time they were written).
  const onlyRecords = (q.kindMask & ~((1 << KIND_CODE.call) | (1 << KIND_CODE.decision))) === 0;
  const lo = onlyRecords ? h.recordMinTime : h.minTime;
  const hi = onlyRecords ? h.recordMaxTime : h.maxTime;
  if (h.count === 0 || hi < lo || hi < q.since || lo >= q.until) {
    stats.skipped++;
    return undefined;
  }
  const principals = q.principal ? codesOf(h.principals, q.principal) : undefined;
  const targets = q.target ? codesOf(h.targets, q.target) : undefined;
  if ((q.principal && !principals) || (q.target && !targets)) {
    stats.skipped++;
    return undefined;
  }
  stats.scanned++;
  const count = h.count;
  const flags = index.u8('flags');
  const needTime = q.since > lo || q.until <= hi;
  const time = needTime ? index.times() : undefined;
  const since = q.since - h.minTime;
  const until = q.until - h.minTime;
  const pcol = principals ? index.u32('principal') : undefined;
  const tcol = targets ? index.u32('target') : undefined;
  const ocol = q.outcome >= 0 ? index.u8('outcome') : undefined;
  // A v2 index has no trace column: every other candidate is read and checked on its line.
  const trcol = q.trace !== undefined && index.extended ? index.u32('trace') : undefined;
  const tkey = q.traceKey;
  const kindMask = q.kindMask;
  const dbits = q.decisionBits;
  const hits: number[] = [];
  for (let i = 0; i < count; i++) {
    const f = flags[i]!;
    if ((kindMask & (1 << (f & 7))) === 0) continue;
    if (dbits !== 0 && (f & 0x30) !== dbits) continue;
    if (time !== undefined) {
      const t = time[i]!;
      if (t < since || t >= until) continue;
    }
    if (pcol !== undefined && principals![pcol[i]!] !== 1) continue;
    if (tcol !== undefined && targets![tcol[i]!] !== 1) continue;
    if (ocol !== undefined && ocol[i] !== q.outcome) continue;
    if (trcol !== undefined && trcol[i] !== tkey) continue;
    hits.push(i);
  }
  return hits;
}

function* searchIndexed(path: string, index: IndexReader, q: Compiled, stats: QueryStats): Generator<string> {
  const hits = selectIndexed(index, q, stats);
  if (hits === undefined) return;
  yield* readHits(path, index, hits, q, stats);
}

/** Reads and re-checks the lines at the given index positions (in file order). */
function* readHits(path: string, index: IndexReader, hits: readonly number[], q: Compiled, stats: QueryStats): Generator<string> {
  stats.candidates += hits.length;
  if (hits.length === 0) return;
  const offsets = index.u32('offset');
  const lengths = index.u32('length');
  // The columns decide every filter exactly (kind, decision, time, outcome, principal and target by dictionary code)
  // but a trace id, of which the index keeps 32 bits: only then is each line parsed and checked again. Parsing half a
  // million lines was most of printing every denial of a 10 M-record log (bench/NOTES.md, audit query).
  const exact = q.trace === undefined;
  const fd = openSync(path, 'r');
  try {
    // Hits close to each other are read together (one positioned read per run), so a selective query reads little
    // more than its lines and a dense one does few system calls.
    let buf = Buffer.allocUnsafe(1 << 16);
    for (let h = 0; h < hits.length; ) {
      const start = offsets[hits[h]!]!;
      let stop = h + 1;
      let end = start + lengths[hits[h]!]!;
      while (stop < hits.length) {
        const off = offsets[hits[stop]!]!;
        if (off - end > RUN_GAP || off + lengths[hits[stop]!]! - start > RUN_MAX) break;
        end = off + lengths[hits[stop]!]!;
        stop++;
      }
      if (buf.length < end - start) buf = Buffer.allocUnsafe(end - start);
      readSync(fd, buf, 0, end - start, start);
      for (let k = h; k < stop; k++) {
        const off = offsets[hits[k]!]! - start;
        const line = buf.toString('utf8', off, off + lengths[hits[k]!]!);
        if (exact) {
          stats.matched++;
          yield line;
          continue;
        }
        let rec: AuditRecord;
        try {
          rec = JSON.parse(line) as AuditRecord;
        } catch {
          continue;
        }
        if (!q.matches(rec)) continue;
        stats.matched++;
        yield line;
      }
      h = stop;
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * The last `limit` matching record lines, newest first: segments are searched from the newest, so a console page of
 * recent calls reads only the tail of the log whatever its size.
 */
export function latestRecords(dir: string, filter: QueryFilter, limit: number, stats: QueryStats = { segments: 0, skipped: 0, scanned: 0, candidates: 0, matched: 0 }): string[] {
  const q = new Compiled(filter);
  const out: string[] = [];
  const segments = listSegments(dir);
  for (let s = segments.length - 1; s >= 0 && out.length < limit; s--) {
    const n = segments[s]!;
    stats.segments++;
    const index = IndexReader.open(join(dir, indexName(n)));
    let lines: string[];
    if (index === undefined) {
      lines = [...scanSegment(join(dir, segmentName(n)), q, stats)];
    } else {
      try {
        const hits = selectIndexed(index, q, stats);
        if (hits === undefined) continue;
        // Lines can fail the exact re-check: read a few more than needed, then everything if that was not enough.
        const want = limit - out.length;
        lines = [...readHits(join(dir, segmentName(n)), index, hits.slice(-Math.min(hits.length, want * 2 + 16)), q, stats)];
        if (lines.length < want && hits.length > want * 2 + 16) lines = [...readHits(join(dir, segmentName(n)), index, hits, q, stats)];
      } finally {
        index.close();
      }
    }
    for (let i = lines.length - 1; i >= 0 && out.length < limit; i--) out.push(lines[i]!);
  }
  return out;
}

/** Parses `--since`/`--until`: an ISO 8601 time, epoch milliseconds, or a duration ago (`90s`, `15m`, `2h`, `7d`). */
export function parseTime(value: string, now = Date.now()): number {
  const rel = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(value.trim());
  if (rel) {
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[rel[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
    return now - Number(rel[1]) * unit;
  }
  if (/^\d{10,}$/.test(value)) return Number(value);
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw new Error(`not a time: ${value} (use ISO 8601, epoch ms, or a duration like 15m, 2h, 7d)`);
  return t;
}
