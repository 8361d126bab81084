/** The results file: what ran, where, on which commit, with every round's raw histograms. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, freemem, loadavg, release, totalmem, platform, arch } from 'node:os';
import { join } from 'node:path';
import type { RoundResult, Target, TargetSummary } from './runner.ts';
import type { A2aResult } from './a2a.ts';
import type { KServeResult } from './kserve.ts';
import type { ReloadResult } from './policy-reload.ts';
import type { StreamResult } from './streams.ts';
import { ROOT } from './targets.ts';

export interface ScenarioResult {
  readonly name: string;
  readonly what: string;
  /** Set for slots that could not run (what they wait for). */
  readonly pending?: string;
  /** Stages left off in this scenario, and why. */
  readonly stagesOff?: { readonly names: readonly string[]; readonly reason: string };
  readonly rate?: number;
  readonly targets?: ReadonlyArray<Omit<Target, 'template' | 'pid'> & { request: { headers: Record<string, string>; body: string } }>;
  readonly rounds?: readonly RoundResult[];
  readonly summary?: Record<string, TargetSummary>;
}

export interface BenchResult {
  readonly schema: 1;
  readonly kind: 'bench' | 'gate' | 'policy-reload';
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly machine: Record<string, unknown>;
  readonly node: string;
  readonly commit: { sha: string; branch: string; dirty: boolean };
  readonly config: Record<string, unknown>;
  readonly stages: { on: string[]; pending: Array<{ name: string; what: string }> };
  readonly scenarios: readonly ScenarioResult[];
  /** The streamed-completion scenario (OpenAI-compatible route): time to first byte and total, direct vs gateway. */
  readonly streams?: StreamResult | undefined;
  /** The policy-reload scenario: save a policy -> first call decided by it, per way of saving. */
  readonly policyReload?: ReloadResult | undefined;
  /** The kserve-infer scenario: KServe v2 infer against a real Triton, direct vs gateway. */
  readonly kserve?: KServeResult | undefined;
  /** The a2a scenario: A2A SendMessage to an @a2a-js/sdk agent, direct vs gateway (latency c=1, throughput). */
  readonly a2a?: A2aResult | undefined;
  readonly notes: readonly string[];
}

function git(args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

export function commitInfo(): BenchResult['commit'] {
  return { sha: git(['rev-parse', 'HEAD']), branch: git(['rev-parse', '--abbrev-ref', 'HEAD']), dirty: git(['status', '--porcelain', '--untracked-files=no']) !== '' };
}

export function machineInfo(): Record<string, unknown> {
  const c = cpus();
  return {
    cpuModel: c[0]?.model ?? 'unknown',
    cpus: c.length,
    platform: `${platform()} ${release()} ${arch()}`,
    memTotalMB: Math.round(totalmem() / 2 ** 20),
    memFreeMB: Math.round(freemem() / 2 ** 20),
    loadavgAtStart: loadavg().map((x) => Math.round(x * 100) / 100),
    note: 'load generator, backends, reference proxy and gateway share these cores (separate processes)',
  };
}

/** A results document: what every kind shares (when, where, which Node and commit) around the measurements. */
export function newResult(
  kind: BenchResult['kind'],
  started: { at: string; machine: Record<string, unknown> },
  body: Pick<BenchResult, 'config' | 'stages' | 'scenarios' | 'notes' | 'streams' | 'policyReload' | 'kserve' | 'a2a'>,
): BenchResult {
  return {
    schema: 1,
    kind,
    startedAt: started.at,
    finishedAt: new Date().toISOString(),
    machine: { ...started.machine, loadavgAtEnd: loadavg().map((x) => Math.round(x * 100) / 100) },
    node: process.version,
    commit: commitInfo(),
    ...body,
  };
}

/** The targets as recorded: what each one is and the exact request bytes its client sent. */
export function recordedTargets(targets: readonly Target[]): NonNullable<ScenarioResult['targets']> {
  return targets.map((t) => ({ label: t.label, kind: t.kind, stages: t.stages, request: { headers: { ...t.template.headers }, body: t.template.sample } }));
}

export function writeResult(result: BenchResult, out?: string): string {
  const dir = join(ROOT, 'bench/results');
  mkdirSync(dir, { recursive: true });
  const file = out ?? join(dir, `${result.kind}-${result.startedAt.replace(/[:.]/g, '-')}-${result.commit.sha.slice(0, 8)}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 1)}\n`);
  return file;
}

export function readResult(file: string): BenchResult {
  const r = JSON.parse(readFileSync(file, 'utf8')) as BenchResult;
  if (r.schema !== 1 || !Array.isArray(r.scenarios)) throw new Error(`${file} is not a bench results file`);
  return r;
}
