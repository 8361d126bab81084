/**
 * Routing by model name, protocol-neutral (OpenAI-compatible and KServe routes both pick a pool by model): a Route's
 * `models` list maps the names callers use (exact names with aliases, or `*` patterns) to one of the rule's backends,
 * optionally rewriting the name for the backend. A route that lists none serves the models its backends advertise
 * (a ModelCatalog the adapter fills from the backends' own listings, e.g. vLLM's /v1/models).
 */
import { z } from 'zod';

/** A model name a caller may use: exact (`name`, with its `aliases`) or a glob (`pattern`, one `*`). */
export const modelRouteSpec = z
  .strictObject({
    name: z.string().min(1).max(256).optional(),
    aliases: z.array(z.string().min(1).max(256)).default([]),
    pattern: z.string().min(1).max(256).optional(),
    /** The Backend (pool) serving it: a backend of the route's rules. */
    backend: z.string().min(1),
    /** The model's name at the backend (a rewrite); in a pattern's, `*` is what `*` matched. Default: the caller's. */
    model: z.string().min(1).max(256).optional(),
  })
  .superRefine((m, ctx) => {
    if ((m.name === undefined) === (m.pattern === undefined)) ctx.addIssue({ code: 'custom', message: 'set exactly one of name or pattern' });
    if (m.pattern !== undefined && m.aliases.length > 0) ctx.addIssue({ code: 'custom', path: ['aliases'], message: 'aliases are for exact names, not patterns' });
    if (m.pattern !== undefined && (m.pattern.match(/\*/g)?.length ?? 0) !== 1) ctx.addIssue({ code: 'custom', path: ['pattern'], message: 'a pattern has exactly one "*"' });
    if (m.model !== undefined && (m.model.match(/\*/g)?.length ?? 0) > (m.pattern === undefined ? 0 : 1)) {
      ctx.addIssue({ code: 'custom', path: ['model'], message: m.pattern === undefined ? '"*" in model is only for patterns' : 'at most one "*" in model' });
    }
  });
export type ModelRouteSpec = z.infer<typeof modelRouteSpec>;

/** Config problems of a route's `models` list (path under `spec.models`, message), checked when config loads. */
export function checkModelRoutes(models: readonly ModelRouteSpec[], routeBackends: ReadonlySet<string>): { path: (string | number)[]; message: string }[] {
  const issues: { path: (string | number)[]; message: string }[] = [];
  const names = new Map<string, number>();
  models.forEach((m, i) => {
    if (!routeBackends.has(m.backend)) issues.push({ path: [i, 'backend'], message: `backend "${m.backend}" is not a backend of this route` });
    for (const [j, n] of [m.name, ...m.aliases].entries()) {
      if (n === undefined) continue;
      const prior = names.get(n);
      if (prior !== undefined) issues.push({ path: j === 0 ? [i, 'name'] : [i, 'aliases', j - 1], message: `model name "${n}" is already used by models[${prior}]` });
      else names.set(n, i);
    }
  });
  return issues;
}

/** What a model name resolved to. */
export interface ResolvedModel {
  /** The name policies, budgets and telemetry see: the entry's name (an alias resolves to it), else the name asked for. */
  readonly name: string;
  /** The name the caller used. */
  readonly requested: string;
  readonly backend: string;
  /** The model's name at the backend (differs from `requested` when the route rewrites it). */
  readonly upstream: string;
}

interface Pattern {
  readonly prefix: string;
  readonly suffix: string;
  readonly backend: string;
  readonly model: string | undefined;
}

/** Advertised model names per backend (the adapter's catalog of the backends' own listings). */
export interface AdvertisedModels {
  /** The names a backend advertises, or undefined when its listing is not known (yet, or it failed). */
  names(backend: string): ReadonlySet<string> | undefined;
}

