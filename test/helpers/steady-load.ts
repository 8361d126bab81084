/**
 * A steady load for fault tests: `workers` loops each make one call after another (bounded in count), every outcome
 * recorded with its time and kind ('ok', the gateway's TG_* code, 'http-<status>', 'net-<code>', 'bad-answer'...).
 * A test injects a fault, removes it, and reads: errors by kind in a window, and the recovery time (from the fault's
 * removal to the first success after which `settle` calls in a row succeeded).
 *
 * Also raw callers of the MCP and OpenAI-compatible endpoints that classify what came back without a client
 * library's retries or reconnects hiding it.
 */
import { request as httpRequest } from 'node:http';

export interface Outcome {
  readonly at: number;
  readonly kind: string;
  readonly ms: number;
}

export interface SteadyLoad {
  readonly outcomes: readonly Outcome[];
  /** Outcomes by kind between two times (performance.now()). */
  kinds(from?: number, to?: number): Record<string, number>;
  /** ms from `t0` to the first success followed by `settle` successes in a row; undefined if none yet. */
  recoveredAfter(t0: number, settle?: number): number | undefined;
  /** Resolves once `n` more calls finished. */
  more(n: number): Promise<void>;
  stop(): Promise<void>;
}

export function steadyLoad(workers: number, call: (worker: number, i: number) => Promise<string>, opts: { maxCalls?: number; pauseMs?: number } = {}): SteadyLoad {
  const outcomes: Outcome[] = [];
  let stopped = false;
  const maxCalls = opts.maxCalls ?? 100_000;
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  const loops = Array.from({ length: workers }, async (_, w) => {
    for (let i = 0; !stopped && outcomes.length < maxCalls; i++) {
      const t0 = performance.now();
      let kind: string;
      try {
        kind = await call(w, i);
      } catch (err) {
        kind = `throw-${(err as { code?: string }).code ?? (err as Error).message.slice(0, 40)}`;
      }
      outcomes.push({ at: performance.now(), kind, ms: performance.now() - t0 });
      for (const x of [...waiters]) {
        if (outcomes.length >= x.n) {
          waiters.splice(waiters.indexOf(x), 1);
          x.resolve();
        }
      }
      if (opts.pauseMs) await new Promise((r) => setTimeout(r, opts.pauseMs));
    }
  });
  return {
    outcomes,
    kinds(from = 0, to = Infinity) {
      const out: Record<string, number> = {};
      for (const o of outcomes) if (o.at >= from && o.at <= to) out[o.kind] = (out[o.kind] ?? 0) + 1;
      return out;
    },
    recoveredAfter(t0, settle = 5) {
      const after = outcomes.filter((o) => o.at >= t0).sort((a, b) => a.at - b.at);
      for (let i = 0; i + settle <= after.length; i++) {
        if (after.slice(i, i + settle).every((o) => o.kind === 'ok')) return after[i]!.at - t0;
      }
      return undefined;
    },
    more(n) {
      const target = outcomes.length + n;
      if (stopped) return Promise.reject(new Error('load stopped'));
      return new Promise((resolve, reject) => {
        waiters.push({ n: target, resolve });
        // Every worker finished (maxCalls reached): nothing more will come.
        void Promise.allSettled(loops).then(() => reject(new Error(`load ended after ${outcomes.length} calls`)));
      });
    },
    async stop() {
      stopped = true;
      await Promise.allSettled(loops);
    },
  };
}

export interface RawAnswer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** One HTTP exchange on a fresh connection (no keep-alive: a broken connection never spills into the next call). */
export function exchange(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string; timeoutMs?: number } = {}): Promise<RawAnswer> {
  const u = new URL(url);
  let answered = false;
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: u.hostname, port: u.port, path: `${u.pathname}${u.search}`, method: opts.method ?? 'POST', headers: { connection: 'close', ...opts.headers }, agent: false },
      (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
        res.on('aborted', () => reject(Object.assign(new Error('response aborted'), { code: 'ABORTED' })));
      },
    );
    req.setTimeout(opts.timeoutMs ?? 30_000, () => req.destroy(Object.assign(new Error('client timeout'), { code: 'CLIENT_TIMEOUT' })));
    // An error after the answer began is a broken answer, never a refusal: its code says so (`AFTER_ANSWER_<code>`).
    req.on('error', (err: NodeJS.ErrnoException) => reject(answered ? Object.assign(err, { code: `AFTER_ANSWER_${err.code ?? 'error'}` }) : err));
    req.end(opts.body);
  });
}

