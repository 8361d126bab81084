/**
 * The Responses API's stored responses through the gateway (owners.ts says who may reach which):
 *
 * - creating one (POST /responses): `previous_response_id` must name a response the caller created (its context is
 *   read into this one), vLLM's `request_id` extra (which becomes the response's id) is claimed for the caller before
 *   the request is forwarded, and the id of the answer (the JSON's `id`, a stream's `response.created`) is bound to
 *   the caller once the answer ended;
 * - GET /responses/{id} (vLLM's `stream`, `starting_after` query passed on), POST /responses/{id}/cancel and DELETE
 *   /responses/{id}: only for the identity that created it, sent to the backend that answered, judged by policy as
 *   a use of its model (`responses.retrieve`, `responses.cancel`, `responses.delete`), never metered; another
 *   identity, and an id the gateway never bound, get 404 TG_RESPONSE_NOT_FOUND before anything is forwarded.
 */
import { safeDecode } from '../../wire/path.ts';
import type { Call } from '../../core/call.ts';
import { Errors, GatewayError, toGatewayError } from '../../core/errors.ts';
import { limitNoticesOf, openAiRateLimitHeaders } from '../../core/limits.ts';
import type { AdapterContext, Exchange } from '../../gateway/adapter.ts';
import { forward, type ChunkFilter } from '../../upstream/forwarder.ts';
import type { HttpUpstream } from '../../upstream/http-upstream.ts';
import type { ResolvedModel } from '../../upstream/models.ts';
import { RenamedAnswer } from '../../upstream/rename.ts';
import { HEADERS } from './list.ts';
import { HeaderPolicy } from '../../upstream/headers.ts';
import { responseNotFound, type ResponseBinding, type ResponseOwners } from './owners.ts';
import type { ParsedBody } from './request.ts';
import { ResponsesStream } from './responses.ts';

/** What the stored-response routes need of the adapter. */
export interface StoredContext {
  readonly ctx: AdapterContext;
  readonly owners: ResponseOwners;
  upstreamOf(backend: string): HttpUpstream | undefined;
  reject(pre: Call, req: Exchange['req'], res: Exchange['res'], err: GatewayError): void;
}

/** A stored response's route: `/responses/{id}` (GET, DELETE) or `/responses/{id}/cancel` (POST). */
export interface StoredRoute {
  readonly id: string;
  readonly operation: 'responses.retrieve' | 'responses.delete' | 'responses.cancel';
  readonly path: string;
}

/** The stored-response route a method and path under the mount name, or undefined (not one). */
export function storedRoute(method: string, rest: string, url: string | undefined): StoredRoute | undefined {
  const m = /^\/responses\/([^/]+)(\/cancel)?$/.exec(rest);
  if (m === null) return undefined;
  const id = safeDecode(m[1]!);
  // An id that would move the backend path (`..`) names no response.
  if (id === '.' || id === '..') return undefined;
  const query = url?.includes('?') === true ? url.slice(url.indexOf('?')) : '';
  const base = `/v1/responses/${encodeURIComponent(id)}`;
  if (m[2] !== undefined) return method === 'POST' ? { id, operation: 'responses.cancel', path: `${base}/cancel` } : undefined;
  if (method === 'GET') return { id, operation: 'responses.retrieve', path: base + query };
  if (method === 'DELETE') return { id, operation: 'responses.delete', path: base };
  return undefined;
}


/** Serves a stored-response route for the identity that created the response; 404 for anyone else. */
export async function serveStored(a: StoredContext, x: Exchange, call: Call, route: StoredRoute): Promise<void> {
  const { req, res, state } = x;
  const caller = call.principal?.id ?? '';
  let found: ResponseBinding | undefined;
  try {
    found = await a.owners.binding(route.id);
  } catch (err) {
    return a.reject(call, req, res, toGatewayError(err));
  }
  // Unknown and another caller's are the same answer, before anything is forwarded or judged.
  if (found === undefined || found.owner !== caller || anonymous(call)) return a.reject(call, req, res, responseNotFound(route.id));
  const binding = found;
  call.target = { kind: 'model', name: binding.model, server: binding.backend, local: binding.upstream };
  call.upstream = binding.backend;
  call.estimate = { inputTokens: 0, maxOutputTokens: 0 };
  a.ctx.calls.begin(call);
  await a.ctx.calls.run(call, { res, req, call }, state, async () => {
    const upstream = a.upstreamOf(binding.backend);
    if (upstream === undefined) throw new GatewayError(Errors.UPSTREAM_UNAVAILABLE, `Upstream ${binding.backend} is unavailable`, { data: { upstream: binding.backend } });
    const answer = await forward(upstream, {
      method: req.method ?? 'GET',
      path: route.path,
      headers: req.headers,
      policy: HEADERS,
      set: a.ctx.calls.propagate(call),
      body: route.operation === 'responses.cancel' ? '' : undefined,
      client: res,
      idempotent: route.operation === 'responses.retrieve',
      affinity: storedAffinity(binding.owner),
      call,
    });
    const headers = openAiRateLimitHeaders(limitNoticesOf(call));
    if (answer.status !== 200) {
      call.outcome = answer.status >= 500 ? 'upstream_error' : 'error';
      return answer.pipeTo(res, { headers });
    }
    // The caller reads back the name it asked for; nothing is counted (a retrieval generates nothing).
    const rename = binding.upstream !== binding.model ? binding.model : undefined;
    const type = answer.headers['content-type'];
    const sse = typeof type === 'string' && type.startsWith('text/event-stream');
    const filter: ChunkFilter | undefined = rename === undefined ? undefined : sse ? new ResponsesStream(call, rename, false) : new RenamedAnswer(UNCHANGED, 'model', rename);
    await answer.pipeTo(res, { headers, filter });
  });
}

