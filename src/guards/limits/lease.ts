/**
 * Local leases: a CounterStore decorator over the Redis store that takes the limiter's round trip off most calls of
 * a busy key, for request rates and for budgets.
 *
 * Rate leases. A rate op whose limit allows a lease (plan.ts: k = min(lease.units, floor(burst x lease.share)) >= 2)
 * asks the store for up to k units at once (`take`; the script grants as many as the bucket holds, at least the
 * call's cost, so a lease never refuses a call the bucket would admit). The call spends one; the rest are spent by
 * the next calls on the same key in this replica, without a round trip, for at most `lease.lifetime` from when the
 * grant arrived. Units left then are counted as spent, never given back (a give-back is another round trip per
 * lease, and the units are bounded anyway). The fleet never admits more than the bucket allows plus the units held
 * unused at the start of a window (at most replicas x (k - 1) per key), and may refuse while another replica holds
 * unused units (the same bound). A key's lease size adapts: it starts at 2, doubles up to k each time a lease is
 * spent or refilled while the key's pace would spend the doubled lease within its lifetime (lease-refill.ts `grow`:
 * a slow caller's lease does not outgrow its calls and expire with units left, counted as spent), and halves (to 2
 * at least) each time one expires with units left.
 *
 * Budget leases. A budget op (limits.lease.budgets: up to `reservations`, default 8) of a busy key asks for its
 * reservation plus up to (reservations - 1) more reservations of the same amount (`take`); the script reserves the
 * extra only if it is at most `share` (default 5%) of what remains after the call and at least one more reservation,
 * so near exhaustion nothing is leased and every call goes to Redis as before. Leased units are counted in Redis at
 * once (no other replica can spend them, so a fleet never over-spends). The next calls of this replica reserve from
 * the lease locally; their settles move the lease (a give-back returns units to it, a charge over the reservation
 * takes from it when it holds enough, else goes to Redis). After `lifetime` (default 1s) or at drain the units left
 * go back to Redis in one batched SETTLE, off the call path; a give-back lost to a crash leaves units counted, so it
 * only under-spends. A call that goes to Redis anyway (another of its limits missed) tops up a lease under half a
 * chunk (the units left join the new grant). Units this replica holds but that do not cover a call are folded into
 * its reservation (the call asks Redis only for the rest; restored if refused), so a replica's own lease never
 * refuses its own call, and a budget's edge is exact up to what other replicas hold (each grant at most share x what
 * remained, for at most lifetime).
 *
 * Refill ahead of time (limits.lease.refillAt, default 0.5; lease-refill.ts): when a call served from leases leaves
 * one of them at or under that share of what its last grant left it holding, ONE script tops up every key of the call
 * that has room (their sizes double, up to k, at a pace that spends them: `grow`), sent on the next turn of the event loop: the call does not wait. Each
 * key is topped up to what an inline lease of its size leaves held (rate: size - 1 units, so at most k - 1 held at any
 * time, as before: the fleet bound replicas x (k - 1) and plan.ts's waste cap are unchanged; budget: size - 1
 * reservations of the call's amount, the extra only within `share` of what remains and at least one reservation, so
 * near exhaustion nothing is leased, as before). The grant joins the units left and the lease lives `lifetime` from
 * then (units are fungible: what expires unspent is still at most what is held). Calls go on being served from what
 * is left meanwhile; a call that finds the lease spent waits for the refill (the bounded wait below). A refill never
 * refuses (rate: cost 0; budget: amount 0); an empty grant leaves the lease as it is and none is asked for again
 * until the next grant: once it is spent, calls go to Redis and get the real refusal. A refill that fails counts as a
 * store failure (`onError`), never rejects, and one that lands during drain gives its budget units straight back
 * (close() waits for it).
 *
 * Both: a call is served locally only when every op of it is (never half-local); else all of it goes to Redis in one
 * script, asking for leases on the busy keys. While a lease request of a key is in flight (inline or a refill), calls
 * that miss on it wait for it (at most as many as it should serve) and retry once, instead of each going to Redis. A
 * lease is the key's own (its Redis key names the limit and every key dimension: principal, team, ...), so one
 * caller's lease never serves another. When the store is not available the fail modes apply as without leases
 * (`available` is the store's), and no refill is sent.
 */
