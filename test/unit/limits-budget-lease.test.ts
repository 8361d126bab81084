/**
 * Budget leases (src/guards/limits/lease.ts) through the limits guard of two replicas (two LimitsServices, each with
 * its own Redis connection) on a real Redis started here:
 * - a busy key's reservations are served from a lease (far fewer scripts than calls), give-backs settle locally, and
 *   the Redis counter equals what was actually charged once the leases are given back (drain, or expiry alone);
 * - two replicas spending one budget never spend more than it, and after the leases come back they have spent it
 *   exactly (the last calls refused with TG_BUDGET_EXCEEDED, as without leases);
 * - near exhaustion (the chunk would be over `share` of what remains) nothing is leased: the same calls admit and
 *   refuse exactly as with budget leases off;
 * - a lease is its key's: another principal's exhausted budget stays refused while a lease holds units;
 * - Redis down: the fail mode applies whatever a lease holds, and its give-back waits with the other reconciliations.
 */
import { describe, expect, it } from 'vitest';
import { budgetKey, encodeValue } from '../../src/guards/limits/keys.ts';
import { Calendar } from '../../src/guards/limits/windows.ts';
import { eventually } from '../helpers/gateway.ts';
import { limitsSnapshot } from '../helpers/limits.ts';
import { completionThrough, useLimitsReplicas, type LimitsReplica } from '../helpers/limits-replicas.ts';
import { scriptsRun } from '../helpers/redis.ts';

/** Each call reserves 10 input + 100 output tokens. */
const RESERVED = 110;

const budget = (tokens: number): string => `apiVersion: tollgate.dev/v1alpha1
kind: Budget
metadata: { name: tok }
spec: { match: { protocols: [openai] }, key: [principal], window: day, tokens: ${tokens}, failMode: closed }
`;

type Replica = LimitsReplica;

