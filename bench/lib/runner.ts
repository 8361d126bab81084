/**
 * One scenario's measurement: start its processes, open a real MCP session per target, then run interleaved rounds
 * (the order of targets rotates each round) of the phases asked: latency at concurrency 1, latency at a fixed rate,
 * maximum throughput at N connections.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Scenario } from '../scenarios.ts';
import type { Variant } from '../stages.ts';
import { median, type LatencySummary } from './histogram.ts';
import { runClosed, runPaced, type LoadResult } from './load.ts';
import { openBenchSession, type BenchSession, type RequestTemplate } from './mcp-client.ts';
import { startBackends, startBareProxy, startGatewayProcess, type GatewayProcess } from './targets.ts';
import { cpuTimeMs, type Child } from './procs.ts';

export type Phase = 'c1' | 'rate' | 'tput';
export const PHASES: readonly Phase[] = ['c1', 'rate', 'tput'];

export interface PhaseOptions {
  /** Seconds per measured run. */
  readonly durationS: number;
  /** Seconds of unrecorded load per target before round 1. */
  readonly warmupS: number;
  /** Connections for the throughput phase (and the fixed-rate generator's pool). */
  readonly connections: number;
  /** Fixed rate (req/s); undefined: half of the first gateway variant's throughput, measured before round 1. */
  readonly rate?: number | undefined;
}

export interface Target {
  readonly label: string;
  /** The process whose CPU time this target's requests cost (the backend for direct). */
  readonly pid: number;
  readonly kind: 'direct' | 'proxy' | 'gateway';
  readonly stages: readonly string[];
  readonly template: RequestTemplate;
}

export interface RoundResult {
  readonly round: number;
  readonly order: readonly string[];
  readonly loadavg: readonly number[];
  readonly phases: Partial<Record<Phase, Record<string, LoadResult>>>;
}

export interface ScenarioSetup {
  readonly scenario: Scenario;
  readonly targets: readonly Target[];
  readonly gateways: readonly GatewayProcess[];
  /** Stops every process started for the scenario (gateways by SIGTERM, so CPU profiles get written). */
  teardown(): Promise<void>;
}

export interface SetupOptions {
  readonly variants: readonly Variant[];
  readonly logLevel: string;
  /** Reference proxy's upstream pool size: the gateway's default pool.connections, for equal footing. */
  readonly proxyPoolConnections: number;
  readonly withProxy: boolean;
  readonly cpuProfDir?: string | undefined;
}

export async function setupScenario(scenario: Scenario, o: SetupOptions): Promise<ScenarioSetup> {
  const work = mkdtempSync(join(tmpdir(), `tollgate-bench-${scenario.name}-`));
  const fixtures: Child[] = [];
  const gatewayChildren: Child[] = [];
  const sessions: BenchSession[] = [];
  const teardown = async (): Promise<void> => {
    await Promise.allSettled(sessions.map((s) => s.close()));
    // Gateways first (they hold upstream sessions), then backends and the proxy.
    await Promise.allSettled(gatewayChildren.map((c) => c.stop()));
    await Promise.allSettled(fixtures.map((c) => c.stop()));
    if (process.env.TOLLGATE_BENCH_KEEP === undefined) rmSync(work, { recursive: true, force: true });
    else process.stderr.write(`bench: kept ${work} (TOLLGATE_BENCH_KEEP)\n`);
  };
  try {
    const backends = await startBackends(scenario.backends);
    fixtures.push(backends.child);
    const directUrl = backends.urls[scenario.direct]!;
    const proxy = o.withProxy ? await startBareProxy(directUrl, o.proxyPoolConnections, o.cpuProfDir) : undefined;
    if (proxy) fixtures.push(proxy.child);
    const gateways: GatewayProcess[] = [];
    for (const variant of o.variants) {
      const gw = await startGatewayProcess({ work, scenario, backendUrls: backends.urls, otlpUrl: backends.otlp, variant, logLevel: o.logLevel, cpuProfDir: o.cpuProfDir });
      gatewayChildren.push(gw.child);
      gateways.push(gw);
    }
    const targets: Target[] = [];
    const open = async (label: string, kind: Target['kind'], pid: number, url: string, stages: readonly string[], call: Scenario['directCall'], headers?: Record<string, string>): Promise<void> => {
      const s = await openBenchSession(url, call, headers, scenario.client ?? 'session');
      sessions.push(s);
      targets.push({ label, kind, pid, stages, template: s.template });
    };
    await open('direct', 'direct', backends.child.pid, directUrl, [], scenario.directCall);
    if (proxy) await open('proxy', 'proxy', proxy.child.pid, proxy.url, [], scenario.directCall);
    for (let i = 0; i < gateways.length; i++) {
      const gw = gateways[i]!;
      await open(gw.label, 'gateway', gw.child.pid, gw.url, o.variants[i]!.stages.map((s) => s.name), scenario.gatewayCall, { ...gw.headers });
    }
    return { scenario, targets, gateways, teardown };
  } catch (err) {
    await teardown();
    throw err;
  }
}

