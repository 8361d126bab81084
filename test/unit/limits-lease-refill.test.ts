/**
 * Leases refilled ahead of time (src/guards/limits/lease.ts, limits.lease.refillAt) through the limits guard on a real
 * Redis started here (so script counts concern these tests alone):
 * - a steady stream of calls on a busy key is served from leases after the first two calls: every later script is a
 *   background refill (sent before the lease is spent), none is a call's own;
 * - a refill refused at the edge (rate: the bucket is empty; budget: one more reservation is over `share` of what
 *   remains) leaves the units left usable, then the next call goes to Redis and gets the real refusal and its code;
 *   the whole limit is admitted exactly, never more;
 * - two replicas refilling one budget never spend more than it, and Redis holds exactly the spend after drain, also
 *   when a refill lands during the drain;
 * - a refill that Redis fails (a corrupted counter) is counted as a store error, never an unhandled rejection, and
 *   the lease's units stay usable.
 */
import { describe, expect, it } from 'vitest';
import { budgetKey, encodeValue } from '../../src/guards/limits/keys.ts';
import { NOTE_KEY, type LimitNote } from '../../src/guards/limits/notices.ts';
import { Calendar } from '../../src/guards/limits/windows.ts';
import { limitCall, limitsSnapshot } from '../helpers/limits.ts';
import { completionThrough, useLimitsReplicas, type LimitsReplica } from '../helpers/limits-replicas.ts';
import { scriptsRun } from '../helpers/redis.ts';

const HEAD = 'apiVersion: tollgate.dev/v1alpha1\n';
/** Each completion reserves 10 input + 100 output tokens. */
const RESERVED = 110;

const rate = (spec: string): string => `${HEAD}kind: RateLimit
metadata: { name: per-agent }
spec: { match: { tools: [tools/echo] }, key: [principal], ${spec} }
`;
const budget = (tokens: number): string => `${HEAD}kind: Budget
metadata: { name: tok }
spec: { match: { protocols: [openai] }, key: [principal], window: day, tokens: ${tokens}, failMode: closed }
`;

type Replica = LimitsReplica;

interface Outcome {
  readonly code: string;
  readonly store: string | undefined;
}

