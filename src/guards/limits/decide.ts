/**
 * The limiter's algorithm, written once in TypeScript (in-memory store, local fallback) and mirrored line for line
 * in Lua (lua.ts) for Redis, so both give the same decisions for the same sequence.
 *
 * Rate limits are GCRA (a token bucket kept as one timestamp, the "theoretical arrival time"): a bucket of `burst`
 * that refills one unit every `intervalUs` is `toleranceUs = burst * intervalUs`; a request of `cost` units is
 * admitted when `max(tat, now) + cost * interval - tolerance <= now`. Everything is in whole microseconds, so the
 * arithmetic is exact in doubles (< 2^53) in both languages.
 *
 * Budgets are counters per calendar window: a reservation of `amount` is admitted when `used + amount <= limit`.
 *
 * A decision is all-or-nothing: every op of the call is evaluated first, and the counters change only when all
 * admit (a refused call consumes nothing).
 */

/** A request-rate op: GCRA on the key's stored theoretical arrival time. */
export interface RateOp {
  readonly kind: 'r';
  readonly key: string;
  readonly intervalUs: number;
  readonly toleranceUs: number;
  readonly cost: number;
  /**
   * Take up to this many units (at least `cost`) when the bucket has them: a lease (lease.ts). Absent: `cost`.
   * Only the lease store sets it; the plan never does.
   */
  readonly take?: number;
  /** The limit allows a local lease of up to `units` for `lifetimeMs` (set by the plan; only the lease store reads it). */
  readonly lease?: { readonly units: number; readonly lifetimeMs: number };
}

/** A budget reservation: add `amount` to the window's counter if it stays within `limit`. */
export interface BudgetOp {
  readonly kind: 'b';
  readonly key: string;
  readonly limit: number;
  readonly amount: number;
  /** When the window's counter may be forgotten (window end plus a grace period), unix ms. */
  readonly expireAtMs: number;
  /**
   * Reserve up to this many units (more than `amount`: a lease, lease.ts), the extra at most `sharePpm` millionths of
   * what would remain after `amount`, and none unless it holds at least `least` (default: another `amount`). Only the
   * lease store sets them (a refill ahead of time reserves `amount` 0 and takes at least one reservation, lease.ts).
   */
  readonly take?: number;
  readonly sharePpm?: number;
  readonly least?: number;
  /** The budget allows local leases (set by the plan; only the lease store reads it). */
  readonly lease?: { readonly reservations: number; readonly lifetimeMs: number; readonly sharePpm: number };
}

export type Op = RateOp | BudgetOp;

export interface OpResult {
  readonly admitted: boolean;
  /** Rate: microseconds until this op would be admitted (0 when it was). Budget: units used after this call (admitted) or before it (refused). */
  readonly value: number;
  /** Units left after this call (admitted) or now (refused). */
  readonly remaining: number;
  /** Admitted: units taken (rate: `cost`, budget: `amount`, or more up to `take` for a lease). Otherwise 0. */
  readonly granted: number;
}

export interface Verdict {
  readonly admitted: boolean;
  /** The time the decision was taken on (Redis TIME, or the process clock), microseconds since the epoch. */
  readonly nowUs: number;
  readonly results: readonly OpResult[];
  /** Per op: served from a local lease without a store round trip (lease.ts; absent from other stores). */
  readonly leased?: readonly boolean[];
}

/** A settled reservation: the counter moves by `delta` (negative gives back what the call did not use). */
export interface Adjustment {
  readonly key: string;
  readonly delta: number;
}

/** A counter that holds something other than a non-negative integer: the store is failing, never a free pass. */
export class CorruptCounter extends Error {
  constructor(key: string) {
    super(`limiter counter ${key} is corrupted`);
    this.name = 'CorruptCounter';
  }
}

/** Evaluates ops against stored values; returns the verdict and the values to store (undefined: refused). */
export function evaluate(ops: readonly Op[], read: (key: string) => number | undefined, nowUs: number): { verdict: Verdict; writes: number[] | undefined } {
  const results: OpResult[] = [];
  const writes: number[] = [];
  let admitted = true;
  for (const op of ops) {
    const v = read(op.key);
    if (v !== undefined && !(Number.isInteger(v) && v >= 0)) throw new CorruptCounter(op.key);
    if (op.kind === 'r') {
      const tat = v !== undefined && v > nowUs ? v : nowUs;
      const allowAt = tat + op.cost * op.intervalUs - op.toleranceUs;
      if (allowAt > nowUs) {
        admitted = false;
        results.push({ admitted: false, value: allowAt - nowUs, remaining: Math.max(0, Math.floor((op.toleranceUs - (tat - nowUs)) / op.intervalUs)), granted: 0 });
        writes.push(0);
      } else {
        // Admitted: `cost` fits. A lease takes more, as many as the bucket holds, up to `take`.
        const available = Math.floor((op.toleranceUs - (tat - nowUs)) / op.intervalUs);
        const granted = op.take !== undefined && op.take > op.cost ? Math.min(op.take, available) : op.cost;
        const newTat = tat + granted * op.intervalUs;
        results.push({ admitted: true, value: 0, remaining: Math.floor((op.toleranceUs - (newTat - nowUs)) / op.intervalUs), granted });
        writes.push(newTat);
      }
    } else {
      const used = v ?? 0;
      if (used + op.amount > op.limit) {
        admitted = false;
        results.push({ admitted: false, value: used, remaining: Math.max(0, op.limit - used), granted: 0 });
        writes.push(0);
      } else {
        const extra = budgetExtra(op, used);
        results.push({ admitted: true, value: used + op.amount + extra, remaining: op.limit - used - op.amount - extra, granted: op.amount + extra });
        writes.push(used + op.amount + extra);
      }
    }
  }
  return { verdict: { admitted, nowUs, results }, writes: admitted ? writes : undefined };
}

