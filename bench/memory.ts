/**
 * `npm run bench:memory [-- --seconds S] [--sessions N] [--semi 1,4] [--baseline REV]`: what the gateway costs in
 * memory and start-up, with every available stage on (call-small's federation):
 * - cold start: process spawned -> /healthz answers (config loaded, guards built, listener up), polled every 5 ms;
 *   and the same for `npm start` (the default config in routes/, the stdio demo upstream included), three times each;
 * - resident memory (VmRSS, /proc) when ready, after a 32-connection closed-loop load of S seconds (default 20), and
 *   after N more live MCP sessions (`--sessions N`, default 0: initialize through the gateway, each kept open; one
 *   principal, so the gateway's mcp.limits.sessionsPerPrincipal (64) refuses the rest: recorded, not an error);
 * - the same with the young generation capped (`--semi`: --max-semi-space-size values in MB), and for another
 *   revision (`--baseline REV`), side by side.
 * Results: stdout and bench/results/memory-<time>-<commit>.json.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { SCENARIOS } from './scenarios.ts';
import { availableStages, type Variant } from './stages.ts';
import { addBaseline } from './lib/baseline.ts';
import { runClosed } from './lib/load.ts';
import { commitInfo } from './lib/results.ts';
import { setupScenario } from './lib/runner.ts';
import { ROOT } from './lib/targets.ts';
import { freePort } from './lib/procs.ts';

const { values } = parseArgs({
  options: { seconds: { type: 'string' }, sessions: { type: 'string' }, semi: { type: 'string' }, baseline: { type: 'string' }, 'no-start': { type: 'boolean' } },
});
const seconds = Number(values.seconds ?? 20);
const sessions = Number(values.sessions ?? 0);
const scenario = SCENARIOS.find((s) => s.name === 'call-small')!;
const stages = availableStages(ROOT);

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 102.4) / 10 : Number.NaN;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** `npm start` as a user runs it (default config, stdio demo upstream): ms from spawn to /healthz answering 200. */
async function npmStartReadyMs(): Promise<number> {
  const port = await freePort();
  const t0 = performance.now();
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', 'bin/tollgate.mjs', 'serve'], {
    cwd: ROOT,
    env: { ...process.env, PORT: String(port), TOLLGATE_LOG_LEVEL: 'warn' },
    stdio: 'ignore',
  });
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`npm start exited with ${child.exitCode}`);
      try {
        const r = await fetch(`http://127.0.0.1:${port}/healthz`);
        await r.arrayBuffer();
        if (r.ok) return performance.now() - t0;
      } catch {
        // not listening yet
      }
      if (performance.now() - t0 > 30_000) throw new Error('npm start not ready after 30 s');
      await new Promise((r) => setTimeout(r, 5));
    }
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
}

/** Opens `n` MCP sessions through the gateway (initialize + notifications/initialized), `conc` at a time. */
async function openSessions(url: string, headers: Readonly<Record<string, string>>, n: number, conc = 16): Promise<number> {
  const u = new URL(url);
  const pool = new Pool(u.origin, { connections: conc });
  const h: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (!/^(mcp-session-id|mcp-protocol-version|content-length|host)$/i.test(k)) h[k] = v;
  const init = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'bench-memory', version: '1' } } });
  let opened = 0;
  let next = 0;
  let refused: number | undefined;
  const worker = async (): Promise<void> => {
    while (next < n) {
      next++;
      const r = await pool.request({ path: u.pathname, method: 'POST', headers: h, body: init });
      await r.body.text();
      const sid = r.headers['mcp-session-id'];
      if (r.statusCode !== 200 || typeof sid !== 'string') {
        refused = r.statusCode;
        next = n;
        return;
      }
      const n2 = await pool.request({ path: u.pathname, method: 'POST', headers: { ...h, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-06-18' }, body: '{"jsonrpc":"2.0","method":"notifications/initialized"}' });
      await n2.body.text();
      opened++;
    }
  };
  await Promise.all(Array.from({ length: conc }, worker));
  await pool.close();
  if (refused !== undefined) process.stderr.write(`sessions: ${opened} opened, then refused with ${refused} (per-principal cap)\n`);
  return opened;
}

const vs: Variant[] = [{ label: 'gateway', stages }];
for (const mb of (values.semi ?? '').split(',').filter(Boolean)) vs.push({ label: `gateway(semi ${mb} MB)`, stages, nodeOptions: [`--max-semi-space-size=${mb}`] });
const baseline = values.baseline ? addBaseline(values.baseline) : undefined;
if (baseline) vs.push({ label: `gateway@${baseline.rev}`, stages: availableStages(baseline.root), root: baseline.root });

const rows: Array<Record<string, unknown>> = [];
try {
  const starts: number[] = [];
  if (!values['no-start']) for (let i = 0; i < 3; i++) starts.push(Math.round(await npmStartReadyMs()));
  const setup = await setupScenario(scenario, { variants: vs, logLevel: 'info', proxyPoolConnections: 16, withProxy: false });
  try {
    for (const t of setup.targets.filter((x) => x.kind === 'gateway')) {
      const gw = setup.gateways.find((g) => g.label === t.label)!;
      const row: Record<string, unknown> = { label: t.label, readyMs: gw.readyMs, rssReadyMb: rssMb(t.pid) };
      const r = await runClosed(t.template, 32, seconds);
      if (r.errors > 0) throw new Error(`${t.label}: ${r.errors} errors under load`);
      row.requests = r.requests;
      row.rssAfterLoadMb = rssMb(t.pid);
      await new Promise((res) => setTimeout(res, 2000));
      row.rssAfterLoadIdle2sMb = rssMb(t.pid);
      if (sessions > 0) {
        const before = rssMb(t.pid);
        row.sessions = await openSessions(t.template.url, t.template.headers, sessions);
        row.rssAfterSessionsMb = rssMb(t.pid);
        row.kbPerSession = Math.round(((rssMb(t.pid) - before) * 1024 * 10) / sessions) / 10;
      }
      rows.push(row);
      process.stdout.write(`${JSON.stringify(row)}\n`);
    }
  } finally {
    await setup.teardown();
  }
  const result = {
    kind: 'memory',
    at: new Date().toISOString(),
    commit: commitInfo(),
    node: process.version,
    stages: stages.map((s) => s.name),
    seconds,
    npmStartReadyMs: { median: starts.length ? median(starts) : undefined, runs: starts },
    gateways: rows,
  };
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  const file = join(ROOT, 'bench/results', `memory-${result.at.replace(/[:.]/g, '-')}-${String(result.commit.sha ?? '').slice(0, 8)}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`npm start ready (stdio demo upstream included): median ${result.npmStartReadyMs.median} ms (${starts.join(', ')})\nresults: ${file}\n`);
} finally {
  baseline?.remove();
}
process.exit(0);
