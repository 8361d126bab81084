/**
 * What the lease store (lease.ts) keeps per key: the key's lease, its one request in flight, and the table of keys
 * (bounded; idle keys swept), and the batch of budget units going back.
 */
import { SettlePending, type CounterStore } from './counters.ts';
import type { Adjustment, Op, OpResult } from './decide.ts';

export interface Lease {
  /** Units left to spend (budget: counted in the store, reserved by no call). */
  units: number;
  /** What the store said was left after the last grant (the leased units excluded). */
  base: number;
  /** performance.now() after which the lease serves no call. */
  expiresAt: number;
  /** performance.now() of its last grant (the pace its units are spent at is measured from it). */
  grantedAt: number;
  /** The op parameters the lease serves: rate interval and tolerance, or the budget's limit (and 0). */
  readonly a: number;
  readonly b: number;
  /** Units it held after its last grant: the low-water mark is a share of it. */
  full: number;
  /** A refill was asked for since that grant (at most one per grant; a refused one is not asked for again). */
  refilled: boolean;
}

export interface KeyState {
  lease: Lease | undefined;
  readonly budget: boolean;
  /** performance.now() of the last call on the key. */
  lastAt: number;
  /** The lease request in flight, inline or a refill (at most one per key; never rejects). */
  inflight: Promise<void> | undefined;
  /** Calls waiting for it, and how many may (the calls it should serve). */
  waiters: number;
  waitCap: number;
  /** Units (rate) or reservations (budget) the next lease asks for: doubles when one is spent or refilled at a pace that spends it (lease-refill.ts `grow`), halves when one expires unused. */
  size: number;
}

export const need = (op: Op): number => (op.kind === 'r' ? op.cost : op.amount);
export const serves = (l: Lease, op: Op): boolean => (op.kind === 'r' ? l.a === op.intervalUs && l.b === op.toleranceUs : l.a === op.limit);
export const noop = (): void => {};

/** The largest lease size a key's op allows (rate units, or budget reservations). */
export const maxSize = (op: Op): number => (op.kind === 'r' ? (op.lease?.units ?? 0) : (op.lease?.reservations ?? 0));

/** Adds a refill's grant to the key's lease (made if it has none): the units left and the grant, for a lifetime from now. */
export function topUp(st: KeyState, op: Op, r: OpResult, expiresAt: number): void {
  const l = (st.lease ??= { units: 0, base: 0, expiresAt, grantedAt: 0, a: op.kind === 'r' ? op.intervalUs : op.limit, b: op.kind === 'r' ? op.toleranceUs : 0, full: 0, refilled: false });
  l.units += r.granted;
  l.full = l.units;
  l.base = r.remaining;
  l.expiresAt = expiresAt;
  l.grantedAt = expiresAt - (op.lease?.lifetimeMs ?? 0);
  l.refilled = false;
}

/** Keys tracked at most; beyond, new keys go to the store without leases (never evicting a live lease). */
const MAX_KEYS = 100_000;

export class KeyTable {
  private readonly map = new Map<string, KeyState>();
  private readonly maxKeys: number;
  /** Ends a key's lease before it is forgotten. */
  private readonly expire: (key: string, st: KeyState) => void;
  private sweepAt = 4096;
  private sweptAt = -Infinity;

  constructor(maxKeys: number | undefined, expire: (key: string, st: KeyState) => void) {
    this.maxKeys = maxKeys ?? MAX_KEYS;
    this.expire = expire;
  }

  get(key: string): KeyState | undefined {
    return this.map.get(key);
  }

  /** The key's state (made on first sight; undefined when the table is full of live keys). */
  state(key: string, budget: boolean, now: number): KeyState | undefined {
    let state = this.map.get(key);
    if (state !== undefined) return state;
    // Swept as the table grows, and at most once a second while it is full (not on every new key).
    if (this.map.size >= this.sweepAt || (this.map.size >= this.maxKeys && now - this.sweptAt >= 1_000)) this.sweep(now);
    if (this.map.size >= this.maxKeys) return undefined;
    state = { lease: undefined, budget, lastAt: -Infinity, inflight: undefined, waiters: 0, waitCap: 0, size: 2 };
    this.map.set(key, state);
    return state;
  }

  /** Forgets keys that are idle (no live lease, nothing in flight, last call over a second ago). */
  private sweep(now: number): void {
    for (const [k, s] of this.map) {
      if (s.inflight !== undefined || now - s.lastAt < 1_000) continue;
      if (s.lease !== undefined && s.lease.expiresAt > now) continue;
      this.expire(k, s);
      this.map.delete(k);
    }
    this.sweptAt = now;
    this.sweepAt = Math.max(4096, this.map.size * 2);
  }
}

/** Budget units going back to the store, gathered and sent in one SETTLE (off the call path). */
export class GiveBacks {
  private readonly inner: CounterStore;
  private readonly onUnapplied: (adjustments: Adjustment[]) => void;
  private releases: Adjustment[] = [];
  private flushing: Promise<void> | undefined;

  constructor(inner: CounterStore, onUnapplied: (adjustments: Adjustment[]) => void) {
    this.inner = inner;
    this.onUnapplied = onUnapplied;
  }

  add(key: string, units: number): void {
    this.releases.push({ key, delta: -units });
    if (this.releases.length === 1) setImmediate(() => void this.flush());
  }

  flush(): Promise<void> {
    const batch = this.releases;
    if (batch.length === 0) return this.flushing ?? Promise.resolve();
    this.releases = [];
    let p: Promise<void>;
    try {
      p = Promise.resolve(this.inner.settle(batch));
    } catch (err) {
      p = Promise.reject(err);
    }
    const done = p.then(noop, (err: unknown) => {
      // Past the timeout the store resends it itself if it was never applied (counters.ts).
      if (!(err instanceof SettlePending)) this.onUnapplied(batch);
    });
    this.flushing = done;
    return done;
  }
}
