/**
 * The policy-reload scenario: from saving a policy to the first call decided by it. A gateway process serves the raw
 * MCP backend at /mcp with a policy that denies `files__read_file` with a versioned reason; one client calls it in
 * a closed loop (c=1, the SDK-captured request replayed with fresh ids) while the bench saves a new version, and a
 * sample is the time from just before the save to the arrival of the first answer carrying the new reason.
 *
 * Four ways of saving, each its own gateway (a Rego directory built by opa on change, or a built bundle file):
 * - `rego-in-place`: the .rego rewritten in place (open, truncate, write);
 * - `rego-replaced`: a new .rego written aside and renamed over the old one (editors, `sed -i`, deploys);
 * - `bundle-in-place` / `bundle-replaced`: the same with a bundle built beforehand (no opa on the measured path).
 * Samples of the four ways are interleaved (one of each in turn), so load on the shared machine hits all alike.
 */
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Pool } from 'undici';
import { buildWasmBundle, findOpa } from '../../src/guards/policy/opa.ts';
import type { Stage, Variant } from '../stages.ts';
import { encodeHistogram, newHistogram, recordMs, summarize, type LatencySummary } from './histogram.ts';
import { openBenchSession, type BenchSession } from './mcp-client.ts';
import { startBackends, startGatewayProcess, type GatewayProcess } from './targets.ts';

export const RELOAD_MODES = ['rego-in-place', 'rego-replaced', 'bundle-in-place', 'bundle-replaced'] as const;
export type ReloadMode = (typeof RELOAD_MODES)[number];

export interface ReloadPlan {
  /** Samples per mode. */
  readonly samples: number;
  /** Quiet time between two saves (the previous reload's builds and logs settle). */
  readonly pauseMs: number;
  /** A sample that has not switched after this long counts as a failure. */
  readonly timeoutMs: number;
}

export const RELOAD_PLAN: ReloadPlan = { samples: 30, pauseMs: 150, timeoutMs: 10_000 };

export interface ReloadResult {
  readonly name: 'policy-reload';
  readonly what: string;
  readonly plan: ReloadPlan;
  /** Per mode: save -> first new decision, ms (median, p99...), the raw samples and their histogram. */
  readonly modes: Record<ReloadMode, { summary: LatencySummary; samples: number[]; histogram: string; failures: number }>;
  /** `opa build -t wasm` of the same policy alone, run by the bench (the floor of the rego-* modes), ms. */
  readonly opaBuild: LatencySummary;
  readonly loadavg: { start: number[]; end: number[] };
  readonly errors: number;
}

const ENTRYPOINTS = ['tollgate/decision', 'tollgate/visible'];

/** v0 allows the call (the SDK client that captures the request needs a result); every later version denies it. */
function rego(version: string): string {
  return `package tollgate

default decision := {"allow": true}

decision := {"allow": false, "reason": "policy ${version}"} if {
	input.target.local == "read_file"
	"${version}" != "v0"
}

visible contains name if {
	some _, items in input.targets
	some _, name in items
}
`;
}

interface Target {
  readonly mode: ReloadMode;
  readonly gateway: GatewayProcess;
  readonly session: BenchSession;
  readonly pool: Pool;
  /** Saves version `v`. */
  save(v: string): void;
}

/** Calls in a closed loop until `marker` shows in an answer; resolves with the time it arrived (performance.now()). */
async function firstWith(t: Target, marker: string, deadline: number, counter: { id: number; errors: number }): Promise<number | undefined> {
  const url = new URL(t.session.template.url);
  for (;;) {
    const id = ++counter.id;
    const res = await t.pool.request({
      method: 'POST',
      path: url.pathname,
      headers: t.session.template.headers,
      body: `${t.session.template.before}${id}${t.session.template.after}`,
    });
    const body = await res.body.text();
    const now = performance.now();
    if (body.includes(marker)) return now;
    // Anything but the previous decision (a result, or the previous version's denial) is an error.
    if (!body.includes('policy v') && !body.includes('"result"')) counter.errors++;
    if (now > deadline) return undefined;
  }
}

