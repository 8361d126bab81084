/**
 * What a call is charged when it settles, through the real limits guard (config loaded from YAML, the in-memory
 * store and the test Redis): a reservation is reconciled with what the call used, exactly; unused tokens and cost go
 * back; a call refused or denied before it reached its upstream pays no tool cost; a finished call without a usage
 * report pays its whole reservation (never a free pass), a failed one nothing; a broken stream pays what it streamed
 * plus its prompt. The counters are read back from the store after each settle.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Call } from '../../src/core/call.ts';
import type { Guard } from '../../src/core/pipeline.ts';
import { budgetKey, encodeValue } from '../../src/guards/limits/keys.ts';
import type { LimitNote } from '../../src/guards/limits/notices.ts';
import { LimitsService } from '../../src/guards/limits/service.ts';
import { Calendar } from '../../src/guards/limits/windows.ts';
import { redisSpec } from '../../src/store/config.ts';
import { RedisStore } from '../../src/store/redis.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { limitCall, limitsSnapshot } from '../helpers/limits.ts';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6390';
const log = createLogger('silent');
const MODEL = { kind: 'model' as const, name: 'llama', server: 'vllm' };
const TOOL = { kind: 'tool' as const, name: 'db__query', server: 'db', local: 'query' };

const DOCS = `apiVersion: tollgate.dev/v1alpha1
kind: Budget
metadata: { name: tokens }
spec: { match: { protocols: [openai] }, key: [principal], window: day, tokens: 100000 }
---
apiVersion: tollgate.dev/v1alpha1
kind: Budget
metadata: { name: spend }
spec: { key: [principal], window: month, cost: 1000 }
`;
// Per million tokens: input 10, output 30 (so 10 000 / 30 000 nano-units per token); a db query costs 0.25.
const LIMITS_YAML = `    reservation: { defaultInputTokens: 50, defaultOutputTokens: 40, maxTokens: 100000 }
    prices: [{ model: llama, input: 10, output: 30 }]
    toolCosts: [{ tool: db/query, cost: 0.25 }]
`;
const NANOS = 1e9;

interface Harness {
  readonly name: string;
  readonly service: LimitsService;
  readonly guard: Guard;
  readonly prefix: string;
  close(): Promise<void>;
}

const harnesses: Harness[] = [];
let run = 0;

beforeAll(async () => {
  const memory = new LimitsService({ log });
  harnesses.push({ name: 'in memory', service: memory, guard: memory.guardsFor(limitsSnapshot(DOCS, LIMITS_YAML))[0]!, prefix: 'mem:', close: () => memory.close() });
  const prefix = `tgt:s:${process.pid}:${Date.now().toString(36)}:`;
  const store = new RedisStore(redisSpec.parse({ url: REDIS_URL, keyPrefix: prefix, commandTimeoutMs: 5_000 }), process.cwd(), log);
  await store.waitReady(5_000);
  const redis = new LimitsService({ log, store });
  harnesses.push({
    name: 'Redis',
    service: redis,
    guard: redis.guardsFor(limitsSnapshot(DOCS, LIMITS_YAML))[0]!,
    prefix,
    close: async () => {
      await redis.close();
      await store.close();
    },
  });
});

afterAll(async () => {
  for (const h of harnesses) await h.close();
});

async function counter(h: Harness, budget: 'tokens' | 'spend', principal: string): Promise<number> {
  const window = budget === 'tokens' ? 'day' : 'month';
  const key = budgetKey(h.prefix, 'tollgate', budget, `principal=${encodeValue(principal)}`, new Calendar('UTC').current(window, Date.now()).id, budget === 'tokens' ? 't' : 'c');
  const [v] = await h.service.store.read([key]);
  return v ?? 0;
}

function note(call: Call): LimitNote {
  return call.scratch.get('limits') as LimitNote;
}

/** A new principal per case, so every case starts from empty counters. */
function principal(): string {
  return `spiffe://example.org/settle/p${++run}`;
}