import type { CounterStore } from './counters.ts';
import type { Adjustment, Op, OpResult, Verdict } from './decide.ts';
import { grow, Refills } from './lease-refill.ts';
import { GiveBacks, KeyTable, need, noop, serves, topUp, type KeyState, type Lease } from './lease-state.ts';

export class LeasingCounterStore implements CounterStore {
  readonly kind: CounterStore['kind'];
  readonly prefix: string;
  private readonly inner: CounterStore;
  private readonly keys: KeyTable;
  /** Keys holding a budget lease (given back at expiry or drain). */
  private readonly held = new Set<string>();
  private readonly refills: Refills;
  private readonly giveBacks: GiveBacks;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private closed = false;
  /** For tests and the bench notes. */
  readonly stats = { leases: 0, leasedUnits: 0, served: 0, unusedUnits: 0, budgetLeases: 0, budgetLeasedUnits: 0, returnedUnits: 0, waited: 0, refillsStarted: 0, refills: 0, refilledUnits: 0, refillsRefused: 0, refillErrors: 0 };

  /**
   * `onUnapplied`: give-backs the store refused (not connected...), to send again when it is back. `onError`: a
   * refill the store failed (counted like a failed decision). `refillAt`: the low-water mark (setRefillAt).
   */
  constructor(inner: CounterStore, opts: { maxKeys?: number; onUnapplied?: (adjustments: Adjustment[]) => void; onError?: (err: unknown) => void; refillAt?: number } = {}) {
    this.inner = inner;
    this.kind = inner.kind;
    this.prefix = inner.prefix;
    this.keys = new KeyTable(opts.maxKeys, (key, st) => this.expire(key, st));
    this.giveBacks = new GiveBacks(inner, opts.onUnapplied ?? noop);
    this.refills = new Refills(inner, this.stats, (op, st, r) => this.topUp(op, st, r), opts.onError ?? noop, opts.refillAt ?? 0.5);
  }

  /** The config's `limits.lease.refillAt` (applies from the next grant on). */
  setRefillAt(at: number): void {
    this.refills.at = at;
  }

  get available(): boolean {
    return this.inner.available;
  }

  decide(ops: readonly Op[]): Verdict | Promise<Verdict> {
    let any = false;
    for (const op of ops) if (op.lease !== undefined) any = true;
    if (!any || this.closed) return this.inner.decide(ops);
    return this.run(ops, true);
  }

  private run(ops: readonly Op[], mayWait: boolean): Verdict | Promise<Verdict> {
    const now = performance.now();
    const states: Array<KeyState | undefined> = new Array(ops.length);
    let local = true;
    let waitOn: KeyState[] | undefined = mayWait ? [] : undefined;
    for (const [i, op] of ops.entries()) {
      const st = op.lease === undefined ? undefined : this.keys.state(op.key, op.kind === 'b', now);
      states[i] = st;
      const l = st?.lease;
      if (l !== undefined && l.expiresAt > now && l.units >= need(op) && serves(l, op)) continue;
      local = false;
      if (st !== undefined && st.inflight !== undefined && st.waiters < st.waitCap) waitOn?.push(st);
      else waitOn = undefined;
    }
    if (local) return this.serve(ops, states as KeyState[], now);
    if (waitOn !== undefined && waitOn.length > 0) {
      // Every miss has a lease request in flight that should cover it: wait for those, then try once more.
      const waiting = waitOn;
      for (const st of waiting) st.waiters++;
      this.stats.waited++;
      const retry = (): Verdict | Promise<Verdict> => {
        for (const st of waiting) st.waiters--;
        return this.run(ops, false);
      };
      return Promise.all(waiting.map((st) => st.inflight)).then(retry);
    }
    return this.remote(ops, states, now);
  }

  /** Every op from its key's lease: no round trip. */
  private serve(ops: readonly Op[], states: readonly KeyState[], now: number): Verdict {
    const results: OpResult[] = [];
    for (const [i, op] of ops.entries()) {
      const st = states[i]!;
      const l = st.lease!;
      const units = need(op);
      l.units -= units;
      st.lastAt = now;
      if (l.units < units) grow(st, l, op, now);
      results.push({ admitted: true, value: op.kind === 'r' ? 0 : op.limit - l.base - l.units, remaining: l.base + l.units, granted: units });
    }
    this.stats.served++;
    if (!this.closed) this.refills.after(ops, states, now);
    return { admitted: true, nowUs: Math.floor(this.inner.nowMs() * 1000), results, leased: ops.map(() => true) };
  }

