/**
 * Local leases of rate-limit units (src/guards/limits/lease.ts) through the limits guard on a real Redis (private
 * servers started here, so command counts and kills concern these tests alone):
 * - one EVALSHA takes k units and the next calls on the key are admitted without a round trip (INFO commandstats:
 *   far fewer scripts than calls), while leases off keep exactly one script per call;
 * - a lease is its key's: another principal whose bucket is empty stays refused while a lease holds units;
 * - what the caller is told is left counts down through leased units; unused units expire and stay spent;
 * - Redis down: the fail modes apply as without leases, even while a lease holds units.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import type { Guard } from '../../src/core/pipeline.ts';
import type { LimitNotice } from '../../src/core/limits.ts';
import { LeasingCounterStore } from '../../src/guards/limits/lease.ts';
import { NOTE_KEY, NOTICES_KEY, type LimitNote } from '../../src/guards/limits/notices.ts';
import { LimitsService } from '../../src/guards/limits/service.ts';
import { redisSpec } from '../../src/store/config.ts';
import { RedisStore } from '../../src/store/redis.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { eventually } from '../helpers/gateway.ts';
import { limitCall, limitsSnapshot } from '../helpers/limits.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';

const log = createLogger('silent');
const HEAD = 'apiVersion: tollgate.dev/v1alpha1\n';

interface Replica {
  readonly service: LimitsService;
  readonly guard: Guard;
  readonly store: RedisStore;
}

async function replica(redis: RedisServer, docs: string, limitsYaml: string, prefix: string): Promise<Replica> {
  const store = new RedisStore(redisSpec.parse({ url: redis.url, keyPrefix: prefix, commandTimeoutMs: 2_000 }), process.cwd(), log);
  await store.waitReady(5_000);
  const service = new LimitsService({ log, store });
  const guard = service.guardsFor(limitsSnapshot(docs, limitsYaml))[0]!;
  return { service, guard, store };
}

interface Outcome {
  readonly code: string;
  readonly note: LimitNote;
  readonly remaining: number | undefined;
}

async function call(r: Replica, principal: string, tool = 'echo'): Promise<Outcome> {
  const c = limitCall({ principal: `spiffe://example.org/agents/${principal}`, target: { kind: 'tool', name: `tools__${tool}`, server: 'tools', local: tool } });
  let code = 'ok';
  try {
    await r.guard.admit!(c);
  } catch (err) {
    code = (err as { code: string }).code;
  }
  const raw = c.scratch.get(NOTICES_KEY) as LimitNotice[] | (() => LimitNotice[]) | undefined;
  const notices = typeof raw === 'function' ? raw() : raw;
  return { code, note: c.scratch.get(NOTE_KEY) as LimitNote, remaining: notices?.[0]?.remaining };
}

/** Scripts the server ran (EVALSHA and EVAL: the first use of a script is an EVAL after NOSCRIPT). */
function scripts(port: number): number {
  const info = execFileSync('redis-cli', ['-p', String(port), 'info', 'commandstats'], { encoding: 'utf8' });
  let n = 0;
  for (const m of info.matchAll(/^cmdstat_(evalsha|eval):calls=(\d+)/gm)) n += Number(m[2]);
  return n;
}

/** Slow limits (40 an hour) lease only with an explicit `leaseUnits`: by default k is held to what keeps units expiring
 * unspent within 5% of the rate (plan.ts), which a 40/h limit never allows. */
const rate = (extra: string): string => `${HEAD}kind: RateLimit
metadata: { name: per-agent }
spec: { match: { tools: [tools/echo] }, key: [principal], ${extra} }
`;