/** Units a budget lease may take beyond `amount` (lua.ts computes the same, in the same order of operations). */
export function budgetExtra(op: BudgetOp, used: number): number {
  if (op.take === undefined || op.take <= op.amount) return 0;
  const extra = Math.min(op.take - op.amount, Math.floor(((op.limit - used - op.amount) * (op.sharePpm ?? 0)) / 1_000_000));
  return extra < (op.least ?? op.amount) ? 0 : extra;
}

/** Milliseconds a rate key must live: until its bucket is full again (then absent means full). */
export function rateTtlMs(tatUs: number, nowUs: number): number {
  return Math.floor((tatUs - nowUs) / 1000) + 1;
}

/** Microseconds since the epoch from the process's monotonic clock. */
export function processClockUs(): number {
  return Math.floor((performance.timeOrigin + performance.now()) * 1000);
}

interface Entry {
  value: number;
  expireAtMs: number;
}

/**
 * Counters in this process: the store when no Redis is configured, and the local fallback buckets. Same algorithm
 * as Redis; expired entries are swept as the map grows. At `maxKeys` a new counter is refused (the limit's fail
 * mode applies), never made by evicting somebody else's.
 */
export class MemoryCounters {
  private readonly map = new Map<string, Entry>();
  private readonly clock: () => number;
  private readonly maxKeys: number;
  private sweepAt: number;

  constructor(clock: () => number = processClockUs, maxKeys = 1_000_000) {
    this.clock = clock;
    this.maxKeys = maxKeys;
    this.sweepAt = 4096;
  }

  get size(): number {
    return this.map.size;
  }

  /** Decides and applies ops atomically (synchronous: one JS turn). `nowUs` overrides the clock (replays). */
  decide(ops: readonly Op[], nowUs: number = this.clock()): Verdict {
    const nowMs = nowUs / 1000;
    const read = (key: string): number | undefined => {
      const e = this.map.get(key);
      return e === undefined || e.expireAtMs <= nowMs ? undefined : e.value;
    };
    const { verdict, writes } = evaluate(ops, read, nowUs);
    if (writes !== undefined) {
      if (this.map.size >= this.sweepAt) this.sweep(nowMs);
      let fresh = 0;
      for (const op of ops) if (!this.map.has(op.key)) fresh++;
      if (this.map.size + fresh > this.maxKeys) throw new Error(`in-memory limiter is full (${this.maxKeys} counters)`);
      ops.forEach((op, i) => {
        const value = writes[i]!;
        const expireAtMs = op.kind === 'r' ? Math.floor(nowMs) + rateTtlMs(value, nowUs) : op.expireAtMs;
        this.map.set(op.key, { value, expireAtMs });
      });
    }
    return verdict;
  }

  /** Applies settled reservations to counters that still exist (never below zero). */
  settle(adjustments: readonly Adjustment[]): void {
    const nowMs = this.clock() / 1000;
    for (const a of adjustments) {
      const e = this.map.get(a.key);
      if (e === undefined || e.expireAtMs <= nowMs) continue;
      e.value = Math.max(0, e.value + a.delta);
    }
  }

  /** The live value of a counter. */
  get(key: string): number | undefined {
    const e = this.map.get(key);
    return e === undefined || e.expireAtMs <= this.clock() / 1000 ? undefined : e.value;
  }

  /** Live keys starting with `prefix` (at most `max`). */
  keys(prefix: string, max: number): string[] {
    const nowMs = this.clock() / 1000;
    const out: string[] = [];
    for (const [k, e] of this.map) {
      if (out.length >= max) break;
      if (e.expireAtMs > nowMs && k.startsWith(prefix)) out.push(k);
    }
    return out;
  }

  /** Writes a raw value (tests corrupt counters with it). */
  put(key: string, value: number, expireAtMs: number): void {
    this.map.set(key, { value, expireAtMs });
  }

  clear(): void {
    this.map.clear();
  }

  private sweep(nowMs: number): void {
    for (const [k, e] of this.map) if (e.expireAtMs <= nowMs) this.map.delete(k);
    this.sweepAt = Math.max(4096, this.map.size * 2);
  }
}
