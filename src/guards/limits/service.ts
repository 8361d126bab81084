/**
 * The limits service: owns the counter store (the shared Redis connection when configured, else this process's
 * memory) and the local fallback buckets, compiles each snapshot's RateLimit and Budget objects into a guard, keeps
 * reconciliations that could not reach the store until it is back, and serves GET /limits on the admin listener.
 */
import type { Hono } from 'hono';
import type client from 'prom-client';
import type { ConfigSnapshot } from '../../config/load.ts';
import type { Guard } from '../../core/pipeline.ts';
import type { GuardServices } from '../../core/pipeline.ts';
import type { AdminExtension } from '../../server/admin.ts';
import type { RedisStore } from '../../store/redis.ts';
import type { Logger } from '../../telemetry/logger.ts';
import { MemoryCounterStore, RedisCounterStore, type CounterStore } from './counters.ts';
import { CorruptCounter, MemoryCounters, type Adjustment } from './decide.ts';
import { LimitsGuard, type LimitsRuntime } from './guard.ts';
import { LeasingCounterStore } from './lease.ts';
import { TeamResolver } from './keys.ts';
import { LimitMetrics } from './metrics.ts';
import { compileBudget, compileRate, type CompiledBudget, type CompiledRate, type PlanContext } from './plan.ts';
import { showLimits, type LimitsReport, type ShowFilter } from './show.ts';
import { Calendar } from './windows.ts';

/** At most this many reconciliations wait for the store; beyond, they are dropped (logged and counted). */
const MAX_DEFERRED = 10_000;
/** Store failures are logged at most once per this period (with the number suppressed). */
const LOG_EVERY_MS = 5_000;

export interface LimitsServiceOptions {
  readonly log: Logger;
  /** The shared Redis store; absent: counters in memory (one replica). */
  readonly store?: RedisStore | undefined;
  /** The gateway's Prometheus registry (absent when metrics are off). */
  readonly registry?: client.Registry | undefined;
}

interface Compiled {
  readonly snapshotLimits: ConfigSnapshot['limits'];
  readonly spec: ConfigSnapshot['gateway']['limits'];
  readonly rates: readonly CompiledRate[];
  readonly budgets: readonly CompiledBudget[];
  readonly calendar: Calendar;
  readonly guard: LimitsGuard | undefined;
}

/** The reason label of a store failure. */
export function failureReason(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof CorruptCounter || message.includes('TGCORRUPT') || message.includes('WRONGTYPE')) return 'corrupt';
  if (/timed out/i.test(message)) return 'timeout';
  if (/not connected|writeable|offline queue|connection is closed|ECONNREFUSED/i.test(message)) return 'not_connected';
  if (/full/.test(message)) return 'full';
  return 'error';
}

export class LimitsService implements GuardServices, LimitsRuntime {
  readonly store: CounterStore;
  readonly fallback = new MemoryCounters();
  readonly metrics: LimitMetrics | undefined;
  readonly log: Logger;
  readonly admin: AdminExtension;
  private compiled: Compiled | undefined;
  private deferred: Array<{ store: CounterStore; adjustments: readonly Adjustment[] }> = [];
  private deferredCount = 0;
  private lastLogMs = 0;
  private suppressed = 0;
  private readonly redis: RedisStore | undefined;
  /** The lease layer over Redis (absent without Redis). */
  readonly leases: LeasingCounterStore | undefined;
  private readonly onReady = (): void => void this.flushDeferred();

  constructor(opts: LimitsServiceOptions) {
    this.log = opts.log.child({ guard: 'limits' });
    this.redis = opts.store;
    // A decision that timed out here but was applied by Redis after all gives its reservations back, like a settle
    // that could not reach the store (queued, sent when the store answers).
    // Rate ops and budget reservations of limits that allow it are leased (lease.ts); the in-memory store needs no lease.
    this.leases = opts.store
      ? new LeasingCounterStore(
          new RedisCounterStore(
            opts.store,
            (back) => this.lateReservations(back),
            (adjustments) => this.deferSettle(this.store, adjustments),
          ),
          // A background refill that fails counts like a decision the store failed (logged, tollgate_limiter_store_errors_total).
          { onUnapplied: (adjustments) => this.deferSettle(this.store, adjustments), onError: (err) => this.storeFailed(err) },
        )
      : undefined;
    this.store = this.leases ?? new MemoryCounterStore();
    this.metrics = opts.registry ? new LimitMetrics(opts.registry) : undefined;
    this.redis?.client.on('ready', this.onReady);
    this.admin = (app: Hono) => {
      app.get('/limits', async (c) => {
        const principal = c.req.query('principal');
        const team = c.req.query('team');
        if ((principal?.length ?? 0) > 2048 || (team?.length ?? 0) > 2048) return c.json({ error: 'principal and team are at most 2048 characters' }, 400);
        try {
          return c.json(await this.report({ principal, team }));
        } catch (err) {
          return c.json({ error: `limit store unavailable: ${(err as Error).message}` }, 503);
        }
      });
    };
  }

