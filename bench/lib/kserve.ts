/**
 * The kserve-infer scenario: KServe v2 infer against a real Triton Inference Server (PyTriton's tritonserver on CPU,
 * from the virtualenv scripts/install-tools.sh builds; test/helpers/triton.ts starts it), directly and through each
 * gateway variant (a KServe route at /v2, the stages' pipeline), one request at a time (c=1), interleaved request
 * by request (direct, gateway, ..., the order rotating), over rounds, for two requests of the `add` model:
 * - json: 1x3 FP32 tensors as JSON (the gateway reads and parses the body for policy, forwards it as sent);
 * - binary: 1x16384 FP32 tensors (128 KiB of tensor data) with the binary tensor extension, binary output (the
 *   gateway reads only the JSON inference header, the rest streams through both ways).
 * Per request: time to the end of the answer. "added" = target minus direct, same round, per percentile.
 * With `withProxy` (what `npm run bench` asks; the gate does not) the bare reference proxy (bench/fixtures/bare-proxy.ts,
 * node:http + an undici Pool, no parsing) is measured too, target `proxy`: the floor of any Node hop in front of Triton.
 * Triton stalls ~1% of binary infers for 10-30 ms, so besides each round's percentiles the summary gives the
 * percentiles of every round's samples pooled, and each round counts the infers over SLOW_MS per target.
 * The gateway's caller uses `densenet_onnx` (on the default policy's allow-list), which the route rewrites to `add`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { startTriton, type Triton } from '../../test/helpers/triton.ts';
import type { ConfigDocument, Variant } from '../stages.ts';
import { encodeHistogram, median, newHistogram, pooledPercentile, recordMs, summarize, type Histogram, type LatencySummary } from './histogram.ts';
import { startBareProxy, startGatewayProcess, type GatewayProcess } from './targets.ts';
import type { Child } from './procs.ts';

export interface KServePlan {
  readonly rounds: number;
  /** Requests per target per kind per round. */
  readonly requests: number;
  readonly warmup: number;
  /** FP32 elements per input of the binary request. */
  readonly binaryElements: number;
}

export const KSERVE_PLAN: KServePlan = { rounds: 3, requests: 200, warmup: 30, binaryElements: 16384 };

const API = 'tollgate.dev/v1alpha1';
const PUBLIC_MODEL = 'densenet_onnx';
export const KINDS = ['json', 'binary'] as const;
/** An infer slower than this (ms) is counted as a stall (Triton's own p50 is 2-4 ms, its stalls 10-30 ms). */
export const SLOW_MS = 10;
type Kind = (typeof KINDS)[number];

export interface Request {
  readonly body: Buffer;
  readonly headers: Record<string, string>;
}

/** The scenario's two requests: a small JSON infer, and the binary one (two FP32 tensors of `binaryElements`). */
export function kserveRequests(plan: KServePlan): Record<Kind, Request> {
  const json = Buffer.from(JSON.stringify({ inputs: [{ name: 'a', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }, { name: 'b', datatype: 'FP32', shape: [1, 3], data: [10, 20, 30] }] }));
  const n = plan.binaryElements;
  const data = Buffer.from(new Float32Array(Array.from({ length: n }, (_, i) => i)).buffer);
  const header = Buffer.from(
    JSON.stringify({
      inputs: [
        { name: 'a', datatype: 'FP32', shape: [1, n], parameters: { binary_data_size: data.length } },
        { name: 'b', datatype: 'FP32', shape: [1, n], parameters: { binary_data_size: data.length } },
      ],
      outputs: [{ name: 'sum', parameters: { binary_data: true } }],
    }),
  );
  return {
    json: { body: json, headers: { 'content-type': 'application/json' } },
    binary: { body: Buffer.concat([header, data, data]), headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) } },
  };
}

interface Target {
  readonly label: string;
  readonly pool: Pool;
  readonly path: string;
  readonly headers: Record<string, string>;
}

