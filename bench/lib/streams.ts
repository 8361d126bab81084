/**
 * The streamed-completion scenario: an OpenAI-compatible chat completion with `stream: true` against the vLLM-format
 * backend (bench/fixtures/vllm.ts: a first token after `firstTokenMs`, then one token every `tokenMs`), directly and
 * through the bare reference proxy (bench/fixtures/bare-proxy.ts: node:http + undici, the floor of any Node hop for
 * SSE; `proxy`, when asked) and through each gateway variant (the model route at /v1, the stages' pipeline), one
 * request at a time (c=1),
 * interleaved request by request (direct, gateway, ..., the order rotating), over rounds. Per request: time to the
 * first body byte (the first SSE event: what "time to first token" is at the client) and to the end of the stream.
 * "added" = target minus direct, same round, per percentile. Per round and target, the CPU time (user + system, from
 * /proc) its process used per stream: a gateway's for its own streams; for `direct`, the backend's for every stream
 * it served in the round (all targets'), i.e. what producing one stream costs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import type { ConfigDocument, Variant } from '../stages.ts';
import { encodeHistogram, median, newHistogram, recordMs, summarize, type Histogram, type LatencySummary } from './histogram.ts';
import { cpuTimeMs, spawnReady, type Child } from './procs.ts';
import { ROOT, startBareProxy, startGatewayProcess, type GatewayProcess } from './targets.ts';

export interface StreamPlan {
  readonly rounds: number;
  /** Requests per target per round. */
  readonly requests: number;
  /** Unrecorded requests per target first. */
  readonly warmup: number;
  /** Tokens each completion streams. */
  readonly tokens: number;
  readonly firstTokenMs: number;
  readonly tokenMs: number;
}

export const STREAM_PLAN: StreamPlan = { rounds: 3, requests: 150, warmup: 30, tokens: 16, firstTokenMs: 1, tokenMs: 1 };

const MODEL = 'llama-3.1-8b-instruct';
const UPSTREAM_MODEL = 'meta-llama/Llama-3.1-8B-Instruct';
const API = 'tollgate.dev/v1alpha1';

export interface StreamTarget {
  readonly label: string;
  /** The process whose CPU time is this target's cost (the backend for `direct`, else the gateway). */
  readonly pid: number;
  readonly pool: Pool;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: string;
}

export interface TargetRound {
  readonly ttfb: LatencySummary;
  readonly total: LatencySummary;
  readonly errors: number;
  /** CPU microseconds per stream of the target's process (see the top of this file); undefined off Linux. */
  readonly cpuUsPerStream: number | undefined;
  /** Raw histograms (microseconds, HdrHistogram compressed base64). */
  readonly histograms: { readonly ttfb: string; readonly total: string };
}

export interface Added {
  readonly ttfb: { readonly p50: number; readonly p99: number };
  readonly total: { readonly p50: number; readonly p99: number };
}

export interface StreamResult {
  readonly name: 'stream-completion';
  readonly what: string;
  readonly plan: StreamPlan;
  readonly targets: ReadonlyArray<{ label: string; stages: string[]; request: { path: string; body: string } }>;
  readonly rounds: ReadonlyArray<{ round: number; targets: Record<string, TargetRound>; added: Record<string, Added> }>;
  /** Per gateway variant (and `proxy`, when measured): medians over rounds of the added percentiles, with their min..max. */
  readonly summary: Record<string, { [K in 'ttfbP50' | 'ttfbP99' | 'totalP50' | 'totalP99']: { median: number; min: number; max: number } }>;
  readonly errors: number;
}

function chatBody(model: string, tokens: number): string {
  return JSON.stringify({ model, messages: [{ role: 'user', content: `words ${tokens}` }], stream: true, max_tokens: 4 * tokens });
}

/** One streamed completion: [ms to the first body byte, ms to the end], or an error. */
async function once(t: StreamTarget): Promise<[number, number] | Error> {
  const start = performance.now();
  try {
    const res = await t.pool.request({ method: 'POST', path: t.path, headers: t.headers, body: t.body });
    let first = -1;
    let tail = '';
    await new Promise<void>((resolve, reject) => {
      res.body.on('data', (c: Buffer) => {
        if (first < 0) first = performance.now() - start;
        tail = (tail + c.toString('latin1')).slice(-32);
      });
      res.body.once('end', resolve);
      res.body.once('error', reject);
    });
    const total = performance.now() - start;
    if (res.statusCode !== 200 || !tail.endsWith('data: [DONE]\n\n')) return new Error(`${t.label}: status ${res.statusCode}, stream ended with ${JSON.stringify(tail)}`);
    return [first, total];
  } catch (err) {
    return err as Error;
  }
}

export type StreamRound = StreamResult['rounds'][number];

export interface StreamSetup {
  readonly targets: readonly StreamTarget[];
  readonly variants: readonly Variant[];
  /** One interleaved round (`plan.requests` per target); errors counted, not thrown. */
  measure(round: number): Promise<StreamRound>;
  teardown(): Promise<void>;
}

