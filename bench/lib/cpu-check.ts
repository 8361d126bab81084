/**
 * The gate's CPU-per-request regression check: the full pipeline's CPU time per request at concurrency 1 against a
 * committed baseline, failing above `maxRegression` (0.25: more than 25% worse).
 *
 * The check proper is same-run (`judgeCpuSameRun`): the gateway of the baseline revision (bench/slo.json
 * `cpu.revision`, checked out beside this one) is measured in the same rounds, and the value compared is this
 * gateway's CPU per request divided by the baseline gateway's, round by round: the same kind of process with the same
 * stages on the same machine at the same moment, so only the code differs.
 *
 * The fallback, for a checkout without that revision (a shallow clone), compares against a results file
 * (`cpu.baseline`) through the bare proxy (`judgeCpu`): the gateway's CPU per request divided by the bare reference
 * proxy's (bench/fixtures/bare-proxy.ts: node:http + undici) in the same round, against the same figure in the file.
 * That quotient moves with the machine less than the absolute figures, but it still moves: the gateway's work (WASM,
 * crypto, hashing, a larger heap) and the proxy's (mostly syscalls) do not scale alike across processors. The
 * committed file was taken on an AMD EPYC (3.35x); a quiet Intel Xeon host measured the same code at 4.96x, which
 * this fallback calls +48%. Both runs must have the same stages on: a baseline taken with fewer guards would make
 * every run look like a regression.
 */
import { readFileSync } from 'node:fs';
import { median } from './histogram.ts';

export interface CpuSlo {
  /** Git revision whose gateway is the same-run baseline. */
  readonly revision: string;
  /** Results file (npm run bench or bench:gate output) holding the baseline, relative to the repository root. */
  readonly baseline: string;
  /** Allowed growth of the normalised CPU per request: 0.25 = fails above 1.25x the baseline. */
  readonly maxRegression: number;
}

/** CPU per request of the gateway and of the bare proxy in one round (c=1 phase), microseconds. */
export interface CpuRound {
  readonly gateway: number;
  readonly proxy: number;
  /** The baseline revision's gateway, same round (same-run check). */
  readonly reference?: number;
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
  /** `same-run`: against the baseline revision's gateway in the same rounds; `file`: against a results file, through the proxy. */
  readonly method: 'same-run' | 'file';
  readonly now: CpuFigures;
  readonly baseline: CpuFigures;
  /**
   * same-run: the median over rounds of gateway / reference, minus 1; file: now.ratio / baseline.ratio - 1 (0.1 = 10%
   * more CPU per request than the baseline).
   */
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
export function judgeCpu(slo: Pick<CpuSlo, 'maxRegression'>, baselineFile: string, scenario: string, label: string, rounds: readonly CpuRound[], stagesOn: readonly string[]): CpuVerdict {
  const base = cpuRoundsOf(JSON.parse(readFileSync(baselineFile, 'utf8')) as ResultsShape, scenario, label);
  const now = cpuFigures(rounds);
  const baseline = cpuFigures(base.rounds);
  const change = now.ratio / baseline.ratio - 1;
  const stagesMatch = [...stagesOn].sort().join(',') === base.stages.join(',');
  // Not measured (no /proc) is not a pass: the check must be able to fail.
  return { method: 'file', now, baseline, change, stagesMatch, ok: Number.isFinite(change) && change <= slo.maxRegression };
}

/**
 * Judges rounds that measured the baseline revision's gateway beside this one (`reference`): the median over rounds
 * of the same-round quotient. `now` and `baseline` report each gateway against the proxy, for the reader.
 */
export function judgeCpuSameRun(slo: Pick<CpuSlo, 'maxRegression'>, rounds: readonly CpuRound[]): CpuVerdict {
  const ok = rounds.filter((r) => r.gateway > 0 && r.proxy > 0 && r.reference !== undefined && r.reference > 0);
  const now = cpuFigures(ok);
  const baseline = cpuFigures(ok.map((r) => ({ gateway: r.reference!, proxy: r.proxy })));
  // No round measured (no /proc) is not a pass: the median of nothing is NaN.
  const change = ok.length === 0 ? Number.NaN : median(ok.map((r) => r.gateway / r.reference!)) - 1;
  return { method: 'same-run', now, baseline, change, stagesMatch: true, ok: Number.isFinite(change) && change <= slo.maxRegression };
}
