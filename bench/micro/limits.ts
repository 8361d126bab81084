/**
 * The limiter on the hot path: one decision (a rate limit and a cost budget) in memory, and through Redis on
 * loopback (one EVALSHA round trip, awaited serially: the latency a single call pays). Redis is a private
 * redis-server started for this file (bench/fixtures/redis.ts).
 */
import type { Guard } from '../../src/core/pipeline.ts';
import { LimitsService } from '../../src/guards/limits/service.ts';
import { redisSpec } from '../../src/store/config.ts';
import { RedisStore } from '../../src/store/redis.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { limitCall, limitsSnapshot } from '../../test/helpers/limits.ts';
import { startBenchRedis } from '../fixtures/redis.ts';

interface MicroBench {
  name: string;
  setup?(): Promise<void> | void;
  fn(): unknown;
  iterations?: number;
}

const log = createLogger('silent');
const DOCS = `apiVersion: tollgate.dev/v1alpha1
kind: RateLimit
metadata: { name: rate }
spec: { key: [principal], requests: 1000000, per: 1s, failMode: closed }
---
apiVersion: tollgate.dev/v1alpha1
kind: Budget
metadata: { name: cost }
spec: { key: [principal], window: month, cost: 1000000, failMode: closed }
`;
const snapshot = limitsSnapshot(DOCS, '    toolCosts: [{ tool: "*", cost: 0.000001 }]\n');
const target = { kind: 'tool' as const, name: 'everything__echo', server: 'everything', local: 'echo' };
let memory: Guard;
let redis: Guard | undefined;

async function redisGuard(): Promise<Guard> {
  if (redis) return redis;
  const server = await startBenchRedis();
  const store = new RedisStore(redisSpec.parse({ url: server.url }), process.cwd(), log);
  await store.waitReady(5_000);
  redis = new LimitsService({ log, store }).guardsFor(snapshot)[0]!;
  return redis;
}

export const benches: MicroBench[] = [
  {
    name: 'limits: plan + decide in memory (rate + cost budget, one principal)',
    setup: () => {
      memory = new LimitsService({ log }).guardsFor(snapshot)[0]!;
    },
    fn: () => {
      const call = limitCall({ target });
      memory.admit!(call);
      return memory.settle!(call);
    },
  },
  {
    name: 'limits: plan + decide through Redis on loopback (one EVALSHA, serial)',
    setup: async () => {
      await redisGuard();
    },
    fn: async () => {
      const call = limitCall({ target });
      await redis!.admit!(call);
      return redis!.settle!(call);
    },
    iterations: 20_000,
  },
];
