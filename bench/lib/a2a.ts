/**
 * The a2a scenario: A2A v1.0 `SendMessage` over JSON-RPC to a real @a2a-js/sdk agent (test/helpers/a2a-agent.ts:
 * AgentExecutor + DefaultRequestHandler + InMemoryTaskStore; each message becomes a task that completes with an
 * echoed artifact), directly and through each gateway variant (an A2A route at /a2a/echo with the stages' pipeline:
 * policy per skill, task binding, limits, audit...), in the same round:
 * - latency: one request at a time (c=1), interleaved request by request (direct, gateway, ..., the order rotating);
 *   p50/p99 per target, "added" = target minus direct per percentile;
 * - throughput: `concurrency` requests in flight for `throughputRequests` requests per target, one target after the
 *   other (the order rotating per round): requests per second, and the gateway process's CPU time per request.
 * The agent runs in the bench process (like the load generator); both targets share that cost alike.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { startTestAgent, type TestAgent } from '../../test/helpers/a2a-agent.ts';
import type { ConfigDocument, Variant } from '../stages.ts';
import { encodeHistogram, median, newHistogram, recordMs, summarize, type Histogram, type LatencySummary } from './histogram.ts';
import { cpuTimeMs } from './procs.ts';
import { startGatewayProcess, type GatewayProcess } from './targets.ts';

export interface A2aPlan {
  readonly rounds: number;
  /** c=1 requests per target per round. */
  readonly requests: number;
  readonly warmup: number;
  /** Requests per target per round in the throughput phase, and how many are in flight at once. */
  readonly throughputRequests: number;
  readonly concurrency: number;
}

export const A2A_PLAN: A2aPlan = { rounds: 3, requests: 300, warmup: 50, throughputRequests: 1000, concurrency: 8 };

const API = 'tollgate.dev/v1alpha1';

interface Target {
  readonly label: string;
  readonly pool: Pool;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly pid: number | undefined;
}

function body(i: number): string {
  return JSON.stringify({ jsonrpc: '2.0', id: i, method: 'SendMessage', params: { message: { messageId: `bench-${i}-${Math.random()}`, role: 'ROLE_USER', parts: [{ text: 'hello from the bench' }] } } });
}

/** One SendMessage: ms to the end of the answer, or an error (a JSON-RPC error or a task not completed counts). */
async function once(t: Target, i: number): Promise<number | Error> {
  const start = performance.now();
  try {
    const res = await t.pool.request({ method: 'POST', path: t.path, headers: { 'content-type': 'application/json', 'a2a-version': '1.0', ...t.headers }, body: body(i) });
    const text = await res.body.text();
    const ms = performance.now() - start;
    if (res.statusCode !== 200 || !text.includes('TASK_STATE_COMPLETED')) return new Error(`${t.label}: status ${res.statusCode}: ${text.slice(0, 300)}`);
    return ms;
  } catch (err) {
    return err as Error;
  }
}

export interface A2aTargetRound {
  readonly latency: LatencySummary;
  readonly errors: number;
  readonly histogram: string;
  readonly throughput: { readonly rps: number; readonly errors: number; readonly cpuMsPerRequest: number | undefined };
}

export interface A2aRound {
  readonly round: number;
  readonly targets: Record<string, A2aTargetRound>;
  readonly added: Record<string, { p50: number; p99: number }>;
}

export interface A2aSetup {
  readonly variants: readonly Variant[];
  readonly targets: readonly Target[];
  measure(round: number): Promise<A2aRound>;
  teardown(): Promise<void>;
}

export interface A2aResult {
  readonly name: 'a2a';
  readonly what: string;
  readonly plan: A2aPlan;
  readonly targets: ReadonlyArray<{ label: string; stages: string[]; path: string }>;
  readonly rounds: readonly A2aRound[];
  /** Per target: medians over rounds (min..max for the added figures). */
  readonly summary: Record<
    string,
    {
      p50: number;
      p99: number;
      rps: number;
      cpuMsPerRequest: number | undefined;
      addedP50: { median: number; min: number; max: number };
      addedP99: { median: number; min: number; max: number };
    }
  >;
  readonly errors: number;
}

