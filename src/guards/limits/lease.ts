/**
 * Local leases of request-rate units: a CounterStore decorator over the Redis store that takes the limiter's round
 * trip off most calls of a busy key.
 *
 * A rate op whose limit allows a lease (plan.ts: k = min(lease.units, floor(burst x lease.share)) >= 2) asks the
 * store for up to k units at once (`take`; the script grants as many as the bucket holds, at least the call's cost,
 * so a lease never refuses a call the bucket would admit). The call spends one; the rest are spent by the next calls
 * on the same key in this replica, without a round trip, for at most `lease.lifetime` from when the grant arrived
 * (from the reply, not the request: on a loaded machine a round trip can outlast a few ms, and a lease that arrives
 * spent only wastes units; the bound below does not depend on the lifetime). Units left then are counted as spent,
 * never given back: a give-back is another round trip per lease (on a quiet key, twice the commands leases are
 * meant to save), and the units it would return are bounded anyway.
 *
 * Exactness: leased units are counted in Redis when taken, so a fleet never admits more than the bucket allows
 * plus the units held unused at the start of a window (at most replicas x (k - 1) per key: one lease per key per
 * replica, at most one lease request in flight per key). It may refuse while another replica holds unused units
 * (the same bound). To keep that waste small, a key is leased only while it is busy here: a call asks for a lease
 * only if the previous call on its key came within the lifetime (the first call of a quiet key takes one unit), and
 * a key's lease size adapts: it starts at 2, doubles up to k each time a lease is spent, and halves (to 2 at least)
 * each time one expires with units left, so a key whose calls come too slowly for its leases wastes little.
 *
 * Per key: a lease is the key's own (its Redis key names the limit and every key dimension: principal, team, ...),
 * so one caller's lease never admits another. Only rate ops are leased; budgets go to the store on every call.
 * When the store is not available the fail modes apply as without leases (`available` is the store's).
 */
import type { CounterStore } from './counters.ts';
import type { Adjustment, Op, OpResult, RateOp, Verdict } from './decide.ts';

interface Lease {
  /** Units left to spend. */
  units: number;
  /** What the store said was left in the bucket after the grant (the leased units excluded). */
  readonly base: number;
  /** performance.now() after which the lease is spent. */
  readonly expiresAt: number;
  readonly intervalUs: number;
  readonly toleranceUs: number;
}

interface KeyState {
  lease: Lease | undefined;
  /** performance.now() of the last call on the key. */
  lastAt: number;
  /** A lease request is in flight (at most one per key). */
  fetching: boolean;
  /** Units the next lease asks for: doubles (up to k) when a lease is spent, halves (down to 2) when one expires unused. */
  size: number;
}

/** Keys tracked at most; beyond, new keys go to the store without leases (never evicting a live lease). */
const MAX_KEYS = 100_000;

export class LeasingCounterStore implements CounterStore {
  readonly kind: CounterStore['kind'];
  readonly prefix: string;
  private readonly inner: CounterStore;
  private readonly keys = new Map<string, KeyState>();
  private readonly maxKeys: number;
  private sweepAt = 4096;
  private sweptAt = -Infinity;
  /** Units leased, and units that expired unused (for tests and the bench notes). */
  readonly stats = { leases: 0, leasedUnits: 0, served: 0, unusedUnits: 0 };

  constructor(inner: CounterStore, maxKeys = MAX_KEYS) {
    this.inner = inner;
    this.kind = inner.kind;
    this.prefix = inner.prefix;
    this.maxKeys = maxKeys;
  }

  get available(): boolean {
    return this.inner.available;
  }

