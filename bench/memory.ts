/**
 * `npm run bench:memory [-- --seconds S] [--sessions N] [--principals P] [--semi 1,4] [--node-options "FLAGS"]...
 *  [--rounds R] [--baseline REV] [--no-start] [--out FILE]`: what the gateway costs in memory and start-up, with every
 * available stage on (call-small's federation):
 * - cold start of `tollgate serve` with the default config in routes/ (what `npm start` runs: the stdio demo upstream,
 *   a Rego policy directory, the dev trust domain): spawn -> /healthz answering (listener up) and -> the admin
 *   listener's /readyz answering 200 (config loaded, upstreams reachable), polled every 5 ms, with the process's CPU
 *   time at that moment; three times, for this checkout (and the baseline's);
 * - resident memory (VmRSS, /proc) when ready, after a 32-connection closed-loop load of S seconds (default 20), 2 s
 *   later, and after N more live MCP sessions (`--sessions N`: initialize + notifications/initialized through the
 *   gateway, each kept open), spread over P principals (`--principals P`, default 1; each with its own JWT-SVID, so
 *   mcp.limits.sessionsPerPrincipal (64) is not what stops them), then the same load again with them open; the
 *   gateway's CPU time per request of each load (per-call cost against the number of live sessions);
 * - the same for each variant: the young generation capped (`--semi`: --max-semi-space-size values in MB), any node
 *   flags and NAME=VALUE environment words (`--node-options="MALLOC_ARENA_MAX=2 --flag"`, repeatable), another revision (`--baseline REV`); `--rounds R` starts every variant R
 *   times (a fresh process each round, the order rotating) and reports medians with (min..max).
 * Results: stdout and bench/results/memory-<time>-<commit>.json (or --out).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { SCENARIOS } from './scenarios.ts';
import { availableStages, identityHeaders, type Variant } from './stages.ts';
import { addBaseline } from './lib/baseline.ts';
import { runClosed } from './lib/load.ts';
import { commitInfo } from './lib/results.ts';
import { setupScenario } from './lib/runner.ts';
import { ROOT } from './lib/targets.ts';
import { freePort } from './lib/procs.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string' },
    sessions: { type: 'string' },
    principals: { type: 'string' },
    semi: { type: 'string' },
    'node-options': { type: 'string', multiple: true },
    rounds: { type: 'string' },
    baseline: { type: 'string' },
    'no-start': { type: 'boolean' },
    out: { type: 'string' },
  },
});
const seconds = Number(values.seconds ?? 20);
const sessions = Number(values.sessions ?? 0);
const principals = Math.max(1, Number(values.principals ?? 1));
const rounds = Math.max(1, Number(values.rounds ?? 1));
const scenario = SCENARIOS.find((s) => s.name === 'call-small')!;
const stages = availableStages(ROOT);

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 102.4) / 10 : Number.NaN;
}

/** CPU time (user + system, every thread) of a process so far, in ms. */
function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface StartFigures {
  readonly healthMs: number;
  readonly readyMs: number;
  /** CPU time of the gateway process when /readyz first answered 200. */
  readonly cpuMs: number;
  readonly rssReadyMb: number;
}

/**
 * `tollgate serve` with the default config (routes/, stdio demo upstream) in `root`: ms from spawn to /healthz and to
 * the admin listener's /readyz answering 200, and the process's CPU time then.
 */
async function serveStart(root: string): Promise<StartFigures> {
  const port = await freePort();
  const admin = await freePort();
  const t0 = performance.now();
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', 'bin/tollgate.mjs', 'serve'], {
    cwd: root,
    env: { ...process.env, PORT: String(port), TOLLGATE_ADMIN_PORT: String(admin), TOLLGATE_LOG_LEVEL: 'warn', PATH: `${join(root, 'node_modules/.bin')}:${process.env.PATH ?? ''}` },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise((r) => child.once('exit', r));
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-2000)));
  const ok = async (url: string): Promise<boolean> => {
    try {
      const r = await fetch(url);
      await r.arrayBuffer();
      return r.ok;
    } catch {
      return false; // not listening yet
    }
  };
  try {
    let healthMs: number | undefined;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`tollgate serve exited with ${child.exitCode}: ${stderr}`);
      if (healthMs === undefined && (await ok(`http://127.0.0.1:${port}/healthz`))) healthMs = performance.now() - t0;
      if (healthMs !== undefined && (await ok(`http://127.0.0.1:${admin}/readyz`))) {
        return { healthMs: Math.round(healthMs), readyMs: Math.round(performance.now() - t0), cpuMs: cpuMs(child.pid!), rssReadyMb: rssMb(child.pid!) };
      }
      if (performance.now() - t0 > 60_000) throw new Error('tollgate serve not ready after 60 s');
      await new Promise((r) => setTimeout(r, 5));
    }
  } finally {
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
  }
}

