/**
 * The bench's own logic: histograms (microsecond resolution, raw encoding round trip), the gate's verdict over
 * rounds (a failing round is repeated once; only a repeated failure is a breach), and the report/compare tables.
 */
import { describe, expect, it } from 'vitest';
import { decodeHistogram, encodeHistogram, median, newHistogram, recordMs, summarize } from '../../bench/lib/histogram.ts';
import { judgeRounds } from '../../bench/lib/judge.ts';
import { cpuFigures, judgeCpu, judgeCpuSameRun } from '../../bench/lib/cpu-check.ts';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compareMarkdown, markdown } from '../../bench/lib/report.ts';
import type { BenchResult } from '../../bench/lib/results.ts';
import { summarizeTargets, type RoundResult, type Target } from '../../bench/lib/runner.ts';
import type { LoadResult } from '../../bench/lib/load.ts';

describe('bench histograms', () => {
  it('keeps sub-millisecond resolution and survives the raw encoding', () => {
    const h = newHistogram();
    for (let i = 0; i < 1000; i++) recordMs(h, 0.1 + i / 10_000); // 0.100 .. 0.1999 ms
    const s = summarize(h);
    expect(s.count).toBe(1000);
    expect(s.p50).toBeCloseTo(0.15, 2);
    expect(s.p99).toBeCloseTo(0.199, 2);
    expect(s.max).toBeCloseTo(0.2, 2);
    expect(summarize(decodeHistogram(encodeHistogram(h)))).toEqual(s);
  });

  it('medians', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
    expect(median([])).toBeNaN();
  });
});

describe('gate verdict', () => {
  const run = (values: number[], rounds: number, limit: number) => {
    const seen: number[] = [];
    let i = 0;
    return judgeRounds(rounds, limit, async () => {
      const value = values[i++]!;
      seen.push(value);
      return { result: value, value };
    }).then((v) => ({ ...v, seen }));
  };

  it('passes when every round is within the limit', async () => {
    const v = await run([1, 2, 3], 3, 20);
    expect(v.breach).toBe(false);
    expect(v.rounds.map((r) => r.repeated)).toEqual([false, false, false]);
  });

  it('repeats a failing round once and keeps the repeat when it passes', async () => {
    const v = await run([1, 25, 2, 3], 3, 20);
    expect(v.breach).toBe(false);
    expect(v.seen).toEqual([1, 25, 2, 3]);
    expect(v.rounds[1]).toMatchObject({ repeated: true, failed: false, kept: 2 });
  });

  it('fails when a round fails twice in a row, and stops there', async () => {
    const v = await run([1, 25, 30, 2], 3, 20);
    expect(v.breach).toBe(true);
    expect(v.seen).toEqual([1, 25, 30]);
    expect(v.rounds.at(-1)).toMatchObject({ round: 1, repeated: true, failed: true, value: 30 });
  });
});

function load(p50: number, p99: number, rps: number, errors = 0): LoadResult {
  return { latency: { count: 100, mean: p50, p50, p90: p99, p99, max: p99 }, rps, requests: 100, errors, histogram: '', cpuUsPerReq: 50 };
}

