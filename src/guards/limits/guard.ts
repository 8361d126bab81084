/**
 * The limits guard: after authorize (it needs the principal and the policy's obligations), before forwarding.
 *
 * admit: every limit the call matches is decided in one store round trip (synchronously in memory, and without a
 * round trip when every limit of the call is served from a local lease: lease.ts). Rate limits
 * take one unit; budgets reserve the call's estimate (tokens: input estimate + max_tokens or the default output;
 * cost: from the price table or the tool's cost; both times `cost_multiplier`). When the store cannot answer, each
 * limit applies its fail mode: closed refuses (TG_LIMITER_UNAVAILABLE), open admits uncounted, local decides on a
 * bucket in this process sized 1/replicas.
 *
 * settle: reconciles each reservation with what the call used (call.usage; a broken stream's usage is what was
 * streamed), giving back the rest. Returns a promise with Redis (the pipeline awaits it before the audit record).
 */
import type { Call } from '../../core/call.ts';
import type { LimitNotice } from '../../core/limits.ts';
import type { Guard } from '../../core/pipeline.ts';
import type { Logger } from '../../telemetry/logger.ts';
import { SettlePending, type CounterStore } from './counters.ts';
import type { Adjustment, MemoryCounters, Op, Verdict } from './decide.ts';
import type { LimitMetrics } from './metrics.ts';
import { noteOf, noticeOf, NOTE_KEY, NOTICES_KEY, planRefusal, refusalOf, unavailable, type LimitNote } from './notices.ts';
import { NANOS, planCall, tokenNanos, weigh, type Entry, type Plan, type PlanContext } from './plan.ts';

/** What the guard needs from the service (which outlives snapshots and owns the store and the fallback). */
export interface LimitsRuntime {
  readonly store: CounterStore;
  readonly fallback: MemoryCounters;
  readonly metrics: LimitMetrics | undefined;
  readonly log: Logger;
  /** The store failed a decision (logged and counted, without flooding the log). */
  storeFailed(err: unknown): void;
  /** A reconciliation could not reach the store: keep it for when the store is back. */
  deferSettle(store: CounterStore, adjustments: readonly Adjustment[]): void;
}

/** What admit leaves for settle. */
interface Reservation {
  readonly plan: Plan;
  readonly store: CounterStore;
  /** Entries that hold a reservation in the store (budgets admitted while the store answered). */
  readonly reserved: readonly (Entry & { kind: 'budget' })[];
}

const RESERVATION_KEY = 'limits:reservation';

export class LimitsGuard implements Guard {
  readonly name = 'limits';
  private readonly ctx: PlanContext;
  private readonly runtime: LimitsRuntime;

  constructor(ctx: PlanContext, runtime: LimitsRuntime) {
    this.ctx = ctx;
    this.runtime = runtime;
  }

  admit(call: Call): void | Promise<void> {
    const plan = planCall(call, this.ctx);
    if (plan === undefined) return;
    if ('refuse' in plan) {
      this.runtime.metrics?.budget(plan.budget, 'exceeded');
      call.scratch.set(NOTE_KEY, { decision: 'budget_exceeded', store: this.runtime.store.kind, limits: [plan.budget], refused: plan.budget } satisfies LimitNote);
      throw planRefusal(plan.budget, plan.refuse);
    }
    const store = this.runtime.store;
    if (!store.available) return this.failed(call, plan, new Error('limit store not connected'));
    let result: Verdict | Promise<Verdict>;
    try {
      result = store.decide(plan.ops);
    } catch (err) {
      return this.failed(call, plan, err);
    }
    if (result instanceof Promise) {
      return result.then(
        (verdict) => this.decided(call, plan, verdict, store),
        (err: unknown) => this.failed(call, plan, err),
      );
    }
    this.decided(call, plan, result, store);
  }