export interface StreamOptions {
  readonly logLevel: string;
  readonly cpuProfDir?: string | undefined;
  /** Also measure the bare reference proxy (target `proxy`): the floor of a Node hop for SSE, same run. */
  readonly withProxy?: boolean | undefined;
}

/** Starts the backend, the bare proxy (when asked) and one gateway per variant, and warms every target up. */
export async function setupStreams(variants: readonly Variant[], plan: StreamPlan, opts: StreamOptions): Promise<StreamSetup> {
  const work = mkdtempSync(join(tmpdir(), 'tollgate-bench-stream-'));
  const backend: Child & { ready: { url: string } } = await spawnReady(join(ROOT, 'bench/fixtures/vllm.ts'), [String(plan.firstTokenMs), String(plan.tokenMs)]);
  const gateways: GatewayProcess[] = [];
  const fixtures: Child[] = [];
  const targets: StreamTarget[] = [];
  const teardown = async (): Promise<void> => {
    await Promise.allSettled(targets.map((t) => t.pool.close()));
    // A profiled gateway writes its profile as it exits: give its drain time rather than kill it.
    await Promise.allSettled(gateways.map((g) => g.child.stop(opts.cpuProfDir === undefined ? 5_000 : 30_000)));
    await Promise.allSettled(fixtures.map((c) => c.stop(opts.cpuProfDir === undefined ? 5_000 : 30_000)));
    await backend.stop(5_000);
    rmSync(work, { recursive: true, force: true });
  };
  try {
    const url = backend.ready.url;
    targets.push({ label: 'direct', pid: backend.pid, pool: new Pool(url, { connections: 1 }), path: '/v1/chat/completions', headers: { 'content-type': 'application/json' }, body: chatBody(UPSTREAM_MODEL, plan.tokens) });
    if (opts.withProxy === true) {
      // The gateway's default pool size, as in the MCP scenarios.
      const proxy = await startBareProxy(url, 16, opts.cpuProfDir);
      fixtures.push(proxy.child);
      targets.push({ label: 'proxy', pid: proxy.child.pid, pool: new Pool(new URL(proxy.url).origin, { connections: 1 }), path: '/v1/chat/completions', headers: { 'content-type': 'application/json' }, body: chatBody(UPSTREAM_MODEL, plan.tokens) });
    }
    for (const variant of variants) {
      const gw = await startGatewayProcess({
        work,
        scenario: { federated: ['vllm'] },
        backendUrls: {},
        variant,
        logLevel: opts.logLevel,
        cpuProfDir: opts.cpuProfDir,
        routes: (routeSpec, route) => ({
          files: {
            'models.yaml': [
              { apiVersion: API, kind: 'Backend', metadata: { name: 'vllm' }, spec: { protocol: 'openai', url } },
              {
                apiVersion: API,
                kind: 'Route',
                metadata: { name: route },
                spec: { ...routeSpec, rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/v1' } }], backendRefs: [{ name: 'vllm' }] }], models: [{ name: MODEL, backend: 'vllm', model: UPSTREAM_MODEL }] },
              } satisfies ConfigDocument,
            ],
          },
          path: '/v1',
        }),
      });
      gateways.push(gw);
      const u = new URL(gw.url);
      targets.push({ label: variant.label, pid: gw.child.pid, pool: new Pool(u.origin, { connections: 1 }), path: `${u.pathname}/chat/completions`, headers: { 'content-type': 'application/json', ...gw.headers }, body: chatBody(MODEL, plan.tokens) });
    }
    for (const t of targets) {
      for (let i = 0; i < plan.warmup; i++) {
        const r = await once(t);
        if (r instanceof Error) throw new Error(`stream scenario: warm-up failed: ${r.message}`);
      }
    }
  } catch (err) {
    await teardown();
    throw err;
  }
  const measure = async (round: number): Promise<StreamRound> => {
    const h = new Map<string, { ttfb: Histogram; total: Histogram; errors: number }>();
    for (const t of targets) h.set(t.label, { ttfb: newHistogram(), total: newHistogram(), errors: 0 });
    const cpu0 = targets.map((t) => cpuTimeMs(t.pid));
    for (let i = 0; i < plan.requests; i++) {
      for (let k = 0; k < targets.length; k++) {
        const t = targets[(i + k + round) % targets.length]!;
        const r = await once(t);
        const m = h.get(t.label)!;
        if (r instanceof Error) {
          m.errors++;
          continue;
        }
        recordMs(m.ttfb, r[0]);
        recordMs(m.total, r[1]);
      }
    }
    const cpuUs = targets.map((t, k) => {
      const a = cpu0[k];
      const b = cpuTimeMs(t.pid);
      const streams = t.label === 'direct' ? plan.requests * targets.length : plan.requests;
      return a === undefined || b === undefined ? undefined : Math.round(((b - a) * 1000) / streams);
    });
    const perTarget: Record<string, TargetRound> = {};
    for (const [k, t] of targets.entries()) {
      const m = h.get(t.label)!;
      perTarget[t.label] = { ttfb: summarize(m.ttfb), total: summarize(m.total), errors: m.errors, cpuUsPerStream: cpuUs[k], histograms: { ttfb: encodeHistogram(m.ttfb), total: encodeHistogram(m.total) } };
    }
    const direct = perTarget.direct!;
    const added: Record<string, Added> = {};
    for (const t of targets) {
      if (t.label === 'direct') continue;
      const g = perTarget[t.label]!;
      added[t.label] = { ttfb: { p50: g.ttfb.p50 - direct.ttfb.p50, p99: g.ttfb.p99 - direct.ttfb.p99 }, total: { p50: g.total.p50 - direct.total.p50, p99: g.total.p99 - direct.total.p99 } };
    }
    return { round, targets: perTarget, added };
  };
  return { targets, variants, measure, teardown };
}

/** The results document of a set of rounds (kept rounds, in order). */
export function streamResult(setup: StreamSetup, plan: StreamPlan, rounds: readonly StreamRound[]): StreamResult {
  const stat = (xs: number[]): { median: number; min: number; max: number } => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs) });
  const summary: StreamResult['summary'] = {};
  for (const t of setup.targets) {
    if (t.label === 'direct') continue;
    const a = rounds.map((r) => r.added[t.label]!);
    summary[t.label] = { ttfbP50: stat(a.map((x) => x.ttfb.p50)), ttfbP99: stat(a.map((x) => x.ttfb.p99)), totalP50: stat(a.map((x) => x.total.p50)), totalP99: stat(a.map((x) => x.total.p99)) };
  }
  return {
    name: 'stream-completion',
    what: `OpenAI chat completion, stream: true, ${plan.tokens} tokens (first after ${plan.firstTokenMs} ms, then every ${plan.tokenMs} ms) from a vLLM-format backend; c=1, interleaved per request`,
    plan,
    targets: setup.targets.map((t) => ({ label: t.label, stages: t.label === 'direct' ? [] : (setup.variants.find((v) => v.label === t.label)?.stages.map((s) => s.name) ?? []), request: { path: t.path, body: t.body } })),
    rounds,
    summary,
    errors: rounds.reduce((n, r) => n + Object.values(r.targets).reduce((m, t) => m + t.errors, 0), 0),
  };
}

