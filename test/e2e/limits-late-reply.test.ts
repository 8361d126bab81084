/**
 * A limit decision that times out in the gateway but is applied by Redis after all (Redis stalled, then caught up):
 * the caller was refused (fail mode), so the budget it reserved must be given back, never left charged. Redis is
 * stalled with CLIENT PAUSE on a private server (2.5 s against a 1 s command timeout, room for a loaded machine), so
 * the decision waits in Redis and runs after the gateway gave up.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisCounterStore, SettlePending } from '../../src/guards/limits/counters.ts';
import type { Adjustment, Op } from '../../src/guards/limits/decide.ts';
import { LimitsService } from '../../src/guards/limits/service.ts';
import { redisSpec } from '../../src/store/config.ts';
import { RedisStore } from '../../src/store/redis.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { eventually } from '../helpers/gateway.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';

const log = createLogger('silent');
let redis: RedisServer;
let admin: Redis;
let store: RedisStore;

beforeAll(async () => {
  redis = await startRedis();
  admin = new Redis(redis.url);
  store = new RedisStore(redisSpec.parse({ url: redis.url, keyPrefix: 'late:', commandTimeoutMs: 1_000 }), process.cwd(), log);
  await store.waitReady(5_000);
});

afterAll(async () => {
  await store?.close();
  await admin?.quit();
  await redis?.stop();
});

const budget = (key: string, amount: number): Op => ({ kind: 'b', key, limit: 1000, amount, expireAtMs: Date.now() + 600_000 });

/** Stalls every other client of the server for `ms`: commands sent meanwhile run when the pause ends. */
async function stall(ms: number): Promise<void> {
  await admin.call('CLIENT', 'PAUSE', String(ms), 'ALL');
}

describe('a decision that times out but is applied by Redis later', () => {
  it('hands the reservations it applied back to the caller of the store', async () => {
    const late: Adjustment[][] = [];
    const counters = new RedisCounterStore(store, (back) => late.push(back));
    // Not stalled: answered in time, nothing handed back.
    expect((await counters.decide([budget('late:a', 30)])).admitted).toBe(true);
    await stall(2_500);
    await expect(counters.decide([budget('late:a', 130), { kind: 'r', key: 'late:r', intervalUs: 1000, toleranceUs: 10_000, cost: 1 }])).rejects.toThrow(/timed out/);
    await eventually(() => late.length === 1, 10_000, 'the late reply');
    expect(late[0]).toEqual([{ key: 'late:a', delta: -130 }]);
    // Redis applied it: 30 + 130 until the caller gives it back.
    expect(await counters.read(['late:a'])).toEqual([160]);
  });

  it('gives the reservation back through the limits service, so the refused call is not charged', async () => {
    const service = new LimitsService({ log, store });
    await expect(Promise.resolve(service.store.decide([budget('late:b', 50)]))).resolves.toMatchObject({ admitted: true });
    await stall(2_500);
    await expect(Promise.resolve(service.store.decide([budget('late:b', 200)]))).rejects.toThrow(/timed out/);
    // What Redis holds ends at the admitted call's 50: the timed-out one's 200 came back.
    // (reads sent while Redis is paused time out themselves: they count as "not yet")
    await eventually(async () => (await service.store.read(['late:b']).catch(() => []))[0] === 50, 10_000, 'the reservation given back');
    await service.close();
  });

  it('hands nothing back when the late verdict refused (nothing was applied)', async () => {
    const late: Adjustment[][] = [];
    const counters = new RedisCounterStore(store, (back) => late.push(back));
    await counters.decide([budget('late:c', 990)]);
    await stall(2_500);
    await expect(counters.decide([budget('late:c', 500)])).rejects.toThrow(/timed out/);
    // A PING from another client waits for the pause to end; a decision sent then is answered after the paused one
    // (same connection, replies in order), so by its answer the late verdict has been seen.
    const probe = new Redis(redis.url);
    await probe.ping();
    await probe.quit();
    expect((await counters.decide([budget('late:c', 1)])).admitted).toBe(true);
    expect(late).toEqual([]);
    expect(await counters.read(['late:c'])).toEqual([991]);
  });

  it('never sends a timed-out settle twice: it stays in flight and is applied once', async () => {
    const unapplied: Adjustment[][] = [];
    const counters = new RedisCounterStore(store, () => {}, (a) => unapplied.push(a));
    await counters.decide([budget('late:d', 300)]);
    await stall(2_500);
    await expect(counters.settle([{ key: 'late:d', delta: -100 }])).rejects.toBeInstanceOf(SettlePending);
    const probe = new Redis(redis.url);
    await probe.ping();
    await probe.quit();
    expect(await counters.read(['late:d'])).toEqual([200]);
    expect(unapplied).toEqual([]);
  });
});

describe('a settle whose connection dies before Redis answers', () => {
  it('is handed back to be sent again when the store returns (it was never applied)', async () => {
    const own = await startRedis();
    const ownAdmin = new Redis(own.url);
    const ownStore = new RedisStore(redisSpec.parse({ url: own.url, keyPrefix: 'late:', commandTimeoutMs: 1_000 }), process.cwd(), log);
    try {
      await ownStore.waitReady(5_000);
      const unapplied: Adjustment[][] = [];
      const counters = new RedisCounterStore(ownStore, () => {}, (a) => unapplied.push(a));
      await counters.decide([budget('late:e', 300)]);
      await ownAdmin.call('CLIENT', 'PAUSE', '10000', 'ALL');
      await expect(counters.settle([{ key: 'late:e', delta: -100 }])).rejects.toBeInstanceOf(SettlePending);
      await own.kill();
      await eventually(() => unapplied.length === 1, 10_000, 'the unapplied settle handed back');
      expect(unapplied[0]).toEqual([{ key: 'late:e', delta: -100 }]);
    } finally {
      ownAdmin.disconnect();
      await ownStore.close();
      await own.stop();
    }
  });
});