  /** Applies a store's verdict: notes it, and throws the refusal when it did not admit. */
  private decided(call: Call, plan: Plan, verdict: Verdict, store: CounterStore): void {
    const nowMs = verdict.nowUs / 1000;
    const notices = (): LimitNotice[] => plan.entries.map((e, i) => noticeOf(e, verdict.results[i]!, nowMs));
    const metrics = this.runtime.metrics;
    const leased = verdict.leased;
    const note: LimitNote = { decision: 'admitted', store: leased !== undefined && leased.every(Boolean) ? 'lease' : store.kind, limits: plan.entries.map((e) => e.limit.name) };
    if (plan.facts.team !== undefined) note.team = plan.facts.team;
    call.scratch.set(NOTE_KEY, note);
    if (!verdict.admitted) {
      const all = notices();
      call.scratch.set(NOTICES_KEY, all);
      const err = refusalOf(plan.entries, verdict, all, this.ctx.spec.currency, nowMs);
      note.decision = err.code === 'TG_BUDGET_EXCEEDED' ? 'budget_exceeded' : 'rate_limited';
      note.refused = (err.data as { limit: string }).limit;
      if (metrics) {
        plan.entries.forEach((e, i) => {
          if (verdict.results[i]!.admitted) return;
          if (e.kind === 'rate') metrics.rate(e.limit.name, 'limited');
          else metrics.budget(e.limit.name, 'exceeded');
        });
      }
      throw err;
    }
    // Built only if an adapter asks (OpenAI's x-ratelimit-* on every response): most calls never need them.
    let built: LimitNotice[] | undefined;
    call.scratch.set(NOTICES_KEY, () => (built ??= notices()));
    const reserved = plan.entries.filter((e): e is Entry & { kind: 'budget' } => e.kind === 'budget');
    if (metrics) {
      plan.entries.forEach((e, i) => {
        if (e.kind === 'budget') {
          metrics.budget(e.limit.name, 'reserved');
          if (leased?.[i] === true) metrics.budgetLeaseServed(e.limit.name);
          return;
        }
        metrics.rate(e.limit.name, 'admitted');
        if (leased?.[i] === true) metrics.leaseServed(e.limit.name);
      });
    }
    this.reserve(call, plan, store, reserved, note);
  }

  private reserve(call: Call, plan: Plan, store: CounterStore, reserved: readonly (Entry & { kind: 'budget' })[], note: LimitNote): void {
    if (reserved.length === 0) return;
    call.scratch.set(RESERVATION_KEY, { plan, store, reserved } satisfies Reservation);
    const r: NonNullable<LimitNote['reserved']> = {};
    for (const e of reserved) {
      if (e.unit === 'tokens') r.tokens = Math.max(r.tokens ?? 0, e.amount);
      else r.cost = Math.max(r.cost ?? 0, e.amount / NANOS);
    }
    note.reserved = r;
    // The adapter caps the request to what was reserved (it sets max_tokens when the client did not).
    if (plan.estimate.metered) call.outputTokenCap = plan.estimate.outputTokens;
  }

  /** The store could not decide: each limit's fail mode applies. */
  private failed(call: Call, plan: Plan, err: unknown): void {
    this.runtime.storeFailed(err);
    const metrics = this.runtime.metrics;
    const local: Op[] = [];
    const localEntries: Entry[] = [];
    let closed: string | undefined;
    for (const e of plan.entries) {
      if (e.limit.failMode === 'closed') closed ??= e.limit.name;
    }
    const note: LimitNote = { decision: 'fail_open', store: 'local', limits: plan.entries.map((e) => e.limit.name) };
    if (plan.facts.team !== undefined) note.team = plan.facts.team;
    call.scratch.set(NOTE_KEY, note);
    if (closed !== undefined) {
      if (metrics) for (const e of plan.entries) if (e.limit.failMode === 'closed') e.kind === 'rate' ? metrics.rate(e.limit.name, 'fail_closed') : metrics.budget(e.limit.name, 'fail_closed');
      note.decision = 'unavailable';
      note.refused = closed;
      throw unavailable(closed);
    }
    plan.entries.forEach((e, i) => {
      if (e.kind === 'rate' && e.limit.failMode === 'local') {
        const op = plan.ops[i]!;
        local.push({ kind: 'r', key: op.key, intervalUs: e.limit.local.intervalUs, toleranceUs: e.limit.local.toleranceUs, cost: 1 });
        localEntries.push(e);
      } else if (metrics) {
        e.kind === 'rate' ? metrics.rate(e.limit.name, 'fail_open') : metrics.budget(e.limit.name, 'fail_open');
      }
    });
    if (local.length === 0) return;
    const verdict = this.runtime.fallback.decide(local);
    note.decision = 'local';
    const nowMs = verdict.nowUs / 1000;
    const notices = localEntries.map((e, i) => noticeOf(e, verdict.results[i]!, nowMs));
    call.scratch.set(NOTICES_KEY, notices);
    localEntries.forEach((e, i) => metrics?.rate(e.limit.name, verdict.results[i]!.admitted ? 'local_admitted' : 'local_limited'));
    if (!verdict.admitted) {
      const refusal = refusalOf(localEntries, verdict, notices, this.ctx.spec.currency, nowMs);
      note.decision = 'rate_limited';
      note.refused = (refusal.data as { limit: string }).limit;
      throw refusal;
    }
  }

