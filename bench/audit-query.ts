/**
 * Audit query over a 10-million-record log (`npm run bench:audit`).
 *
 * Generates the log once with the real writer (chained, signed, indexed segments) into a cache directory outside the
 * repo (default ~/.cache/tollgate/bench-audit, or $TOLLGATE_BENCH_AUDIT_DIR), then times typical queries, in process
 * (queryLog) and through the CLI as an operator runs it (`tollgate audit query`, Node start-up included). Results go
 * to stdout and bench/results/audit-query.json. Options: --records N (default 10000000), --rounds N (default 3),
 * --only console (only the console's queries).
 *
 * Data: 1,000 principals in 50 teams, 200 tools on 20 servers, 5% denied, over 30 days (~3.9 calls/s on average);
 * calls come in tasks of 5 sharing a trace id, and one call in 4 is a model call with token usage and a cost.
 * The console's queries (a task's chain by trace id, the newest calls and denials, usage charts per team and per
 * agent over 30 days) are timed too, in process (what the console's API does per request).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { countLog, latestRecords, queryLog, type QueryFilter, type QueryStats } from '../src/audit/query.ts';
import { usageSeries } from '../src/audit/usage.ts';
import type { Call } from '../src/core/call.ts';
import { makeCall, openWriter } from '../test/helpers/audit-calls.ts';

const { values } = parseArgs({ options: { records: { type: 'string', default: '10000000' }, rounds: { type: 'string', default: '3' }, only: { type: 'string' }, out: { type: 'string', default: 'bench/results/audit-query.json' } } });
const OUT = values.out;
/** `--only console`: only the console's queries (the CLI cases take minutes on a loaded machine). */
const ONLY_CONSOLE = values.only === 'console';
const RECORDS = Number(values.records);
const ROUNDS = Number(values.rounds);
const ROOT = process.env.TOLLGATE_BENCH_AUDIT_DIR ?? join(homedir(), '.cache', 'tollgate', 'bench-audit');
// The directory name carries the format version: a change to the log or index format regenerates the data.
const DATA = join(ROOT, `v3-${RECORDS}`);
const DIR = join(DATA, 'data', 'audit');
const MARKER = join(DATA, 'complete.json');
const T0 = Date.parse('2026-10-01T00:00:00Z');
const SPAN = 30 * 86_400_000;
const PRINCIPALS = 1000;
/** GNU time, for the CLI's CPU time (absent: only wall time is reported). */
const TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;
const TOOLS = 200;

const principal = (i: number): string => `spiffe://corp.example/ns/team-${i % 50}/sa/agent-${i}`;
const tool = (i: number): string => `srv-${i % 20}__tool-${i}`;

/** The trace id of task `k` (five consecutive calls): 32 hex digits, first 32 bits well spread. */
const traceOf = (k: number): string => (Math.imul(k + 1, 0x9e3779b1) >>> 0).toString(16).padStart(8, '0') + k.toString(16).padStart(24, '0');