describe('rate-limit leases on a real Redis', () => {
  let redis: RedisServer;
  const replicas: Replica[] = [];
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    for (const r of replicas) {
      await r.service.close();
      await r.store.close();
    }
    await redis?.stop();
  });
  const open = async (docs: string, limitsYaml: string, prefix: string): Promise<Replica> => {
    const r = await replica(redis, docs, limitsYaml, prefix);
    replicas.push(r);
    return r;
  };

  it('take k units per EVALSHA: 100 calls run far fewer scripts than with leases off (exactly 100)', async () => {
    // burst 1000: k = min(8, 1000 x 0.05) = 8. A lifetime of 1 s: a loaded machine's gaps between calls stay in it.
    const docs = rate('requests: 1000, per: 1s');
    // Inline leases only (refillAt 0: a lease is asked for by the call that finds it spent); refills: test below.
    const on = await open(docs, '    lease: { lifetime: 1s, refillAt: 0 }\n', 'tgl:on:');
    const off = await open(docs, '    lease: { units: 0 }\n', 'tgl:off:');
    const count = async (r: Replica, principal: string): Promise<{ scripts: number; stores: string[] }> => {
      await call(r, `${principal}-warm`); // loads the script (EVAL after NOSCRIPT) outside the count
      const before = scripts(redis.port);
      const stores: string[] = [];
      for (let i = 0; i < 100; i++) {
        const o = await call(r, principal);
        expect(o.code).toBe('ok');
        stores.push(o.note.store);
      }
      return { scripts: scripts(redis.port) - before, stores };
    };
    const withLeases = await count(on, 'counted');
    const without = await count(off, 'counted');
    process.stdout.write(`[limits lease] 100 calls: ${withLeases.scripts} scripts with leases (k=8), ${without.scripts} without\n`);
    expect(without.scripts).toBe(100);
    expect(without.stores.every((s) => s === 'redis')).toBe(true);
    // First call: one unit (the key was quiet); then leases of 2, 4, then 8 per 8 calls: 3 + ceil(93 / 8) = 15.
    expect(withLeases.scripts).toBeLessThanOrEqual(20);
    expect(withLeases.stores.filter((s) => s === 'lease')).toHaveLength(100 - withLeases.scripts);
    expect(withLeases.stores.filter((s) => s === 'redis')).toHaveLength(withLeases.scripts);
  });

  it('asks for at most one lease per key at a time; misses wait for it only as many as it should serve', async () => {
    const r = await open(rate('requests: 1000, per: 1s'), '    lease: { lifetime: 1s, refillAt: 0 }\n', 'tgl:conc:');
    const before = scripts(redis.port);
    const outcomes = await Promise.all(Array.from({ length: 30 }, () => call(r, 'frank')));
    expect(outcomes.every((o) => o.code === 'ok')).toBe(true);
    // All 30 were sent before any reply: the first takes one unit (a quiet key), the second asks for a lease of 2
    // (one unit beyond its own), the third waits for that request and is served from it, the other 27 find the
    // waiting room full and take one unit each. One lease, so at most k - 1 units held.
    expect(scripts(redis.port) - before).toBe(29);
    const stats = (r.service.store as LeasingCounterStore).stats;
    expect(stats).toMatchObject({ leases: 1, leasedUnits: 1, waited: 1, served: 1 });
    expect(outcomes.filter((o) => o.note.store === 'lease')).toHaveLength(1);
  });

  it("never admits a caller on another caller's lease (two principals, one key each)", async () => {
    // burst 40, k = min(8, 40 x 0.5) = 8; about 90 s per refill, so nothing refills during the test.
    const docs = rate('requests: 40, per: 1h, leaseUnits: 8');
    const yaml = '    lease: { units: 8, share: 0.5, lifetime: 1s, refillAt: 0 }\n';
    const a = await open(docs, yaml, 'tgl:x:');
    const b = await open(docs, yaml, 'tgl:x:'); // a second replica on the same counters
    // Empty bob's bucket through replica b (its own leases included).
    let admitted = 0;
    for (let i = 0; i < 45; i++) if ((await call(b, 'bob')).code === 'ok') admitted++;
    expect(admitted).toBe(40);
    // alice takes leases on replica a: 2 units at her second call, 4 at her fourth (1 spent, 3 held).
    const stores: string[] = [];
    for (let i = 0; i < 5; i++) stores.push((await call(a, 'alice')).note.store);
    expect(stores).toEqual(['redis', 'redis', 'lease', 'redis', 'lease']);
    // bob on replica a, while alice's lease holds units there: refused by Redis, his own bucket.
    const bob = await call(a, 'bob');
    expect(bob.code).toBe('TG_RATE_LIMITED');
    expect(bob.note.store).toBe('redis');
    // alice's lease is still hers.
    const alice = await call(a, 'alice');
    expect(alice.code).toBe('ok');
    expect(alice.note.store).toBe('lease');
  });

  it('counts what is left down through leased units; unused units expire and stay spent', async () => {
    const docs = rate('requests: 40, per: 1h, leaseUnits: 8');
    const r = await open(docs, '    lease: { units: 8, share: 0.5, lifetime: 300ms, refillAt: 0 }\n', 'tgl:rem:');
    const seen: Outcome[] = [];
    for (let i = 0; i < 6; i++) seen.push(await call(r, 'carol'));
    expect(seen.map((o) => o.code)).toEqual(Array(6).fill('ok'));
    // Exactly what a call-per-round-trip limiter says: 39, 38, ... whether the store or a lease answered.
    expect(seen.map((o) => o.remaining)).toEqual([39, 38, 37, 36, 35, 34]);
    // Leases of 2 (second call) and 4 (fourth call: the first was spent, so the next is twice as large).
    expect(seen.map((o) => o.note.store)).toEqual(['redis', 'redis', 'lease', 'redis', 'lease', 'lease']);
    // The second lease (4 taken: 3 used, 1 held) expires; its unit is not given back.
    await new Promise((res) => setTimeout(res, 400));
    const after = await call(r, 'carol');
    expect(after.note.store).toBe('redis');
    expect(after.remaining).toBe(40 - 1 - 2 - 4 - 1);
    const stats = (r.service.store as LeasingCounterStore).stats;
    expect(stats).toMatchObject({ leases: 2, leasedUnits: 1 + 3, served: 3, unusedUnits: 1 });
    // A lease expired with units left: the key's next lease is halved (2 units, not 4 again).
    const next = [await call(r, 'carol'), await call(r, 'carol')];
    expect(next.map((o) => o.note.store)).toEqual(['redis', 'lease']);
    expect(next.map((o) => o.remaining)).toEqual([31, 30]);
    expect(stats).toMatchObject({ leases: 3, leasedUnits: 1 + 3 + 1, served: 4, unusedUnits: 1 });
  });
});