/** Unrecorded load on every target (JIT, connection pools, upstream sessions). */
export async function warmUp(setup: ScenarioSetup, o: PhaseOptions): Promise<void> {
  if (o.warmupS <= 0) return;
  for (const t of setup.targets) {
    const r = await runClosed(t.template, 4, o.warmupS);
    if (r.errors > 0 || r.requests === 0) throw new Error(`${setup.scenario.name}/${t.label}: warm-up saw ${r.errors} errors in ${r.requests} requests`);
  }
}

/** The fixed rate: half of what the first gateway variant sustains with `connections` clients. */
export async function calibrateRate(setup: ScenarioSetup, o: PhaseOptions): Promise<number> {
  if (o.rate !== undefined) return o.rate;
  const gw = setup.targets.find((t) => t.kind === 'gateway') ?? setup.targets[0]!;
  const r = await runClosed(gw.template, o.connections, Math.max(1, o.durationS / 2));
  return Math.max(10, Math.round(r.rps / 2 / 10) * 10);
}

export async function measureRound(setup: ScenarioSetup, round: number, phases: readonly Phase[], o: PhaseOptions, rate: number, only?: readonly string[]): Promise<RoundResult> {
  const targets = setup.targets.filter((t) => !only || only.includes(t.label));
  const k = round % targets.length;
  const ordered = [...targets.slice(k), ...targets.slice(0, k)];
  const result: RoundResult = { round, order: ordered.map((t) => t.label), loadavg: loadavg().map((x) => Math.round(x * 100) / 100), phases: {} };
  for (const phase of phases) {
    const byTarget: Record<string, LoadResult> = {};
    for (const t of ordered) {
      let r: LoadResult;
      const cpu0 = cpuTimeMs(t.pid);
      if (phase === 'c1') r = await runClosed(t.template, 1, o.durationS);
      else if (phase === 'rate') r = await runPaced(t.template, rate, o.durationS, o.connections);
      else r = await runClosed(t.template, o.connections, o.durationS);
      const cpu1 = cpuTimeMs(t.pid);
      if (cpu0 !== undefined && cpu1 !== undefined && r.requests > 0) r = { ...r, cpuUsPerReq: Math.round(((cpu1 - cpu0) * 1000) / r.requests) };
      if (r.errors > 0) process.stderr.write(`bench: ${setup.scenario.name}/${t.label}/${phase} round ${round}: ${r.errors} errors (run marked invalid)\n`);
      byTarget[t.label] = r;
    }
    result.phases[phase] = byTarget;
  }
  return result;
}

// ---- Summaries ------------------------------------------------------------------------------------------------