describe('leases refilled ahead of time, on a real Redis', () => {
  const replicas = useLimitsReplicas();
  const open = (docs: string, limitsYaml: string, prefix: string): Promise<Replica> => replicas.open(limitsSnapshot(docs, limitsYaml), prefix);

  const tool = async (r: Replica, principal: string): Promise<Outcome> => {
    const c = limitCall({ principal: `spiffe://example.org/agents/${principal}`, target: { kind: 'tool', name: 'tools__echo', server: 'tools', local: 'echo' } });
    let code = 'ok';
    try {
      await r.guard.admit!(c);
    } catch (err) {
      code = (err as { code: string }).code;
    }
    return { code, store: (c.scratch.get(NOTE_KEY) as LimitNote | undefined)?.store };
  };

  const completion = completionThrough;

  const counter = async (prefix: string, principal: string): Promise<number> => {
    const key = budgetKey(prefix, 'tollgate', 'tok', `principal=${encodeValue(`spiffe://example.org/agents/${principal}`)}`, new Calendar('UTC').current('day', Date.now()).id, 't');
    return Number((await replicas.client().get(key)) ?? 0);
  };

  it('serves a steady stream of rate-limited calls from leases: after the first two, every script is a refill', async () => {
    // 1000/s, burst 1000: k = 8. A lifetime of 1 s: a loaded machine's gaps between calls stay within it.
    const r = await open(rate('requests: 1000, per: 1s'), '    lease: { lifetime: 1s }\n', 'tgr:steady:');
    await tool(r, 'warm'); // loads the script outside the count
    const leases = r.service.leases!;
    const before = scriptsRun(replicas.redis().port);
    const refillsBefore = leases.stats.refills + leases.stats.refillsRefused;
    const stores: Array<string | undefined> = [];
    let waitedInRamp = 0;
    for (let i = 0; i < 200; i++) {
      if (i === 10) waitedInRamp = leases.stats.waited;
      const o = await tool(r, 'steady');
      expect(o.code).toBe('ok');
      stores.push(o.store);
      // A call's own I/O (its upstream) between calls: one round trip to Redis on another connection.
      await replicas.client().ping();
    }
    await leases.idle();
    const refills = leases.stats.refills + leases.stats.refillsRefused - refillsBefore;
    const used = scriptsRun(replicas.redis().port) - before;
    process.stdout.write(`[lease refill] 200 calls: ${used} scripts, ${refills} of them refills; ${leases.stats.waited} calls waited for one\n`);
    // The first call of a quiet key takes one unit, the second asks for the first lease (2 units): both inline.
    expect(stores.slice(0, 2)).toEqual(['redis', 'redis']);
    expect(stores.slice(2).every((s) => s === 'lease')).toBe(true);
    expect(leases.stats.refillsRefused).toBe(0);
    // Once the lease has grown past its first unit (a lease of 1 is spent by the call after the one that refills it),
    // every refill landed before its lease was spent: no call waited for one.
    expect(waitedInRamp).toBeLessThanOrEqual(2);
    expect(leases.stats.waited).toBe(waitedInRamp);
    // Every other script was a refill (one key: one script each).
    expect(used - 2).toBe(refills);
    // Held units never exceed k - 1: 200 calls need at least (200 - 2) / 7 refills.
    expect(refills).toBeGreaterThanOrEqual(Math.ceil(198 / 7));
  });

  it('a key called far below its limit keeps a lease it spends within its lifetime: none expires with units left', async () => {
    // 1000/s, share 0.5, lifetime 300 ms: k = 64. The caller makes one call every ~30 ms, so a lease of 64 units would
    // last ~1 s and expire with units left (counted as spent), and the call after it would wait for Redis. A refill
    // grows the lease only when a lease twice its size would be spent within its lifetime at the pace seen.
    const r = await open(rate('requests: 1000, per: 1s'), '    lease: { units: 64, share: 0.5, lifetime: 300ms }\n', 'tgr:slow:');
    await tool(r, 'warm');
    const leases = r.service.leases!;
    const stores: Array<string | undefined> = [];
    for (let i = 0; i < 60; i++) {
      const o = await tool(r, 'slow');
      expect(o.code).toBe('ok');
      stores.push(o.store);
      await new Promise((resolve) => setTimeout(resolve, 30));
    }
    await leases.idle();
    process.stdout.write(`[lease refill] 60 calls ~30 ms apart: ${stores.filter((s) => s === 'redis').length} decided in Redis, ${leases.stats.unusedUnits} units expired unspent, ${leases.stats.refills} refills\n`);
    expect(stores.slice(0, 2)).toEqual(['redis', 'redis']);
    expect(stores.slice(2).filter((s) => s !== 'lease')).toEqual([]);
    expect(leases.stats.unusedUnits).toBe(0);
  });

  it('a rate refill refused at the edge: the units left are served, then the real refusal; exactly the burst admitted', async () => {
    // 40 an hour (one unit per 90 s: nothing comes back during the test); k = 8.
    const r = await open(rate('requests: 40, per: 1h, leaseUnits: 8'), '    lease: { units: 8, share: 0.5, lifetime: 1s }\n', 'tgr:edge:');
    const leases = r.service.leases!;
    const seen: Array<Outcome & { refused: number }> = [];
    for (let i = 0; i < 50; i++) {
      const o = await tool(r, 'edgy');
      // Let a refill the call started land before the next call (the order of the test, not a timing assert).
      await leases.idle();
      seen.push({ ...o, refused: leases.stats.refillsRefused });
    }
    const admitted = seen.filter((o) => o.code === 'ok').length;
    expect(admitted).toBe(40);
    const firstRefusal = seen.findIndex((o) => o.code !== 'ok');
    expect(firstRefusal).toBe(40);
    expect(seen.slice(40).every((o) => o.code === 'TG_RATE_LIMITED' && o.store === 'redis')).toBe(true);
    expect(leases.stats.refillsRefused).toBeGreaterThanOrEqual(1);
    // The calls after the refused refill were served from what was left (never from Redis), up to the burst.
    const afterRefused = seen.findIndex((o) => o.refused > 0);
    process.stdout.write(`[lease refill] rate edge: refill refused after call ${afterRefused + 1}, ${40 - afterRefused - 1} units left served\n`);
    expect(afterRefused).toBeGreaterThanOrEqual(0);
    expect(afterRefused).toBeLessThan(39);
    expect(seen.slice(afterRefused + 1, 40).every((o) => o.store === 'lease')).toBe(true);
  });

  it('two replicas refilling one rate limit: every unit Redis handed out is admitted or held, never more than the bucket', async () => {
    // 40 an hour, k = 8: nothing comes back during the test, so the bucket's 40 units are all the fleet may admit.
    const docs = rate('requests: 40, per: 1h, leaseUnits: 8');
    const yaml = '    lease: { units: 8, share: 0.5, lifetime: 1s }\n';
    const a = await open(docs, yaml, 'tgr:rtwo:');
    const b = await open(docs, yaml, 'tgr:rtwo:');
    let admitted = 0;
    for (let round = 0; round < 20; round++) {
      const outcomes = await Promise.all([tool(a, 'ray'), tool(b, 'ray'), tool(a, 'ray'), tool(b, 'ray')]);
      for (const o of outcomes) {
        if (o.code === 'ok') admitted++;
        else expect(o).toEqual({ code: 'TG_RATE_LIMITED', store: 'redis' });
      }
      await Promise.all([a.service.leases!.idle(), b.service.leases!.idle()]);
    }
    const held = (r: Replica): number => {
      const st = r.service.leases!.stats;
      return st.leasedUnits + st.refilledUnits - st.served;
    };
    process.stdout.write(`[lease refill] rate, 2 replicas: ${admitted} admitted, ${held(a) + held(b)} units held unspent, refills ${a.service.leases!.stats.refills} + ${b.service.leases!.stats.refills}\n`);
    expect(a.service.leases!.stats.refills + b.service.leases!.stats.refills).toBeGreaterThan(0);
    expect(admitted).toBeLessThanOrEqual(40);
    // Each replica holds at most k - 1 units unspent (one lease, refills included)...
    expect(held(a)).toBeLessThanOrEqual(7);
    expect(held(b)).toBeLessThanOrEqual(7);
    // ...and the bucket's units are exactly those admitted plus those held.
    expect(admitted + held(a) + held(b)).toBe(40);
  });

  it('a budget refill refused near exhaustion: the units left are served, then TG_BUDGET_EXCEEDED; the budget spent exactly', async () => {
    const prefix = 'tgr:bedge:';
    const r = await open(budget(60 * RESERVED), '    lease: { budgets: { reservations: 8, share: 0.2, lifetime: 10s } }\n', prefix);
    const leases = r.service.leases!;
    const seen: Outcome[] = [];
    for (let i = 0; i < 70; i++) {
      seen.push(await completion(r, 'bea', 100));
      await leases.idle();
    }
    expect(seen.filter((o) => o.code === 'ok')).toHaveLength(60);
    expect(seen.findIndex((o) => o.code !== 'ok')).toBe(60);
    expect(seen.slice(60).every((o) => o.code === 'TG_BUDGET_EXCEEDED' && o.store === 'redis')).toBe(true);
    expect(leases.stats.refills).toBeGreaterThan(0);
    expect(leases.stats.refillsRefused).toBeGreaterThan(0);
    await leases.close();
    expect(await counter(prefix, 'bea')).toBe(60 * RESERVED);
  });

  it('two replicas refilling one budget never spend more than it; Redis holds exactly the spend after drain', async () => {
    const prefix = 'tgr:two:';
    const limit = 300 * RESERVED;
    const yaml = '    lease: { budgets: { reservations: 8, share: 0.2, lifetime: 10s } }\n';
    const a = await open(budget(limit), yaml, prefix);
    const b = await open(budget(limit), yaml, prefix);
    let admitted = 0;
    let charged = 0;
    let refusedInARow = 0;
    // Two concurrent callers per replica, each using a different part of its reservation, until both replicas refuse.
    for (let round = 0; refusedInARow < 4; round++) {
      const uses = [100, 40, 100, 70];
      const outcomes = await Promise.all([completion(a, 'bob', uses[0]!), completion(b, 'bob', uses[1]!), completion(a, 'bob', uses[2]!), completion(b, 'bob', uses[3]!)]);
      outcomes.forEach((o, i) => {
        if (o.code === 'ok') {
          admitted++;
          charged += 10 + uses[i]!;
          refusedInARow = 0;
        } else {
          expect(o.code).toBe('TG_BUDGET_EXCEEDED');
          refusedInARow++;
        }
      });
      // Never over the budget: what Redis counts (spend plus what the replicas hold) stays within it.
      expect(await counter(prefix, 'bob')).toBeLessThanOrEqual(limit);
      expect(charged).toBeLessThanOrEqual(limit);
    }
    expect(a.service.leases!.stats.refills + b.service.leases!.stats.refills).toBeGreaterThan(0);
    await a.service.leases!.close();
    await b.service.leases!.close();
    expect(await counter(prefix, 'bob')).toBe(charged);
    expect(admitted).toBeGreaterThan(300);
  });

  it('a refill that lands during drain gives its units back', async () => {
    const prefix = 'tgr:drain:';
    const r = await open(budget(1_000_000), '    lease: { budgets: { reservations: 8, lifetime: 10s } }\n', prefix);
    const leases = r.service.leases!;
    // Calls (each using all it reserves) until one crosses the low-water mark and starts a refill.
    let calls = 0;
    const started = leases.stats.refillsStarted;
    while (leases.stats.refillsStarted === started && calls < 50) {
      expect((await completion(r, 'dora', 100)).code).toBe('ok');
      calls++;
    }
    expect(leases.stats.refillsStarted).toBe(started + 1);
    // The refill is sent on the next turn of the event loop; drain right after it is sent, before its reply.
    await new Promise((res) => setImmediate(res));
    const landed = leases.stats.refills;
    await leases.close();
    expect(leases.stats.refills).toBe(landed + 1); // it landed during the drain...
    expect(await counter(prefix, 'dora')).toBe(calls * RESERVED); // ...and its units went back with the rest
  });

  it('a refill Redis fails is a counted store error, never an unhandled rejection; the units left stay usable', async () => {
    const prefix = 'tgr:err:';
    const r = await open(rate('requests: 1000, per: 1s, failMode: closed'), '    lease: { lifetime: 1s }\n', prefix);
    const leases = r.service.leases!;
    // Build the key's lease up to 7 units (sizes 2, 4, 8 as refills land).
    for (let i = 0; i < 12; i++) {
      expect((await tool(r, 'eve')).code).toBe('ok');
      await leases.idle();
    }
    expect(leases.stats.refills).toBeGreaterThanOrEqual(2);
    // Corrupt the counter: the next refill's script fails with TGCORRUPT.
    const keys = await replicas.client().keys(`${prefix}*eve*`);
    expect(keys).toHaveLength(1);
    await replicas.client().set(keys[0]!, 'not-a-number', 'PX', 60_000);
    // Calls until one crosses the low-water mark: its refill fails; the call itself was served from the lease.
    for (let i = 0; i < 10 && leases.stats.refillErrors === 0; i++) {
      expect(await tool(r, 'eve')).toEqual({ code: 'ok', store: 'lease' });
      await leases.idle();
    }
    expect(leases.stats.refillErrors).toBe(1);
    const errors = await r.registry.getSingleMetric('tollgate_limiter_store_errors_total')!.get();
    expect(errors.values.find((v) => v.labels.reason === 'corrupt')?.value).toBeGreaterThanOrEqual(1);
    // The calls after the failed refill were served from the units left, then the limiter fails closed.
    const rest: Outcome[] = [];
    for (let i = 0; i < 10; i++) rest.push(await tool(r, 'eve'));
    const firstRedis = rest.findIndex((o) => o.store !== 'lease');
    expect(firstRedis).toBeGreaterThan(0);
    expect(rest.slice(0, firstRedis).every((o) => o.code === 'ok')).toBe(true);
    expect(rest.slice(firstRedis).every((o) => o.code === 'TG_LIMITER_UNAVAILABLE')).toBe(true);
    expect(leases.stats.refillErrors).toBe(1); // not asked again for the same lease
  });
});