/** Deterministic pseudo-random stream (xorshift32), so every run generates the same log. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

async function generate(): Promise<void> {
  rmSync(DATA, { recursive: true, force: true });
  mkdirSync(DATA, { recursive: true });
  const { writer } = await openWriter(DATA, { sync: 'none', buffer: { maxRecords: 1 << 20 }, segment: { maxRecords: 50_000, maxAgeMs: 0 } });
  const rand = rng(42);
  const started = performance.now();
  const batch = 20_000;
  for (let i = 0; i < RECORDS; i += batch) {
    for (let j = i; j < Math.min(RECORDS, i + batch); j++) {
      const p = Math.floor(rand() * PRINCIPALS);
      const t = Math.floor(rand() * TOOLS);
      const deny = rand() < 0.05;
      const c: Call = makeCall({
        id: `call-${j}`,
        time: T0 + Math.floor((j / RECORDS) * SPAN),
        principal: principal(p),
        tool: tool(t),
        allow: !deny,
        args: { path: `/data/${j % 997}`, limit: j % 100 },
      });
      c.upstream = `srv-${t % 20}`;
      c.scratch.set('trace', { traceId: traceOf(Math.floor(j / 5)) });
      if (j % 4 === 0) c.usage = { inputTokens: 200 + (j % 800), outputTokens: 50 + (j % 300), cost: 0.0001 * (1 + (j % 17)) };
      writer.enqueue(c, 1 + (j % 50) / 10);
    }
    while (writer.pending > 0) await new Promise((r) => setTimeout(r, 1));
    if ((i / batch) % 50 === 0) process.stderr.write(`\r  generated ${(i + batch).toLocaleString()} / ${RECORDS.toLocaleString()}`);
  }
  await writer.close();
  const secs = (performance.now() - started) / 1000;
  process.stderr.write(`\n  generated ${RECORDS.toLocaleString()} records in ${secs.toFixed(1)} s\n`);
  writeFileSync(MARKER, JSON.stringify({ records: RECORDS, generatedIn: secs, at: new Date().toISOString() }));
}

interface Case {
  readonly name: string;
  readonly filter: QueryFilter;
  readonly cli: string[];
}

const day = (d: number): number => T0 + d * 86_400_000;
const iso = (t: number): string => new Date(t).toISOString();
const CASES: Case[] = [
  { name: 'one principal, all 30 days', filter: { principal: principal(123) }, cli: ['--principal', principal(123)] },
  { name: 'one principal, one day', filter: { principal: principal(123), since: day(10), until: day(11) }, cli: ['--principal', principal(123), '--since', iso(day(10)), '--until', iso(day(11))] },
  { name: 'one tool, denied, all 30 days', filter: { target: tool(77), decision: 'deny' }, cli: ['--tool', tool(77), '--decision', 'deny'] },
  { name: 'one team (principal prefix), denied, one week', filter: { principal: 'spiffe://corp.example/ns/team-7/*', decision: 'deny', since: day(3), until: day(10) }, cli: ['--principal', 'spiffe://corp.example/ns/team-7/*', '--decision', 'deny', '--since', iso(day(3)), '--until', iso(day(10))] },
  { name: 'everything in one hour', filter: { since: day(20), until: day(20) + 3_600_000 }, cli: ['--since', iso(day(20)), '--until', iso(day(20) + 3_600_000)] },
  { name: 'all denials (count only, 500k matches)', filter: { decision: 'deny' }, cli: ['--decision', 'deny', '--count'] },
  { name: 'all denials, every record printed (~290 MB)', filter: { decision: 'deny' }, cli: ['--decision', 'deny'] },
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  if (!existsSync(MARKER)) {
    process.stderr.write(`generating a ${RECORDS.toLocaleString()}-record audit log in ${DATA} (once)\n`);
    await generate();
  }
  const info = JSON.parse(readFileSync(MARKER, 'utf8')) as { records: number };
  process.stdout.write(`audit query over ${info.records.toLocaleString()} records (${DIR})\n`);
  const results: Array<Record<string, unknown>> = [];
  for (const c of ONLY_CONSOLE ? [] : CASES) {
    const inProcess: number[] = [];
    const inProcessCpu: number[] = [];
    const viaCli: number[] = [];
    const viaCliCpu: number[] = [];
    let matched = 0;
    let stats: QueryStats = { segments: 0, skipped: 0, scanned: 0, candidates: 0, matched: 0 };
    for (let r = 0; r < ROUNDS; r++) {
      stats = { segments: 0, skipped: 0, scanned: 0, candidates: 0, matched: 0 };
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      let n = 0;
      if (c.cli.includes('--count')) n = countLog(DIR, c.filter, stats);
      else for (const _ of queryLog(DIR, c.filter, stats)) n++;
      const dc = process.cpuUsage(c0);
      inProcess.push(performance.now() - t0);
      inProcessCpu.push((dc.user + dc.system) / 1000);
      matched = n;
      const t1 = performance.now();
      // Through /usr/bin/time when present: the CLI's own CPU time (start-up included), steadier than its wall time on
      // a shared machine, where waiting for a core and for the disk is most of the wall time.
      const cpuFile = join(tmpdir(), `tollgate-audit-cli-${process.pid}.time`);
      const out = TIME
        ? execFileSync(TIME, ['-f', '%U %S', '-o', cpuFile, process.execPath, 'bin/tollgate.mjs', 'audit', 'query', DIR, ...c.cli], { maxBuffer: 1 << 30 })
        : execFileSync(process.execPath, ['bin/tollgate.mjs', 'audit', 'query', DIR, ...c.cli], { maxBuffer: 1 << 30 });
      viaCli.push(performance.now() - t1);
      if (TIME) {
        const [u, sy] = readFileSync(cpuFile, 'utf8').trim().split(/\s+/).slice(-2).map(Number);
        viaCliCpu.push((u! + sy!) * 1000);
        rmSync(cpuFile, { force: true });
      }
      const cliCount = c.cli.includes('--count') ? Number(out.toString().trim()) : out.toString().split('\n').filter(Boolean).length;
      if (cliCount !== n) throw new Error(`${c.name}: CLI returned ${cliCount} records, in-process ${n}`);
    }
    const row = {
      query: c.name,
      matched,
      inProcessMs: Math.round(median(inProcess)),
      inProcessCpuMs: Math.round(median(inProcessCpu)),
      cliMs: Math.round(median(viaCli)),
      ...(viaCliCpu.length > 0 ? { cliCpuMs: Math.round(median(viaCliCpu)) } : {}),
      segmentsSkipped: stats.skipped,
      segmentsSearched: stats.scanned,
      linesRead: stats.candidates,
    };
    results.push(row);
    process.stdout.write(
      `  ${c.name.padEnd(48)} ${String(matched).padStart(7)} matches  in-process ${String(row.inProcessMs).padStart(5)} ms (CPU ${row.inProcessCpuMs})  CLI ${String(row.cliMs).padStart(5)} ms (CPU ${row.cliCpuMs ?? '-'})  (segments ${stats.skipped} skipped / ${stats.scanned} searched, ${stats.candidates} lines read)\n`,
    );
  }
  const consoleResults = consoleCases();
  mkdirSync('bench/results', { recursive: true });
  writeFileSync(OUT, `${JSON.stringify({ records: info.records, rounds: ROUNDS, at: new Date().toISOString(), loadavg: readFileSync('/proc/loadavg', 'utf8').trim(), results, console: consoleResults }, null, 2)}\n`);
}

/** The operator console's queries (src/console/api.ts), timed in process. */
function consoleCases(): Array<Record<string, unknown>> {
  const team = (p: string): string | undefined => /\/ns\/([^/]+)\//.exec(p)?.[1];
  const task = Math.floor(RECORDS / 5 / 2);
  const cases: Array<{ name: string; run: () => number }> = [
    { name: 'chain: one task by trace id (5 calls)', run: () => [...queryLog(DIR, { trace: traceOf(task), kinds: ['call', 'decision'] })].length },
    { name: 'live: newest 100 calls', run: () => latestRecords(DIR, { kinds: ['call'] }, 100).length },
    { name: 'denials: newest 100', run: () => latestRecords(DIR, { kinds: ['call', 'decision'], decision: 'deny' }, 100).length },
    { name: 'denials: newest 100 of one agent', run: () => latestRecords(DIR, { kinds: ['call', 'decision'], decision: 'deny', principal: principal(123) }, 100).length },
    { name: 'usage: 30 days x 60 buckets, per team', run: () => usageSeries(DIR, { since: T0, until: T0 + SPAN, buckets: 60, groupOf: team }).buckets.reduce((a, b) => a + b.calls, 0) },
    { name: 'usage: 30 days x 60 buckets, one agent', run: () => usageSeries(DIR, { since: T0, until: T0 + SPAN, buckets: 60, principal: principal(123) }).buckets.reduce((a, b) => a + b.calls, 0) },
    { name: 'usage: one day x 48 buckets, per agent', run: () => usageSeries(DIR, { since: day(12), until: day(13), buckets: 48 }).buckets.reduce((a, b) => a + b.calls, 0) },
  ];
  const out: Array<Record<string, unknown>> = [];
  process.stdout.write('console queries (in process)\n');
  for (const c of cases) {
    const times: number[] = [];
    const cpu: number[] = [];
    let n = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      n = c.run();
      const dc = process.cpuUsage(c0);
      times.push(performance.now() - t0);
      cpu.push((dc.user + dc.system) / 1000);
    }
    const row = { query: c.name, matched: n, medianMs: Math.round(median(times)), maxMs: Math.round(Math.max(...times)), cpuMs: Math.round(median(cpu)) };
    out.push(row);
    process.stdout.write(`  ${c.name.padEnd(48)} ${String(n).padStart(9)} records  median ${String(row.medianMs).padStart(5)} ms  max ${String(row.maxMs).padStart(5)} ms  CPU ${row.cpuMs} ms\n`);
  }
  return out;
}

await main();
