/**
 * Refills of local leases ahead of time (lease.ts header): after a call served from leases, if one of its keys'
 * leases fell to the low-water mark, ONE script tops up every key of the call that has room (the round trip is paid
 * once for all of them, as an inline lease request would), sent on the next turn of the event loop so the call never
 * waits for it. At most one request per key is in flight (inline or refill); calls that find a lease spent meanwhile
 * wait for it (KeyState.inflight). The store's reply is handed to `land` op by op; a refill never rejects.
 */
import type { CounterStore } from './counters.ts';
import type { Op, OpResult } from './decide.ts';
import { maxSize, need, noop, serves, type KeyState, type Lease } from './lease-state.ts';

export interface RefillStats {
  refillsStarted: number;
  refills: number;
  refilledUnits: number;
  refillsRefused: number;
  refillErrors: number;
}

/**
 * The op of a background refill of a key's lease, sized so the units held never exceed what an inline lease of the
 * key's size leaves (rate: size - 1 units; budget: size - 1 reservations of the call's amount). Neither refuses: a
 * rate refill has cost 0 and takes what the bucket holds (none when it is empty); a budget refill reserves nothing
 * for a call (amount 0) and takes at least one reservation within `share` of what remains (none near exhaustion).
 * Undefined: the lease has no room for a unit (or a reservation).
 */
export function refillOp(op: Op, st: KeyState): Op | undefined {
  const l = st.lease;
  const held = l !== undefined && serves(l, op) ? Math.max(0, l.units) : 0;
  const unit = need(op);
  const take = (st.size - 1) * unit - held;
  if (unit <= 0 || take < unit) return undefined;
  if (op.kind === 'r') return { kind: 'r', key: op.key, intervalUs: op.intervalUs, toleranceUs: op.toleranceUs, cost: 0, take };
  if (op.lease === undefined) return undefined;
  return { kind: 'b', key: op.key, limit: op.limit, amount: 0, expireAtMs: op.expireAtMs, take, sharePpm: op.lease.sharePpm, least: unit };
}

/**
 * Whether the key's lease may double (`st.size`, up to the op's k): only when the lease that size leaves held, 2 x size
 * - 1 calls' units, would be spent within its lifetime at the pace of `l` (the units spent since its last grant, in
 * the time since). A key called more slowly keeps its size: a larger lease would expire with units left (counted as
 * spent, so a slow caller's limit would run out faster than it calls), and the call after it would wait for the store.
 */
export function grow(st: KeyState, l: Lease, op: Op, now: number): void {
  const lifetime = op.lease?.lifetimeMs ?? 0;
  const spent = l.full - l.units;
  // Rate ops cost one unit each (plan.ts), so a lease of size s holds s - 1 calls' units: (s - 1) x need(op).
  if (spent > 0 && (now - l.grantedAt) * (2 * st.size - 1) * need(op) <= lifetime * spent) st.size = Math.min(maxSize(op), st.size * 2);
}

/** The keys of one refill; `crossed`: that key's lease was at its mark (the others come along). */
type Batch = Array<{ readonly op: Op; readonly st: KeyState; readonly crossed: boolean }>;

export class Refills {
  /** The low-water mark: a share of what a lease's last grant left it holding (0: no refill ahead of time). */
  at: number;
  private readonly inner: CounterStore;
  private readonly stats: RefillStats;
  /** Installs a refill's grant on its key's lease (lease.ts: topped up, or given back when draining). */
  private readonly land: (op: Op, st: KeyState, r: OpResult) => void;
  private readonly onError: (err: unknown) => void;
  private readonly inflight = new Set<Promise<void>>();

  constructor(inner: CounterStore, stats: RefillStats, land: (op: Op, st: KeyState, r: OpResult) => void, onError: (err: unknown) => void, at: number) {
    this.inner = inner;
    this.stats = stats;
    this.land = land;
    this.onError = onError;
    this.at = at;
  }

  /** After a call served wholly from leases at `now` (`states[i]` holds `ops[i]`'s lease). */
  after(ops: readonly Op[], states: readonly KeyState[], now: number): void {
    if (this.at <= 0) return;
    const low = (st: KeyState): boolean => !st.lease!.refilled && st.inflight === undefined && st.lease!.units <= st.lease!.full * this.at;
    if (!states.some(low) || !this.inner.available) return;
    const batch: Batch = [];
    for (const [i, op] of ops.entries()) {
      const st = states[i]!;
      if (st.inflight !== undefined || batch.some((b) => b.st === st)) continue;
      const crossed = low(st);
      st.lease!.refilled = true;
      grow(st, st.lease!, op, now);
      st.waitCap = Math.max(0, Math.floor(((st.size - 1) * need(op) - st.lease!.units) / Math.max(1, need(op))));
      batch.push({ op, st, crossed });
    }
    const flight = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.send(batch))
      .then(noop, (err: unknown) => {
        this.stats.refillErrors++;
        this.onError(err);
      })
      .finally(() => {
        for (const b of batch) if (b.st.inflight === flight) b.st.inflight = undefined;
        this.inflight.delete(flight);
      });
    for (const b of batch) b.st.inflight = flight;
    this.inflight.add(flight);
    this.stats.refillsStarted++;
  }

  /** Resolves once the refills in flight now have landed (or failed): drain, and tests. */
  idle(): Promise<unknown> {
    return Promise.all(this.inflight);
  }

  /** One script for the keys that still have room when it is sent (sized then: units only fall meanwhile). */
  private async send(batch: Batch): Promise<void> {
    if (!this.inner.available) return;
    const asks: Op[] = [];
    const of: Batch = [];
    for (const b of batch) {
      const ask = refillOp(b.op, b.st);
      if (ask === undefined) {
        // A key that came along without room: its own mark may still start a refill.
        if (!b.crossed && b.st.lease !== undefined) b.st.lease.refilled = false;
        continue;
      }
      asks.push(ask);
      of.push(b);
    }
    if (asks.length === 0) return;
    const verdict = await this.inner.decide(asks);
    for (const [i, b] of of.entries()) {
      const r = verdict.results[i];
      if (!verdict.admitted || r === undefined || r.granted <= 0) {
        this.stats.refillsRefused++;
        continue;
      }
      this.stats.refills++;
      this.stats.refilledUnits += r.granted;
      this.land(b.op, b.st, r);
    }
  }
}
