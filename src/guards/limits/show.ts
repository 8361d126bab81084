/**
 * Current usage and what is left, per limit, for operators (`tollgate limits show`, GET /limits on the admin
 * listener). Reads counters without changing them: a rate bucket's remaining is computed from its stored time, a
 * budget's from its current window's counters.
 */
import type { CounterStore } from './counters.ts';
import type { Dimension } from './config.ts';
import { encodeValue, parseDims, tagOf, type Facts } from './keys.ts';
import { money, type CompiledBudget, type CompiledRate } from './plan.ts';
import type { LimitsSpec } from './config.ts';
import type { Calendar } from './windows.ts';

export interface ShowFilter {
  readonly principal?: string | undefined;
  readonly team?: string | undefined;
}

export interface RateReport {
  readonly name: string;
  readonly kind: 'rate';
  readonly requests: number;
  readonly perSeconds: number;
  readonly burst: number;
  readonly counters: Array<{ key: Record<string, string>; remaining: number; fullInMs: number }>;
}

export interface BudgetReport {
  readonly name: string;
  readonly kind: 'budget';
  readonly window: string;
  readonly windowId: string;
  readonly resetsAt: string;
  readonly tokens?: number | undefined;
  readonly cost?: string | undefined;
  readonly currency: string;
  readonly counters: Array<{
    key: Record<string, string>;
    tokens?: { used: number; remaining: number };
    cost?: { used: string; remaining: string };
  }>;
}

export interface LimitsReport {
  readonly store: 'redis' | 'memory';
  readonly time: string;
  readonly filter: ShowFilter;
  readonly limits: Array<RateReport | BudgetReport>;
  /** True when a limit had more counters than were listed. */
  readonly truncated: boolean;
}

const PER_LIMIT = 1000;

/** Whether a limit concerns the filter: keyed by a filtered dimension, or shared (keyed by no principal/team). */
function relevant(dims: readonly Dimension[], filter: ShowFilter): boolean {
  if (filter.principal === undefined && filter.team === undefined) return true;
  const byPrincipal = dims.includes('principal');
  const byTeam = dims.includes('team');
  if (byPrincipal && filter.principal === undefined) return false;
  if (byTeam && filter.team === undefined) return false;
  return true;
}

function dimsGlob(dims: readonly Dimension[], filter: ShowFilter): string {
  if (dims.length === 0) return '-';
  return dims
    .map((d) => {
      const v = d === 'principal' ? filter.principal : d === 'team' ? filter.team : undefined;
      return `${d}=${v === undefined ? '*' : encodeValue(v)}`;
    })
    .join(',');
}

function tagGlob(spec: LimitsSpec, filter: ShowFilter): string {
  const facts = { principal: filter.principal, team: filter.team } as Facts;
  return tagOf(spec.partition, facts) ?? '*';
}

/** The dims part of a key (between the limit name and the window), parsed. */
function keyDims(key: string, name: string, budget: boolean): Record<string, string> {
  const at = key.indexOf(`}:${name}:`);
  let rest = key.slice(at + name.length + 3);
  if (budget) rest = rest.slice(0, rest.lastIndexOf(':', rest.lastIndexOf(':') - 1));
  return parseDims(rest);
}

