/**
 * Diagnostic (not part of `npm run bench` or the gate): where the slow binary infers of kserve-infer wait. Starts what
 * the scenario starts (Triton, the bare proxy, gateway[none], the gateway with every stage on), sends binary infers
 * one at a time, interleaved across targets, and after each one reads the scheduler statistics of every thread of
 * every process involved (/proc/<pid>/task/<tid>/schedstat: CPU time, run-queue wait, both in ns). Per infer it keeps,
 * per group of processes (triton: tritonserver, its Python backend stubs and PyTriton's Python processes; the hop:
 * proxy or gateway; bench: this process), the CPU time and the run-queue wait accrued during it; the summary compares
 * the infers over SLOW_MS with the others. Linux only. The /proc reads (~1-3 ms) happen between infers, outside the
 * measured time, so every infer starts after a pause of that length: say so next to any number.
 *
 *   node bench/kserve-sched.ts [--requests N per target (400)] [--gap-ms G (0: a pause before every other cycle of infers)]
 *                              [--variants gateway,gateway[none],gateway(nice)] [--no-sched] [--json FILE]
 *
 * `gateway(nice)` is the gateway with every stage on whose every thread this script renices to 10 (after start and
 * every 100 infers, for threads started since): what a lower priority of the gateway's threads does to Triton's
 * stalls. With `--gap-ms`, every other cycle of infers (one per target) waits that long before each infer, so that
 * what a process still does after its previous answer (deferred settle work, log and audit writes, GC) is over; the
 * table then has a row per target with and without the pause, same run. `--no-sched` skips the /proc reads (counts only, no pause between infers). `--json`: every infer's record.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg, setPriority } from 'node:os';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { KSERVE_PLAN, SLOW_MS, kserveRequests, setupKServe } from './lib/kserve.ts';
import { median } from './lib/histogram.ts';
import { ROOT } from './lib/targets.ts';
import { availableStages, variants } from './stages.ts';

const { values } = parseArgs({ options: { requests: { type: 'string' }, 'gap-ms': { type: 'string' }, variants: { type: 'string' }, json: { type: 'string' }, 'no-sched': { type: 'boolean' } } });
const sched = values['no-sched'] !== true;
const requests = Number(values.requests ?? 400);
const gapMs = Number(values['gap-ms'] ?? 0);
const stages = availableStages(ROOT);
const wantedVariants = values.variants?.split(',') ?? ['gateway', 'gateway[none]'];
const vs = [...variants(stages, { each: false, none: true }), { label: 'gateway(nice)', stages }].filter((v) => wantedVariants.includes(v.label));

interface Proc {
  readonly pid: number;
  readonly ppid: number;
  readonly comm: string;
  readonly cmdline: string;
}

function procs(): Map<number, Proc> {
  const out = new Map<number, Proc>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const ppid = Number(stat.slice(close + 2).split(' ')[1]);
      const cmdline = readFileSync(`/proc/${d}/cmdline`, 'utf8').replaceAll('\0', ' ');
      out.set(Number(d), { pid: Number(d), ppid, comm: stat.slice(stat.indexOf('(') + 1, close), cmdline });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Descendants of `root` (itself excluded). */
function descendants(all: Map<number, Proc>, root: number): Proc[] {
  const out: Proc[] = [];
  const frontier = [root];
  while (frontier.length > 0) {
    const p = frontier.pop()!;
    for (const c of all.values()) {
      if (c.ppid === p) {
        out.push(c);
        frontier.push(c.pid);
      }
    }
  }
  return out;
}

/** The group a process of this run belongs to, by what it runs. */
function groupOf(p: Proc, labels: readonly string[]): string | undefined {
  if (p.cmdline.includes('bare-proxy.ts')) return 'proxy';
  if (p.cmdline.includes('tollgate.mjs')) {
    // The gateway's config directory is <work>/<label, sanitised>/config.
    for (const l of labels) if (p.cmdline.includes(`/${l.replace(/[^a-z0-9-]+/gi, '_')}/config`)) return l;
    return 'gateway?';
  }
  if (/triton|python/.test(p.cmdline)) return 'triton';
  return undefined;
}

interface Thread {
  readonly path: string;
  readonly group: string;
  readonly name: string;
}

function threadsOf(pid: number, group: string): Thread[] {
  try {
    return readdirSync(`/proc/${pid}/task`).map((tid) => {
      let name = '?';
      try {
        name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      } catch {
        // gone
      }
      return { path: `/proc/${pid}/task/${tid}/schedstat`, group, name: `${group}:${name}` };
    });
  } catch {
    return [];
  }
}

/** CPU and run-queue wait (ns) per thread path. */
function snapshot(threads: readonly Thread[]): Map<string, [number, number]> {
  const out = new Map<string, [number, number]>();
  for (const t of threads) {
    try {
      const [run, wait] = readFileSync(t.path, 'utf8').split(' ');
      out.set(t.path, [Number(run), Number(wait)]);
    } catch {
      // a thread that ended
    }
  }
  return out;
}

const setup = await setupKServe(vs, { ...KSERVE_PLAN, warmup: 30 }, { logLevel: 'info', withProxy: true });
const labels = setup.targets.map((t) => t.label);
const listThreads = (): Thread[] => {
  const all = procs();
  const out: Thread[] = threadsOf(process.pid, 'bench');
  for (const p of descendants(all, process.pid)) {
    const g = groupOf(p, labels);
    if (g !== undefined) out.push(...threadsOf(p.pid, g));
  }
  for (const t of out) {
    if (t.group !== 'gateway(nice)') continue;
    try {
      setPriority(Number(t.path.split('/')[4]), 10);
    } catch {
      // a thread that ended
    }
  }
  return out;
};

