/**
 * Compiles the RateLimit and Budget objects of a snapshot into matchers, and turns a call into the ops of its one
 * decision: which limits apply, their keys, and what a budget reserves.
 */
import type { Call } from '../../core/call.ts';
import { bestMatch, matchesPattern, priceOf, type BudgetSpec, type Dimension, type LimitsSpec, type MatchSpec, type NamedLimit, type RateLimitSpec } from './config.ts';
import type { Op } from './decide.ts';
import { budgetKey, canonical, dimsPart, factsOf, rateKey, tagOf, type Facts, type TeamResolver } from './keys.ts';
import type { Calendar, WindowKind } from './windows.ts';

/** Nano-units of currency per unit: costs are integers in Redis (no float drift over a month of charges). */
export const NANOS = 1e9;
/** A counter of a month's window is kept this long after the window ends (for `limits show`, late settles). */
const GRACE_MS = 3_600_000;

type Matcher = (call: Call, facts: Facts) => boolean;

function compileMatch(m: MatchSpec): Matcher {
  const tests: Matcher[] = [];
  const anyOf = (patterns: readonly string[] | undefined, value: (c: Call, f: Facts) => string | undefined): void => {
    if (patterns === undefined) return;
    tests.push((c, f) => {
      const v = value(c, f);
      return v !== undefined && patterns.some((p) => matchesPattern(p, v));
    });
  };
  const inSet = (names: readonly string[] | undefined, value: (c: Call, f: Facts) => string | undefined): void => {
    if (names === undefined) return;
    const set = new Set(names);
    tests.push((c, f) => {
      const v = value(c, f);
      return v !== undefined && set.has(v);
    });
  };
  inSet(m.routes, (c) => c.route.name);
  inSet(m.protocols, (c) => c.protocol);
  anyOf(m.operations, (c) => c.operation);
  inSet(m.upstreams, (c) => c.upstream);
  anyOf(m.tools, (_c, f) => f.tool);
  anyOf(m.skills, (_c, f) => f.skill);
  anyOf(m.models, (_c, f) => f.model);
  anyOf(m.principals, (_c, f) => f.principal);
  inSet(m.teams, (_c, f) => f.team);
  inSet(m.rateClasses, (_c, f) => f.rate_class);
  if (tests.length === 0) return () => true;
  return (c, f) => tests.every((t) => t(c, f));
}

export interface CompiledRate {
  readonly name: string;
  readonly match: Matcher;
  readonly dims: readonly Dimension[];
  readonly requests: number;
  readonly perMs: number;
  readonly burst: number;
  readonly intervalUs: number;
  readonly toleranceUs: number;
  readonly failMode: 'closed' | 'open' | 'local';
  /** The local fallback bucket: 1/replicas of the rate and of the burst (at least 1). */
  readonly local: { readonly intervalUs: number; readonly toleranceUs: number };
  /** Units one round trip may lease (k >= 2), and for how long; undefined: every call is decided in the store. */
  readonly lease: { readonly units: number; readonly lifetimeMs: number } | undefined;
}

export interface CompiledBudget {
  readonly name: string;
  readonly match: Matcher;
  readonly dims: readonly Dimension[];
  readonly window: WindowKind;
  readonly tokens: number | undefined;
  /** The cost limit in nano-units. */
  readonly costNanos: number | undefined;
  readonly failMode: 'closed' | 'open';
  /** Reservations one round trip may lease (>= 2), for how long, and the share of what remains it may take; undefined: never leased. */
  readonly lease: { readonly reservations: number; readonly lifetimeMs: number; readonly sharePpm: number } | undefined;
}

export function compileRate(l: NamedLimit<RateLimitSpec>, spec: LimitsSpec): CompiledRate {
  const burst = l.spec.burst ?? l.spec.requests;
  const intervalUs = Math.floor((l.spec.per * 1000) / l.spec.requests);
  const localBurst = Math.max(1, Math.floor(burst / spec.replicas));
  const localInterval = intervalUs * spec.replicas;
  // Units a lease leaves unspent count as spent, at most k - 1 per expiry and one expiry per lifetime per replica: so
  // without an explicit `leaseUnits`, k is also held to what keeps that waste within `share` of the limit's rate
  // (k - 1 <= share x rate x lifetime / replicas). A caller near a slow limit with a large burst is then never refused
  // for units its own replica let expire; a busy limit (the rate of thousands a second) still leases k.
  const wasteCap = 1 + Math.floor((spec.lease.share * l.spec.requests * spec.lease.lifetime) / (l.spec.per * spec.replicas));
  const leaseUnits = Math.min(l.spec.leaseUnits ?? Math.min(spec.lease.units, wasteCap), Math.floor(burst * spec.lease.share));
  return {
    name: l.name,
    match: compileMatch(l.spec.match),
    dims: canonical(l.spec.key),
    requests: l.spec.requests,
    perMs: l.spec.per,
    burst,
    intervalUs,
    toleranceUs: burst * intervalUs,
    failMode: l.spec.failMode ?? spec.failMode.rate,
    local: { intervalUs: localInterval, toleranceUs: localBurst * localInterval },
    lease: leaseUnits >= 2 ? { units: leaseUnits, lifetimeMs: spec.lease.lifetime } : undefined,
  };
}

