/**
 * Token budgets and rate limits end to end on the OpenAI-compatible route, with the test Redis: the official `openai`
 * npm client streams completions through the gateway to a vLLM-like backend.
 * - concurrent streamed completions never overshoot a token budget (the counter is sampled all along), and it ends
 *   reconciled exactly to the backend's usage reports;
 * - a stream that breaks is charged what was streamed (plus its prompt's estimate);
 * - a request without max_tokens is capped to the reservation (the backend sees max_tokens);
 * - refusals are OpenAI 429s (RateLimitError) with OpenAI's x-ratelimit-* headers; admitted answers carry them too.
 */
import { Redis } from 'ioredis';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Call } from '../../src/core/call.ts';
import { encodeValue } from '../../src/guards/limits/keys.ts';
import { eventually, recordCalls, type TestGateway } from '../helpers/gateway.ts';
import { AGENT, LLAMA, LLAMA_UPSTREAM, modelsRoute, openaiBackend, openaiClient, startModelsGateway, testPolicyGateway } from '../helpers/openai-gateway.ts';
import { promptTokens, startVllm, type VllmServer } from '../helpers/vllm-server.ts';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6390';
const PREFIX = `tgo${process.pid % 10000}${Date.now().toString(36)}:`;
const TOKENS = `${AGENT}/tokens`;
const RATED = `${AGENT}/rated`;

const LIMITS = `---
apiVersion: tollgate.dev/v1alpha1
kind: Budget
metadata: { name: tokens }
spec: { match: { protocols: [openai], principals: ["${AGENT}/tokens*"] }, key: [principal], window: day, tokens: 3000 }
---
apiVersion: tollgate.dev/v1alpha1
kind: RateLimit
metadata: { name: two-a-minute }
spec: { match: { protocols: [openai], principals: ["${RATED}"] }, key: [principal], requests: 2, per: 60s }
`;

let vllm: VllmServer;
let gw: TestGateway;
let redis: Redis;
let finished: Call[] = [];

beforeAll(async () => {
  vllm = await startVllm({ models: [LLAMA_UPSTREAM], tokenDelayMs: 1 });
  redis = new Redis(REDIS_URL);
  gw = await startModelsGateway(
    {
      'models.yaml': openaiBackend('vllm', { url: vllm.url }) + modelsRoute('models', ['vllm'], { models: [{ name: LLAMA, backend: 'vllm', model: LLAMA_UPSTREAM }] }),
      'limits.yaml': LIMITS,
    },
    // The command timeout is raised as in the other tests of budget arithmetic: a decision that times out on a
    // loaded machine fails closed (503) and its reservation, which Redis may still have applied, stays charged (the
    // safe side: never an overshoot), which would make the exact reconciliation below miss by one reservation.
    testPolicyGateway(`  redis: { url: ${JSON.stringify(REDIS_URL)}, keyPrefix: ${JSON.stringify(PREFIX)}, commandTimeoutMs: 5000 }
  limits:
    reservation: { defaultOutputTokens: 40, maxTokens: 100000 }
`),
  );
  await gw.services.store!.waitReady(5_000);
  finished = recordCalls(gw);
});

afterAll(async () => {
  await gw?.stop();
  await vllm?.stop();
  const keys = await redis.keys(`${PREFIX}*`);
  if (keys.length > 0) await redis.del(...keys);
  await redis?.quit();
});

/** The token counter of the `tokens` budget for one principal (its key names the principal, encoded). */
async function charged(principal: string): Promise<number> {
  const keys = await redis.keys(`${PREFIX}b:*:tokens:principal=${encodeValue(principal)}:*:t`);
  let n = 0;
  for (const k of keys) n += Number((await redis.get(k)) ?? 0);
  return n;
}

const messages = (text: string): OpenAI.Chat.ChatCompletionMessageParam[] => [{ role: 'user', content: text }];

async function stream(client: OpenAI, text: string, maxTokens?: number): Promise<'ok' | 'broken' | string> {
  try {
    const s = await client.chat.completions.create({ model: LLAMA, messages: messages(text), stream: true, ...(maxTokens === undefined ? {} : { max_tokens: maxTokens }) });
    for await (const _ of s) {
      // read to the end
    }
    return 'ok';
  } catch (err) {
    if (err instanceof OpenAI.APIError && err.status === 429) return String(err.code);
    return 'broken';
  }
}