describe('budget leases on a real Redis, two replicas', () => {
  const replicas = useLimitsReplicas();
  const open = (tokens: number, leaseYaml: string, prefix: string): Promise<Replica> =>
    replicas.open(limitsSnapshot(budget(tokens), `    lease: { budgets: ${leaseYaml} }\n`), prefix);
  const counter = async (prefix: string, principal: string): Promise<number> => {
    const key = budgetKey(prefix, 'tollgate', 'tok', `principal=${encodeValue(`spiffe://example.org/agents/${principal}`)}`, new Calendar('UTC').current('day', Date.now()).id, 't');
    return Number((await replicas.client().get(key)) ?? 0);
  };

  const call = completionThrough;

  it('serves a busy key from leases, settles give-backs locally, and Redis holds exactly the spend after drain', async () => {
    const prefix = 'tgbl:spend:';
    const a = await open(1_000_000, '{ lifetime: 10s }', prefix);
    await call(a, 'warm', 20); // loads the scripts outside the count
    const before = scriptsRun(replicas.redis().port);
    const stores: Array<string | undefined> = [];
    for (let i = 0; i < 100; i++) {
      const o = await call(a, 'alice', 20);
      expect(o.code).toBe('ok');
      stores.push(o.store);
    }
    const used = scriptsRun(replicas.redis().port) - before;
    process.stdout.write(`[budget lease] 100 reservations: ${used} scripts (reservations=8)\n`);
    // First call alone (a quiet key), then leases of 2, 4, 8 reservations, each given back to as calls settle.
    expect(used).toBeLessThanOrEqual(10);
    // (The scripts count the settles too: the first calls' give-backs go to Redis, before any lease holds the key.)
    expect(stores.filter((s) => s === 'lease').length).toBeGreaterThanOrEqual(100 - used);
    expect(stores.filter((s) => s === 'redis').length + stores.filter((s) => s === 'lease').length).toBe(100);
    // Redis counts what was charged and what this replica holds, never less.
    expect(await counter(prefix, 'alice')).toBeGreaterThanOrEqual(100 * 30);
    await a.service.leases!.close();
    expect(await counter(prefix, 'alice')).toBe(100 * 30);
  });

  it('concurrent reservations on one key (waiting for the lease in flight) still leave Redis at exactly the spend', async () => {
    const prefix = 'tgbl:conc:';
    const a = await open(1_000_000, '{ lifetime: 10s }', prefix);
    await call(a, 'frank', 10);
    for (let round = 0; round < 5; round++) {
      const outcomes = await Promise.all(Array.from({ length: 20 }, (_, i) => call(a, 'frank', i)));
      expect(outcomes.every((o) => o.code === 'ok')).toBe(true);
    }
    const stats = a.service.leases!.stats;
    expect(stats.waited).toBeGreaterThan(0);
    expect(stats.budgetLeases).toBeGreaterThan(0);
    await a.service.leases!.close();
    // 1 call using 10 output tokens, then 5 rounds of calls using 0..19: input 10 each.
    expect(await counter(prefix, 'frank')).toBe(20 + 5 * (20 * 10 + 190));
  });

  it('gives unused units back when a lease expires, without a drain', async () => {
    const prefix = 'tgbl:expiry:';
    const a = await open(1_000_000, '{ lifetime: 50ms }', prefix);
    for (let i = 0; i < 10; i++) expect((await call(a, 'erin', 40)).code).toBe('ok');
    expect(a.service.leases!.stats.budgetLeases).toBeGreaterThan(0);
    await eventually(async () => (await counter(prefix, 'erin')) === 10 * 50, 5_000, 'the counter equals the spend once the leases expired');
  });

  it('two replicas never spend more than the budget, and spend it exactly once their leases come back', async () => {
    const prefix = 'tgbl:two:';
    const limit = 200 * RESERVED;
    const a = await open(limit, '{ reservations: 8, share: 0.2, lifetime: 10s }', prefix);
    const b = await open(limit, '{ reservations: 8, share: 0.2, lifetime: 10s }', prefix);
    let admitted = 0;
    let refusedInARow = 0;
    // Four concurrent callers, two per replica, each using its whole reservation, until both replicas refuse.
    while (refusedInARow < 4) {
      const round = await Promise.all([call(a, 'bob', 100), call(b, 'bob', 100), call(a, 'bob', 100), call(b, 'bob', 100)]);
      for (const o of round) {
        if (o.code === 'ok') {
          admitted++;
          refusedInARow = 0;
        } else {
          expect(o.code).toBe('TG_BUDGET_EXCEEDED');
          refusedInARow++;
        }
      }
      expect(admitted * RESERVED).toBeLessThanOrEqual(limit);
    }
    expect(a.service.leases!.stats.budgetLeases + b.service.leases!.stats.budgetLeases).toBeGreaterThan(0);
    // What the other replica held may have refused the last calls: once given back, the budget is spent exactly.
    await a.service.leases!.close();
    await b.service.leases!.close();
    expect(await counter(prefix, 'bob')).toBe(admitted * RESERVED);
    for (;;) {
      const o = await call(admitted % 2 === 0 ? a : b, 'bob', 100);
      if (o.code !== 'ok') {
        expect(o.code).toBe('TG_BUDGET_EXCEEDED');
        break;
      }
      admitted++;
    }
    expect(admitted).toBe(200);
    expect(await counter(prefix, 'bob')).toBe(limit);
  });

  it('near exhaustion leases nothing: admits and refuses exactly as with budget leases off', async () => {
    // 15 reservations: one more reservation is always over 5% of what remains, so no chunk is ever granted.
    const run = async (leaseYaml: string, prefix: string): Promise<{ codes: string[]; leases: number; spent: number }> => {
      const a = await open(15 * RESERVED, leaseYaml, prefix);
      const b = await open(15 * RESERVED, leaseYaml, prefix);
      const codes: string[] = [];
      for (let i = 0; i < 20; i++) codes.push(...(await Promise.all([call(a, 'dave', 100), call(b, 'dave', 100)])).map((o) => o.code));
      return { codes, leases: a.service.leases!.stats.budgetLeases + b.service.leases!.stats.budgetLeases, spent: await counter(prefix, 'dave') };
    };
    const on = await run('{ lifetime: 10s }', 'tgbl:edge-on:');
    const off = await run('{ reservations: 0 }', 'tgbl:edge-off:');
    expect(on.leases).toBe(0);
    expect(on.codes).toEqual(off.codes);
    expect(on.codes.filter((c) => c === 'ok')).toHaveLength(15);
    expect(new Set(on.codes.filter((c) => c !== 'ok'))).toEqual(new Set(['TG_BUDGET_EXCEEDED']));
    expect(on.spent).toBe(15 * RESERVED);
    expect(off.spent).toBe(15 * RESERVED);
  });

  it("never reserves a caller's call on another caller's lease (two principals, one key each)", async () => {
    const prefix = 'tgbl:iso:';
    const a = await open(1_000_000, '{ lifetime: 10s }', prefix);
    for (let i = 0; i < 6; i++) expect((await call(a, 'carol', 100)).code).toBe('ok');
    const held = a.service.leases!.stats.budgetLeasedUnits;
    expect(held).toBeGreaterThan(0);
    // Mallory's own counter is spent (as another replica would have spent it): her call is refused, with the same
    // code as without leases, while Carol's lease holds units in this replica.
    const key = budgetKey(prefix, 'tollgate', 'tok', `principal=${encodeValue('spiffe://example.org/agents/mallory')}`, new Calendar('UTC').current('day', Date.now()).id, 't');
    await replicas.client().set(key, String(1_000_000 - 50), 'PX', 600_000);
    for (let i = 0; i < 3; i++) expect(await call(a, 'mallory', 100)).toEqual({ code: 'TG_BUDGET_EXCEEDED', store: 'redis' });
    expect(await counter(prefix, 'mallory')).toBe(1_000_000 - 50);
    expect((await call(a, 'carol', 100)).store).toBe('lease');
  });

  // Last: it kills this file's Redis.
  it('Redis down: the fail mode applies while a lease holds units, and the give-back waits for the store', async () => {
    const prefix = 'tgbl:down:';
    const a = await open(1_000_000, '{ lifetime: 300ms }', prefix);
    for (let i = 0; i < 4; i++) expect((await call(a, 'gina', 100)).code).toBe('ok');
    expect(a.service.leases!.stats.budgetLeases).toBeGreaterThan(0);
    await replicas.redis().kill();
    await eventually(() => !a.service.store.available, 5_000, 'the store to notice Redis is gone');
    // failMode closed: refused, though this replica's lease still holds units.
    expect(await call(a, 'gina', 100)).toEqual({ code: 'TG_LIMITER_UNAVAILABLE', store: 'local' });
    // The lease expires; its units cannot go back now: queued with the other reconciliations.
    await eventually(() => a.service.pendingSettles > 0, 5_000, 'the give-back queued');
    await replicas.redis().restart();
    await eventually(() => a.service.store.available && a.service.pendingSettles === 0, 10_000, 'the store back and the queue sent');
    const back = await call(a, 'hank', 100);
    expect(back).toEqual({ code: 'ok', store: 'redis' });
  });
});