/** One rule's model routes, compiled (immutable; built per snapshot). */
export class ModelRouter {
  /** The rule's backends, in order. */
  readonly backends: readonly string[];
  /** True when the route lists its models; false: the backends' advertised models are served as they are. */
  readonly explicit: boolean;
  private readonly exact = new Map<string, ResolvedModel>();
  private readonly patterns: Pattern[] = [];
  private readonly entries: readonly ModelRouteSpec[];

  constructor(models: readonly ModelRouteSpec[], ruleBackends: readonly string[]) {
    this.backends = ruleBackends;
    const mine = new Set(ruleBackends);
    this.entries = models.filter((m) => mine.has(m.backend));
    this.explicit = models.length > 0;
    for (const m of this.entries) {
      if (m.name !== undefined) {
        for (const n of [m.name, ...m.aliases]) this.exact.set(n, { name: m.name, requested: n, backend: m.backend, upstream: m.model ?? n });
      } else {
        const star = m.pattern!.indexOf('*');
        this.patterns.push({ prefix: m.pattern!.slice(0, star), suffix: m.pattern!.slice(star + 1), backend: m.backend, model: m.model });
      }
    }
  }

  /** The backend and names for a model the caller asked for; undefined when this rule serves no such model. */
  resolve(requested: string, advertised?: AdvertisedModels): ResolvedModel | undefined {
    const hit = this.exact.get(requested);
    if (hit !== undefined) return hit;
    for (const p of this.patterns) {
      if (requested.length < p.prefix.length + p.suffix.length || !requested.startsWith(p.prefix) || !requested.endsWith(p.suffix)) continue;
      const star = requested.slice(p.prefix.length, requested.length - p.suffix.length);
      return { name: requested, requested, backend: p.backend, upstream: p.model === undefined ? requested : p.model.replace('*', star) };
    }
    if (this.explicit || advertised === undefined) return undefined;
    for (const b of this.backends) {
      if (advertised.names(b)?.has(requested)) return { name: requested, requested, backend: b, upstream: requested };
    }
    return undefined;
  }

  /**
   * The names this rule offers for the models a backend advertises (for merged model lists): each advertised name
   * maps to the caller-visible name that reaches it (an exact entry's name, a pattern's match, or itself when the
   * route lists no models). Exact entries whose model the backend does not advertise are left out.
   */
  offered(backend: string, advertised: readonly string[]): { name: string; upstream: string }[] {
    const out: { name: string; upstream: string }[] = [];
    const seen = new Set<string>();
    const add = (name: string, upstream: string): void => {
      if (seen.has(name)) return;
      seen.add(name);
      out.push({ name, upstream });
    };
    if (!this.explicit) {
      for (const a of advertised) add(a, a);
      return out;
    }
    const has = new Set(advertised);
    for (const m of this.entries) {
      if (m.backend !== backend) continue;
      if (m.name !== undefined) {
        const upstream = m.model ?? m.name;
        // Aliases are shortcuts for callers who know them; a list shows each model once, by its name.
        if (has.has(upstream)) add(m.name, upstream);
        continue;
      }
      const star = m.pattern!.indexOf('*');
      const prefix = m.pattern!.slice(0, star);
      const suffix = m.pattern!.slice(star + 1);
      for (const a of advertised) {
        if (m.model === undefined) {
          // No rewrite: the caller uses the backend's name, when it fits the pattern.
          if (a.length >= prefix.length + suffix.length && a.startsWith(prefix) && a.endsWith(suffix)) add(a, a);
          continue;
        }
        // A rewrite template: invert it to find the caller's name for backend model `a`.
        const t = m.model.indexOf('*');
        if (t === -1) continue; // every name of the pattern goes to one fixed model: no single name to list
        const tp = m.model.slice(0, t);
        const ts = m.model.slice(t + 1);
        if (a.length < tp.length + ts.length || !a.startsWith(tp) || !a.endsWith(ts)) continue;
        add(prefix + a.slice(tp.length, a.length - ts.length) + suffix, a);
      }
    }
    return out;
  }
}
