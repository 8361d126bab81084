/**
 * Which identity created each response of the Responses API: a response the backend stores (`store`, vLLM with
 * VLLM_ENABLE_RESPONSES_API_STORE) is named by its id alone, at GET /responses/{id}, POST /responses/{id}/cancel,
 * DELETE, and as another request's `previous_response_id` (whose input and output become that request's context).
 * Only the identity that created a response may reach it; another one gets 404 TG_RESPONSE_NOT_FOUND, the same answer
 * as for an id that does not exist (no existence leak), and so does everyone for an id the gateway never saw created.
 * The same design as A2A task ownership (src/protocols/a2a/tasks.ts).
 *
 * A binding also says where the response lives (the backend pool, the model under the route's name), so a retrieval,
 * which names no model, goes back to that pool and is judged by policy as a use of that model.
 *
 * In memory (bounded, oldest forgotten first) on one replica; in Redis with the shared store (src/store/shared-table.ts),
 * so a response made through one replica is reachable through any other: `SET <prefix>openai:response:<id> <binding>
 * PX ttl NX` (the first binding wins: a caller that names an existing id as its vLLM `request_id` cannot take that
 * response over). A store that cannot answer fails closed (TG_STORE_UNAVAILABLE).
 */
import { Errors, GatewayError } from '../../core/errors.ts';
import type { RedisStore } from '../../store/redis.ts';
import { SharedTable } from '../../store/shared-table.ts';

const MEMORY_MAX = 100_000;
/** How long a binding lasts: OpenAI keeps stored responses 30 days (vLLM's in-memory store never expires them). */
export const RESPONSE_TTL_MS = 30 * 24 * 3600 * 1000;

/** Who created a response, and where it lives. */
export interface ResponseBinding {
  readonly owner: string;
  /** The backend (pool) that answered. */
  readonly backend: string;
  /** The model under the route's name (policy's target name), and its name at the backend. */
  readonly model: string;
  readonly upstream: string;
}

export class ResponseOwners {
  /** This replica's bindings (without the shared store, the only record of them; with it, a cache) and Redis. */
  private readonly table: SharedTable<ResponseBinding>;

  /** `max`: bindings this replica holds in memory at most, a tenth of them per owner (tests make it small). */
  constructor(store: RedisStore | undefined, max = MEMORY_MAX) {
    this.table = new SharedTable(store, {
      what: 'stored responses',
      max,
      unavailable: 'The response store is unavailable; response ownership cannot be checked',
      encode: (b) => JSON.stringify(b),
      decode: parse,
    });
  }

  private key(id: string): string {
    return `openai:response:${id}`;
  }

  /**
   * Binds a response id to the identity that created it; false when it is bound to another identity already (the
   * first binding wins, here and in the shared store). Without the store, a full table or an owner holding its share
   * refuses (assertRoom); never is another caller's binding dropped (its owner would lose its response).
   */
  async bind(id: string, binding: ResponseBinding): Promise<boolean> {
    const key = this.key(id);
    const local = this.table.local;
    const held = local.get(key);
    if (held !== undefined) return held.owner === binding.owner;
    const until = Date.now() + RESPONSE_TTL_MS;
    if (this.table.store === undefined) {
      local.assertRoom(binding.owner);
      return local.add(key, binding.owner, until, binding);
    }
    // The shared store decides first: this replica remembers a binding only once it is known to be the store's.
    const stored = (await this.table.claim(key, binding, RESPONSE_TTL_MS)) ? binding : await this.table.fetch(key);
    if (stored === undefined || stored.owner !== binding.owner) return false;
    // The store holds it: this replica's copy is only a cache, skipped when there is no room for it.
    local.add(key, stored.owner, until, stored);
    return true;
  }

  /**
   * Without the shared store: refuses a request of `caller` that would create a response no one could reach (503
   * TG_OVERLOADED: the table is full; 429 TG_CAP_REACHED: the caller holds its share), before it is forwarded.
   */
  assertRoom(caller: string): void {
    this.table.assertRoom(caller);
  }

  /** The binding of a response id, or undefined (unknown or expired). */
  async binding(id: string): Promise<ResponseBinding | undefined> {
    return this.table.get(this.key(id));
  }

  /** The binding, when `caller` created the response; 404 TG_RESPONSE_NOT_FOUND otherwise. */
  async check(id: string, caller: string, param?: string): Promise<ResponseBinding> {
    const b = await this.binding(id);
    if (b === undefined || b.owner !== caller) throw responseNotFound(id, param);
    return b;
  }
}

function parse(raw: string): ResponseBinding | undefined {
  try {
    const b = JSON.parse(raw) as ResponseBinding;
    return typeof b.owner === 'string' && typeof b.backend === 'string' ? b : undefined;
  } catch {
    return undefined;
  }
}

export function responseNotFound(id: string, param?: string): GatewayError {
  return new GatewayError(Errors.RESPONSE_NOT_FOUND, `Response with id '${id}' not found.`, param === undefined ? undefined : { data: { param } });
}