export function compileBudget(l: NamedLimit<BudgetSpec>, spec: LimitsSpec): CompiledBudget {
  return {
    name: l.name,
    match: compileMatch(l.spec.match),
    dims: canonical(l.spec.key),
    window: l.spec.window,
    tokens: l.spec.tokens,
    costNanos: l.spec.cost === undefined ? undefined : Math.round(l.spec.cost * NANOS),
    failMode: l.spec.failMode ?? spec.failMode.budget,
    lease: spec.lease.budgets.reservations >= 2 ? { reservations: spec.lease.budgets.reservations, lifetimeMs: spec.lease.budgets.lifetime, sharePpm: Math.round(spec.lease.budgets.share * 1_000_000) } : undefined,
  };
}

/** One op of a call's decision and what it stands for. */
export type Entry =
  | { readonly kind: 'rate'; readonly limit: CompiledRate; readonly dims: string }
  | {
      readonly kind: 'budget';
      readonly limit: CompiledBudget;
      readonly unit: 'tokens' | 'cost';
      readonly amount: number;
      readonly windowId: string;
      readonly windowStartMs: number;
      readonly windowEndMs: number;
    };

/** The reservation basis of a call: what it may use, before the multiplier. */
export interface Estimate {
  readonly metered: boolean;
  readonly inputTokens: number;
  readonly outputTokens: number;
  /** Tool cost of an MCP call, in nano-units. */
  readonly toolNanos: number;
  readonly multiplier: number;
}

export interface Plan {
  readonly facts: Facts;
  readonly ops: Op[];
  readonly entries: Entry[];
  readonly estimate: Estimate;
}

/** A call that must be refused before any counter is touched (a reservation that can never fit, no price). */
export interface PlanRefusal {
  readonly refuse: string;
  readonly budget: string;
}

export interface PlanContext {
  readonly spec: LimitsSpec;
  readonly rates: readonly CompiledRate[];
  readonly budgets: readonly CompiledBudget[];
  readonly teams: TeamResolver;
  readonly calendar: Calendar;
  readonly prefix: string;
  /** The store's clock (Redis TIME as learned), unix ms: budget windows follow it. */
  nowMs(): number;
}

/** The cost multiplier the policy returned (a finite number >= 0), else 1. */
export function multiplierOf(call: Call): number {
  const m = call.decision?.obligations?.cost_multiplier;
  return typeof m === 'number' && Number.isFinite(m) && m >= 0 ? m : 1;
}

export function estimateOf(call: Call, spec: LimitsSpec): Estimate {
  const e = call.estimate;
  const metered = e !== undefined || call.target?.kind === 'model';
  const tool = call.target?.kind === 'tool' && call.target.server !== undefined ? `${call.target.server}/${call.target.local ?? call.target.name}` : undefined;
  let toolNanos = 0;
  if (tool !== undefined) {
    const best = bestMatch(spec.toolCosts, (t) => t.tool, tool);
    if (best !== undefined) toolNanos = Math.round(best.cost * NANOS);
  }
  return {
    metered,
    inputTokens: metered ? clampTokens(e?.inputTokens ?? spec.reservation.defaultInputTokens) : 0,
    outputTokens: metered ? clampTokens(e?.maxOutputTokens ?? spec.reservation.defaultOutputTokens) : 0,
    toolNanos,
    multiplier: multiplierOf(call),
  };
}

function clampTokens(n: number): number {
  return Number.isFinite(n) && n > 0 ? Math.ceil(n) : 0;
}

/** Charge after the multiplier, rounded up (never under-charge); a hair of float noise is not a whole unit. */
export function weigh(raw: number, multiplier: number): number {
  return Math.max(0, Math.ceil(raw * multiplier - 1e-6));
}