  guardsFor(snapshot: ConfigSnapshot): Guard[] {
    const c = this.compile(snapshot);
    return c.guard === undefined ? [] : [c.guard];
  }

  /** Compiles a snapshot's limits (cached while they do not change: counters live in the store, not the guard). */
  compile(snapshot: ConfigSnapshot): Compiled {
    const prior = this.compiled;
    if (prior !== undefined && prior.snapshotLimits === snapshot.limits && prior.spec === snapshot.gateway.limits) return prior;
    const spec = snapshot.gateway.limits;
    this.leases?.setRefillAt(spec.lease.refillAt);
    const rates = snapshot.limits.rates.map((r) => compileRate(r, spec));
    const budgets = snapshot.limits.budgets.map((b) => compileBudget(b, spec));
    const calendar = prior?.calendar.timeZone === spec.timeZone ? prior.calendar : new Calendar(spec.timeZone);
    const store = this.store;
    const ctx: PlanContext = { spec, rates, budgets, teams: new TeamResolver(spec.teams), calendar, prefix: store.prefix, nowMs: () => store.nowMs() };
    const guard = rates.length + budgets.length === 0 ? undefined : new LimitsGuard(ctx, this);
    if (prior !== undefined || guard !== undefined) {
      this.log.info({ rateLimits: rates.length, budgets: budgets.length, store: store.kind, partition: spec.partition }, 'limits in force');
    }
    this.compiled = { snapshotLimits: snapshot.limits, spec, rates, budgets, calendar, guard };
    return this.compiled;
  }

  /** Current usage and what is left per limit (the limits of the last compiled snapshot). */
  async report(filter: ShowFilter): Promise<LimitsReport> {
    const c = this.compiled;
    if (c === undefined) return { store: this.store.kind, time: new Date().toISOString(), filter, limits: [], truncated: false };
    return showLimits(this.store, c.spec, c.rates, c.budgets, c.calendar, filter);
  }

  storeFailed(err: unknown): void {
    const reason = failureReason(err);
    this.metrics?.storeError(reason);
    const now = Date.now();
    if (now - this.lastLogMs < LOG_EVERY_MS) {
      this.suppressed++;
      return;
    }
    this.log.warn({ reason, err: err instanceof Error ? err.message : String(err), suppressed: this.suppressed }, 'limit store failed; fail modes apply');
    this.lastLogMs = now;
    this.suppressed = 0;
  }

  private lateReservations(adjustments: Adjustment[]): void {
    this.metrics?.settle('late_released', adjustments.length);
    const store = this.store;
    const p = store.available ? store.settle(adjustments) : Promise.reject(new Error('limit store not connected'));
    Promise.resolve(p).then(
      () => this.metrics?.settle('ok', adjustments.length),
      () => this.deferSettle(store, adjustments),
    );
  }

  deferSettle(store: CounterStore, adjustments: readonly Adjustment[]): void {
    if (this.deferredCount + adjustments.length > MAX_DEFERRED) {
      this.metrics?.settle('dropped', adjustments.length);
      this.log.error({ adjustments: adjustments.length }, 'too many reconciliations waiting for the limit store; dropped (reservations stay charged)');
      return;
    }
    this.deferred.push({ store, adjustments });
    this.deferredCount += adjustments.length;
    this.metrics?.settle('queued', adjustments.length);
  }

  /** Sends the reconciliations that waited for the store (called when it is ready again). */
  async flushDeferred(): Promise<void> {
    const batch = this.deferred;
    if (batch.length === 0) return;
    this.deferred = [];
    this.deferredCount = 0;
    let sent = 0;
    for (const d of batch) {
      try {
        await d.store.settle(d.adjustments);
        sent += d.adjustments.length;
      } catch (err) {
        this.deferSettle(d.store, d.adjustments);
        this.storeFailed(err);
      }
    }
    if (sent > 0) {
      this.metrics?.settle('ok', sent);
      this.log.info({ adjustments: sent }, 'deferred budget reconciliations applied');
    }
  }

  /** Reconciliations still waiting for the store (tests, shutdown). */
  get pendingSettles(): number {
    return this.deferredCount;
  }

  async close(): Promise<void> {
    this.redis?.client.off('ready', this.onReady);
    // Budget units leased here go back first (a give-back the store cannot take waits with the other settles).
    if (this.leases !== undefined && this.store.available) await this.leases.close();
    else void this.leases?.close();
    if (this.deferredCount > 0 && this.store.available) await this.flushDeferred();
    if (this.deferredCount > 0) this.log.warn({ adjustments: this.deferredCount }, 'shutting down with budget reconciliations not applied (reservations stay charged)');
  }
}