  /** The whole call in one script, asking for leases on the keys that are busy here. */
  private remote(ops: readonly Op[], states: ReadonlyArray<KeyState | undefined>, now: number): Promise<Verdict> {
    const remote: Op[] = [];
    const fetching: KeyState[] = [];
    /** Budget units this replica held, folded into the call's reservation (restored if it is refused). */
    const folded: Array<{ key: string; lease: Lease; units: number }> = [];
    for (const [i, op] of ops.entries()) {
      const st = states[i];
      if (st === undefined || op.lease === undefined) {
        remote.push(op);
        continue;
      }
      let l = st.lease;
      if (l !== undefined && !serves(l, op)) this.expire(op.key, st);
      l = st.lease;
      const busy = now - st.lastAt <= op.lease.lifetimeMs;
      st.lastAt = now;
      const free = st.inflight === undefined && busy && !this.closed;
      if (op.kind === 'r') {
        if (l !== undefined && l.expiresAt <= now) this.expire(op.key, st);
        const take = Math.min(op.lease.units, st.size);
        const ask = free && take > op.cost && !(st.lease !== undefined && st.lease.units >= op.cost);
        remote.push(ask ? { ...op, take } : op);
        if (ask) this.fetch(st, fetching, take / op.cost - 1);
        continue;
      }
      let amount = op.amount;
      if (l !== undefined && l.units > 0 && (l.units < op.amount || l.expiresAt <= now)) {
        const units = Math.min(l.units, op.amount);
        l.units -= units;
        amount -= units;
        folded.push({ key: op.key, lease: l, units });
      }
      if (l !== undefined && l.expiresAt <= now) this.expire(op.key, st);
      const reservations = Math.min(op.lease.reservations, st.size);
      // The round trip is paid anyway: a lease under half a chunk is topped up (another limit of the call missed).
      const ask = free && reservations >= 2 && amount > 0 && (st.lease === undefined || st.lease.units < (op.amount * reservations) / 2);
      remote.push(ask ? { ...op, amount, take: amount + op.amount * (reservations - 1), sharePpm: op.lease.sharePpm } : amount === op.amount ? op : { ...op, amount });
      if (ask) this.fetch(st, fetching, reservations - 1);
    }
    const restore = (): void => {
      for (const f of folded) {
        if (this.keys.get(f.key)?.lease === f.lease) f.lease.units += f.units;
        else this.release(f.key, f.units);
      }
    };
    let sent: Promise<Verdict>;
    try {
      sent = Promise.resolve(this.inner.decide(remote));
    } catch (err) {
      for (const st of fetching) st.inflight = undefined;
      restore();
      throw err;
    }
    const out = sent.then(
      (verdict) => {
        for (const st of fetching) st.inflight = undefined;
        if (!verdict.admitted) restore();
        const results = verdict.results.map((r, j) => (verdict.admitted ? this.granted(remote[j]!, states[j], r) : r));
        return { admitted: verdict.admitted, nowUs: verdict.nowUs, results, leased: ops.map(() => false) };
      },
      (err: unknown) => {
        for (const st of fetching) st.inflight = undefined;
        restore();
        throw err;
      },
    );
    // Waiters retry once the grant is installed (after `out`'s handlers, not merely after the reply).
    const flight = out.then(noop, noop);
    for (const st of fetching) st.inflight = flight;
    return out;
  }

  private fetch(st: KeyState, fetching: KeyState[], waitCap: number): void {
    st.inflight = Promise.resolve();
    st.waitCap = Math.max(0, Math.floor(waitCap));
    fetching.push(st);
  }

