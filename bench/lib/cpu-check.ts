/**
 * The gate's CPU-per-request regression check: the full pipeline's CPU time per request at concurrency 1 against a
 * committed baseline (bench/slo.json `cpu.baseline`), failing above `maxRegression` (0.25: more than 25% worse).
 *
 * CPU per request depends far less on other load than latency does, but it does depend on the machine (clock,
 * caches) and, on a shared machine, on contention. So the value compared is the gateway's CPU per request divided by
 * the bare reference proxy's (bench/fixtures/bare-proxy.ts: node:http + undici, the same kind of work without any of
 * the gateway's code, so it moves with the machine but not with the gateway), measured in the same round; the
 * absolute figures are reported beside it. Both runs must have the same stages on: a baseline taken with fewer
 * guards would make every run look like a regression.
 */
import { readFileSync } from 'node:fs';
import { median } from './histogram.ts';

export interface CpuSlo {
  /** Results file (npm run bench or bench:gate output) holding the baseline, relative to the repository root. */
  readonly baseline: string;
  /** Allowed growth of the normalised CPU per request: 0.25 = fails above 1.25x the baseline. */
  readonly maxRegression: number;
}

/** CPU per request of the gateway and of the bare proxy in one round (c=1 phase), microseconds. */
export interface CpuRound {
  readonly gateway: number;
  readonly proxy: number;
}

export interface CpuFigures {
  /** Median over rounds of gateway CPU us/req. */
  readonly gatewayUs: number;
  /** Median over rounds of bare-proxy CPU us/req. */
  readonly proxyUs: number;
  /** Median over rounds of gateway / proxy, same round. */
  readonly ratio: number;
  readonly rounds: number;
}

export interface CpuVerdict {
  readonly now: CpuFigures;
  readonly baseline: CpuFigures;
  /** now.ratio / baseline.ratio - 1 (0.1 = 10% more CPU per request than the baseline, machine speed factored out). */
  readonly change: number;
  readonly stagesMatch: boolean;
  readonly ok: boolean;
}

/** Medians over rounds (rounds missing either figure are skipped). */
export function cpuFigures(rounds: readonly CpuRound[]): CpuFigures {
  const ok = rounds.filter((r) => r.gateway > 0 && r.proxy > 0);
  return {
    gatewayUs: median(ok.map((r) => r.gateway)),
    proxyUs: median(ok.map((r) => r.proxy)),
    ratio: median(ok.map((r) => r.gateway / r.proxy)),
    rounds: ok.length,
  };
}

interface ResultsShape {
  stages?: { on?: string[] };
  scenarios?: Array<{ name: string; rounds?: Array<{ phases?: { c1?: Record<string, { cpuUsPerReq?: number }> } }> }>;
}

/** The c=1 CPU figures of target `label` (and of `proxy`) in scenario `scenario` of a results file. */
export function cpuRoundsOf(results: ResultsShape, scenario: string, label: string): { rounds: CpuRound[]; stages: string[] } {
  const s = results.scenarios?.find((x) => x.name === scenario);
  if (s === undefined) throw new Error(`the CPU baseline has no scenario ${scenario}`);
  const rounds: CpuRound[] = [];
  for (const r of s.rounds ?? []) {
    const c1 = r.phases?.c1;
    const g = c1?.[label]?.cpuUsPerReq;
    const p = c1?.proxy?.cpuUsPerReq;
    if (g !== undefined && p !== undefined) rounds.push({ gateway: g, proxy: p });
  }
  if (rounds.length === 0) throw new Error(`the CPU baseline has no c=1 CPU figures for ${label} and proxy in ${scenario}`);
  return { rounds, stages: [...(results.stages?.on ?? [])].sort() };
}

/** Judges this run's rounds against the baseline file. */
export function judgeCpu(slo: CpuSlo, baselineFile: string, scenario: string, label: string, rounds: readonly CpuRound[], stagesOn: readonly string[]): CpuVerdict {
  const base = cpuRoundsOf(JSON.parse(readFileSync(baselineFile, 'utf8')) as ResultsShape, scenario, label);
  const now = cpuFigures(rounds);
  const baseline = cpuFigures(base.rounds);
  const change = now.ratio / baseline.ratio - 1;
  const stagesMatch = [...stagesOn].sort().join(',') === base.stages.join(',');
  // Not measured (no /proc) is not a pass: the check must be able to fail.
  return { now, baseline, change, stagesMatch, ok: Number.isFinite(change) && change <= slo.maxRegression };
}