/** One infer: ms to the end of the answer, or an error. */
async function once(t: Target, r: Request, expectBytes: number): Promise<number | Error> {
  const start = performance.now();
  try {
    const res = await t.pool.request({ method: 'POST', path: t.path, headers: { ...r.headers, ...t.headers }, body: r.body });
    const body = Buffer.from(await res.body.arrayBuffer());
    const ms = performance.now() - start;
    if (res.statusCode !== 200 || body.length < expectBytes) return new Error(`${t.label}: status ${res.statusCode}, ${body.length} bytes: ${body.subarray(0, 200).toString()}`);
    return ms;
  } catch (err) {
    return err as Error;
  }
}

export interface KServeTargetRound {
  readonly latency: LatencySummary;
  readonly errors: number;
  readonly histogram: string;
  /** Infers slower than SLOW_MS. */
  readonly slow: number;
}

export interface KServeResult {
  readonly name: 'kserve-infer';
  readonly what: string;
  readonly plan: KServePlan;
  readonly targets: ReadonlyArray<{ label: string; stages: string[]; path: string }>;
  readonly rounds: ReadonlyArray<{ round: number; kinds: Record<Kind, { targets: Record<string, KServeTargetRound>; added: Record<string, { p50: number; p99: number }> }> }>;
  /** Per kind and gateway variant: medians over rounds of the added p50/p99 (min..max), and of the direct p50/p99. */
  readonly summary: Record<Kind, Record<string, { p50: number; p99: number; addedP50: { median: number; min: number; max: number }; addedP99: { median: number; min: number; max: number }; pooled: Pooled; slow: number }>>;
  readonly errors: number;
}

export type KServeRound = KServeResult['rounds'][number];

/** Percentiles (ms) of every round's samples of one target taken together, and the added ones (target minus direct). */
export interface Pooled {
  readonly count: number;
  readonly p50: number;
  readonly p98: number;
  readonly p99: number;
  readonly addedP50: number;
  readonly addedP98: number;
  readonly addedP99: number;
}

export interface KServeOptions {
  readonly logLevel: string;
  /** Also measure the bare reference proxy (target `proxy`): the floor of a Node hop in front of Triton, same run. */
  readonly withProxy?: boolean | undefined;
  /** Write a V8 CPU profile of each gateway process and of the proxy into this directory (on exit). */
  readonly cpuProfDir?: string | undefined;
}

export interface KServeSetup {
  readonly targets: readonly Target[];
  readonly variants: readonly Variant[];
  /** One interleaved round (`plan.requests` per target and kind); errors counted, not thrown. */
  measure(round: number): Promise<KServeRound>;
  teardown(): Promise<void>;
}