describe('gate CPU check', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tg-cpu-'));
  const file = join(dir, 'baseline.json');
  // Baseline: gateway 300 us, proxy 100 us per request (3.0x), three rounds.
  const c1 = (g: number, d: number) => ({ phases: { c1: { gateway: { cpuUsPerReq: g }, proxy: { cpuUsPerReq: d } } } });
  writeFileSync(file, JSON.stringify({ stages: { on: ['identity', 'policy'] }, scenarios: [{ name: 'call-small', rounds: [c1(290, 100), c1(300, 100), c1(330, 100)] }] }));
  const slo = { baseline: file, maxRegression: 0.25 };

  it('medians of the same-round ratio', () => {
    expect(cpuFigures([{ gateway: 300, proxy: 100 }, { gateway: 500, proxy: 100 }, { gateway: 360, proxy: 120 }])).toEqual({ gatewayUs: 360, proxyUs: 100, ratio: 3, rounds: 3 });
  });

  it('passes within 25% of the baseline, machine speed factored out, and fails above it', () => {
    // A machine twice as slow: both figures double, the ratio stays 3.0x.
    const slow = judgeCpu(slo, file, 'call-small', 'gateway', [{ gateway: 600, proxy: 200 }], ['policy', 'identity']);
    expect(slow).toMatchObject({ ok: true, stagesMatch: true });
    expect(slow.change).toBeCloseTo(0, 5);
    expect(judgeCpu(slo, file, 'call-small', 'gateway', [{ gateway: 370, proxy: 100 }], ['identity', 'policy']).ok).toBe(true);
    const worse = judgeCpu(slo, file, 'call-small', 'gateway', [{ gateway: 380, proxy: 100 }], ['identity', 'policy']);
    expect(worse.ok).toBe(false);
    expect(worse.change).toBeCloseTo(380 / 300 - 1, 5);
  });

  it('same run: judges the median of the rounds\' quotients against the baseline revision\'s gateway', () => {
    // Round by round against the reference, whatever the proxy did: quotients 1.1, 1.3, 1.2 -> +20%.
    const v = judgeCpuSameRun({ maxRegression: 0.25 }, [
      { gateway: 1100, proxy: 100, reference: 1000 },
      { gateway: 1300, proxy: 300, reference: 1000 },
      { gateway: 600, proxy: 50, reference: 500 },
    ]);
    expect(v).toMatchObject({ method: 'same-run', ok: true, stagesMatch: true });
    expect(v.change).toBeCloseTo(0.2, 5);
    expect(v.baseline.gatewayUs).toBe(1000);
    const worse = judgeCpuSameRun({ maxRegression: 0.25 }, [
      { gateway: 1300, proxy: 100, reference: 1000 },
      { gateway: 1260, proxy: 100, reference: 1000 },
    ]);
    expect(worse.ok).toBe(false);
    expect(worse.change).toBeCloseTo(0.28, 5);
    // Nothing measured (or no reference in any round) is not a pass.
    expect(judgeCpuSameRun({ maxRegression: 0.25 }, [{ gateway: 0, proxy: 0, reference: 0 }]).ok).toBe(false);
    expect(judgeCpuSameRun({ maxRegression: 0.25 }, [{ gateway: 900, proxy: 100 }]).ok).toBe(false);
  });

  it('fails when nothing was measured, and flags a baseline taken with other stages', () => {
    expect(judgeCpu(slo, file, 'call-small', 'gateway', [{ gateway: 0, proxy: 0 }], ['identity', 'policy']).ok).toBe(false);
    expect(judgeCpu(slo, file, 'call-small', 'gateway', [{ gateway: 300, proxy: 100 }], ['identity']).stagesMatch).toBe(false);
    expect(() => judgeCpu(slo, file, 'list-300', 'gateway', [], [])).toThrow(/no scenario list-300/);
  });
});

describe('bench summaries and tables', () => {
  const targets: Target[] = [
    { label: 'direct', kind: 'direct', pid: 1, stages: [], template: { url: '', method: 'POST', headers: {}, before: '', after: '', sample: '' } },
    { label: 'proxy', kind: 'proxy', pid: 2, stages: [], template: { url: '', method: 'POST', headers: {}, before: '', after: '', sample: '' } },
    { label: 'gateway', kind: 'gateway', pid: 3, stages: [], template: { url: '', method: 'POST', headers: {}, before: '', after: '', sample: '' } },
  ];
  const round = (n: number, gwP50: number, gwRps: number): RoundResult => ({
    round: n,
    order: ['direct', 'proxy', 'gateway'],
    loadavg: [0, 0, 0],
    phases: {
      c1: { direct: load(0.1, 0.2, 0), proxy: load(0.3, 0.5, 0), gateway: load(gwP50, 0.9, 0) },
      tput: { direct: load(1, 2, 30_000), proxy: load(1, 2, 10_000), gateway: load(1, 2, gwRps) },
    },
  });

  it('computes added latency and throughput ratios per round, then medians with spread', () => {
    const s = summarizeTargets(targets, [round(0, 0.4, 8000), round(1, 0.5, 9000), round(2, 0.45, 7000)]);
    expect(s.gateway!.added!.c1!.p50).toEqual({ median: 0.35, min: 0.3, max: 0.4 });
    expect(s.gateway!.added!.tputVsProxy).toEqual({ median: 0.8, min: 0.7, max: 0.9 });
    expect(s.proxy!.added!.tputVsProxy).toBeUndefined();
    expect(s.direct!.added).toBeUndefined();
  });

  it('prints a table and the change between two runs', () => {
    const result = (gwP50: number): BenchResult => ({
      schema: 1,
      kind: 'bench',
      startedAt: '2026-01-01T00:00:00.000Z',
      finishedAt: '2026-01-01T00:01:00.000Z',
      machine: { cpus: 2, loadavgAtStart: [0.1, 0.1, 0.1] },
      node: 'v24',
      commit: { sha: 'abcdef0123456789', branch: 'bench', dirty: false },
      config: { connections: 32 },
      stages: { on: [], pending: [] },
      scenarios: [
        { name: 'call-small', what: 'x', summary: summarizeTargets(targets, [round(0, gwP50, 8000)]) },
        { name: 'a2a-send', what: 'A2A', pending: 'not yet' },
      ],
      notes: [],
    });
    const table = markdown(result(0.4));
    expect(table).toContain('| call-small | gateway | 0.400 (0.400..0.400) | 0.900 (0.900..0.900) | +0.300 (0.300..0.300)');
    expect(table).toContain('| a2a-send | (pending: not yet)');
    const change = compareMarkdown(result(0.4), result(0.2));
    expect(change).toContain('| call-small | gateway | 0.400 -> 0.200 (-50% better)');
  });
});