describe('rate-limit leases while Redis is down', () => {
  let redis: RedisServer;
  let r: Replica;
  beforeAll(async () => {
    redis = await startRedis();
    const docs = ['closed', 'local']
      .map((mode) => `${HEAD}kind: RateLimit
metadata: { name: rate-${mode} }
spec: { match: { tools: [tools/${mode}] }, key: [principal], requests: 40, per: 1h, leaseUnits: 8, failMode: ${mode} }
`)
      .join('---\n');
    r = await replica(redis, docs, '    replicas: 2\n    lease: { units: 8, share: 0.5, lifetime: 1s, refillAt: 0 }\n', 'tgl:down:');
  });
  afterAll(async () => {
    await r?.service.close();
    await r?.store.close();
    await redis?.stop();
  });

  it('applies each fail mode as without leases, even while a lease holds units, and goes back to Redis', async () => {
    for (const tool of ['closed', 'local']) {
      const stores: string[] = [];
      for (let i = 0; i < 5; i++) stores.push((await call(r, 'dave', tool)).note.store);
      expect(stores).toEqual(['redis', 'redis', 'lease', 'redis', 'lease']); // the lease of 4 still holds 2 units
    }
    await redis.kill();
    await eventually(() => !r.service.store.available, 5_000, 'the store to notice Redis is gone');
    const closed = await call(r, 'dave', 'closed');
    expect(closed.code).toBe('TG_LIMITER_UNAVAILABLE');
    expect(closed.note.decision).toBe('unavailable');
    const local = await call(r, 'dave', 'local');
    expect(local.code).toBe('ok');
    expect(local.note).toMatchObject({ decision: 'local', store: 'local' });
    // The local bucket is 1/replicas of the burst (20): it refuses after that, whatever the lease held.
    let admitted = 1;
    for (let i = 0; i < 25; i++) if ((await call(r, 'dave', 'local')).code === 'ok') admitted++;
    expect(admitted).toBe(20);
    await redis.restart();
    await eventually(() => r.service.store.available, 10_000, 'the store to reconnect');
    // Decisions come from Redis again (another principal: dave's lease may still hold units, counted before the kill).
    const back = await call(r, 'erin', 'closed');
    expect(back.code).toBe('ok');
    expect(back.note.store).toBe('redis');
  });
});