  decide(ops: readonly Op[]): Verdict | Promise<Verdict> {
    let any = false;
    for (const op of ops) if (op.kind === 'r' && op.lease !== undefined) any = true;
    if (!any) return this.inner.decide(ops);
    const now = performance.now();
    const results: Array<OpResult | undefined> = new Array(ops.length);
    const leased: boolean[] = ops.map(() => false);
    /** Leases spent by this call (given back if the store refuses the rest of it). */
    const spent: Array<{ lease: Lease; cost: number }> = [];
    const remote: Op[] = [];
    const remoteIndex: number[] = [];
    const fetching: KeyState[] = [];
    for (const [i, op] of ops.entries()) {
      if (op.kind !== 'r' || op.lease === undefined) {
        remote.push(op);
        remoteIndex.push(i);
        continue;
      }
      const state = this.state(op.key, now);
      const lease = state?.lease;
      if (lease !== undefined && lease.expiresAt > now && lease.units >= op.cost && lease.intervalUs === op.intervalUs && lease.toleranceUs === op.toleranceUs) {
        lease.units -= op.cost;
        if (lease.units === 0) state!.size = Math.min(op.lease.units, state!.size * 2);
        spent.push({ lease, cost: op.cost });
        results[i] = { admitted: true, value: 0, remaining: lease.base + lease.units, granted: op.cost };
        leased[i] = true;
        state!.lastAt = now;
        continue;
      }
      if (lease !== undefined && lease.expiresAt <= now) {
        // Expired with units left: they stay spent, and this key's next lease is smaller.
        this.stats.unusedUnits += lease.units;
        if (lease.units > 0) state!.size = Math.max(2, Math.floor(state!.size / 2));
        state!.lease = undefined;
      }
      // Busy here (the previous call came within the lifetime) and no lease request in flight: ask for a lease.
      const take = state === undefined ? 0 : Math.min(op.lease.units, state.size);
      if (state !== undefined && !state.fetching && now - state.lastAt <= op.lease.lifetimeMs && take > op.cost) {
        state.fetching = true;
        fetching.push(state);
        remote.push({ ...op, take } satisfies RateOp);
      } else remote.push(op);
      remoteIndex.push(i);
      if (state !== undefined) state.lastAt = now;
    }
    if (remote.length === 0) {
      this.stats.served++;
      return { admitted: true, nowUs: Math.floor(this.inner.nowMs() * 1000), results: results as OpResult[], leased };
    }
    const giveBack = (): void => {
      for (const s of spent) s.lease.units += s.cost;
    };
    let sent: Promise<Verdict>;
    try {
      sent = Promise.resolve(this.inner.decide(remote));
    } catch (err) {
      for (const s of fetching) s.fetching = false;
      giveBack();
      throw err;
    }
    return sent.then(
      (verdict) => {
        for (const s of fetching) s.fetching = false;
        remote.forEach((op, j) => {
          const r = verdict.results[j]!;
          results[remoteIndex[j]!] = r;
          if (!verdict.admitted || op.kind !== 'r' || op.take === undefined || r.granted <= op.cost) return;
          const state = this.keys.get(op.key);
          if (state === undefined) return;
          if (state.lease !== undefined) this.stats.unusedUnits += state.lease.units;
          state.lease = { units: r.granted - op.cost, base: r.remaining, expiresAt: performance.now() + op.lease!.lifetimeMs, intervalUs: op.intervalUs, toleranceUs: op.toleranceUs };
          // What is left for the caller includes what this replica now holds for the key.
          results[remoteIndex[j]!] = { ...r, remaining: r.remaining + r.granted - op.cost };
          this.stats.leases++;
          this.stats.leasedUnits += r.granted - op.cost;
        });
        if (!verdict.admitted) giveBack();
        return { admitted: verdict.admitted, nowUs: verdict.nowUs, results: results as OpResult[], leased };
      },
      (err: unknown) => {
        for (const s of fetching) s.fetching = false;
        giveBack();
        throw err;
      },
    );
  }

  /** The key's state (made on first sight; undefined when the table is full of live keys). */
  private state(key: string, now: number): KeyState | undefined {
    let state = this.keys.get(key);
    if (state !== undefined) return state;
    // Swept as the table grows, and at most once a second while it is full (not on every new key).
    if (this.keys.size >= this.sweepAt || (this.keys.size >= this.maxKeys && now - this.sweptAt >= 1_000)) this.sweep(now);
    if (this.keys.size >= this.maxKeys) return undefined;
    state = { lease: undefined, lastAt: -Infinity, fetching: false, size: 2 };
    this.keys.set(key, state);
    return state;
  }

  /** Forgets keys that are idle (no live lease, nothing in flight, last call over a second ago). */
  private sweep(now: number): void {
    for (const [k, s] of this.keys) {
      if (s.fetching || now - s.lastAt < 1_000) continue;
      if (s.lease !== undefined && s.lease.expiresAt > now) continue;
      if (s.lease !== undefined) this.stats.unusedUnits += s.lease.units;
      this.keys.delete(k);
    }
    this.sweptAt = now;
    this.sweepAt = Math.max(4096, this.keys.size * 2);
  }

  settle(adjustments: readonly Adjustment[]): void | Promise<void> {
    return this.inner.settle(adjustments);
  }

  nowMs(): number {
    return this.inner.nowMs();
  }

  read(keys: readonly string[]): Promise<Array<number | undefined>> {
    return this.inner.read(keys);
  }

  scan(pattern: string, max: number): Promise<string[]> {
    return this.inner.scan(pattern, max);
  }
}
