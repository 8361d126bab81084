/**
 * `npm run bench:soak [-- --minutes M] [--workers N] [--streams S] [--sample-s X]`: a soak of the gateway process
 * (`node bin/tollgate.mjs serve`, dev identity, audit on) with many MCP sessions and streams, for minutes (default
 * 5; not part of CI). Load, all through the gateway, against the official SDK MCP server and the vLLM-format backend:
 * - N MCP workers (default 40): each opens a session, makes 20 tool calls, then closes it (DELETE) or abandons it
 *   (every other one: it must expire, sessionIdleMs is 30 s here), and starts again;
 * - S completion streamers (default 8): streamed chat completions of 20 tokens, one after the other;
 * - every tenth MCP session also opens its GET server stream and drops it mid-way.
 * Every X seconds (default 5) the gateway's RSS (/proc) and V8 heap (its /metrics) are sampled with the live
 * sessions. The growth must flatten: no new high in the second half (peak at most 10% or 16 MB over the first half's).
 * Results: stdout (the curve) and bench/results/soak-<time>-<commit>.json.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { devAuthHeaders, mcpBackend, route } from '../test/helpers/gateway.ts';
import { startHttpMcpServer } from '../test/helpers/mcp-http-server.ts';
import { LLAMA, LLAMA_UPSTREAM, modelsRoute, openaiBackend } from '../test/helpers/openai-gateway.ts';
import { exchange, openAiCall, rawMcpSession } from '../test/helpers/steady-load.ts';
import { startVllm } from '../test/helpers/vllm-server.ts';
import { commitInfo, machineInfo } from './lib/results.ts';
import { ROOT } from './lib/targets.ts';
import { freePort } from './lib/procs.ts';

const { values } = parseArgs({ options: { minutes: { type: 'string' }, workers: { type: 'string' }, streams: { type: 'string' }, 'sample-s': { type: 'string' } } });
const minutes = Number(values.minutes ?? 5);
const workers = Number(values.workers ?? 40);
const streamers = Number(values.streams ?? 8);
const sampleMs = Number(values['sample-s'] ?? 5) * 1000;

interface Sample {
  readonly t: number;
  readonly rssMb: number;
  readonly heapUsedMb: number;
  readonly sessions: number;
  readonly calls: number;
  readonly streams: number;
  readonly errors: number;
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 102.4) / 10 : Number.NaN;
}

function metric(text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

/** Least-squares slope of y over x. */
function slope(points: ReadonlyArray<readonly [number, number]>): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, p) => s + p[0], 0) / n;
  const my = points.reduce((s, p) => s + p[1], 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

async function main(): Promise<void> {
  const mcp = await startHttpMcpServer({ name: 'fixture', json: true });
  const vllm = await startVllm({ name: 'llm', models: [LLAMA_UPSTREAM], tokenDelayMs: 5 });
  const root = mkdtempSync(join(tmpdir(), 'tollgate-soak-'));
  const config = join(root, 'routes');
  mkdirSync(config);
  const port = await freePort();
  writeFileSync(
    join(config, 'gateway.yaml'),
    `apiVersion: tollgate.dev/v1alpha1
kind: Gateway
metadata: { name: soak }
spec:
  listener: { host: 127.0.0.1, port: ${port} }
  log: { level: warn }
  mcp: { sessionIdleMs: 30000 }
  identity:
    dev: { enabled: true, trustDomain: example.org }
`,
  );
  writeFileSync(
    join(config, 'routes.yaml'),
    mcpBackend('fixture', { url: mcp.url }) +
      route('mcp', '/mcp', ['fixture']) +
      openaiBackend('llm', { url: vllm.url, healthCheck: { enabled: false } }) +
      modelsRoute('models', ['llm'], { models: [{ name: LLAMA, backend: 'llm', model: LLAMA_UPSTREAM }] }),
  );
  const child = spawn(process.execPath, ['bin/tollgate.mjs', 'serve', '--config', config], { cwd: ROOT, env: { ...process.env, TOLLGATE_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'ignore', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error('gateway exited');
    if (await fetch(`${url}/healthz`).then((r) => r.ok, () => false)) break;
    if (i > 600) throw new Error('gateway not ready');
    await new Promise((r) => setTimeout(r, 50));
  }
  const counts = { calls: 0, streams: 0, errors: 0 };
  const errorKinds: Record<string, number> = {};
  const fail = (kind: string): void => {
    counts.errors++;
    errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
  };
  let running = true;
  const mcpWorker = async (w: number): Promise<void> => {
    const headers = devAuthHeaders(config, `spiffe://example.org/agents/soak-${w % 16}`, url);
    for (let round = 0; running; round++) {
      try {
        const s = await rawMcpSession(`${url}/mcp`, headers);
        let stream: ReturnType<typeof httpRequest> | undefined;
        if (round % 10 === 0) {
          const u = new URL(`${url}/mcp`);
          stream = httpRequest({ host: u.hostname, port: u.port, path: u.pathname, method: 'GET', headers: { ...headers, accept: 'text/event-stream', 'mcp-session-id': s.id, 'mcp-protocol-version': '2025-06-18' } }, (res) => res.resume());
          stream.on('error', () => {});
          stream.end();
        }
        for (let i = 0; i < 20 && running; i++) {
          const kind = await s.call('fixture__echo', { message: `w${w}-${round}-${i}` }, `w${w}-${round}-${i}`);
          if (kind === 'ok') counts.calls++;
          else fail(kind);
          if (i === 10) stream?.destroy();
        }
        stream?.destroy();
        if (round % 2 === 0) {
          await exchange(`${url}/mcp`, { method: 'DELETE', headers: { ...headers, 'mcp-session-id': s.id, 'mcp-protocol-version': '2025-06-18' } });
        }
      } catch (err) {
        fail(`throw-${(err as { code?: string }).code ?? 'error'}`);
      }
    }
  };
  const streamWorker = async (w: number): Promise<void> => {
    const headers = devAuthHeaders(config, `spiffe://example.org/agents/streamer-${w}`, url);
    while (running) {
      const kind = await openAiCall(`${url}/v1`, headers, LLAMA, { stream: true, content: 'words 20' }).catch((err: { code?: string }) => `throw-${err.code ?? 'error'}`);
      if (kind === 'ok') counts.streams++;
      else fail(kind);
    }
  };
  const samples: Sample[] = [];
  const t0 = performance.now();
  const sample = async (): Promise<void> => {
    const m = await fetch(`${url}/metrics`).then((r) => r.text(), () => '');
    const ready = (await fetch(`${url}/readyz`).then((r) => r.json(), () => ({}))) as { sessions?: number };
    const s: Sample = {
      t: Math.round((performance.now() - t0) / 100) / 10,
      rssMb: rssMb(child.pid!),
      heapUsedMb: Math.round(metric(m, 'nodejs_heap_size_used_bytes') / 1e5) / 10,
      sessions: ready.sessions ?? -1,
      ...counts,
    };
    samples.push(s);
    console.log(`t=${s.t.toFixed(0).padStart(5)} s  rss ${s.rssMb.toFixed(1).padStart(6)} MB  heap ${s.heapUsedMb.toFixed(1).padStart(6)} MB  sessions ${String(s.sessions).padStart(5)}  calls ${s.calls}  streams ${s.streams}  errors ${s.errors}`);
  };
  await sample();
  const loops = [...Array.from({ length: workers }, (_, w) => mcpWorker(w)), ...Array.from({ length: streamers }, (_, w) => streamWorker(w))];
  const end = Date.now() + minutes * 60_000;
  while (Date.now() < end) {
    await new Promise((r) => setTimeout(r, sampleMs));
    await sample();
  }
  running = false;
  await Promise.allSettled(loops);
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  await mcp.close();
  await vllm.stop();
  rmSync(root, { recursive: true, force: true });

  // Flattening: no new high in the second half (its peak at most 10% or 16 MB over the first half's), for RSS and heap.
  // V8 hands memory back in steps (a major GC, then regrowth), so peaks say more than a fitted slope; slopes of the
  // first and last third are reported too.
  const third = Math.max(2, Math.floor(samples.length / 3));
  const half = Math.floor(samples.length / 2);
  const pts = (xs: Sample[], f: (s: Sample) => number): Array<[number, number]> => xs.map((s) => [s.t / 60, f(s)]);
  const peak = (xs: Sample[], f: (s: Sample) => number): number => Math.max(...xs.map(f));
  const flat = (f: (s: Sample) => number): { firstHalfPeak: number; secondHalfPeak: number; ok: boolean } => {
    const a = peak(samples.slice(0, half), f);
    const b = peak(samples.slice(half), f);
    return { firstHalfPeak: a, secondHalfPeak: b, ok: b <= Math.max(a * 1.1, a + 16) };
  };
  const rssFlat = flat((s) => s.rssMb);
  const heapFlat = flat((s) => s.heapUsedMb);
  const firstRss = slope(pts(samples.slice(0, third), (s) => s.rssMb));
  const lastRss = slope(pts(samples.slice(-third), (s) => s.rssMb));
  const firstHeap = slope(pts(samples.slice(0, third), (s) => s.heapUsedMb));
  const lastHeap = slope(pts(samples.slice(-third), (s) => s.heapUsedMb));
  const flattened = rssFlat.ok && heapFlat.ok;
  const summary = {
    minutes,
    workers,
    streamers,
    calls: counts.calls,
    streams: counts.streams,
    errors: counts.errors,
    errorKinds,
    rssMb: { start: samples[0]!.rssMb, end: samples.at(-1)!.rssMb, ...rssFlat, slopeFirstThirdMbPerMin: Math.round(firstRss * 10) / 10, slopeLastThirdMbPerMin: Math.round(lastRss * 10) / 10 },
    heapUsedMb: { start: samples[0]!.heapUsedMb, end: samples.at(-1)!.heapUsedMb, ...heapFlat, slopeFirstThirdMbPerMin: Math.round(firstHeap * 10) / 10, slopeLastThirdMbPerMin: Math.round(lastHeap * 10) / 10 },
    flattened,
  };
  console.log(JSON.stringify(summary, null, 2));
  const commit = commitInfo();
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  const file = join(ROOT, 'bench', 'results', `soak-${new Date().toISOString().replace(/[:.]/g, '-')}-${commit.sha.slice(0, 8)}.json`);
  writeFileSync(file, JSON.stringify({ commit, machine: machineInfo(), summary, samples }, null, 1));
  console.log(`results: ${file}`);
  process.exit(flattened && counts.errors === 0 ? 0 : 1);
}

await main();