describe('token budgets with concurrent streamed completions', () => {
  it('never overshoot: reservations hold the budget while streams run, settles reconcile to the reported usage', async () => {
    const principal = `${TOKENS}/concurrent`;
    const client = openaiClient(gw, { spiffeId: principal });
    const actual = promptTokens({ messages: messages('words 90') }) + 90;
    let maxSeen = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        maxSeen = Math.max(maxSeen, await charged(principal));
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    const outcomes: string[] = [];
    let inFlight = 0;
    const worker = async (): Promise<void> => {
      for (let i = 0; i < 40; i++) {
        inFlight++;
        const r = await stream(client, 'words 90', 120);
        inFlight--;
        outcomes.push(r);
        if (r === 'TG_BUDGET_EXCEEDED') {
          if (inFlight === 0) return;
          await new Promise((res) => setTimeout(res, 5));
        }
      }
    };
    await Promise.all(Array.from({ length: 12 }, worker));
    sampling = false;
    await sampler;
    const admitted = outcomes.filter((o) => o === 'ok').length;
    await eventually(async () => (await charged(principal)) === admitted * actual, 5_000, 'the last settles');
    const final = await charged(principal);
    process.stdout.write(`[openai budget] 12 concurrent streams: ${admitted} admitted, ${outcomes.length - admitted} refused; charged ${final} of 3000 (peak with reservations ${maxSeen})\n`);
    expect(outcomes.every((o) => o === 'ok' || o === 'TG_BUDGET_EXCEEDED')).toBe(true);
    expect(admitted).toBeGreaterThan(12);
    expect(maxSeen).toBeLessThanOrEqual(3000);
    expect(final).toBe(admitted * actual);
  });

  it('charges a broken stream what was streamed, plus its prompt estimate', async () => {
    const principal = `${TOKENS}/broken`;
    const since = finished.length;
    expect(await stream(openaiClient(gw, { spiffeId: principal }), 'words 50 break 7', 100)).toBe('broken');
    await eventually(() => finished.slice(since).some((c) => c.principal?.id === principal), 5_000, 'the broken call');
    const call = finished.slice(since).find((c) => c.principal?.id === principal)!;
    expect(call.usage).toEqual({ outputTokens: 7 });
    await eventually(async () => (await charged(principal)) === call.estimate!.inputTokens + 7, 5_000, 'the broken stream to be charged');
  });

  it('caps a request without max_tokens to the reservation, and charges what the backend reports', async () => {
    const principal = `${TOKENS}/uncapped`;
    expect(await stream(openaiClient(gw, { spiffeId: principal }), 'words 500')).toBe('ok');
    const sent = vllm.seen.at(-1)!;
    expect(sent.body.max_tokens).toBe(40);
    expect(sent.raw.endsWith(',"max_tokens":40}')).toBe(true);
    await eventually(async () => (await charged(principal)) === promptTokens({ messages: messages('words 500') }) + 40, 5_000, 'the capped call to be charged');
  });

  it('refuses up front a reservation that can never fit, with OpenAI\'s 429', async () => {
    const before = vllm.seen.length;
    const err = await openaiClient(gw, { spiffeId: `${TOKENS}/huge` })
      .chat.completions.create({ model: LLAMA, messages: messages('words 1'), max_tokens: 4000 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe('TG_BUDGET_EXCEEDED');
    expect((err as Error).message).toContain('more than budget "tokens" allows in a whole day (3000)');
    expect(vllm.seen.length).toBe(before);
  });
});

describe('rate limits', () => {
  it('answers with OpenAI\'s x-ratelimit-* headers, and refuses over the rate with a 429 the client understands', async () => {
    const client = openaiClient(gw, { spiffeId: RATED });
    const first = await client.chat.completions.create({ model: LLAMA, messages: messages('words 1') }).withResponse();
    expect(first.response.headers.get('x-ratelimit-limit-requests')).toBe('2');
    expect(first.response.headers.get('x-ratelimit-remaining-requests')).toBe('1');
    expect(first.response.headers.get('x-ratelimit-reset-requests')).toMatch(/^\d+(\.\d+)?(ms|s)$|^\d+m[\d.]+s$/);
    await client.chat.completions.create({ model: LLAMA, messages: messages('words 1') });
    const err = (await client.chat.completions.create({ model: LLAMA, messages: messages('words 1') }).catch((e: unknown) => e)) as InstanceType<typeof OpenAI.APIError>;
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(err.code).toBe('TG_RATE_LIMITED');
    expect(err.type).toBe('rate_limit_error');
    expect(err.headers?.get('x-ratelimit-remaining-requests')).toBe('0');
    expect(Number(err.headers?.get('retry-after'))).toBeGreaterThan(0);
  });
});