  /** Installs the lease a grant holds (if any); the caller's result counts what this replica now holds. */
  private granted(op: Op, st: KeyState | undefined, r: OpResult): OpResult {
    if (st === undefined || op.lease === undefined || op.take === undefined) return r;
    const extra = r.granted - need(op);
    if (extra <= 0) return r;
    if (this.closed) {
      // Drained while the grant was on its way: budget units go straight back, rate units stay spent.
      if (op.kind === 'b') this.release(op.key, extra);
      return r;
    }
    const old = st.lease;
    const expiresAt = performance.now() + op.lease.lifetimeMs;
    if (op.kind === 'r') {
      if (old !== undefined) this.stats.unusedUnits += old.units;
      st.lease = { units: extra, base: r.remaining, expiresAt, grantedAt: expiresAt - op.lease.lifetimeMs, a: op.intervalUs, b: op.toleranceUs, full: extra, refilled: false };
      this.stats.leases++;
      this.stats.leasedUnits += extra;
      return { ...r, remaining: r.remaining + extra };
    }
    // A give-back may have reached an older lease of the key meanwhile: it joins the new one.
    let carry = 0;
    if (old !== undefined && serves(old, op)) carry = old.units;
    else if (old !== undefined) this.release(op.key, old.units);
    st.lease = { units: extra + carry, base: r.remaining, expiresAt, grantedAt: expiresAt - op.lease.lifetimeMs, a: op.limit, b: 0, full: extra + carry, refilled: false };
    this.held.add(op.key);
    this.arm(expiresAt);
    this.stats.budgetLeases++;
    this.stats.budgetLeasedUnits += extra;
    return { ...r, value: r.value - extra - carry, remaining: r.remaining + extra + carry, granted: need(op) };
  }

  /** Resolves once the refills in flight now have landed (or failed): drain, and tests. */
  idle(): Promise<unknown> {
    return this.refills.idle();
  }

  /** A refill's grant joins the key's lease (a lease that ended meanwhile is replaced), for a lifetime from now. */
  private topUp(op: Op, st: KeyState, r: OpResult): void {
    if (this.closed) {
      // Landed during drain: budget units go straight back, rate units stay spent.
      if (op.kind === 'b') this.release(op.key, r.granted);
      else this.stats.unusedUnits += r.granted;
      return;
    }
    const now = performance.now();
    const expiresAt = now + op.lease!.lifetimeMs;
    const l = st.lease;
    if (l !== undefined && (l.expiresAt <= now || !serves(l, op))) this.expire(op.key, st);
    topUp(st, op, r, expiresAt);
    if (op.kind === 'b') {
      this.held.add(op.key);
      this.arm(expiresAt);
    }
  }

  /** Ends a key's lease: rate units stay spent, budget units go back to the store (batched). */
  private expire(key: string, st: KeyState): void {
    const l = st.lease;
    if (l === undefined) return;
    st.lease = undefined;
    if (l.units > 0) st.size = Math.max(2, Math.floor(st.size / 2));
    if (!st.budget) {
      this.stats.unusedUnits += l.units;
      return;
    }
    this.held.delete(key);
    this.release(key, l.units);
  }

  private release(key: string, units: number): void {
    if (units <= 0) return;
    this.stats.returnedUnits += units;
    this.giveBacks.add(key, units);
  }

  /** Sends the give-backs gathered so far in one SETTLE (off the call path). */
  flush(): Promise<void> {
    return this.giveBacks.flush();
  }

  /** Gives back the expired budget leases when the earliest one ends. */
  private arm(at: number): void {
    if (this.timer !== undefined && this.timerAt <= at) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.expireHeld(), Math.max(1, Math.ceil(at - performance.now()) + 1));
    this.timer.unref();
  }

  private expireHeld(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = performance.now();
    let next = Infinity;
    for (const key of this.held) {
      const st = this.keys.get(key);
      const l = st?.lease;
      if (st === undefined || l === undefined) this.held.delete(key);
      else if (l.expiresAt <= now) this.expire(key, st);
      else next = Math.min(next, l.expiresAt);
    }
    if (next !== Infinity) this.arm(next);
    void this.flush();
  }

  /** Drain: no more leases, every budget unit held goes back to the store. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.idle(); // a refill in flight lands first (its budget units go back with the rest)
    for (const key of this.held) {
      const st = this.keys.get(key);
      if (st !== undefined) this.expire(key, st);
    }
    this.held.clear();
    await this.flush();
  }

  /** Settles budget reservations against the key's lease when it has one (a give-back, or a charge it covers), else in the store. */
  settle(adjustments: readonly Adjustment[]): void | Promise<void> {
    let remote: Adjustment[] | undefined;
    for (const a of adjustments) {
      const l = this.keys.get(a.key)?.lease;
      if (l !== undefined && this.held.has(a.key) && (a.delta < 0 || l.units >= a.delta)) l.units -= a.delta;
      else (remote ??= []).push(a);
    }
    if (remote === undefined) return;
    return this.inner.settle(remote.length === adjustments.length ? adjustments : remote);
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