// The binary request of the scenario (the same bytes bench/lib/kserve.ts sends).
const { body, headers } = kserveRequests(KSERVE_PLAN).binary;

interface Sample {
  readonly target: string;
  readonly gap: boolean;
  readonly ms: number;
  /** Per group: [CPU ms, run-queue wait ms] accrued during the infer. */
  readonly groups: Record<string, [number, number]>;
  /** The threads that waited longest during it (name, wait ms). */
  readonly topWait: Array<[string, number]>;
}

const samples: Sample[] = [];
const load: number[] = [loadavg()[0]!];
try {
  let threads = listThreads();
  process.stderr.write(`kserve-sched: ${threads.length} threads watched; targets ${labels.join(', ')}; loadavg ${load[0]!.toFixed(2)}\n`);
  let before = snapshot(threads);
  for (let i = 0; i < requests; i++) {
    if (i % 100 === 99) {
      threads = listThreads();
      before = snapshot(threads);
      load.push(loadavg()[0]!);
    }
    for (let k = 0; k < setup.targets.length; k++) {
      const t = setup.targets[(i + k) % setup.targets.length]!;
      const gap = gapMs > 0 && i % 2 === 1;
      if (gap) await new Promise((r) => setTimeout(r, gapMs));
      if (sched) before = snapshot(threads);
      const start = performance.now();
      const res = await (t as { pool: Pool }).pool.request({ method: 'POST', path: (t as { path: string }).path, headers: { ...headers, ...(t as { headers: Record<string, string> }).headers }, body });
      await res.body.arrayBuffer();
      const ms = performance.now() - start;
      const after = sched ? snapshot(threads) : before;
      if (res.statusCode !== 200) throw new Error(`${t.label}: status ${res.statusCode}`);
      const groups: Record<string, [number, number]> = {};
      const waits: Array<[string, number]> = [];
      for (const th of threads) {
        const a = after.get(th.path);
        const b = before.get(th.path);
        if (a === undefined || b === undefined) continue;
        const g = (groups[th.group] ??= [0, 0]);
        g[0] += (a[0] - b[0]) / 1e6;
        g[1] += (a[1] - b[1]) / 1e6;
        if (a[1] - b[1] > 500_000) waits.push([th.name, (a[1] - b[1]) / 1e6]);
      }
      waits.sort((x, y) => y[1] - x[1]);
      samples.push({ target: t.label, gap, ms, groups, topWait: waits.slice(0, 4) });
    }
  }
} finally {
  await setup.teardown();
}
load.push(loadavg()[0]!);

const f = (v: number): string => v.toFixed(2);
process.stdout.write(`kserve-sched: ${requests} binary infers per target, gap ${gapMs} ms, loadavg ${load.map(f).join(' -> ')}\n\n`);
process.stdout.write(`| target | infers | p50 | over ${SLOW_MS} ms | group: median CPU / wait ms, normal infers | same, slow infers (mean) |\n|---|---|---|---|---|---|\n`);
const rows = gapMs > 0 ? labels.flatMap((l) => [[l, false] as const, [l, true] as const]) : labels.map((l) => [l, false] as const);
for (const [label, gap] of rows) {
  const mine = samples.filter((s) => s.target === label && s.gap === gap);
  const slow = mine.filter((s) => s.ms > SLOW_MS);
  const fast = mine.filter((s) => s.ms <= SLOW_MS);
  const groups = [...new Set(mine.flatMap((s) => Object.keys(s.groups)))].filter((g) => g === 'triton' || g === 'bench' || g === label);
  const med = (xs: Sample[], g: string, i: 0 | 1): string => f(median(xs.map((s) => s.groups[g]?.[i] ?? 0)));
  const mean = (xs: Sample[], g: string, i: 0 | 1): string => (xs.length === 0 ? '-' : f(xs.reduce((n, s) => n + (s.groups[g]?.[i] ?? 0), 0) / xs.length));
  process.stdout.write(
    `| ${label}${gap ? ` (after ${gapMs} ms)` : ''} | ${mine.length} | ${f(median(mine.map((s) => s.ms)))} | ${slow.length} | ${groups.map((g) => `${g} ${med(fast, g, 0)} / ${med(fast, g, 1)}`).join('; ')} | ${groups.map((g) => `${g} ${mean(slow, g, 0)} / ${mean(slow, g, 1)}`).join('; ')} |\n`,
  );
}
process.stdout.write('\nslowest infers (ms; per group CPU/wait ms; threads that waited longest):\n');
for (const s of [...samples].sort((a, b) => b.ms - a.ms).slice(0, 20)) {
  process.stdout.write(`  ${s.target} ${f(s.ms)}: ${Object.entries(s.groups).map(([g, [c, w]]) => `${g} ${f(c)}/${f(w)}`).join(', ')} | ${s.topWait.map(([n, w]) => `${n} ${f(w)}`).join(', ')}\n`);
}
if (values.json !== undefined) writeFileSync(values.json, JSON.stringify({ requests, gapMs, load, samples }));
// The limits stage's Redis (bench/stages.ts) is a child of this process and keeps it alive: exit as bench/run.ts does
// (the exit hook of bench/lib/procs.ts kills the children).
process.exit(0);