/** Starts the agent and one gateway per variant, warms them up; `measure` runs one round. */
export async function setupA2a(variants: readonly Variant[], plan: A2aPlan, opts: { logLevel: string; cpuProfDir?: string | undefined }): Promise<A2aSetup> {
  const work = mkdtempSync(join(tmpdir(), 'tollgate-bench-a2a-'));
  const agent: TestAgent = await startTestAgent();
  const gateways: GatewayProcess[] = [];
  const targets: Target[] = [];
  const teardown = async (): Promise<void> => {
    await Promise.allSettled(targets.map((t) => t.pool.close()));
    // A profiled gateway writes its profile on exit: give it time to drain instead of killing it.
    await Promise.allSettled(gateways.map((g) => g.child.stop(opts.cpuProfDir === undefined ? 5_000 : 60_000)));
    await agent.close();
    rmSync(work, { recursive: true, force: true });
  };
  try {
    targets.push({ label: 'direct', pool: new Pool(agent.url, { connections: plan.concurrency }), path: '/rpc', headers: {}, pid: undefined });
    for (const variant of variants) {
      const gw = await startGatewayProcess({
        work,
        scenario: { federated: ['echo'] },
        backendUrls: {},
        variant,
        logLevel: opts.logLevel,
        cpuProfDir: opts.cpuProfDir,
        routes: (routeSpec, route) => ({
          files: {
            'a2a.yaml': [
              { apiVersion: API, kind: 'Backend', metadata: { name: 'echo' }, spec: { protocol: 'a2a', url: agent.url } },
              {
                apiVersion: API,
                kind: 'Route',
                metadata: { name: route },
                spec: { ...routeSpec, a2a: { defaultVersion: '1.0' }, rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/a2a' } }], backendRefs: [{ name: 'echo' }] }] },
              } satisfies ConfigDocument,
            ],
          },
          path: '/a2a/echo',
        }),
      });
      gateways.push(gw);
      const u = new URL(gw.url);
      targets.push({ label: variant.label, pool: new Pool(u.origin, { connections: plan.concurrency }), path: u.pathname, headers: gw.headers, pid: gw.child.pid });
    }
    for (const t of targets) {
      for (let i = 0; i < plan.warmup; i++) {
        const r = await once(t, i);
        if (r instanceof Error) throw new Error(`a2a scenario: warm-up failed: ${r.message}`);
      }
    }
  } catch (err) {
    await teardown();
    throw err;
  }
  const measure = async (round: number): Promise<A2aRound> => {
    const h = new Map<string, { h: Histogram; errors: number }>(targets.map((t) => [t.label, { h: newHistogram(), errors: 0 }]));
    for (let i = 0; i < plan.requests; i++) {
      for (let k = 0; k < targets.length; k++) {
        const t = targets[(i + k + round) % targets.length]!;
        const r = await once(t, i);
        const m = h.get(t.label)!;
        if (r instanceof Error) m.errors++;
        else recordMs(m.h, r);
      }
    }
    const tput = new Map<string, A2aTargetRound['throughput']>();
    for (let k = 0; k < targets.length; k++) {
      const t = targets[(k + round) % targets.length]!;
      tput.set(t.label, await throughput(t, plan));
    }
    const per: Record<string, A2aTargetRound> = {};
    for (const [label, m] of h) per[label] = { latency: summarize(m.h), errors: m.errors, histogram: encodeHistogram(m.h), throughput: tput.get(label)! };
    const added: Record<string, { p50: number; p99: number }> = {};
    for (const v of variants) added[v.label] = { p50: per[v.label]!.latency.p50 - per.direct!.latency.p50, p99: per[v.label]!.latency.p99 - per.direct!.latency.p99 };
    return { round, targets: per, added };
  };
  return { variants, targets, measure, teardown };
}

/** `plan.throughputRequests` SendMessages, `plan.concurrency` in flight: requests per second and CPU per request. */
async function throughput(t: Target, plan: A2aPlan): Promise<A2aTargetRound['throughput']> {
  let next = 0;
  let errors = 0;
  const cpu0 = t.pid === undefined ? undefined : cpuTimeMs(t.pid);
  const start = performance.now();
  await Promise.all(
    Array.from({ length: plan.concurrency }, async () => {
      while (next < plan.throughputRequests) {
        const i = next++;
        if ((await once(t, i)) instanceof Error) errors++;
      }
    }),
  );
  const s = (performance.now() - start) / 1000;
  const cpu1 = t.pid === undefined ? undefined : cpuTimeMs(t.pid);
  return { rps: plan.throughputRequests / s, errors, cpuMsPerRequest: cpu0 === undefined || cpu1 === undefined ? undefined : (cpu1 - cpu0) / plan.throughputRequests };
}

export function a2aResult(setup: A2aSetup, plan: A2aPlan, rounds: readonly A2aRound[]): A2aResult {
  const stat = (xs: number[]): { median: number; min: number; max: number } => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs) });
  const summary: A2aResult['summary'] = {};
  for (const t of setup.targets) {
    const per = rounds.map((r) => r.targets[t.label]!);
    const added = t.label === 'direct' ? undefined : rounds.map((r) => r.added[t.label]!);
    const cpu = per.map((p) => p.throughput.cpuMsPerRequest).filter((c): c is number => c !== undefined);
    summary[t.label] = {
      p50: median(per.map((p) => p.latency.p50)),
      p99: median(per.map((p) => p.latency.p99)),
      rps: median(per.map((p) => p.throughput.rps)),
      cpuMsPerRequest: cpu.length === 0 ? undefined : median(cpu),
      addedP50: added === undefined ? stat([0]) : stat(added.map((a) => a.p50)),
      addedP99: added === undefined ? stat([0]) : stat(added.map((a) => a.p99)),
    };
  }
  return {
    name: 'a2a',
    what: `A2A v1.0 SendMessage (JSON-RPC) to an @a2a-js/sdk agent (task completed with an echoed artifact): latency c=1 interleaved per request; throughput with ${plan.concurrency} in flight`,
    plan,
    targets: setup.targets.map((t) => ({ label: t.label, stages: t.label === 'direct' ? [] : (setup.variants.find((v) => v.label === t.label)?.stages.map((s) => s.name) ?? []), path: t.path })),
    rounds,
    summary,
    errors: rounds.reduce((n, r) => n + Object.values(r.targets).reduce((e, t) => e + t.errors + t.throughput.errors, 0), 0),
  };
}

