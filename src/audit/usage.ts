/**
 * Usage over time from the audit log: calls, denials, tokens and cost per time bucket and per agent (or team), for
 * the operator console's charts. Buckets have a round width (1 min .. 7 days) and start at multiples of it, so a
 * sealed segment lying wholly inside the range is answered from its index's rollup alone (per-minute and
 * per-principal totals in the header: no column read); a segment across the range's edges, or a query for one
 * principal's buckets, sums the index columns (time, principal, flags, tokens, cost: ~17 bytes a record, no line
 * read); the open segment and segments without a v3 index are parsed.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DECISION_DENY, KIND_CODE, indexFieldsOf, indexName, segmentName, type AuditRecord } from './format.ts';
import { IndexReader, type IndexHeader, type Rollup } from './segindex.ts';
import { matcher } from './query.ts';
import { listSegments } from './segments.ts';

export interface UsageQuery {
  /** Inclusive, ms since epoch. */
  readonly since: number;
  /** Exclusive, ms since epoch. */
  readonly until: number;
  /** Number of equal time buckets (1..1000). */
  readonly buckets: number;
  /** Exact principal, or a prefix ending in `*`. */
  readonly principal?: string | undefined;
  /** Groups principals (e.g. into teams); default: each principal is its own group. */
  readonly groupOf?: ((principal: string) => string | undefined) | undefined;
  /** How many groups to return, the most expensive first (default 20). */
  readonly top?: number | undefined;
}

export interface UsageBucket {
  calls: number;
  denied: number;
  tokens: number;
  cost: number;
}

export interface UsageGroup extends UsageBucket {
  readonly name: string;
}

export interface UsageSeries {
  readonly since: number;
  readonly until: number;
  readonly bucketMs: number;
  readonly buckets: readonly UsageBucket[];
  readonly groups: readonly UsageGroup[];
  readonly stats: { segments: number; skipped: number; rolledUp: number; indexed: number; parsed: number };
}

const MINUTE = 60_000;
const WIDTHS = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10_080].map((m) => m * MINUTE);

/** The smallest round bucket width that covers `span` in at most `n` buckets. */
function bucketWidth(span: number, n: number): number {
  const want = Math.ceil(span / n);
  return WIDTHS.find((w) => w >= want) ?? Math.ceil(want / WIDTHS.at(-1)!) * WIDTHS.at(-1)!;
}

const CALL = KIND_CODE.call;

