/**
 * What each backend says it serves (vLLM's GET /v1/models, Triton's repository index...), cached per backend: the
 * adapter supplies the fetch, the catalog keeps the last good listing for `ttlMs`, fetches once for many callers
 * (single flight), and keeps serving the last good listing when a refresh fails. Used to route by model when a route
 * lists none, and to build merged model lists.
 */
import type { AdvertisedModels } from './models.ts';

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