/** A median over rounds with its spread (min..max over rounds). */
export interface Stat {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

function stat(values: readonly number[]): Stat {
  const r = (v: number): number => Math.round(v * 1000) / 1000;
  return { median: r(median(values)), min: r(Math.min(...values)), max: r(Math.max(...values)) };
}

export interface TargetSummary {
  readonly c1?: { p50: Stat; p90: Stat; p99: Stat; max: Stat; cpuUsPerReq?: Stat };
  readonly rate?: { rps: number; p50: Stat; p99: Stat; correctedP99: Stat };
  readonly tput?: { rps: Stat; p50: Stat; p99: Stat; cpuUsPerReq?: Stat };
  /** Non-direct targets: added latency (target minus direct, per round) and throughput ratios (per round). */
  readonly added?: {
    readonly c1?: { p50: Stat; p90: Stat; p99: Stat };
    readonly rate?: { p50: Stat; p99: Stat };
    readonly tputVsDirect?: Stat;
    readonly tputVsProxy?: Stat;
  };
  readonly errors: number;
}

function pick(rounds: readonly RoundResult[], phase: Phase, label: string): LoadResult[] {
  return rounds.map((r) => r.phases[phase]?.[label]).filter((x): x is LoadResult => x !== undefined);
}

function latStat(rs: readonly LoadResult[], key: keyof LatencySummary): Stat {
  return stat(rs.map((r) => r.latency[key]));
}

function diffStat(rounds: readonly RoundResult[], phase: Phase, label: string, base: string, key: keyof LatencySummary): Stat {
  const d: number[] = [];
  for (const r of rounds) {
    const a = r.phases[phase]?.[label];
    const b = r.phases[phase]?.[base];
    if (a && b) d.push(a.latency[key] - b.latency[key]);
  }
  return stat(d);
}

function ratioStat(rounds: readonly RoundResult[], label: string, base: string): Stat | undefined {
  const d: number[] = [];
  for (const r of rounds) {
    const a = r.phases.tput?.[label];
    const b = r.phases.tput?.[base];
    if (a && b && b.rps > 0) d.push(a.rps / b.rps);
  }
  return d.length ? stat(d) : undefined;
}

function cpuStat(rs: readonly LoadResult[]): { cpuUsPerReq?: Stat } {
  const cpu = rs.map((r) => r.cpuUsPerReq).filter((v): v is number => v !== undefined);
  return cpu.length ? { cpuUsPerReq: stat(cpu) } : {};
}

export function summarizeTargets(targets: readonly Target[], rounds: readonly RoundResult[]): Record<string, TargetSummary> {
  const out: Record<string, TargetSummary> = {};
  const hasProxy = targets.some((t) => t.kind === 'proxy');
  for (const t of targets) {
    const c1 = pick(rounds, 'c1', t.label);
    const rate = pick(rounds, 'rate', t.label);
    const tput = pick(rounds, 'tput', t.label);
    const errors = [...c1, ...rate, ...tput].reduce((n, r) => n + r.errors, 0);
    const s: {
      -readonly [K in keyof TargetSummary]: TargetSummary[K];
    } = { errors };
    if (c1.length) s.c1 = { p50: latStat(c1, 'p50'), p90: latStat(c1, 'p90'), p99: latStat(c1, 'p99'), max: latStat(c1, 'max'), ...cpuStat(c1) };
    if (rate.length) {
      s.rate = { rps: rate[0]!.targetRps ?? 0, p50: latStat(rate, 'p50'), p99: latStat(rate, 'p99'), correctedP99: stat(rate.map((r) => r.corrected?.p99 ?? Number.NaN)) };
    }
    if (tput.length) s.tput = { rps: stat(tput.map((r) => r.rps)), p50: latStat(tput, 'p50'), p99: latStat(tput, 'p99'), ...cpuStat(tput) };
    if (t.kind !== 'direct') {
      s.added = {
        ...(c1.length ? { c1: { p50: diffStat(rounds, 'c1', t.label, 'direct', 'p50'), p90: diffStat(rounds, 'c1', t.label, 'direct', 'p90'), p99: diffStat(rounds, 'c1', t.label, 'direct', 'p99') } } : {}),
        ...(rate.length ? { rate: { p50: diffStat(rounds, 'rate', t.label, 'direct', 'p50'), p99: diffStat(rounds, 'rate', t.label, 'direct', 'p99') } } : {}),
        ...(tput.length ? { tputVsDirect: ratioStat(rounds, t.label, 'direct') } : {}),
        ...(tput.length && hasProxy && t.kind !== 'proxy' ? { tputVsProxy: ratioStat(rounds, t.label, 'proxy') } : {}),
      };
    }
    out[t.label] = s;
  }
  return out;
}