  settle(call: Call): void | Promise<void> {
    const res = call.scratch.get(RESERVATION_KEY) as Reservation | undefined;
    if (res === undefined) return;
    call.scratch.delete(RESERVATION_KEY);
    const { plan } = res;
    const est = plan.estimate;
    const actual = usedBy(call, est);
    const tokens = weigh(actual.input + actual.output, est.multiplier);
    const nanos = (est.metered ? (tokenNanos(this.ctx.spec, call.target?.name, actual.input, actual.output) ?? 0) : 0) + (actual.forwarded ? est.toolNanos : 0);
    const cost = weigh(nanos, est.multiplier);
    const adjustments: Adjustment[] = [];
    const charged: NonNullable<LimitNote['charged']> = {};
    if (est.multiplier !== 1) charged.multiplier = est.multiplier;
    for (const e of res.reserved) {
      const charge = e.unit === 'tokens' ? tokens : cost;
      if (e.unit === 'tokens') charged.tokens = charge;
      else charged.cost = charge / NANOS;
      this.runtime.metrics?.charge(e.limit.name, e.unit, e.unit === 'tokens' ? charge : charge / NANOS);
      if (charge !== e.amount) adjustments.push({ key: plan.ops[plan.entries.indexOf(e)]!.key, delta: charge - e.amount });
    }
    if (charged.cost !== undefined) (call.usage ??= {}).cost = charged.cost;
    const note = noteOf(call);
    if (note !== undefined) note.charged = charged;
    if (adjustments.length === 0) {
      if (note !== undefined) note.settle = 'ok';
      return;
    }
    return this.reconcile(res.store, adjustments, note);
  }

  private reconcile(store: CounterStore, adjustments: Adjustment[], note: LimitNote | undefined): void | Promise<void> {
    const done = (): void => {
      if (note !== undefined) note.settle = 'ok';
      this.runtime.metrics?.settle('ok');
    };
    const defer = (err: unknown): void => {
      this.runtime.storeFailed(err);
      if (err instanceof SettlePending) {
        // Still in flight: the store resends it only if it turns out never applied (a settle is not idempotent).
        if (note !== undefined) note.settle = 'pending';
        this.runtime.metrics?.settle('pending');
        return;
      }
      this.runtime.deferSettle(store, adjustments);
      if (note !== undefined) note.settle = 'queued';
    };
    if (!store.available) return defer(new Error('limit store not connected'));
    try {
      const p = store.settle(adjustments);
      if (p instanceof Promise) return p.then(done, defer);
      done();
    } catch (err) {
      defer(err);
    }
  }
}

/** What a call used, in tokens, and whether it reached its upstream (a tool's cost is charged only then). */
function usedBy(call: Call, est: Plan['estimate']): { input: number; output: number; forwarded: boolean } {
  const forwarded = call.outcome !== 'limited' && call.outcome !== 'denied' && call.outcome !== 'unauthenticated';
  const u = call.usage;
  if (u !== undefined && (u.inputTokens !== undefined || u.outputTokens !== undefined)) {
    // A stream that broke has counted output but no reported input: the prompt was processed, charge its estimate.
    return { input: count(u.inputTokens ?? est.inputTokens), output: count(u.outputTokens ?? 0), forwarded };
  }
  if (!est.metered) return { input: 0, output: 0, forwarded };
  // Finished without a usage report: never a free pass, the whole reservation is charged. Failed: nothing was made.
  if (call.outcome === 'ok') return { input: est.inputTokens, output: est.outputTokens, forwarded };
  return { input: 0, output: 0, forwarded };
}

function count(n: number): number {
  return Number.isFinite(n) && n > 0 ? Math.ceil(n) : 0;
}
