/**
 * `node bench/alloc.ts [--scenario S] [--baseline REV] [--seconds S] [--connections C] [--without a,b] [--semi MB]`:
 * bytes the gateway allocates per request, from V8's own GC trace (--trace-gc-nvp "allocated=" summed over the
 * measured windows, divided by the requests served in them), and the bytes its scavenges promoted to the old
 * generation per request ("promoted=": what outlived two young-generation collections; it becomes the old
 * generation's garbage that RSS after a load is made of). Unlike latency and CPU time, these barely depend on what else
 * runs on the machine, so they show a hot-path change (closures, promises, transient objects, work held for a batch)
 * even on a busy shared machine. `--without a,b`: a variant with every stage but each named one (what one stage
 * allocates and keeps). `--semi MB`: the young generation's semi-space (default 1: frequent scavenges account for a
 * window closely; 4 is what `npm start` runs, the number to read promotion at).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { SCENARIOS } from './scenarios.ts';
import { availableStages, variants, type Variant } from './stages.ts';
import { addBaseline } from './lib/baseline.ts';
import { runClosed } from './lib/load.ts';
import { setupScenario } from './lib/runner.ts';
import { ROOT } from './lib/targets.ts';

const { values } = parseArgs({
  options: { scenario: { type: 'string' }, baseline: { type: 'string' }, seconds: { type: 'string' }, connections: { type: 'string' }, without: { type: 'string' }, semi: { type: 'string' } },
});
const scenario = SCENARIOS.find((s) => s.name === (values.scenario ?? 'call-small'));
if (!scenario) throw new Error(`unknown scenario ${values.scenario}`);
const seconds = Number(values.seconds ?? 4);
const connections = Number(values.connections ?? 4);
const stages = availableStages(ROOT);
// A small new space makes scavenges frequent, so the GCs inside a measured window account for its allocation closely.
const traced = ['--trace-gc-nvp', `--max-semi-space-size=${Number(values.semi ?? 1)}`];
const vs: Variant[] = variants(stages, { each: false }).map((v) => ({ ...v, nodeOptions: traced }));
for (const n of values.without?.split(',') ?? []) {
  if (!stages.some((s) => s.name === n)) throw new Error(`--without ${n}: not a stage (stages: ${stages.map((s) => s.name).join(', ')})`);
  // A stage others need goes with them (no policy without identity).
  vs.push({ label: `gateway(-${n})`, stages: stages.filter((s) => s.name !== n && !s.needs?.includes(n)), nodeOptions: traced });
}
const baseline = values.baseline ? addBaseline(values.baseline) : undefined;
if (baseline) vs.push({ label: `gateway@${baseline.rev}`, stages: availableStages(baseline.root), root: baseline.root, nodeOptions: traced });

try {
  const setup = await setupScenario(scenario, { variants: vs, logLevel: 'info', proxyPoolConnections: 16, withProxy: false });
  const served = new Map<string, number>();
  const windows = new Map<string, Array<[number, number]>>();
  try {
    // Warm up (JIT), then two passes, interleaved, so every gateway sees the same machine conditions.
    for (let pass = 0; pass < 3; pass++) {
      for (const t of setup.targets.filter((t) => t.kind === 'gateway')) {
        const gw = setup.gateways.find((g) => g.label === t.label)!;
        const start = Date.now() - gw.spawnedAt;
        const r = await runClosed(t.template, connections, pass === 0 ? 1 : seconds / 2);
        const end = Date.now() - gw.spawnedAt;
        if (r.errors > 0) throw new Error(`${t.label}: ${r.errors} errors`);
        if (pass === 0) continue;
        served.set(t.label, (served.get(t.label) ?? 0) + r.requests);
        windows.set(t.label, [...(windows.get(t.label) ?? []), [start, end]]);
      }
    }
    await Promise.all(setup.gateways.map((g) => g.child.stop()));
    process.stdout.write(`| gateway | requests | bytes allocated / request | bytes promoted / request | GCs in the windows |\n|---|---|---|---|---|\n`);
    for (const g of setup.gateways) {
      const log = readFileSync(g.logFile, 'utf8');
      let bytes = 0;
      let promoted = 0;
      let gcs = 0;
      const within = windows.get(g.label) ?? [];
      for (const m of log.matchAll(/\s(\d+) ms: pause=[^\n]*/g)) {
        const at = Number(m[1]);
        if (!within.some(([a, b]) => at > a && at <= b)) continue;
        bytes += Number(/ allocated=(\d+)/.exec(m[0])?.[1] ?? 0);
        promoted += Number(/ promoted=(\d+)/.exec(m[0])?.[1] ?? 0);
        gcs++;
      }
      const n = served.get(g.label) ?? 0;
      process.stdout.write(`| ${g.label} | ${n} | ${n ? Math.round(bytes / n) : '-'} | ${n ? Math.round(promoted / n) : '-'} | ${gcs} |\n`);
    }
  } finally {
    await setup.teardown();
  }
} finally {
  baseline?.remove();
}
