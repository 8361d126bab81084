/**
 * In-memory and Redis limiters give the same decisions on the same recorded sequence.
 *
 * 1. The algorithm: a recorded sequence (rate ops of several shapes, some taking a lease, budget reservations, several keys, irregular
 *    times, refusals included) replayed through MemoryCounters and through the Lua script on the test Redis, the
 *    script taking "now" from ARGV instead of TIME (the same Lua text otherwise: decideScript('argv')). Every
 *    verdict must be identical, field by field.
 * 2. The production paths: the limits guard over the in-memory store and over Redis (TIME), fed the same calls in
 *    the same order with pauses far from any bucket boundary: the same admitted/refused sequence.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryCounters, type Op, type Verdict } from '../../src/guards/limits/decide.ts';
import { decideScript, parseReply, scriptArgs } from '../../src/guards/limits/lua.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { RedisStore } from '../../src/store/redis.ts';
import { redisSpec } from '../../src/store/config.ts';
import { LimitsService } from '../../src/guards/limits/service.ts';
import { limitsSnapshot, limitCall } from '../helpers/limits.ts';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6390';

/** A deterministic pseudo-random generator (mulberry32), so the recorded sequence is the same on every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Event {
  readonly atUs: number;
  readonly ops: Op[];
}

function recordedSequence(prefix: string, startUs: number, n: number): Event[] {
  const random = rng(20261203);
  const shapes = [
    { intervalUs: 100_000, toleranceUs: 500_000 }, // 10/s, burst 5
    { intervalUs: 333_333, toleranceUs: 999_999 }, // 3/s, burst 3
    { intervalUs: 1_000, toleranceUs: 1_000 }, // 1000/s, burst 1
  ];
  const events: Event[] = [];
  let t = startUs;
  for (let i = 0; i < n; i++) {
    // Bursts (gaps of a few us) and pauses (up to 0.6 s), so buckets empty and refill.
    t += random() < 0.7 ? Math.floor(random() * 5_000) : Math.floor(random() * 600_000);
    const ops: Op[] = [];
    const k = Math.floor(random() * 3);
    const shape = shapes[k]!;
    const cost = 1 + Math.floor(random() * 2);
    // A third of the rate ops ask for a lease (take up to 2..9 units when the bucket has them).
    const take = random() < 0.33 ? cost + 1 + Math.floor(random() * 8) : undefined;
    ops.push({ kind: 'r', key: `${prefix}r:{x}:shape${k}:p=${Math.floor(random() * 2)}`, ...shape, cost, ...(take === undefined ? {} : { take }) });
    if (random() < 0.5) {
      const amount = 1 + Math.floor(random() * 400);
      // Every third budget op asks for a lease of 4 reservations, at most 20% of what remains (lease.ts).
      const lease = i % 3 === 0 ? { take: amount * 4, sharePpm: 200_000 } : {};
      ops.push({ kind: 'b', key: `${prefix}b:{x}:budget:p=${Math.floor(random() * 2)}:w:t`, limit: 50_000, amount, expireAtMs: Math.floor(startUs / 1000) + 3_600_000, ...lease });
    }
    if (random() < 0.2) ops.push({ kind: 'r', key: `${prefix}r:{x}:route:-`, intervalUs: 50_000, toleranceUs: 200_000, cost: 1 });
    events.push({ atUs: t, ops });
  }
  return events;
}

describe('in-memory and Redis decisions', () => {
  let redis: Redis;
  beforeAll(async () => {
    redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0 });
    await redis.connect();
    redis.defineCommand('limitReplay', { lua: decideScript('argv') });
  });
  afterAll(async () => {
    await redis?.quit();
  });

  it('are identical, verdict by verdict, on a recorded sequence of 2000 calls (same Lua, now from ARGV)', async () => {
    const prefix = `tgtest:replay:${process.pid}:${Date.now()}:`;
    const startUs = Date.now() * 1000;
    const events = recordedSequence(prefix, startUs, 2_000);
    const memory = new MemoryCounters(() => 0);
    const replay = (redis as unknown as { limitReplay(n: number, ...args: string[]): Promise<unknown> }).limitReplay.bind(redis);
    const fromMemory: Verdict[] = [];
    const fromRedis: Verdict[] = [];
    for (const e of events) {
      fromMemory.push(memory.decide(e.ops, e.atUs));
      const { keys, argv } = scriptArgs(e.ops);
      fromRedis.push(parseReply(await replay(keys.length, ...keys, ...argv, String(e.atUs)), e.ops.length));
    }
    const admitted = fromMemory.filter((v) => v.admitted).length;
    // The sequence exercises both outcomes (not a trivially all-admitted or all-refused run).
    expect(admitted).toBeGreaterThan(200);
    expect(events.length - admitted).toBeGreaterThan(200);
    // Leases were granted, in full and in part (a bucket holding fewer units than asked gives what it has).
    const grants = events.flatMap((e, i) => e.ops.flatMap((op, j) => (op.kind === 'r' && op.take !== undefined && fromMemory[i]!.admitted ? [{ asked: op.take, cost: op.cost, got: fromMemory[i]!.results[j]!.granted }] : [])));
    expect(grants.some((g) => g.got === g.asked)).toBe(true);
    expect(grants.some((g) => g.got > g.cost && g.got < g.asked)).toBe(true);
    expect(grants.every((g) => g.got >= g.cost && g.got <= g.asked)).toBe(true);
    // Budget leases: granted while the chunk is a small share of what remains, refused near the edge.
    const budgetGrants = events.flatMap((e, i) => e.ops.flatMap((op, j) => (op.kind === 'b' && op.take !== undefined && fromMemory[i]!.admitted ? [fromMemory[i]!.results[j]!.granted - op.amount] : [])));
    expect(budgetGrants.some((extra) => extra > 0)).toBe(true);
    expect(budgetGrants.some((extra) => extra === 0)).toBe(true);
    expect(fromRedis).toEqual(fromMemory);
  });

  it('are the same through the limits guard on the production paths (Redis TIME vs the process clock)', async () => {
    const log = createLogger('silent');
    const store = new RedisStore(redisSpec.parse({ url: REDIS_URL, keyPrefix: `tgt:g:${process.pid}:${Date.now().toString(36)}:`, commandTimeoutMs: 5_000 }), process.cwd(), log);
    await store.waitReady(5_000);
    const snapshot = limitsSnapshot(`
apiVersion: tollgate.dev/v1alpha1
kind: RateLimit
metadata: { name: per-agent }
spec: { key: [principal], requests: 2, per: 1s, burst: 3 }
`);
    const services = [new LimitsService({ log }), new LimitsService({ log, store })];
    const guards = services.map((s) => s.guardsFor(snapshot)[0]!);
    const outcomes: string[][] = [[], []];
    const run = async (round: string, n: number): Promise<void> => {
      for (let i = 0; i < n; i++) {
        for (const [g, guard] of guards.entries()) {
          const call = limitCall({ principal: `spiffe://example.org/agent/${round === 'c' ? 'other' : 'one'}` });
          try {
            await guard.admit!(call);
            outcomes[g]!.push(`${round}${i}:ok`);
          } catch (err) {
            outcomes[g]!.push(`${round}${i}:${(err as { code: string }).code}`);
          }
        }
      }
    };
    await run('a', 5); // burst of 3 admitted, 2 refused
    await new Promise((r) => setTimeout(r, 1_250)); // 2.5 units refilled: 2 whole ones
    await run('b', 3);
    await run('c', 4); // another principal: its own bucket
    expect(outcomes[1]).toEqual(outcomes[0]);
    expect(outcomes[0]).toEqual([
      'a0:ok', 'a1:ok', 'a2:ok', 'a3:TG_RATE_LIMITED', 'a4:TG_RATE_LIMITED',
      'b0:ok', 'b1:ok', 'b2:TG_RATE_LIMITED',
      'c0:ok', 'c1:ok', 'c2:ok', 'c3:TG_RATE_LIMITED',
    ]);
    await store.close();
  });
});
