/**
 * GET /v1/models and /v1/models/{id}: the models of the pools a rule routes to, merged, under the names callers use
 * (a route's rewrite shown as its public name, aliases as their own entries), each as its backend describes it
 * (vLLM's `max_model_len`, `root`, `permission`...), and filtered by policy: a caller sees only the models it may use.
 * Backends' lists come from a ModelCatalog (cached, refreshed in the background of requests, last good list kept).
 */
import type { Target } from '../../core/call.ts';
import { Errors, GatewayError } from '../../core/errors.ts';
import type { ModelCard, ModelCatalog } from '../../upstream/model-catalog.ts';
import type { ModelRouter, ResolvedModel } from '../../upstream/models.ts';

export interface ListedModel {
  readonly card: ModelCard;
  readonly target: Target;
}

/** A card under the caller's name: the backend's own fields, `id` replaced. */
function renamed(card: ModelCard | undefined, id: string, backend: string): ModelCard {
  return card === undefined ? { id, object: 'model', created: 0, owned_by: backend } : { ...card, id };
}

/** Every model a rule offers, in backend order, with the target a policy judges it by. */
export async function offeredModels(router: ModelRouter, catalog: ModelCatalog): Promise<ListedModel[]> {
  const lists = await Promise.all(router.backends.map((b) => catalog.cards(b)));
  const out: ListedModel[] = [];
  const seen = new Set<string>();
  router.backends.forEach((backend, i) => {
    const cards = lists[i]!.cards;
    if (cards === undefined) return;
    const byId = new Map(cards.map((c) => [c.id, c]));
    for (const { name, upstream } of router.offered(backend, cards.map((c) => c.id))) {
      if (seen.has(name)) continue;
      seen.add(name);
      // In lists, local is the caller-visible name (two aliases of one backend model must not collide).
      out.push({ card: renamed(byId.get(upstream), name, backend), target: { kind: 'model', name, server: backend, local: name } });
    }
  });
  return out;
}

/** The card of one resolved model (404 when its backend does not list it, or could not be asked and never was). */
export async function modelCard(resolved: ResolvedModel, catalog: ModelCatalog): Promise<ModelCard> {
  const { cards } = await catalog.cards(resolved.backend);
  const card = cards?.find((c) => c.id === resolved.upstream);
  if (card === undefined && cards !== undefined) throw notFound(resolved.requested);
  return renamed(card, resolved.requested, resolved.backend);
}

export function notFound(model: string): GatewayError {
  return new GatewayError(Errors.MODEL_NOT_FOUND, `The model \`${model}\` does not exist or you do not have access to it.`, { data: { param: 'model' } });
}

/** Parses a backend's GET /v1/models answer into its cards. */
export function parseModelList(raw: Buffer, backend: string): ModelCard[] {
  const body = JSON.parse(raw.toString('utf8')) as { data?: unknown };
  if (!Array.isArray(body.data)) throw new Error(`backend ${backend}: /v1/models has no data list`);
  return (body.data as unknown[]).filter((c): c is ModelCard => typeof c === 'object' && c !== null && typeof (c as { id?: unknown }).id === 'string');
}
