/**
 * The limiter's own metrics, one family per kind of limit, registered on the gateway's Prometheus registry. Label
 * values are limit names (from config) and fixed decision words: never a principal, team or key.
 */
import client from 'prom-client';

export type RateDecision = 'admitted' | 'limited' | 'fail_open' | 'fail_closed' | 'local_admitted' | 'local_limited';
export type BudgetDecision = 'reserved' | 'exceeded' | 'fail_open' | 'fail_closed';

export class LimitMetrics {
  private readonly rates: client.Counter<'limit' | 'decision'>;
  private readonly budgets: client.Counter<'budget' | 'decision'>;
  private readonly charged: client.Counter<'budget' | 'unit'>;
  private readonly storeErrors: client.Counter<'reason'>;
  private readonly settles: client.Counter<'result'>;
  private readonly leases: client.Counter<'limit'>;
  private readonly budgetLeases: client.Counter<'budget'>;

  constructor(registry: client.Registry) {
    const existing = registry.getSingleMetric('tollgate_rate_limit_decisions_total');
    if (existing !== undefined) {
      // A second service on the same registry (tests): reuse the families.
      this.rates = existing as client.Counter<'limit' | 'decision'>;
      this.budgets = registry.getSingleMetric('tollgate_budget_decisions_total') as client.Counter<'budget' | 'decision'>;
      this.charged = registry.getSingleMetric('tollgate_budget_charged_total') as client.Counter<'budget' | 'unit'>;
      this.storeErrors = registry.getSingleMetric('tollgate_limiter_store_errors_total') as client.Counter<'reason'>;
      this.settles = registry.getSingleMetric('tollgate_budget_settles_total') as client.Counter<'result'>;
      this.leases = registry.getSingleMetric('tollgate_rate_limit_lease_served_total') as client.Counter<'limit'>;
      this.budgetLeases = registry.getSingleMetric('tollgate_budget_lease_served_total') as client.Counter<'budget'>;
      return;
    }
    this.rates = new client.Counter({
      name: 'tollgate_rate_limit_decisions_total',
      help: 'Rate-limit decisions by limit: admitted, limited, and what the fail mode did while the store was unavailable',
      labelNames: ['limit', 'decision'],
      registers: [registry],
    });
    this.budgets = new client.Counter({
      name: 'tollgate_budget_decisions_total',
      help: 'Budget reservations by budget: reserved, exceeded (refused), fail_open, fail_closed',
      labelNames: ['budget', 'decision'],
      registers: [registry],
    });
    this.charged = new client.Counter({
      name: 'tollgate_budget_charged_total',
      help: 'What calls were finally charged against each budget (after reconciliation and the cost multiplier), in tokens or currency units',
      labelNames: ['budget', 'unit'],
      registers: [registry],
    });
    this.storeErrors = new client.Counter({
      name: 'tollgate_limiter_store_errors_total',
      help: 'Limiter decisions the store could not answer (not connected, timeout, corrupted counter, script error)',
      labelNames: ['reason'],
      registers: [registry],
    });
    this.settles = new client.Counter({
      name: 'tollgate_budget_settles_total',
      help: 'Budget reconciliations after calls: ok, queued (store unavailable, retried on reconnect), pending (timed out, still in flight, resent only if never applied), dropped, late_released (reservations of a decision that timed out but was applied by Redis, given back)',
      labelNames: ['result'],
      registers: [registry],
    });
    this.leases = new client.Counter({
      name: 'tollgate_rate_limit_lease_served_total',
      help: 'Admitted rate-limit decisions served from units this replica had leased from the store (no round trip; also counted as admitted)',
      labelNames: ['limit'],
      registers: [registry],
    });
    this.budgetLeases = new client.Counter({
      name: 'tollgate_budget_lease_served_total',
      help: 'Budget reservations served from units this replica had leased from the store (no round trip; also counted as reserved)',
      labelNames: ['budget'],
      registers: [registry],
    });
  }

  rate(limit: string, decision: RateDecision): void {
    this.rates.inc({ limit, decision });
  }

  budget(budget: string, decision: BudgetDecision): void {
    this.budgets.inc({ budget, decision });
  }

  charge(budget: string, unit: 'tokens' | 'cost', amount: number): void {
    if (amount > 0) this.charged.inc({ budget, unit }, amount);
  }

  leaseServed(limit: string): void {
    this.leases.inc({ limit });
  }

  budgetLeaseServed(budget: string): void {
    this.budgetLeases.inc({ budget });
  }

  storeError(reason: string): void {
    this.storeErrors.inc({ reason });
  }

  settle(result: 'ok' | 'queued' | 'pending' | 'dropped' | 'late_released', n = 1): void {
    this.settles.inc({ result }, n);
  }
}
