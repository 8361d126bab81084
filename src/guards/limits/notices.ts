/**
 * What a decision tells the caller and the audit log: per-limit notices (core/limits.ts), the refusal errors with
 * their retry hint, and the note kept in `call.scratch.get('limits')` for the audit record and spans.
 */
import type { Call } from '../../core/call.ts';
import { Errors, GatewayError } from '../../core/errors.ts';
import { httpRateLimitHeaders, NOTICES_KEY, type LimitNotice } from '../../core/limits.ts';
import type { Verdict } from './decide.ts';
import { money, NANOS, type Entry } from './plan.ts';

/** Scratch key of the audit-visible note (src/audit/record.ts reads it). */
export const NOTE_KEY = 'limits';
export { NOTICES_KEY };

/** The limits part of a call's audit record. */
export interface LimitNote {
  decision: 'admitted' | 'rate_limited' | 'budget_exceeded' | 'unavailable' | 'fail_open' | 'local';
  /**
   * Where the decision was taken: the shared store, this process's memory, the local fallback buckets, or units
   * this replica had leased from the shared store (no round trip for this call).
   */
  store: 'redis' | 'memory' | 'local' | 'lease';
  /** Names of the limits that applied. */
  limits: string[];
  refused?: string;
  team?: string;
  /** Reserved before forwarding (tokens; cost in currency units), after the multiplier. */
  reserved?: { tokens?: number; cost?: number };
  /** Charged when the call settled. */
  charged?: { tokens?: number; cost?: number; multiplier?: number };
  /** Reconciliation: ok, queued (store unavailable; retried on reconnect), failed. */
  settle?: 'ok' | 'queued' | 'pending' | 'failed';
}

export function noteOf(call: Call): LimitNote | undefined {
  return call.scratch.get(NOTE_KEY) as LimitNote | undefined;
}

/** The notice of one entry after a decision. */
export function noticeOf(entry: Entry, result: Verdict['results'][number], nowMs: number): LimitNotice {
  if (entry.kind === 'rate') {
    const l = entry.limit;
    const reset = result.admitted ? ((l.burst - result.remaining) * l.intervalUs) / 1e6 : result.value / 1e6;
    return { name: l.name, unit: 'requests', quota: l.requests, windowSeconds: l.perMs / 1000, remaining: result.remaining, resetSeconds: reset };
  }
  const cost = entry.unit === 'cost';
  const quota = cost ? entry.limit.costNanos! / NANOS : entry.limit.tokens!;
  return {
    name: entry.limit.name,
    unit: entry.unit,
    quota,
    windowSeconds: (entry.windowEndMs - entry.windowStartMs) / 1000,
    remaining: cost ? result.remaining / NANOS : result.remaining,
    resetSeconds: Math.max(0, (entry.windowEndMs - nowMs) / 1000),
  };
}

function perText(ms: number): string {
  if (ms % 86_400_000 === 0) return ms === 86_400_000 ? 'day' : `${ms / 86_400_000} days`;
  if (ms % 3_600_000 === 0) return ms === 3_600_000 ? 'hour' : `${ms / 3_600_000} hours`;
  if (ms % 60_000 === 0) return ms === 60_000 ? 'minute' : `${ms / 60_000} minutes`;
  if (ms % 1000 === 0) return ms === 1000 ? 'second' : `${ms / 1000} seconds`;
  return `${ms} ms`;
}

/** The refusal for a decision that did not admit: budget first (retrying soon will not help), else the rate. */
export function refusalOf(entries: readonly Entry[], verdict: Verdict, notices: readonly LimitNotice[], currency: string, nowMs: number): GatewayError {
  let budget: { entry: Entry & { kind: 'budget' }; used: number } | undefined;
  let rate: { entry: Entry & { kind: 'rate' }; retryUs: number } | undefined;
  verdict.results.forEach((r, i) => {
    if (r.admitted) return;
    const e = entries[i]!;
    if (e.kind === 'budget') budget ??= { entry: e, used: r.value };
    else if (rate === undefined || r.value > rate.retryUs) rate = { entry: e, retryUs: r.value };
  });
  if (budget !== undefined) {
    const { entry: e, used } = budget;
    const retry = Math.max(0, (e.windowEndMs - nowMs) / 1000);
    const amount = e.unit === 'cost' ? `${money(e.amount)} ${currency}` : `${e.amount} tokens`;
    const usedText = e.unit === 'cost' ? `${money(used)} of ${money(e.limit.costNanos!)} ${currency}` : `${used} of ${e.limit.tokens} tokens`;
    return new GatewayError(
      Errors.BUDGET_EXCEEDED,
      `Budget "${e.limit.name}" exceeded: ${usedText} used this ${e.limit.window} (${e.windowId}); this call reserves ${amount}; it resets in ${Math.ceil(retry)}s`,
      { data: { limit: e.limit.name, retry_after: Math.ceil(retry), retry_after_ms: Math.ceil(retry * 1000), limits: notices }, headers: httpRateLimitHeaders(notices, retry) },
    );
  }
  const { entry: e, retryUs } = rate!;
  const retry = retryUs / 1e6;
  const l = e.limit;
  return new GatewayError(
    Errors.RATE_LIMITED,
    `Rate limit "${l.name}" exceeded: ${l.requests} per ${perText(l.perMs)} (burst ${l.burst}); retry in ${Math.ceil(retryUs / 1000)} ms`,
    { data: { limit: l.name, retry_after: Math.ceil(retry), retry_after_ms: Math.ceil(retryUs / 1000), limits: notices }, headers: httpRateLimitHeaders(notices, retry) },
  );
}

/** A refusal decided before any counter (a reservation that can never fit, a model without a price). */
export function planRefusal(budget: string, message: string): GatewayError {
  return new GatewayError(Errors.BUDGET_EXCEEDED, message, { data: { limit: budget } });
}

export function unavailable(limit: string): GatewayError {
  return new GatewayError(Errors.LIMITER_UNAVAILABLE, `Limit store unavailable; limit "${limit}" fails closed`, {
    data: { limit, retry_after: 1, retry_after_ms: 1000 },
    headers: { 'retry-after': '1' },
  });
}
