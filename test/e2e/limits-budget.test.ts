/**
 * Token and cost budgets at the guard level, on the test Redis, with concurrent streamed completions from a real
 * HTTP backend speaking the OpenAI streaming format with usage. The harness does what a model adapter does with the
 * Call (the OpenAI adapter lands with issue 16, which adds the end-to-end test through the gateway): sets the
 * reservation estimate, sends `max_tokens` = the cap the guard reserved when the client set none, counts output
 * tokens as chunks arrive, replaces them with the backend's usage report, and settles the call.
 */
import { Redis } from 'ioredis';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { createParser } from 'eventsource-parser';
import client from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { outcomeOf, type Call } from '../../src/core/call.ts';
import { toGatewayError } from '../../src/core/errors.ts';
import { limitNoticesOf, openAiRateLimitHeaders } from '../../src/core/limits.ts';
import type { Guard } from '../../src/core/pipeline.ts';
import { budgetKey, encodeValue } from '../../src/guards/limits/keys.ts';
import { LimitsService } from '../../src/guards/limits/service.ts';
import { Calendar } from '../../src/guards/limits/windows.ts';
import { redisSpec } from '../../src/store/config.ts';
import { RedisStore } from '../../src/store/redis.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { GatewayMetrics } from '../../src/telemetry/metrics.ts';
import { CallTracer } from '../../src/telemetry/tracing.ts';
import { limitCall, limitsSnapshot } from '../helpers/limits.ts';
import { promptTokens, startOpenAiStreamServer, type OpenAiStreamServer } from '../helpers/openai-stream-server.ts';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6390';
const PREFIX = `tgt:b:${process.pid}:${Date.now().toString(36)}:`;
const MODEL = { kind: 'model' as const, name: 'llama', server: 'vllm' };
const log = createLogger('silent');

const DOCS = `apiVersion: tollgate.dev/v1alpha1
kind: Budget
metadata: { name: tokens }
spec: { match: { protocols: [openai], principals: ["spiffe://example.org/tok/*"] }, key: [principal], window: day, tokens: 3000 }
---
apiVersion: tollgate.dev/v1alpha1
kind: Budget
metadata: { name: spend }
spec: { match: { protocols: [openai], principals: ["spiffe://example.org/cost/*"] }, key: [principal], window: month, cost: 0.05 }
`;
const LIMITS_YAML = `    reservation: { defaultOutputTokens: 40, maxTokens: 100000 }
    prices: [{ model: llama, input: 10, output: 30 }]
`;

let backend: OpenAiStreamServer;
let store: RedisStore;
let redis: Redis;
let service: LimitsService;
let guard: Guard;
const registry = new client.Registry();

beforeAll(async () => {
  backend = await startOpenAiStreamServer({ tokenDelayMs: 1 });
  // A generous command timeout: these tests are about budget arithmetic, and a loaded CI machine can stall a
  // loopback round trip past the 100 ms default (fail modes are tested in limits-failover.test.ts).
  store = new RedisStore(redisSpec.parse({ url: REDIS_URL, keyPrefix: PREFIX, commandTimeoutMs: 5_000 }), process.cwd(), log);
  await store.waitReady(5_000);
  redis = new Redis(REDIS_URL);
  service = new LimitsService({ log, store, registry });
  guard = service.guardsFor(limitsSnapshot(DOCS, LIMITS_YAML))[0]!;
});

afterAll(async () => {
  await backend?.close();
  await store?.close();
  await redis?.quit();
});

interface Request {
  readonly messages: Array<{ role: string; content: string }>;
  readonly max_tokens?: number;
}

/** The input estimate an adapter would make: an over-estimate (what is left over goes back at settle). */
function estimateOf(req: Request): number {
  return promptTokens(req.messages) + 5;
}

