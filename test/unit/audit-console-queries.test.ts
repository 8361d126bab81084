/**
 * The audit queries behind the operator console, on real files written by the real writer: a task's chain by trace
 * id (the v3 index's trace column narrows, the line decides), the newest records first, and usage per time bucket and
 * per agent/team summed from index columns, all checked against a brute-force computation over what was written,
 * with sealed segments (indexed) and the open one (parsed); `audit verify` still accepts the v3 indexes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/audit/format.ts';
import { latestRecords, queryLog } from '../../src/audit/query.ts';
import { usageSeries } from '../../src/audit/usage.ts';
import { verifyLog } from '../../src/audit/verify.ts';
import { makeCall, openWriter } from '../helpers/audit-calls.ts';

const root = mkdtempSync(join(tmpdir(), 'tollgate-audit-console-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const T0 = Date.parse('2026-11-20T00:00:00Z');
const PRINCIPALS = Array.from({ length: 6 }, (_, i) => `spiffe://example.org/ns/team-${i % 2}/sa/agent-${i}`);
/** 40 traces; two share their first 32 bits, so the trace column alone would confuse them. */
const TRACES = Array.from({ length: 40 }, (_, i) => (i === 39 ? 'abcdef01' + 'f'.repeat(24) : i === 38 ? 'abcdef01' + '0'.repeat(23) + '1' : i.toString(16).padStart(8, '0') + 'a'.repeat(24)));

interface Spec {
  id: string;
  time: number;
  principal: string;
  trace: string | undefined;
  tokens: [number, number] | undefined;
  cost: number | undefined;
  allow: boolean;
}

function specs(n: number): Spec[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `c-${i}`,
    time: T0 + i * 60_000,
    principal: PRINCIPALS[i % PRINCIPALS.length]!,
    trace: i % 7 === 0 ? undefined : TRACES[i % TRACES.length],
    tokens: i % 3 === 0 ? [10 + (i % 50), 5 + (i % 20)] : undefined,
    cost: i % 4 === 0 ? Math.fround(0.001 * (i % 13)) : undefined,
    allow: i % 9 !== 0,
  }));
}

async function write(name: string, all: readonly Spec[], close: boolean): Promise<string> {
  const { writer, dir } = await openWriter(join(root, name), { segment: { maxRecords: 61 }, checkpoint: { everyRecords: 25 } });
  for (const s of all) {
    const call = makeCall({ id: s.id, time: s.time, principal: s.principal, tool: 'files__read', allow: s.allow });
    if (s.trace !== undefined) call.scratch.set('trace', { traceId: s.trace });
    if (s.tokens !== undefined || s.cost !== undefined) call.usage = { inputTokens: s.tokens?.[0], outputTokens: s.tokens?.[1], cost: s.cost };
    writer.enqueue(call, 1);
  }
  while (writer.pending > 0) await new Promise((r) => setTimeout(r, 5));
  if (close) await writer.close();
  return dir;
}

const ids = (lines: Iterable<string>): string[] => [...lines].map((l) => (JSON.parse(l) as AuditRecord).call!);

describe('console queries over the audit log', () => {
  for (const sealed of [true, false]) {
    it(`chain by trace id, newest records, usage series (${sealed ? 'all segments sealed' : 'live log, open segment'})`, async () => {
      const all = specs(900);
      const dir = await write(sealed ? 'sealed' : 'open', all, sealed);
      if (sealed) expect(verifyLog(dir)).toMatchObject({ ok: true });

      // One trace: exactly its calls, in order, even against a trace sharing its index key.
      for (const trace of [TRACES[5]!, TRACES[38]!, TRACES[39]!]) {
        const want = all.filter((s) => s.trace === trace).map((s) => s.id);
        expect(want.length).toBeGreaterThan(5);
        expect(ids(queryLog(dir, { trace, kinds: ['call'] }))).toEqual(want);
      }
      expect(ids(queryLog(dir, { trace: 'f'.repeat(32) }))).toEqual([]);

      // Newest first, with a filter, across segment boundaries.
      const denied = all.filter((s) => !s.allow).map((s) => s.id);
      expect(ids(latestRecords(dir, { kinds: ['call'], decision: 'deny' }, 30))).toEqual(denied.slice(-30).reverse());
      expect(ids(latestRecords(dir, { kinds: ['call'] }, 200))).toEqual(all.slice(-200).map((s) => s.id).reverse());

      // Usage per bucket and per team, against the brute force.
      const team = (p: string): string => /team-\d+/.exec(p)![0];
      const got = usageSeries(dir, { since: T0 + 100 * 60_000, until: T0 + 700 * 60_000, buckets: 12, groupOf: team });
      // Round buckets (50 min asked -> 1 h), starting at a multiple of their width.
      expect(got.bucketMs).toBe(3_600_000);
      expect(got.since).toBe(T0 + 60 * 60_000);
      expect(got.buckets.length).toBe(11);
      const { since, until } = got;
      const inRange = all.filter((s) => s.time >= since && s.time < until);
      const sum = (xs: readonly Spec[]) => ({
        calls: xs.length,
        denied: xs.filter((s) => !s.allow).length,
        tokens: xs.reduce((a, s) => a + (s.tokens ? s.tokens[0] + s.tokens[1] : 0), 0),
        cost: xs.reduce((a, s) => a + (s.cost ?? 0), 0),
      });
      for (let b = 0; b < got.buckets.length; b++) {
        const want = sum(inRange.filter((s) => Math.floor((s.time - since) / got.bucketMs) === b));
        const have = got.buckets[b]!;
        expect({ ...have, cost: Number(have.cost.toFixed(6)) }, `bucket ${b}`).toEqual({ ...want, cost: Number(want.cost.toFixed(6)) });
      }
      expect(got.groups.map((g) => g.name).sort()).toEqual(['team-0', 'team-1']);
      for (const g of got.groups) expect(g.tokens).toBe(sum(inRange.filter((s) => team(s.principal) === g.name)).tokens);
      // One agent only: the other principals' segments contribute nothing.
      const one = usageSeries(dir, { since, until, buckets: 1, principal: PRINCIPALS[2] });
      const mine = all.filter((s) => s.principal === PRINCIPALS[2] && s.time >= one.since && s.time < one.until);
      expect(mine.length).toBeGreaterThan(50);
      expect(one.buckets.reduce((a, b) => a + b.calls, 0)).toBe(mine.length);
      expect(one.groups.map((g) => g.name)).toEqual([PRINCIPALS[2]]);
      expect(one.groups[0]).toMatchObject({ calls: mine.length, tokens: sum(mine).tokens });
      if (sealed) {
        // Sealed segments inside the range came from their rollups, the two at its edges from their columns.
        expect(got.stats.parsed).toBe(0);
        expect(got.stats.rolledUp).toBeGreaterThan(3);
        expect(got.stats.indexed).toBeGreaterThan(0);
      }
    });
  }
});