/** The whole scenario for `npm run bench`: set up, every round, tear down. */
export async function runStreams(variants: readonly Variant[], plan: StreamPlan, opts: StreamOptions & { log?: (line: string) => void }): Promise<StreamResult> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const setup = await setupStreams(variants, plan, opts);
  const rounds: StreamRound[] = [];
  try {
    for (let r = 0; r < plan.rounds; r++) {
      const round = await setup.measure(r);
      rounds.push(round);
      const shown = setup.targets.filter((t) => t.label !== 'direct').map((t) => t.label);
      log(`bench: stream-completion: round ${r + 1}/${plan.rounds} (loadavg ${loadavg()[0]!.toFixed(2)}): ${shown.map((l) => `${l} added ttfb p50 ${fmt(round.added[l]!.ttfb.p50)} p99 ${fmt(round.added[l]!.ttfb.p99)}`).join('; ')}`);
    }
  } finally {
    await setup.teardown();
  }
  return streamResult(setup, plan, rounds);
}

function fmt(v: number): string {
  return `${v >= 0 ? '+' : ''}${v.toFixed(3)} ms`;
}

/** A Markdown table of the scenario (direct, then each variant: p50/p99 of time to first byte and total, added). */
export function streamMarkdown(r: StreamResult): string {
  const ms = (v: number): string => v.toFixed(3);
  const lines = [
    `${r.name}: ${r.what}`,
    '',
    '| target | ttfb p50 | ttfb p99 | total p50 | total p99 | added ttfb p50 | added ttfb p99 | added total p50 | added total p99 | CPU us/stream |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  const med = (label: string, pick: (t: TargetRound) => number): string => ms(median(r.rounds.map((x) => pick(x.targets[label]!))));
  for (const t of r.targets) {
    const s = r.summary[t.label];
    const a = (k: keyof NonNullable<typeof s>): string => (s === undefined ? '-' : `${fmt(s[k].median)} (${ms(s[k].min)}..${ms(s[k].max)})`);
    const cpu = r.rounds.map((x) => x.targets[t.label]!.cpuUsPerStream).filter((c): c is number => c !== undefined);
    lines.push(
      `| ${t.label} | ${med(t.label, (x) => x.ttfb.p50)} | ${med(t.label, (x) => x.ttfb.p99)} | ${med(t.label, (x) => x.total.p50)} | ${med(t.label, (x) => x.total.p99)} | ${a('ttfbP50')} | ${a('ttfbP99')} | ${a('totalP50')} | ${a('totalP99')} | ${cpu.length === 0 ? '-' : median(cpu).toFixed(0)} |`,
    );
  }
  return lines.join('\n');
}