for (const name of ['in memory', 'Redis']) {
  describe(`settling reservations (${name})`, () => {
    const h = (): Harness => harnesses.find((x) => x.name === name)!;

    it('a completion is charged what it used: the unused reservation goes back, tokens and cost', async () => {
      const p = principal();
      const call = limitCall({ principal: p, protocol: 'openai', operation: 'chat.completions', target: MODEL, estimate: { inputTokens: 120, maxOutputTokens: 200 } });
      await h().guard.admit!(call);
      expect(note(call).reserved).toEqual({ tokens: 320, cost: (120 * 10_000 + 200 * 30_000) / NANOS });
      expect(await counter(h(), 'tokens', p)).toBe(320);
      expect(await counter(h(), 'spend', p)).toBe(120 * 10_000 + 200 * 30_000);
      call.usage = { inputTokens: 100, outputTokens: 30, reported: true };
      call.outcome = 'ok';
      await h().guard.settle!(call);
      expect(await counter(h(), 'tokens', p)).toBe(130);
      expect(await counter(h(), 'spend', p)).toBe(100 * 10_000 + 30 * 30_000);
      expect(note(call)).toMatchObject({ charged: { tokens: 130, cost: (100 * 10_000 + 30 * 30_000) / NANOS }, settle: 'ok' });
      expect(note(call).charged).not.toHaveProperty('multiplier');
      expect(call.usage.cost).toBe((100 * 10_000 + 30 * 30_000) / NANOS);
      // Settled once: a second settle of the same call changes nothing.
      await h().guard.settle!(call);
      expect(await counter(h(), 'tokens', p)).toBe(130);
    });

    it('a usage report above the reservation is charged in full (fractions rounded up), with the policy multiplier', async () => {
      const p = principal();
      const call = limitCall({ principal: p, protocol: 'openai', operation: 'chat.completions', target: MODEL, estimate: { inputTokens: 10, maxOutputTokens: 10 }, obligations: { cost_multiplier: 1.5 } });
      await h().guard.admit!(call);
      expect(await counter(h(), 'tokens', p)).toBe(30);
      call.usage = { inputTokens: 10.2, outputTokens: 25, reported: true };
      call.outcome = 'ok';
      await h().guard.settle!(call);
      expect(await counter(h(), 'tokens', p)).toBe(Math.ceil((11 + 25) * 1.5));
      expect(await counter(h(), 'spend', p)).toBe(Math.ceil((11 * 10_000 + 25 * 30_000) * 1.5));
      expect(note(call).charged).toEqual({ multiplier: 1.5, tokens: 54, cost: Math.ceil((11 * 10_000 + 25 * 30_000) * 1.5) / NANOS });
    });

    it('a broken stream pays what it streamed plus its prompt estimate', async () => {
      const p = principal();
      const call = limitCall({ principal: p, protocol: 'openai', operation: 'chat.completions', target: MODEL, estimate: { inputTokens: 80, maxOutputTokens: 100 } });
      await h().guard.admit!(call);
      call.usage = { outputTokens: 7 };
      call.outcome = 'upstream_error';
      await h().guard.settle!(call);
      expect(await counter(h(), 'tokens', p)).toBe(87);
    });

    it('a finished call without a usage report pays its whole reservation; a failed one pays nothing', async () => {
      const p = principal();
      const done = limitCall({ principal: p, protocol: 'openai', operation: 'chat.completions', target: MODEL, estimate: { inputTokens: 60, maxOutputTokens: 40 } });
      await h().guard.admit!(done);
      done.outcome = 'ok';
      await h().guard.settle!(done);
      expect(await counter(h(), 'tokens', p)).toBe(100);
      expect(note(done).charged).toMatchObject({ tokens: 100 });
      const q = principal();
      const failed = limitCall({ principal: q, protocol: 'openai', operation: 'chat.completions', target: MODEL, estimate: { inputTokens: 60, maxOutputTokens: 40 } });
      await h().guard.admit!(failed);
      failed.outcome = 'upstream_error';
      await h().guard.settle!(failed);
      expect(await counter(h(), 'tokens', q)).toBe(0);
      expect(await counter(h(), 'spend', q)).toBe(0);
      expect(note(failed)).toMatchObject({ charged: { tokens: 0, cost: 0 }, settle: 'ok' });
    });

    it('a tool call pays its cost once it reached the upstream; refused, denied or unauthenticated it pays nothing', async () => {
      const p = principal();
      const forwarded = limitCall({ principal: p, target: TOOL });
      await h().guard.admit!(forwarded);
      expect(await counter(h(), 'spend', p)).toBe(0.25 * NANOS);
      forwarded.outcome = 'error';
      await h().guard.settle!(forwarded);
      // Reached the upstream (its answer was an error): the tool's cost stays charged, nothing to reconcile.
      expect(await counter(h(), 'spend', p)).toBe(0.25 * NANOS);
      expect(note(forwarded)).toMatchObject({ charged: { cost: 0.25 }, settle: 'ok' });
      for (const outcome of ['limited', 'denied', 'unauthenticated'] as const) {
        const q = principal();
        const stopped = limitCall({ principal: q, target: TOOL });
        await h().guard.admit!(stopped);
        expect(await counter(h(), 'spend', q)).toBe(0.25 * NANOS);
        stopped.outcome = outcome;
        await h().guard.settle!(stopped);
        expect(await counter(h(), 'spend', q), outcome).toBe(0);
        expect(note(stopped).charged, outcome).toEqual({ cost: 0 });
      }
    });

    it('a call that reserved nothing settles without touching any counter', async () => {
      const p = principal();
      const call = limitCall({ principal: p, target: { kind: 'tool', name: 'free__echo', server: 'free', local: 'echo' } });
      await h().guard.admit!(call);
      call.outcome = 'ok';
      await h().guard.settle!(call);
      expect(await counter(h(), 'spend', p)).toBe(0);
      expect((call.scratch.get('limits') as LimitNote | undefined)?.charged).toBeUndefined();
    });
  });
}
