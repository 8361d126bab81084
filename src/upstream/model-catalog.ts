/**
 * What each backend says it serves (vLLM's GET /v1/models, Triton's repository index...), cached per backend: the
 * adapter supplies the fetch, the catalog keeps the last good listing for `ttlMs`, fetches once for many callers
 * (single flight), and keeps serving the last good listing when a refresh fails. Used to route by model when a route
 * lists none, and to build merged model lists.
 */
import type { CompiledRule } from '../config/routes.ts';
import { ModelRouter, type AdvertisedModels, type ResolvedModel } from './models.ts';

/** One model as its backend lists it (its own fields, passed on to callers). */
export interface ModelCard {
  readonly id: string;
  readonly [field: string]: unknown;
}

interface Entry {
  cards: readonly ModelCard[] | undefined;
  names: ReadonlySet<string> | undefined;
  fetchedAt: number;
  attemptedAt: number;
  error: string | undefined;
  inflight: Promise<void> | undefined;
}

export class ModelCatalog implements AdvertisedModels {
  private readonly fetchList: (backend: string) => Promise<readonly ModelCard[]>;
  private readonly ttlMs: number;
  private readonly entries = new Map<string, Entry>();

  constructor(fetchList: (backend: string) => Promise<readonly ModelCard[]>, opts: { ttlMs: number }) {
    this.fetchList = fetchList;
    this.ttlMs = opts.ttlMs;
  }

  names(backend: string): ReadonlySet<string> | undefined {
    return this.entries.get(backend)?.names;
  }

  /** The backend's listing, refreshed first when older than the TTL (or `maxAgeMs`); undefined if never fetched. */
  async cards(backend: string, maxAgeMs = this.ttlMs): Promise<{ cards: readonly ModelCard[] | undefined; error: string | undefined }> {
    const e = this.entry(backend);
    if (e.cards === undefined || Date.now() - e.fetchedAt > maxAgeMs) await this.refresh(backend, e);
    return { cards: e.cards, error: e.error };
  }

  /**
   * Refreshes a backend's listing unless one was attempted less than `minIntervalMs` ago (a caller naming an unknown
   * model must not make the gateway fetch on every request).
   */
  async refreshIfIdle(backend: string, minIntervalMs: number): Promise<void> {
    const e = this.entry(backend);
    if (Date.now() - e.attemptedAt < minIntervalMs) return e.inflight;
    await this.refresh(backend, e);
  }

  /** Forgets backends no longer configured. */
  retain(backends: ReadonlySet<string>): void {
    for (const b of this.entries.keys()) if (!backends.has(b)) this.entries.delete(b);
  }

  private entry(backend: string): Entry {
    let e = this.entries.get(backend);
    if (e === undefined) {
      e = { cards: undefined, names: undefined, fetchedAt: 0, attemptedAt: 0, error: undefined, inflight: undefined };
      this.entries.set(backend, e);
    }
    return e;
  }

  private refresh(backend: string, e: Entry): Promise<void> {
    e.inflight ??= (async () => {
      e.attemptedAt = Date.now();
      try {
        const cards = await this.fetchList(backend);
        e.cards = cards;
        e.names = new Set(cards.map((c) => c.id));
        e.fetchedAt = Date.now();
        e.error = undefined;
      } catch (err) {
        e.error = err instanceof Error ? err.message : String(err);
      } finally {
        e.inflight = undefined;
      }
    })();
    return e.inflight;
  }
}

/**
 * Routing by model name for an adapter's rules: one ModelRouter per compiled rule (a reload compiles new rules, so
 * routers follow), resolving through the catalog. For a rule without `models`, an unknown name refreshes its
 * backends' listings, at most once per `refreshMs` per backend.
 */
export class ModelRoutes {
  readonly catalog: ModelCatalog;
  private readonly refreshMs: number;
  private readonly routers = new WeakMap<CompiledRule, ModelRouter>();

  constructor(catalog: ModelCatalog, opts: { refreshMs: number }) {
    this.catalog = catalog;
    this.refreshMs = opts.refreshMs;
  }

  router(rule: CompiledRule): ModelRouter {
    let r = this.routers.get(rule);
    if (r === undefined) {
      r = new ModelRouter(rule.route.spec.models ?? [], rule.backends.map((b) => b.name));
      this.routers.set(rule, r);
    }
    return r;
  }

  async resolve(rule: CompiledRule, model: string): Promise<ResolvedModel | undefined> {
    const router = this.router(rule);
    const hit = router.resolve(model, this.catalog);
    if (hit !== undefined || router.explicit) return hit;
    await Promise.all(router.backends.map((b) => this.catalog.refreshIfIdle(b, this.refreshMs)));
    return router.resolve(model, this.catalog);
  }
}
