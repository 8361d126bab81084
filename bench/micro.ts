/**
 * `npm run bench:micro [-- filter]`: runs every bench/micro/*.ts (each exports `benches: MicroBench[]`) with a
 * fixed iteration count after a warm-up, and reports ns/op. Catches regressions in hot functions that end-to-end
 * noise hides. Runs in this process, one bench at a time; results are printed (and written with --out FILE).
 */
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from './lib/targets.ts';
import { commitInfo } from './lib/results.ts';

/** One micro-benchmark. `fn` runs synchronously unless it returns a promise (then each call is awaited). */
export interface MicroBench {
  name: string;
  setup?(): Promise<void> | void;
  fn(): unknown;
  /** Measured iterations (default 100 000); the warm-up is a tenth of it, at least 1 000. */
  iterations?: number;
}

export interface MicroResult {
  readonly file: string;
  readonly name: string;
  readonly iterations: number;
  readonly nsPerOp: number;
  /** Spread over 5 equal slices of the measured iterations (min..max ns/op). */
  readonly minNs: number;
  readonly maxNs: number;
}

let sink: unknown;

function isPromise(v: unknown): v is Promise<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as Promise<unknown>).then === 'function';
}

async function timeSlice(b: MicroBench, n: number): Promise<number> {
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const r = b.fn();
    sink = isPromise(r) ? await r : r;
  }
  return Number(process.hrtime.bigint() - start) / n;
}

export async function runMicro(b: MicroBench): Promise<Omit<MicroResult, 'file'>> {
  await b.setup?.();
  const iterations = b.iterations ?? 100_000;
  await timeSlice(b, Math.max(1_000, Math.floor(iterations / 10)));
  const slices: number[] = [];
  const per = Math.max(1, Math.floor(iterations / 5));
  for (let s = 0; s < 5; s++) slices.push(await timeSlice(b, per));
  const r = (v: number): number => Math.round(v * 10) / 10;
  return { name: b.name, iterations: per * 5, nsPerOp: r(slices.reduce((a, v) => a + v, 0) / slices.length), minNs: r(Math.min(...slices)), maxNs: r(Math.max(...slices)) };
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const outAt = args.indexOf('--out');
  const out = outAt >= 0 ? args.splice(outAt, 2)[1] : undefined;
  const filter = args[0];
  const dir = join(ROOT, 'bench/micro');
  const results: MicroResult[] = [];
  process.stdout.write('| file | bench | ns/op | spread (min..max of 5 slices) | iterations |\n|---|---|---|---|---|\n');
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts')).sort()) {
    const mod = (await import(pathToFileURL(join(dir, file)).href)) as { benches?: MicroBench[] };
    if (!Array.isArray(mod.benches)) throw new Error(`bench/micro/${file} does not export benches: MicroBench[]`);
    for (const b of mod.benches) {
      if (filter && !`${file}/${b.name}`.includes(filter)) continue;
      const r = { file, ...(await runMicro(b)) };
      results.push(r);
      process.stdout.write(`| ${file} | ${r.name} | ${r.nsPerOp} | ${r.minNs}..${r.maxNs} | ${r.iterations} |\n`);
    }
  }
  if (sink === Symbol.for('never')) process.stdout.write('');
  if (out) writeFileSync(out, `${JSON.stringify({ node: process.version, commit: commitInfo(), at: new Date().toISOString(), results }, null, 1)}\n`);
}