/** One streamed completion through the guard, as a model adapter runs it. */
async function completion(principal: string, req: Request, obligations?: Record<string, unknown>, tracer?: CallTracer): Promise<{ call: Call; result: string }> {
  const call = limitCall({ principal, protocol: 'openai', operation: 'chat.completions', target: MODEL, estimate: { inputTokens: estimateOf(req), maxOutputTokens: req.max_tokens }, obligations });
  tracer?.begin(call, undefined);
  const finish = async (result: string): Promise<{ call: Call; result: string }> => {
    await guard.settle!(call);
    tracer?.end(call);
    return { call, result };
  };
  try {
    await guard.admit!(call);
  } catch (err) {
    call.error = toGatewayError(err);
    call.outcome = outcomeOf(call.error);
    return finish(call.error.code);
  }
  const body = { model: MODEL.name, messages: req.messages, max_tokens: req.max_tokens ?? call.outputTokenCap, stream: true, stream_options: { include_usage: true } };
  try {
    const res = await fetch(`${backend.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    call.status = res.status;
    const parser = createParser({
      onEvent: (e) => {
        if (e.data === '[DONE]') return;
        const chunk = JSON.parse(e.data) as { choices: Array<{ delta?: { content?: string } }>; usage?: { prompt_tokens: number; completion_tokens: number } };
        if (chunk.usage) call.usage = { inputTokens: chunk.usage.prompt_tokens, outputTokens: chunk.usage.completion_tokens, reported: true };
        else if (chunk.choices[0]?.delta?.content) {
          const u = (call.usage ??= { outputTokens: 0 });
          u.outputTokens = (u.outputTokens ?? 0) + 1;
        }
      },
    });
    const decoder = new TextDecoder();
    for await (const bytes of res.body!) parser.feed(decoder.decode(bytes as Uint8Array, { stream: true }));
    call.outcome = 'ok';
    return finish('ok');
  } catch {
    call.outcome = 'upstream_error';
    return finish('broken');
  }
}

function counterKey(budget: string, principal: string, unit: 't' | 'c', window: 'day' | 'month' = 'day'): string {
  return budgetKey(PREFIX, 'tollgate', budget, `principal=${encodeValue(principal)}`, new Calendar('UTC').current(window, Date.now()).id, unit);
}

async function counter(key: string): Promise<number> {
  return Number((await redis.get(key)) ?? 0);
}

const ask = (words: number, extra = ''): Request['messages'] => [
  { role: 'system', content: 'You are a terse assistant.' },
  { role: 'user', content: `Please answer in words ${words}${extra}` },
];

describe('token budgets with concurrent streamed completions (Redis)', () => {
  it('never overshoots: reservations hold the budget while streams run, settles give back the rest', async () => {
    const principal = 'spiffe://example.org/tok/concurrent';
    const key = counterKey('tokens', principal, 't');
    const req: Request = { messages: ask(90), max_tokens: 120 };
    const reserve = estimateOf(req) + 120;
    const actual = promptTokens(req.messages) + 90;
    let inFlight = 0;
    let maxSeen = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        maxSeen = Math.max(maxSeen, await counter(key));
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    const outcomes: string[] = [];
    const worker = async (): Promise<void> => {
      for (let attempt = 0; attempt < 80; attempt++) {
        inFlight++;
        const { result } = await completion(principal, req);
        inFlight--;
        outcomes.push(result);
        if (result === 'TG_BUDGET_EXCEEDED') {
          if (inFlight === 0) return; // nothing left to give back: the budget is used up
          await new Promise((r) => setTimeout(r, 5));
        }
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    sampling = false;
    await sampler;
    const admitted = outcomes.filter((o) => o === 'ok').length;
    const final = await counter(key);
    process.stdout.write(`[limits budget] 16 concurrent streams: ${admitted} admitted, ${outcomes.length - admitted} refused; charged ${final} of 3000 tokens (peak with reservations ${maxSeen}; reserve ${reserve}, actual ${actual} per call)\n`);
    expect(outcomes.filter((o) => o !== 'ok' && o !== 'TG_BUDGET_EXCEEDED')).toEqual([]);
    expect(maxSeen).toBeLessThanOrEqual(3000);
    expect(final).toBe(admitted * actual); // reconciled exactly to the backend's usage reports
    expect(final).toBeLessThanOrEqual(3000);
    // Refused only when nothing was in flight and the rest could not hold one more reservation: the budget was used.
    expect(final + reserve).toBeGreaterThan(3000);
    expect(admitted).toBeGreaterThan(16); // more calls than one wave of reservations: settles really gave back
  });

  it('charges a broken stream for what was streamed (and the prompt it was sent)', async () => {
    const principal = 'spiffe://example.org/tok/broken';
    const req: Request = { messages: ask(50, ' break 7'), max_tokens: 100 };
    const { call, result } = await completion(principal, req);
    expect(result).toBe('broken');
    expect(call.usage).toEqual({ outputTokens: 7 });
    expect(await counter(counterKey('tokens', principal, 't'))).toBe(estimateOf(req) + 7);
    expect(call.scratch.get('limits')).toMatchObject({ decision: 'admitted', reserved: { tokens: estimateOf(req) + 100 }, charged: { tokens: estimateOf(req) + 7 }, settle: 'ok' });
  });

  it('caps a request without max_tokens to the configured default reservation', async () => {
    const principal = 'spiffe://example.org/tok/uncapped';
    const req: Request = { messages: ask(500) };
    const before = backend.requests.length;
    const { call, result } = await completion(principal, req);
    expect(result).toBe('ok');
    expect(call.outputTokenCap).toBe(40);
    expect(backend.requests[before]).toMatchObject({ max_tokens: 40 });
    expect(call.usage).toEqual({ inputTokens: promptTokens(req.messages), outputTokens: 40, reported: true });
    expect(await counter(counterKey('tokens', principal, 't'))).toBe(promptTokens(req.messages) + 40);
    // What an OpenAI-compatible adapter sends back: the budget as seen at admission (after this reservation).
    const headers = openAiRateLimitHeaders(limitNoticesOf(call));
    expect(headers).toMatchObject({ 'x-ratelimit-limit-tokens': '3000', 'x-ratelimit-remaining-tokens': String(3000 - estimateOf(req) - 40) });
    expect(headers['x-ratelimit-reset-tokens']).toMatch(/^\d+h\d+m[\d.]+s$|^\d+m[\d.]+s$|^[\d.]+s$/);
  });

  it('refuses up front a reservation that can never fit, without calling the backend', async () => {
    const before = backend.requests.length;
    const est = estimateOf({ messages: ask(5) });
    const huge = await completion('spiffe://example.org/tok/huge', { messages: ask(5), max_tokens: 10_000_000 });
    expect(huge.result).toBe('TG_BUDGET_EXCEEDED');
    expect(huge.call.error?.message).toBe(`this call would reserve ${est + 10_000_000} tokens (${est} input + 10000000 output), over the largest reservation allowed (100000): lower max_tokens`);
    const big = await completion('spiffe://example.org/tok/big', { messages: ask(5), max_tokens: 5000 });
    expect(big.call.error?.message).toBe(`this call would reserve ${est + 5000} tokens (${est} input + 5000 output), more than budget "tokens" allows in a whole day (3000)`);
    expect(backend.requests.length).toBe(before);
  });

  it('reconciles cost from the price table, with the policy cost multiplier, and reports usage to spans and metrics', async () => {
    const exporter = new InMemorySpanExporter();
    const tracer = new CallTracer(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }).getTracer('test'));
    const principal = 'spiffe://example.org/cost/agent';
    const req: Request = { messages: ask(60), max_tokens: 100 };
    const { call, result } = await completion(principal, req, { cost_multiplier: 2 }, tracer);
    expect(result).toBe('ok');
    const input = promptTokens(req.messages);
    // Per million: input 10, output 30; times 2. Integer nano-units in Redis.
    const nanos = Math.ceil(2 * (input * 10 * 1000 + 60 * 30 * 1000));
    expect(await counter(counterKey('spend', principal, 'c', 'month'))).toBe(nanos);
    expect(call.usage).toMatchObject({ inputTokens: input, outputTokens: 60, cost: nanos / 1e9 });
    expect(call.scratch.get('limits')).toMatchObject({ charged: { cost: nanos / 1e9, multiplier: 2 } });
    const span = exporter.getFinishedSpans()[0]!;
    expect(span.attributes).toMatchObject({
      'gen_ai.usage.input_tokens': input,
      'gen_ai.usage.output_tokens': 60,
      'gen_ai.request.model': 'llama',
      'tollgate.usage.cost': nanos / 1e9,
      'tollgate.limit.decision': 'admitted',
    });
    const metrics = new GatewayMetrics(100);
    metrics.end(call);
    expect(await metrics.registry.metrics()).toMatch(/tollgate_tokens_total\{model="llama",team="none",direction="output"\} 60/);
    expect(await registry.metrics()).toMatch(new RegExp(`tollgate_budget_charged_total\\{budget="spend",unit="cost"\\} ${nanos / 1e9}`));
    // Five more such calls would pass 0.05: the budget refuses the call whose reservation no longer fits.
    const results: string[] = [];
    for (let i = 0; i < 12; i++) results.push((await completion(principal, req, { cost_multiplier: 2 })).result);
    expect(results.indexOf('TG_BUDGET_EXCEEDED')).toBeGreaterThan(0);
    expect(await counter(counterKey('spend', principal, 'c', 'month'))).toBeLessThanOrEqual(0.05 * 1e9);
  });
});