export function usageSeries(dir: string, q: UsageQuery): UsageSeries {
  const asked = Math.max(1, Math.min(1000, Math.floor(q.buckets)));
  const bucketMs = bucketWidth(Math.max(1, q.until - q.since), asked);
  const since = Math.floor(q.since / bucketMs) * bucketMs;
  const nb = Math.max(1, Math.ceil((q.until - since) / bucketMs));
  const until = since + nb * bucketMs;
  const range = { ...q, since, until };
  const buckets: UsageBucket[] = Array.from({ length: nb }, () => ({ calls: 0, denied: 0, tokens: 0, cost: 0 }));
  const groups = new Map<string, number>();
  const list: UsageGroup[] = [];
  const slot = (name: string): number => {
    let g = groups.get(name);
    if (g === undefined) {
      g = list.length;
      groups.set(name, g);
      list.push({ name, calls: 0, denied: 0, tokens: 0, cost: 0 });
    }
    return g;
  };
  const stats = { segments: 0, skipped: 0, rolledUp: 0, indexed: 0, parsed: 0 };
  const match = matcher(q.principal);
  const groupOf = q.groupOf ?? ((p: string) => p);
  const add = (b: number, principal: string | undefined, denied: boolean, tokens: number, cost: number): void => {
    const bucket = buckets[b]!;
    bucket.calls++;
    if (denied) bucket.denied++;
    bucket.tokens += tokens;
    bucket.cost += cost;
    const name = principal === undefined ? undefined : groupOf(principal);
    if (name === undefined) return;
    const g = list[slot(name)]!;
    g.calls++;
    if (denied) g.denied++;
    g.tokens += tokens;
    g.cost += cost;
  };
  for (const n of listSegments(dir)) {
    stats.segments++;
    const index = IndexReader.open(join(dir, indexName(n)));
    if (index === undefined || !index.extended) {
      index?.close();
      stats.parsed++;
      parseSegment(join(dir, segmentName(n)), range, bucketMs, match, add);
      continue;
    }
    try {
      const h = index.header;
      if (h.count === 0 || h.recordMaxTime < since || h.recordMinTime >= until) {
        stats.skipped++;
        continue;
      }
      // Principal codes (dictionary index + 1) -> accepted or not.
      const accept = new Uint8Array(h.principals.length + 1);
      let any = match === undefined;
      for (let i = 0; i < h.principals.length; i++) if (match === undefined || match(h.principals[i])) (accept[i + 1] = 1), (any = true);
      if (match === undefined) accept[0] = 1;
      if (!any) {
        stats.skipped++;
        continue;
      }
      // Wholly inside the range, with per-minute totals: the rollup answers (for one principal, only its groups).
      const inside = h.recordMinTime >= since && h.recordMaxTime < until;
      const r = inside ? index.rollup() : undefined;
      if (r !== undefined && bucketMs % r.sliceMs === 0) {
        const onlyGroups = match !== undefined;
        if (onlyGroups || r.slices !== undefined) {
          if (!onlyGroups) addSlices(r, buckets, since, bucketMs);
          addPrincipals(h, r, accept, groupOf, slot, list);
          if (!onlyGroups) {
            stats.rolledUp++;
            continue;
          }
        }
      }
      stats.indexed++;
      // Group of each principal code, resolved once per segment (not per record).
      const group = new Int32Array(h.principals.length + 1).fill(-1);
      for (let i = 0; i < h.principals.length; i++) {
        if (accept[i + 1] !== 1) continue;
        const name = groupOf(h.principals[i]!);
        if (name !== undefined) group[i + 1] = slot(name);
      }
      const flags = index.u8('flags');
      const time = index.times();
      const pcol = index.u32('principal');
      const tokens = index.u32('tokens');
      const cost = index.f32('cost');
      const base = h.minTime - since;
      const span = until - since;
      // Groups already counted from the rollup (one principal's query): only buckets here.
      const groupsDone = r !== undefined && match !== undefined && bucketMs % r.sliceMs === 0;
      for (let i = 0; i < h.count; i++) {
        const f = flags[i]!;
        if ((f & 7) !== CALL) continue;
        const t = time[i]! + base;
        if (t < 0 || t >= span) continue;
        const p = pcol[i]!;
        if (accept[p] !== 1) continue;
        const bucket = buckets[Math.floor(t / bucketMs)]!;
        const denied = (f & 0x30) === DECISION_DENY;
        const tk = tokens[i]!;
        const c = cost[i]!;
        bucket.calls++;
        bucket.tokens += tk;
        bucket.cost += c;
        if (denied) bucket.denied++;
        const g = groupsDone ? -1 : group[p]!;
        if (g < 0) continue;
        const gr = list[g]!;
        gr.calls++;
        gr.tokens += tk;
        gr.cost += c;
        if (denied) gr.denied++;
      }
    } finally {
      index.close();
    }
  }
  const top = list.filter((g) => g.calls > 0).sort((a, b) => b.cost - a.cost || b.tokens - a.tokens || b.calls - a.calls).slice(0, q.top ?? 20);
  return { since, until, bucketMs, buckets, groups: top, stats };
}

function addSlices(r: Rollup, buckets: UsageBucket[], since: number, bucketMs: number): void {
  for (const [slice, calls, denied, tokens, cost] of r.slices!) {
    const b = buckets[Math.floor((slice * r.sliceMs - since) / bucketMs)]!;
    b.calls += calls;
    b.denied += denied;
    b.tokens += tokens;
    b.cost += cost;
  }
}

function addPrincipals(
  h: IndexHeader,
  r: Rollup,
  accept: Uint8Array,
  groupOf: (p: string) => string | undefined,
  slot: (name: string) => number,
  list: UsageGroup[],
): void {
  // Call records without a principal belong to no group (the buckets count them).
  for (let i = 0; i < h.principals.length; i++) {
    if (accept[i + 1] !== 1) continue;
    const t = r.principals[i]!;
    if (t[0] === 0) continue;
    const name = groupOf(h.principals[i]!);
    if (name === undefined) continue;
    const g = list[slot(name)]!;
    g.calls += t[0];
    g.denied += t[1];
    g.tokens += t[2];
    g.cost += t[3];
  }
}


function parseSegment(
  path: string,
  q: UsageQuery,
  bucketMs: number,
  match: ((v: string | undefined) => boolean) | undefined,
  add: (b: number, principal: string | undefined, denied: boolean, tokens: number, cost: number) => void,
): void {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return;
  }
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let rec: AuditRecord;
    try {
      rec = JSON.parse(line) as AuditRecord;
    } catch {
      continue;
    }
    if (rec.kind !== 'call') continue;
    const f = indexFieldsOf(rec);
    if (f.timeMs < q.since || f.timeMs >= q.until) continue;
    if (match !== undefined && !match(f.principal)) continue;
    // The same rounding as the index's f32 column, so a segment counts the same before and after it is sealed.
    add(Math.floor((f.timeMs - q.since) / bucketMs), f.principal, (f.flags & 0x30) === DECISION_DENY, f.extra.tokens, Math.fround(f.extra.cost));
  }
}
