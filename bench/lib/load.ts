/**
 * Load generation. Closed loop (concurrency 1 latency, maximum throughput at N connections) uses autocannon's
 * programmatic API; each response time is recorded into our own microsecond histogram (autocannon's has whole-ms
 * resolution). Fixed-rate load uses a small paced generator over an undici Pool instead of autocannon's `overallRate`,
 * which spends each connection's per-second budget as a burst at the start of every second (httpClient.js,
 * reqsMadeThisSecond): that measures saturation bursts, not latency under steady load.
 */
import type { EventEmitter } from 'node:events';
import autocannon from 'autocannon';
import { Pool } from 'undici';
import { newHistogram, recordMs, summarize, encodeHistogram, type LatencySummary } from './histogram.ts';
import { isResult, type RequestTemplate } from './mcp-client.ts';

export interface LoadResult {
  readonly latency: LatencySummary;
  /** Completed requests per second over the measured window. */
  readonly rps: number;
  readonly requests: number;
  /** Transport errors, non-2xx answers and JSON-RPC errors: any of them makes the run invalid. */
  readonly errors: number;
  /** HdrHistogram, microseconds, compressed base64. */
  readonly histogram: string;
  /** Fixed-rate runs only: the rate asked and, from the intended send times, the latency including queueing delay. */
  readonly targetRps?: number;
  readonly corrected?: LatencySummary;
  /** CPU time (user+system) the measured process (gateway, proxy or backend) used per completed request, in us. */
  readonly cpuUsPerReq?: number;
}

let nextId = 1_000_000;

function origin(url: string): { origin: string; path: string } {
  const u = new URL(url);
  return { origin: u.origin, path: `${u.pathname}${u.search}` };
}

/** Closed loop: `connections` clients each send the next request as soon as the previous answer arrives. */
export async function runClosed(t: RequestTemplate, connections: number, durationS: number): Promise<LoadResult> {
  const { origin: base, path } = origin(t.url);
  const hist = newHistogram();
  let bad = 0;
  const { before, after } = t;
  const started = performance.now();
  // Without a callback autocannon returns its tracker (an EventEmitter) made thenable; the typings miss the former.
  const instance = autocannon({
    url: base,
    connections,
    pipelining: 1,
    duration: durationS,
    // autocannon only notices the end of the run on its sampling tick: 100 ms keeps fractional durations honest.
    sampleInt: 100,
    timeout: 10,
    requests: [
      {
        method: 'POST',
        path,
        headers: { ...t.headers },
        setupRequest: (req) => {
          req.body = `${before}${nextId++}${after}`;
          return req;
        },
      },
    ],
    verifyBody: (body) => {
      if (typeof body === 'string' && isResult(body)) return true;
      bad++;
      return false;
    },
  }) as unknown as EventEmitter & PromiseLike<autocannon.Result>;
  instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
    if (status >= 200 && status < 300) recordMs(hist, ms);
  });
  const r = await instance;
  const elapsedS = (performance.now() - started) / 1000;
  return {
    latency: summarize(hist),
    rps: Math.round(hist.totalCount / Math.max(elapsedS, r.duration)),
    requests: hist.totalCount,
    errors: r.errors + r.timeouts + r.non2xx + bad,
    histogram: encodeHistogram(hist),
  };
}

/** Open loop at a fixed rate: requests leave on schedule whether or not earlier ones have been answered. */
export async function runPaced(t: RequestTemplate, rate: number, durationS: number, connections = 32): Promise<LoadResult> {
  const { origin: base, path } = origin(t.url);
  const pool = new Pool(base, { connections, pipelining: 1, keepAliveTimeout: 30_000 });
  const hist = newHistogram();
  const corrected = newHistogram();
  const total = Math.max(1, Math.round(rate * durationS));
  const interval = 1000 / rate;
  const headers = { ...t.headers };
  let sent = 0;
  let done = 0;
  let errors = 0;
  const start = performance.now();
  await new Promise<void>((resolve) => {
    const finished = (): void => {
      if (++done === total) resolve();
    };
    const fire = (intended: number): void => {
      const at = performance.now();
      pool
        .request({ method: 'POST', path, headers, body: `${t.before}${nextId++}${t.after}` })
        .then(async (res) => {
          const text = await res.body.text();
          const now = performance.now();
          if (res.statusCode === 200 && isResult(text)) {
            recordMs(hist, now - at);
            recordMs(corrected, now - intended);
          } else errors++;
        })
        .catch(() => {
          errors++;
        })
        .finally(finished);
    };
    const tick = (): void => {
      const due = Math.min(total, Math.floor((performance.now() - start) / interval) + 1);
      while (sent < due) fire(start + sent++ * interval);
      if (sent < total) setTimeout(tick, Math.max(0, start + sent * interval - performance.now()));
    };
    tick();
  });
  const elapsedS = (performance.now() - start) / 1000;
  await pool.close();
  return {
    latency: summarize(hist),
    rps: Math.round(hist.totalCount / elapsedS),
    requests: hist.totalCount,
    errors,
    histogram: encodeHistogram(hist),
    targetRps: rate,
    corrected: summarize(corrected),
  };
}
