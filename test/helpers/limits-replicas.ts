/**
 * Limits-service replicas on a Redis of their own (started for the describe block that calls `useLimitsReplicas`, so
 * its script counts concern that block alone), each replica with its key prefix: what the lease tests run against.
 */
import { Redis } from 'ioredis';
import client from 'prom-client';
import { afterAll, beforeAll } from 'vitest';
import type { ConfigSnapshot } from '../../src/config/load.ts';
import type { Guard } from '../../src/core/pipeline.ts';
import { LimitsService } from '../../src/guards/limits/service.ts';
import { redisSpec } from '../../src/store/config.ts';
import { RedisStore } from '../../src/store/redis.ts';
import { NOTE_KEY, type LimitNote } from '../../src/guards/limits/notices.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { limitCall } from './limits.ts';
import { startRedis, type RedisServer } from './redis.ts';

export interface LimitsReplica {
  readonly service: LimitsService;
  readonly guard: Guard;
  readonly store: RedisStore;
  readonly registry: client.Registry;
}

export interface LimitsReplicas {
  /** The Redis (started in beforeAll). */
  redis(): RedisServer;
  /** A plain client of it (errors ignored: a test may kill Redis, the client reconnects quietly). */
  client(): Redis;
  /** A limits service on the shared Redis under `prefix`, with the guard of the snapshot's first route; closed after the block. */
  open(snapshot: ConfigSnapshot, prefix: string): Promise<LimitsReplica>;
}

export function useLimitsReplicas(): LimitsReplicas {
  const log = createLogger('silent');
  let redis: RedisServer | undefined;
  let plain: Redis | undefined;
  const opened: LimitsReplica[] = [];
  beforeAll(async () => {
    redis = await startRedis();
    plain = new Redis(redis.url);
    plain.on('error', () => {});
  });
  afterAll(async () => {
    for (const r of opened) {
      await r.service.close();
      await r.store.close();
    }
    await plain?.quit();
    await redis?.stop();
  });
  return {
    redis: () => redis!,
    client: () => plain!,
    open: async (snapshot, prefix) => {
      const store = new RedisStore(redisSpec.parse({ url: redis!.url, keyPrefix: prefix, commandTimeoutMs: 2_000 }), process.cwd(), log);
      await store.waitReady(5_000);
      const registry = new client.Registry();
      const service = new LimitsService({ log, store, registry });
      const r = { service, guard: service.guardsFor(snapshot)[0]!, store, registry };
      opened.push(r);
      return r;
    },
  };
}

/** What one call through a replica's guard came to: `ok` or the refusal's code, and where the decision was made. */
export interface LimitOutcome {
  readonly code: string;
  readonly store: string | undefined;
}

/** One streamed completion of `principal` (agents/<principal>): admit (10 input + 100 output tokens reserved), then settle with `output` used. */
export async function completionThrough(r: LimitsReplica, principal: string, output: number): Promise<LimitOutcome> {
  const c = limitCall({
    principal: `spiffe://example.org/agents/${principal}`,
    protocol: 'openai',
    operation: 'chat.completions',
    target: { kind: 'model', name: 'llama', server: 'vllm' },
    estimate: { inputTokens: 10, maxOutputTokens: 100 },
  });
  let code = 'ok';
  try {
    await r.guard.admit!(c);
    c.outcome = 'ok';
    c.usage = { inputTokens: 10, outputTokens: output, reported: true };
  } catch (err) {
    code = (err as { code: string }).code;
    c.outcome = 'limited';
  }
  await r.guard.settle!(c);
  return { code, store: (c.scratch.get(NOTE_KEY) as LimitNote | undefined)?.store };
}