/** Starts Triton and one gateway per variant, and warms every target up with both kinds of request. */
export async function setupKServe(variants: readonly Variant[], plan: KServePlan, opts: KServeOptions): Promise<KServeSetup> {
  const work = mkdtempSync(join(tmpdir(), 'tollgate-bench-kserve-'));
  const triton: Triton = await startTriton();
  const gateways: GatewayProcess[] = [];
  const fixtures: Child[] = [];
  const targets: Target[] = [];
  const reqs = kserveRequests(plan);
  // The smallest answer each kind can be (a truncated one is an error).
  const expect: Record<Kind, number> = { json: 60, binary: plan.binaryElements * 4 };
  const teardown = async (): Promise<void> => {
    await Promise.allSettled(targets.map((t) => t.pool.close()));
    // A profiled process writes its profile as it exits: give it time rather than kill it.
    const grace = opts.cpuProfDir === undefined ? 5_000 : 30_000;
    await Promise.allSettled(gateways.map((g) => g.child.stop(grace)));
    await Promise.allSettled(fixtures.map((c) => c.stop(grace)));
    await triton.stop();
    if (process.env.TOLLGATE_BENCH_KEEP === undefined) rmSync(work, { recursive: true, force: true });
    else process.stderr.write(`bench: kept ${work} (TOLLGATE_BENCH_KEEP)\n`);
  };
  try {
    targets.push({ label: 'direct', pool: new Pool(triton.url, { connections: 1 }), path: '/v2/models/add/infer', headers: {} });
    if (opts.withProxy === true) {
      // The gateway's default pool size, as in the other scenarios.
      const proxy = await startBareProxy(triton.url, 16, opts.cpuProfDir);
      fixtures.push(proxy.child);
      targets.push({ label: 'proxy', pool: new Pool(new URL(proxy.url).origin, { connections: 1 }), path: '/v2/models/add/infer', headers: {} });
    }
    for (const variant of variants) {
      const gw = await startGatewayProcess({
        work,
        scenario: { federated: ['triton'] },
        backendUrls: {},
        variant,
        logLevel: opts.logLevel,
        cpuProfDir: opts.cpuProfDir,
        routes: (routeSpec, route) => ({
          files: {
            'kserve.yaml': [
              { apiVersion: API, kind: 'Backend', metadata: { name: 'triton' }, spec: { protocol: 'kserve', url: triton.url } },
              {
                apiVersion: API,
                kind: 'Route',
                metadata: { name: route },
                spec: { ...routeSpec, http: { maxBodyBytes: 64 * 1024 * 1024 }, rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/v2' } }], backendRefs: [{ name: 'triton' }] }], models: [{ name: PUBLIC_MODEL, backend: 'triton', model: 'add' }] },
              } satisfies ConfigDocument,
            ],
          },
          path: '/v2',
        }),
      });
      gateways.push(gw);
      const u = new URL(gw.url);
      targets.push({ label: variant.label, pool: new Pool(u.origin, { connections: 1 }), path: `${u.pathname}/models/${PUBLIC_MODEL}/infer`, headers: gw.headers });
    }
    for (const t of targets) {
      for (const kind of KINDS) {
        for (let i = 0; i < plan.warmup; i++) {
          const r = await once(t, reqs[kind], expect[kind]);
          if (r instanceof Error) throw new Error(`kserve scenario: warm-up failed: ${r.message}`);
        }
      }
    }
  } catch (err) {
    await teardown();
    throw err;
  }
  const measure = async (round: number): Promise<KServeRound> => {
    const kinds = {} as KServeRound['kinds'];
    for (const kind of KINDS) {
      const h = new Map<string, { h: Histogram; errors: number; slow: number }>(targets.map((t) => [t.label, { h: newHistogram(), errors: 0, slow: 0 }]));
      for (let i = 0; i < plan.requests; i++) {
        for (let k = 0; k < targets.length; k++) {
          const t = targets[(i + k + round) % targets.length]!;
          const r = await once(t, reqs[kind], expect[kind]);
          const m = h.get(t.label)!;
          if (r instanceof Error) m.errors++;
          else {
            recordMs(m.h, r);
            if (r > SLOW_MS) m.slow++;
          }
        }
      }
      const per: Record<string, KServeTargetRound> = {};
      for (const [label, m] of h) per[label] = { latency: summarize(m.h), errors: m.errors, histogram: encodeHistogram(m.h), slow: m.slow };
      const added: Record<string, { p50: number; p99: number }> = {};
      for (const t of targets) {
        if (t.label !== 'direct') added[t.label] = { p50: per[t.label]!.latency.p50 - per.direct!.latency.p50, p99: per[t.label]!.latency.p99 - per.direct!.latency.p99 };
      }
      kinds[kind] = { targets: per, added };
    }
    return { round, kinds };
  };
  return { targets, variants, measure, teardown };
}

/** The results document of a set of rounds (kept rounds, in order). */
export function kserveResult(setup: KServeSetup, plan: KServePlan, rounds: readonly KServeRound[]): KServeResult {
  return result(plan, setup.targets, setup.variants, rounds);
}

/** The whole scenario for `npm run bench`: Triton, one gateway per variant, interleaved rounds, teardown. */
export async function runKServe(variants: readonly Variant[], plan: KServePlan, opts: KServeOptions & { log?: (line: string) => void }): Promise<KServeResult> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const setup = await setupKServe(variants, plan, opts);
  const rounds: KServeRound[] = [];
  try {
    for (let round = 0; round < plan.rounds; round++) {
      const r = await setup.measure(round);
      rounds.push(r);
      const labels = Object.keys(r.kinds.json.added);
      log(`bench: kserve-infer: round ${round + 1}/${plan.rounds} (loadavg ${loadavg()[0]!.toFixed(2)}): ${KINDS.map((k) => labels.map((l) => `${k} ${l} added p50 ${fmt(r.kinds[k].added[l]!.p50)} p99 ${fmt(r.kinds[k].added[l]!.p99)}, ${r.kinds[k].targets[l]!.slow} over ${SLOW_MS} ms (direct ${r.kinds[k].targets.direct!.slow})`).join('; ')).join('; ')}`);
    }
  } finally {
    await setup.teardown();
  }
  return kserveResult(setup, plan, rounds);
}