export async function runPolicyReload(plan: ReloadPlan = RELOAD_PLAN, opts: { logLevel?: string } = {}): Promise<ReloadResult> {
  const opa = findOpa();
  if (!opa) throw new Error('policy-reload: opa not found (run scripts/install-tools.sh; ~/.cache/tollgate/bin on PATH)');
  const work = mkdtempSync(join(tmpdir(), 'tollgate-bench-reload-'));
  const start = loadavg().map((x) => Math.round(x * 100) / 100);
  const backends = await startBackends([{ name: 'files', kind: 'raw' }]);
  const targets: Target[] = [];
  const counter = { id: 1000, errors: 0 };
  try {
    // Bundles of every version the bundle modes will save, built before anything is measured.
    const versions = Array.from({ length: plan.samples + 1 }, (_, i) => `v${i}`);
    const bundles = new Map<string, Buffer>();
    const opaBuild = newHistogram();
    for (const v of versions) {
      const src = join(work, `src-${v}`);
      mkdirSync(join(src, 'tollgate'), { recursive: true });
      writeFileSync(join(src, 'tollgate/main.rego'), rego(v));
      const out = join(work, `bundle-${v}.tar.gz`);
      const t0 = performance.now();
      const built = await buildWasmBundle({ opa, dir: src, entrypoints: ENTRYPOINTS, output: out });
      recordMs(opaBuild, performance.now() - t0);
      if (!built.ok) throw new Error(`policy-reload: opa build failed: ${built.error}`);
      bundles.set(v, readFileSync(out));
    }
    for (const mode of RELOAD_MODES) {
      const dir = join(work, mode);
      mkdirSync(join(dir, 'policy/tollgate'), { recursive: true });
      const file = mode.startsWith('rego') ? join(dir, 'policy/tollgate/main.rego') : join(dir, 'policy/bundle.tar.gz');
      const content = (v: string): string | Buffer => (mode.startsWith('rego') ? rego(v) : bundles.get(v)!);
      writeFileSync(file, content('v0'));
      const stage: Stage = {
        name: 'policy-live',
        what: `policy from a watched ${mode.startsWith('rego') ? 'Rego directory' : 'bundle file'}`,
        requires: 'src/guards/policy/sources.ts',
        gateway: () => ({ policy: mode.startsWith('rego') ? { dir: join(dir, 'policy') } : { bundle: file } }),
      };
      const variant: Variant = { label: mode, stages: [stage] };
      const gateway = await startGatewayProcess({ work: dir, scenario: { federated: ['files'] }, backendUrls: backends.urls, variant, logLevel: opts.logLevel ?? 'warn' });
      const s = await openBenchSession(gateway.url, { method: 'tools/call', name: 'files__read_file', arguments: { path: '/srv/shared/a.txt' } });
      const origin = new URL(gateway.url).origin;
      const save = mode.endsWith('in-place')
        ? (v: string) => writeFileSync(file, content(v))
        : (v: string) => {
            const aside = join(dirname(file), `.incoming-${v}`);
            writeFileSync(aside, content(v));
            renameSync(aside, file);
          };
      targets.push({ mode, gateway, session: s, pool: new Pool(origin, { connections: 1 }), save });
    }
    const samples = Object.fromEntries(RELOAD_MODES.map((m) => [m, [] as number[]])) as Record<ReloadMode, number[]>;
    const failures = Object.fromEntries(RELOAD_MODES.map((m) => [m, 0])) as Record<ReloadMode, number>;
    for (let i = 1; i <= plan.samples; i++) {
      // Rotate the order per sample so no mode always follows another's reload.
      for (let k = 0; k < targets.length; k++) {
        const t = targets[(i + k) % targets.length]!;
        const v = `v${i}`;
        await new Promise((r) => setTimeout(r, plan.pauseMs));
        const saved = performance.now();
        const seen = firstWith(t, `policy ${v}`, saved + plan.timeoutMs, counter);
        t.save(v);
        const at = await seen;
        if (at === undefined) failures[t.mode]++;
        else samples[t.mode].push(at - saved);
      }
      if (i % 10 === 0) process.stderr.write(`bench: policy-reload: ${i}/${plan.samples} samples per mode (loadavg ${loadavg()[0]!.toFixed(2)})\n`);
    }
    const modes = {} as ReloadResult['modes'];
    for (const m of RELOAD_MODES) {
      const h = newHistogram();
      for (const ms of samples[m]) recordMs(h, ms);
      modes[m] = { summary: summarize(h), samples: samples[m].map((x) => Math.round(x * 100) / 100), histogram: encodeHistogram(h), failures: failures[m] };
    }
    return {
      name: 'policy-reload',
      what: 'save a policy -> first MCP call decided by it (c=1 closed loop through the gateway; Rego dir built by opa, or a bundle file)',
      plan,
      modes,
      opaBuild: summarize(opaBuild),
      loadavg: { start, end: loadavg().map((x) => Math.round(x * 100) / 100) },
      errors: counter.errors + Object.values(failures).reduce((a, b) => a + b, 0),
    };
  } finally {
    for (const t of targets) {
      await t.session.close().catch(() => {});
      await t.pool.close();
      await t.gateway.child.stop(2000);
    }
    await backends.child.stop(2000);
    rmSync(work, { recursive: true, force: true });
  }
}

export function reloadMarkdown(r: ReloadResult): string {
  const rows = RELOAD_MODES.map((m) => {
    const s = r.modes[m].summary;
    return `| ${m} | ${s.p50.toFixed(1)} | ${s.p90.toFixed(1)} | ${s.p99.toFixed(1)} | ${s.max.toFixed(1)} | ${r.modes[m].samples.length} | ${r.modes[m].failures} |`;
  });
  return [
    `### policy-reload: save -> first decision under the new policy (ms; loadavg ${r.loadavg.start[0]} -> ${r.loadavg.end[0]})`,
    '| mode | p50 | p90 | p99 | max | samples | failed |',
    '|---|---|---|---|---|---|---|',
    ...rows,
    `| (opa build alone) | ${r.opaBuild.p50.toFixed(1)} | ${r.opaBuild.p90.toFixed(1)} | ${r.opaBuild.p99.toFixed(1)} | ${r.opaBuild.max.toFixed(1)} | | |`,
  ].join('\n');
}