/** Cost in nano-units of tokens of a model at the price table's per-million prices (undefined: no price). */
export function tokenNanos(spec: LimitsSpec, model: string | undefined, input: number, output: number): number | undefined {
  if (model === undefined) return undefined;
  const p = priceOf(spec.prices, model);
  if (p === undefined) return undefined;
  // price per million tokens = price * 1000 nano-units per token
  return input * p.input * 1000 + output * p.output * 1000;
}

/** The ops of a call's decision, or a refusal that needs no store. */
export function planCall(call: Call, ctx: PlanContext): Plan | PlanRefusal | undefined {
  const facts = factsOf(call, ctx.teams);
  const tag = tagOf(ctx.spec.partition, facts);
  const ops: Op[] = [];
  const entries: Entry[] = [];
  if (tag !== undefined) {
    for (const r of ctx.rates) {
      if (!r.match(call, facts)) continue;
      const dims = dimsPart(r.dims, facts);
      if (dims === undefined) continue;
      const key = rateKey(ctx.prefix, tag, r.name, dims);
      ops.push(r.lease === undefined ? { kind: 'r', key, intervalUs: r.intervalUs, toleranceUs: r.toleranceUs, cost: 1 } : { kind: 'r', key, intervalUs: r.intervalUs, toleranceUs: r.toleranceUs, cost: 1, lease: r.lease });
      entries.push({ kind: 'rate', limit: r, dims });
    }
  }
  let estimate: Estimate | undefined;
  if (tag !== undefined && ctx.budgets.length > 0) {
    const nowMs = ctx.nowMs();
    for (const b of ctx.budgets) {
      if (!b.match(call, facts)) continue;
      const dims = dimsPart(b.dims, facts);
      if (dims === undefined) continue;
      estimate ??= estimateOf(call, ctx.spec);
      const w = ctx.calendar.current(b.window, nowMs);
      const add = (unit: 'tokens' | 'cost', limit: number, amount: number): void => {
        const key = budgetKey(ctx.prefix, tag, b.name, dims, w.id, unit === 'tokens' ? 't' : 'c');
        ops.push(b.lease === undefined ? { kind: 'b', key, limit, amount, expireAtMs: w.endMs + GRACE_MS } : { kind: 'b', key, limit, amount, expireAtMs: w.endMs + GRACE_MS, lease: b.lease });
        entries.push({ kind: 'budget', limit: b, unit, amount, windowId: w.id, windowStartMs: w.startMs, windowEndMs: w.endMs });
      };
      const tokens = estimate.inputTokens + estimate.outputTokens;
      if (b.tokens !== undefined && tokens > 0) {
        if (tokens > ctx.spec.reservation.maxTokens) {
          return { budget: b.name, refuse: `this call would reserve ${tokens} tokens (${estimate.inputTokens} input + ${estimate.outputTokens} output), over the largest reservation allowed (${ctx.spec.reservation.maxTokens}): lower max_tokens` };
        }
        const amount = weigh(tokens, estimate.multiplier);
        if (amount > b.tokens) {
          return { budget: b.name, refuse: `this call would reserve ${amount} tokens (${estimate.inputTokens} input + ${estimate.outputTokens} output${estimate.multiplier === 1 ? '' : `, x${estimate.multiplier}`}), more than budget "${b.name}" allows in a whole ${b.window} (${b.tokens})` };
        }
        if (amount > 0) add('tokens', b.tokens, amount);
      }
      if (b.costNanos !== undefined) {
        let nanos = estimate.toolNanos;
        if (estimate.metered) {
          const t = tokenNanos(ctx.spec, call.target?.name, estimate.inputTokens, estimate.outputTokens);
          if (t === undefined) return { budget: b.name, refuse: `model ${call.target?.name ?? '(none)'} has no price in limits.prices, so budget "${b.name}" cannot count its cost` };
          nanos += t;
        }
        const amount = weigh(nanos, estimate.multiplier);
        if (amount > b.costNanos) {
          return { budget: b.name, refuse: `this call would reserve a cost of ${money(amount)} ${ctx.spec.currency}, more than budget "${b.name}" allows in a whole ${b.window} (${money(b.costNanos)})` };
        }
        if (amount > 0) add('cost', b.costNanos, amount);
      }
    }
  }
  if (ops.length === 0) return undefined;
  return { facts, ops, entries, estimate: estimate ?? { metered: false, inputTokens: 0, outputTokens: 0, toolNanos: 0, multiplier: multiplierOf(call) } };
}

/** Nano-units as a currency amount (up to 6 decimals, trailing zeros trimmed). */
export function money(nanos: number): string {
  return (nanos / NANOS).toFixed(6).replace(/\.?0+$/, '');
}