export async function showLimits(
  store: CounterStore,
  spec: LimitsSpec,
  rates: readonly CompiledRate[],
  budgets: readonly CompiledBudget[],
  calendar: Calendar,
  filter: ShowFilter,
): Promise<LimitsReport> {
  const nowMs = store.nowMs();
  const nowUs = Math.floor(nowMs * 1000);
  const tag = tagGlob(spec, filter);
  let truncated = false;
  const limits: Array<RateReport | BudgetReport> = [];
  for (const r of rates) {
    if (!relevant(r.dims, filter)) continue;
    const keys = await store.scan(`${store.prefix}r:{${tag}}:${r.name}:${dimsGlob(r.dims, filter)}`, PER_LIMIT + 1);
    if (keys.length > PER_LIMIT) truncated = true;
    const shown = keys.slice(0, PER_LIMIT).sort();
    const values = await store.read(shown);
    limits.push({
      name: r.name,
      kind: 'rate',
      requests: r.requests,
      perSeconds: r.perMs / 1000,
      burst: r.burst,
      counters: shown.map((k, i) => {
        const tat = Math.max(values[i] ?? nowUs, nowUs);
        return {
          key: keyDims(k, r.name, false),
          remaining: Math.max(0, Math.floor((r.toleranceUs - (tat - nowUs)) / r.intervalUs)),
          fullInMs: Math.ceil((tat - nowUs) / 1000),
        };
      }),
    });
  }
  for (const b of budgets) {
    if (!relevant(b.dims, filter)) continue;
    const w = calendar.current(b.window, nowMs);
    const keys = await store.scan(`${store.prefix}b:{${tag}}:${b.name}:${dimsGlob(b.dims, filter)}:${w.id}:*`, 2 * PER_LIMIT + 1);
    if (keys.length > 2 * PER_LIMIT) truncated = true;
    const shown = keys.slice(0, 2 * PER_LIMIT).sort();
    const values = await store.read(shown);
    const byDims = new Map<string, BudgetReport['counters'][number]>();
    shown.forEach((k, i) => {
      const dims = keyDims(k, b.name, true);
      const id = JSON.stringify(dims);
      const entry = byDims.get(id) ?? { key: dims };
      byDims.set(id, entry);
      const used = values[i] ?? 0;
      if (k.endsWith(':t') && b.tokens !== undefined) entry.tokens = { used, remaining: Math.max(0, b.tokens - used) };
      if (k.endsWith(':c') && b.costNanos !== undefined) entry.cost = { used: money(used), remaining: money(Math.max(0, b.costNanos - used)) };
    });
    limits.push({
      name: b.name,
      kind: 'budget',
      window: b.window,
      windowId: w.id,
      resetsAt: new Date(w.endMs).toISOString(),
      tokens: b.tokens,
      cost: b.costNanos === undefined ? undefined : money(b.costNanos),
      currency: spec.currency,
      counters: [...byDims.values()],
    });
  }
  return { store: store.kind, time: new Date(nowMs).toISOString(), filter, limits, truncated };
}

/** A plain-text table of a report (the CLI's default output). */
export function formatReport(r: LimitsReport): string {
  const lines: string[] = [`limits (${r.store}, ${r.time})${r.truncated ? ' [truncated]' : ''}`];
  for (const l of r.limits) {
    if (l.kind === 'rate') {
      lines.push(`rate ${l.name}: ${l.requests} per ${l.perSeconds}s, burst ${l.burst}`);
      if (l.counters.length === 0) lines.push('  (no active counters: every bucket is full)');
      for (const c of l.counters) lines.push(`  ${keyText(c.key)}  remaining ${c.remaining}/${l.burst}  full in ${c.fullInMs} ms`);
    } else {
      const caps = [l.tokens === undefined ? '' : `${l.tokens} tokens`, l.cost === undefined ? '' : `${l.cost} ${l.currency}`].filter(Boolean).join(', ');
      lines.push(`budget ${l.name}: ${caps} per ${l.window} (${l.windowId}, resets ${l.resetsAt})`);
      if (l.counters.length === 0) lines.push('  (nothing used this window)');
      for (const c of l.counters) {
        const parts = [
          c.tokens ? `tokens ${c.tokens.used} used, ${c.tokens.remaining} left` : '',
          c.cost ? `cost ${c.cost.used} used, ${c.cost.remaining} left` : '',
        ].filter(Boolean);
        lines.push(`  ${keyText(c.key)}  ${parts.join('; ')}`);
      }
    }
  }
  return `${lines.join('\n')}\n`;
}

function keyText(key: Record<string, string>): string {
  const parts = Object.entries(key).map(([k, v]) => `${k}=${v}`);
  return parts.length === 0 ? '(all calls)' : parts.join(' ');
}