/**
 * Opens `n` MCP sessions through the gateway (initialize + notifications/initialized), `conc` at a time, session i as
 * principal i mod P (`headersOf(i mod P)`). Returns how many were opened and the first refusal's status, if any.
 */
async function openSessions(url: string, headersOf: (p: number) => Readonly<Record<string, string>>, n: number, p: number, conc = 16): Promise<{ opened: number; refused?: number }> {
  const u = new URL(url);
  const pool = new Pool(u.origin, { connections: conc });
  const byPrincipal: Array<Record<string, string>> = [];
  for (let i = 0; i < p; i++) {
    const h: Record<string, string> = {};
    for (const [k, v] of Object.entries(headersOf(i))) if (!/^(mcp-session-id|mcp-protocol-version|content-length|host)$/i.test(k)) h[k] = v;
    byPrincipal.push(h);
  }
  const init = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'bench-memory', version: '1' } } });
  let opened = 0;
  let next = 0;
  let refused: number | undefined;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const h = byPrincipal[next % p]!;
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
  if (refused !== undefined) process.stderr.write(`sessions: ${opened} opened, then refused with ${refused}\n`);
  return refused === undefined ? { opened } : { opened, refused };
}

const vs: Variant[] = [{ label: 'gateway', stages }];
for (const mb of (values.semi ?? '').split(',').filter(Boolean)) vs.push({ label: `gateway(semi ${mb} MB)`, stages, nodeOptions: [`--max-semi-space-size=${mb}`] });
// `--node-options "NAME=VALUE --flag"`: words shaped NAME=VALUE go to the gateway's environment (MALLOC_ARENA_MAX=2), the rest to node.
for (const flags of values['node-options'] ?? []) {
  const words = flags.split(/\s+/).filter(Boolean);
  const env = Object.fromEntries(words.filter((w) => /^[A-Z_][A-Z0-9_]*=/.test(w)).map((w) => [w.slice(0, w.indexOf('=')), w.slice(w.indexOf('=') + 1)]));
  vs.push({ label: `gateway(${flags})`, stages, nodeOptions: words.filter((w) => !/^[A-Z_][A-Z0-9_]*=/.test(w)), env });
}
const baseline = values.baseline ? addBaseline(values.baseline) : undefined;
if (baseline) {
  vs.push({ label: `gateway@${baseline.rev}`, stages: availableStages(baseline.root), root: baseline.root });
  // The baseline with the same young-generation caps, so `--semi 4` compares what `npm start` runs in both checkouts.
  for (const mb of (values.semi ?? '').split(',').filter(Boolean)) vs.push({ label: `gateway@${baseline.rev}(semi ${mb} MB)`, stages: availableStages(baseline.root), root: baseline.root, nodeOptions: [`--max-semi-space-size=${mb}`] });
}