function result(plan: KServePlan, targets: readonly Target[], variants: readonly Variant[], rounds: KServeResult['rounds']): KServeResult {
  const stat = (xs: number[]): { median: number; min: number; max: number } => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs) });
  const summary = {} as KServeResult['summary'];
  for (const kind of KINDS) {
    summary[kind] = {};
    const pct = (label: string, p: number): number => pooledPercentile(rounds.map((r) => r.kinds[kind].targets[label]!.histogram), p);
    const direct = { p50: pct('direct', 50), p98: pct('direct', 98), p99: pct('direct', 99) };
    for (const t of targets) {
      const lat = rounds.map((r) => r.kinds[kind].targets[t.label]!.latency);
      const added = t.label === 'direct' ? undefined : rounds.map((r) => r.kinds[kind].added[t.label]!);
      const [p50, p98, p99] = [pct(t.label, 50), pct(t.label, 98), pct(t.label, 99)];
      summary[kind][t.label] = {
        p50: median(lat.map((l) => l.p50)),
        p99: median(lat.map((l) => l.p99)),
        addedP50: added === undefined ? stat([0]) : stat(added.map((a) => a.p50)),
        addedP99: added === undefined ? stat([0]) : stat(added.map((a) => a.p99)),
        pooled: { count: lat.reduce((n, l) => n + l.count, 0), p50, p98, p99, addedP50: p50 - direct.p50, addedP98: p98 - direct.p98, addedP99: p99 - direct.p99 },
        slow: rounds.reduce((n, r) => n + r.kinds[kind].targets[t.label]!.slow, 0),
      };
    }
  }
  return {
    name: 'kserve-infer',
    what: `KServe v2 infer of Triton's \`add\` (PyTriton, CPU): json = 1x3 FP32 as JSON; binary = 2 x 1x${plan.binaryElements} FP32 binary tensors, binary output; c=1, interleaved per request`,
    plan,
    targets: targets.map((t) => ({ label: t.label, stages: variants.find((v) => v.label === t.label)?.stages.map((s) => s.name) ?? [], path: t.path })),
    rounds,
    summary,
    errors: rounds.reduce((n, r) => n + KINDS.reduce((m, k) => m + Object.values(r.kinds[k].targets).reduce((e, t) => e + t.errors, 0), 0), 0),
  };
}

function fmt(v: number): string {
  return `${v >= 0 ? '+' : ''}${v.toFixed(3)} ms`;
}

/**
 * A Markdown table: per kind and target, p50/p99 and the added p50/p99 (median over rounds, min..max), then every
 * round's samples pooled: p50/p98/p99, added p99, and the infers over SLOW_MS.
 */
export function kserveMarkdown(r: KServeResult): string {
  const ms = (v: number): string => v.toFixed(3);
  const lines = [
    `${r.name}: ${r.what}`,
    '',
    `| request | target | p50 | p99 | added p50 | added p99 | pooled p50 / p98 / p99 | pooled added p99 | over ${SLOW_MS} ms |`,
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const kind of KINDS) {
    for (const [label, s] of Object.entries(r.summary[kind])) {
      const a = (x: { median: number; min: number; max: number }): string => (label === 'direct' ? '-' : `${fmt(x.median)} (${ms(x.min)}..${ms(x.max)})`);
      const p = s.pooled;
      lines.push(`| ${kind} | ${label} | ${ms(s.p50)} | ${ms(s.p99)} | ${a(s.addedP50)} | ${a(s.addedP99)} | ${ms(p.p50)} / ${ms(p.p98)} / ${ms(p.p99)} | ${label === 'direct' ? '-' : fmt(p.addedP99)} | ${s.slow} of ${p.count} |`);
    }
  }
  return lines.join('\n');
}