/** The JSON-RPC message of an answer sent as JSON or as SSE (the last `data:` line that holds a result or error). */
export function rpcMessage(a: RawAnswer): { result?: unknown; error?: { code: number; message: string; data?: { code?: string; reason?: string } } } | undefined {
  const ct = String(a.headers['content-type'] ?? '');
  try {
    if (ct.startsWith('text/event-stream')) {
      const datas = a.body.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim());
      for (let i = datas.length - 1; i >= 0; i--) {
        const m = JSON.parse(datas[i]!) as { result?: unknown; error?: unknown };
        if ('result' in m || 'error' in m) return m as ReturnType<typeof rpcMessage>;
      }
      return undefined;
    }
    return JSON.parse(a.body) as ReturnType<typeof rpcMessage>;
  } catch {
    return undefined;
  }
}

/** A raw MCP session (initialize + initialized) on a gateway route; `call` classifies one tools/call. */
export async function rawMcpSession(url: string, headers: Record<string, string>): Promise<{ id: string; call(tool: string, args: Record<string, unknown>, expectText?: string): Promise<string> }> {
  const base = { ...headers, 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  const init = await exchange(url, {
    headers: base,
    body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'load', version: '1' } } }),
  });
  const sid = init.headers['mcp-session-id'];
  if (init.status !== 200 || typeof sid !== 'string') throw new Error(`initialize: HTTP ${init.status} ${init.body}`);
  const session = { ...base, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-06-18' };
  await exchange(url, { headers: session, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) });
  let next = 1;
  return {
    id: sid,
    async call(tool, args, expectText) {
      const a = await exchange(url, { headers: session, body: JSON.stringify({ jsonrpc: '2.0', id: next++, method: 'tools/call', params: { name: tool, arguments: args } }) });
      return classifyMcp(a, expectText);
    },
  };
}

export function classifyMcp(a: RawAnswer, expectText?: string): string {
  const m = rpcMessage(a);
  if (m?.error !== undefined) return m.error.data?.code ?? `rpc${m.error.code}`;
  if (a.status !== 200) return `http-${a.status}`;
  if (m === undefined || m.result === undefined) return 'bad-answer';
  const r = m.result as { isError?: boolean; content?: Array<{ text?: string }> };
  if (r.isError === true) return 'tool-error';
  if (expectText !== undefined && r.content?.[0]?.text !== expectText) return 'wrong-answer';
  return 'ok';
}

/** One OpenAI chat completion (streamed or not) classified: 'ok', the error object's code, 'http-<status>'. */
export async function openAiCall(url: string, headers: Record<string, string>, model: string, opts: { stream?: boolean; content?: string } = {}): Promise<string> {
  const a = await exchange(`${url}/chat/completions`, {
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: opts.content ?? 'words 3' }], stream: opts.stream ?? false }),
  });
  return classifyOpenAi(a, opts.stream ?? false);
}

export function classifyOpenAi(a: RawAnswer, stream: boolean): string {
  if (a.status !== 200) {
    try {
      const e = (JSON.parse(a.body) as { error?: { code?: string; type?: string } }).error;
      return e?.code ?? `http-${a.status}`;
    } catch {
      return `http-${a.status}-unparsable`;
    }
  }
  if (stream) {
    // A clean stream ends with [DONE]; a broken one ends with an error event.
    if (a.body.includes('"error"')) {
      const line = a.body.split('\n').find((l) => l.includes('"error"')) ?? '';
      const m = /"code":"(TG_[A-Z_]+)"/.exec(line);
      return m ? `stream-${m[1]}` : 'stream-error';
    }
    return a.body.includes('data: [DONE]') ? 'ok' : 'stream-truncated';
  }
  try {
    const body = JSON.parse(a.body) as { choices?: unknown[] };
    return Array.isArray(body.choices) ? 'ok' : 'bad-answer';
  } catch {
    return 'bad-answer';
  }
}