/** A filter that passes every byte (what RenamedAnswer wraps when nothing is read). */
const UNCHANGED: ChunkFilter = { sameBytes: true, chunk: (d) => d, end: () => undefined, fail: () => undefined };

/** The anonymous principal (a route with `auth.anonymous`): every such caller is the same one, so nothing is bound. */
function anonymous(call: Call): boolean {
  return call.principal === undefined || call.principal.issuer === 'anonymous';
}

/** vLLM's `request_id` as the gateway accepts it: a short id of safe characters. */
const REQUEST_ID = /^[A-Za-z0-9_.:-]{1,128}$/;

/**
 * Before a POST /responses is forwarded: the response it continues must be the caller's, and an id the caller
 * chooses (vLLM's `request_id`) is claimed for it, refused when another caller holds it. Anonymous callers cannot
 * tell each other apart, so they get no stored state: `previous_response_id` and `request_id` are refused for them.
 */
export async function claimResponseState(owners: ResponseOwners, call: Call, p: ParsedBody, resolved: ResolvedModel): Promise<void> {
  const caller = call.principal?.id ?? '';
  const previous = p.json.previous_response_id;
  const chosen = p.json.request_id;
  if (anonymous(call) && ((previous !== undefined && previous !== null) || chosen !== undefined)) {
    throw new GatewayError(Errors.INVALID_REQUEST, 'Stored responses need an authenticated caller: previous_response_id and request_id are refused on anonymous routes', {
      data: { param: previous !== undefined && previous !== null ? 'previous_response_id' : 'request_id' },
    });
  }
  if (previous !== undefined && previous !== null) {
    if (typeof previous !== 'string') throw new GatewayError(Errors.INVALID_REQUEST, 'previous_response_id must be a string', { data: { param: 'previous_response_id' } });
    await owners.check(previous, caller, 'previous_response_id');
  }
  if (p.json.store === false || anonymous(call)) return;
  // A response the backend will store must be bindable to its creator, or no one could reach it.
  owners.assertRoom(caller);
  if (chosen === undefined) return;
  if (typeof chosen !== 'string' || !REQUEST_ID.test(chosen)) {
    throw new GatewayError(Errors.INVALID_REQUEST, 'request_id must be 1-128 characters of A-Z, a-z, 0-9, _ . : -', { data: { param: 'request_id' } });
  }
  if (!(await owners.bind(chosen, bindingOf(caller, resolved)))) {
    throw new GatewayError(Errors.INVALID_REQUEST, 'request_id names a response of another caller; leave it out and the backend chooses one', { data: { param: 'request_id' } });
  }
}

/**
 * After a POST /responses answered (or broke off: a stored response outlives its stream, and its creator may resume
 * it): its id, bound to the caller (a store that failed is logged, not thrown). Not with `store: false` (the backend
 * keeps nothing to reach), nor for anonymous callers.
 */
export async function bindResponse(a: StoredContext, call: Call, p: ParsedBody, resolved: ResolvedModel): Promise<void> {
  const id = call.model?.responseId;
  if (id === undefined || p.json.store === false || anonymous(call)) return;
  try {
    await a.owners.bind(id, bindingOf(call.principal?.id ?? '', resolved));
  } catch (err) {
    a.ctx.log.warn({ err: (err as Error).message }, 'response binding not stored');
  }
}

/**
 * The endpoint affinity of a caller's stored responses: vLLM keeps them in the memory of the server that made them,
 * so creating, reading, cancelling, deleting and continuing them go to one endpoint of the pool while it is up.
 */
export function storedAffinity(owner: string): string {
  return `openai-responses\n${owner}`;
}

/** The Responses API create: vLLM's `X-Request-Id` could name the response outside the `request_id` claim. */
export const CREATE_HEADERS = new HeaderPolicy({ request: ['content-type', 'accept'], response: ['content-type', 'x-request-id', 'metadata'] });

function bindingOf(owner: string, resolved: ResolvedModel): ResponseBinding {
  return { owner, backend: resolved.backend, model: resolved.name, upstream: resolved.upstream };
}