/** The whole scenario for `npm run bench`. */
export async function runA2a(variants: readonly Variant[], plan: A2aPlan, opts: { logLevel: string; log?: (line: string) => void; cpuProfDir?: string | undefined }): Promise<A2aResult> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const setup = await setupA2a(variants, plan, opts);
  try {
    const rounds: A2aRound[] = [];
    for (let r = 0; r < plan.rounds; r++) {
      const round = await setup.measure(r);
      rounds.push(round);
      log(`bench: a2a: round ${r + 1}/${plan.rounds}: ${variants.map((v) => `${v.label} added p50 ${fmt(round.added[v.label]!.p50)} p99 ${fmt(round.added[v.label]!.p99)}, ${round.targets[v.label]!.throughput.rps.toFixed(0)} req/s (direct ${round.targets.direct!.throughput.rps.toFixed(0)})`).join('; ')}`);
    }
    return a2aResult(setup, plan, rounds);
  } finally {
    await setup.teardown();
  }
}

function fmt(v: number): string {
  return `${v >= 0 ? '+' : ''}${v.toFixed(3)} ms`;
}

/** A Markdown table: per target, p50/p99, added p50/p99 (median over rounds, min..max), throughput, CPU/request. */
export function a2aMarkdown(r: A2aResult): string {
  const ms = (v: number): string => v.toFixed(3);
  const lines = [`${r.name}: ${r.what}`, '', '| target | p50 | p99 | added p50 | added p99 | req/s | gateway CPU ms/req |', '|---|---|---|---|---|---|---|'];
  for (const [label, s] of Object.entries(r.summary)) {
    const a = (x: { median: number; min: number; max: number }): string => (label === 'direct' ? '-' : `${fmt(x.median)} (${ms(x.min)}..${ms(x.max)})`);
    lines.push(`| ${label} | ${ms(s.p50)} | ${ms(s.p99)} | ${a(s.addedP50)} | ${a(s.addedP99)} | ${s.rps.toFixed(0)} | ${s.cpuMsPerRequest === undefined ? '-' : ms(s.cpuMsPerRequest)} |`);
  }
  return lines.join('\n');
}