type Row = Record<string, unknown> & { label: string };
const rows: Row[] = [];
const starts: Array<StartFigures & { root: string }> = [];
try {
  for (let round = 0; round < rounds; round++) {
    if (!values['no-start']) {
      for (const root of baseline ? [ROOT, baseline.root] : [ROOT]) {
        const s = await serveStart(root);
        starts.push({ root: root === ROOT ? 'this checkout' : `@${baseline!.rev}`, ...s });
        process.stdout.write(`start (${starts.at(-1)!.root}): ${JSON.stringify(s)}\n`);
      }
    }
    // A fresh process per variant and round; the order rotates so no variant always runs first.
    const order = vs.map((_, i) => vs[(i + round) % vs.length]!);
    const setup = await setupScenario(scenario, { variants: order, logLevel: 'info', proxyPoolConnections: 16, withProxy: false });
    try {
      for (const t of setup.targets.filter((x) => x.kind === 'gateway')) {
        const gw = setup.gateways.find((g) => g.label === t.label)!;
        const row: Row = { label: t.label, round, readyMs: gw.readyMs, rssReadyMb: rssMb(t.pid), loadavg: Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]) };
        const c0 = cpuMs(t.pid);
        const r = await runClosed(t.template, 32, seconds);
        // Recorded, not fatal: on a machine at loadavg 30+ a few requests time out; the RSS is what this measures.
        row.requests = r.requests;
        row.errors = r.errors;
        row.cpuUsPerRequest = Math.round(((cpuMs(t.pid) - c0) * 1000) / r.requests);
        row.rssAfterLoadMb = rssMb(t.pid);
        await new Promise((res) => setTimeout(res, 2000));
        row.rssAfterLoadIdle2sMb = rssMb(t.pid);
        if (sessions > 0) {
          const before = rssMb(t.pid);
          const headersOf = (p: number): Readonly<Record<string, string>> =>
            principals === 1 || !gw.state.has('identity') ? t.template.headers : { ...t.template.headers, ...identityHeaders({ state: gw.state, gatewayUrl: gw.base }, `agent/bench-${p}`) };
          const s0 = performance.now();
          const opened = await openSessions(t.template.url, headersOf, sessions, principals);
          row.sessions = opened.opened;
          if (opened.refused !== undefined) row.sessionsRefusedWith = opened.refused;
          row.principals = principals;
          row.sessionsSeconds = Math.round(performance.now() - s0) / 1000;
          row.rssAfterSessionsMb = rssMb(t.pid);
          row.kbPerSession = Math.round(((rssMb(t.pid) - before) * 1024 * 10) / Math.max(1, opened.opened)) / 10;
          // The same load again with the sessions open: per-call cost against the number of live sessions.
          const c1 = cpuMs(t.pid);
          const again = await runClosed(t.template, 32, seconds);
          row.requestsWithSessions = again.requests;
          row.errorsWithSessions = again.errors;
          row.cpuUsPerRequestWithSessions = Math.round(((cpuMs(t.pid) - c1) * 1000) / again.requests);
          row.rssAfterSessionsLoadMb = rssMb(t.pid);
        }
        rows.push(row);
        process.stdout.write(`${JSON.stringify(row)}\n`);
      }
    } finally {
      await setup.teardown();
    }
  }
  const summary = (label: string, key: string): string | undefined => {
    const xs = rows.filter((r) => r.label === label && typeof r[key] === 'number').map((r) => r[key] as number);
    return xs.length === 0 ? undefined : `${median(xs)} (${Math.min(...xs)}..${Math.max(...xs)})`;
  };
  const keys = ['rssReadyMb', 'rssAfterLoadMb', 'rssAfterLoadIdle2sMb', 'requests', 'cpuUsPerRequest', 'rssAfterSessionsMb', 'kbPerSession', 'requestsWithSessions', 'cpuUsPerRequestWithSessions', 'rssAfterSessionsLoadMb'];
  const summaries = vs.map((v) => ({ label: v.label, ...Object.fromEntries(keys.map((k) => [k, summary(v.label, k)]).filter(([, x]) => x !== undefined)) }));
  const startSummary = (root: string): Record<string, string> | undefined => {
    const xs = starts.filter((s) => s.root === root);
    if (xs.length === 0) return undefined;
    const f = (k: keyof StartFigures): string => `${median(xs.map((x) => x[k]))} (${Math.min(...xs.map((x) => x[k]))}..${Math.max(...xs.map((x) => x[k]))})`;
    return { healthMs: f('healthMs'), readyMs: f('readyMs'), cpuMs: f('cpuMs'), rssReadyMb: f('rssReadyMb') };
  };
  const result = {
    kind: 'memory',
    at: new Date().toISOString(),
    commit: commitInfo(),
    node: process.version,
    loadavgAtEnd: readFileSync('/proc/loadavg', 'utf8').trim(),
    stages: stages.map((s) => s.name),
    seconds,
    rounds,
    sessions,
    principals,
    serveStart: { runs: starts, thisCheckout: startSummary('this checkout'), ...(baseline ? { baseline: startSummary(`@${baseline.rev}`) } : {}) },
    gateways: rows,
    summaries,
  };
  for (const s of summaries) process.stdout.write(`${JSON.stringify(s)}\n`);
  process.stdout.write(`serve start (routes/, stdio demo upstream): ${JSON.stringify(result.serveStart.thisCheckout)}${baseline ? ` baseline ${JSON.stringify(result.serveStart.baseline)}` : ''}\n`);
  const file = values.out ? resolve(values.out) : join(ROOT, 'bench/results', `memory-${result.at.replace(/[:.]/g, '-')}-${String(result.commit.sha ?? '').slice(0, 8)}.json`);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`results: ${file}\n`);
} finally {
  baseline?.remove();
}
process.exit(0);
