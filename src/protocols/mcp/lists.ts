/**
 * tools/list, prompts/list, resources/list and resources/templates/list: one server's list forwarded untouched
 * when nothing is filtered; otherwise the pages of every backend in scope merged under federated names
 * (federation.ts), filtered by policy (Pipeline.visible), and, for 2026 clients, given their cache hints.
 */
import type { ServerResponse } from 'node:http';
import type { Call } from '../../core/call.ts';
import { Errors, GatewayError, toGatewayError } from '../../core/errors.ts';
import type { GatewayState } from '../../gateway/state.ts';
import type { CompiledRule } from '../../config/routes.ts';
import type { McpAdapter } from './adapter.ts';
import { LIST_KEY, fetchListPage, type ListMethod } from './federation.ts';
import { forward } from './forward.ts';
import type { RpcRequest } from './jsonrpc.ts';
import { scopeOf } from './routing.ts';
import { RETRY_AFTER_MS, type McpSession } from './session.ts';
import { isModernSession } from './upstream/http-modern.ts';
import { virtualToolList } from './virtual.ts';
import { cachedAnswer, cachedList, listCacheKey, rememberAnswer, rememberList } from './list-cache.ts';

export const LIST_METHODS: ReadonlySet<string> = new Set<string>(['tools/list', 'prompts/list', 'resources/list', 'resources/templates/list']);
export const LIST_TIMEOUT_MS = 30_000;

/**
 * The `_meta` key of a merged list page naming the backends that could not give their part of it (down, or their
 * list failed): the page holds the others' items, and a client can tell a partial list from a complete one. A
 * prefixed key, as basic/index.mdx (_meta) asks of keys outside the protocol's own.
 */
export const UNAVAILABLE_META = 'dev.tollgate/unavailable';

export async function list(mcp: McpAdapter, call: Call, res: ServerResponse, rule: CompiledRule, session: McpSession, msg: RpcRequest, raw: Buffer, state: GatewayState): Promise<void> {
  const method = msg.method as ListMethod;
  const namespaced = session.scope === undefined;
  if (session.virtual) return virtualList(mcp, call, res, session, msg, state);
  if (!namespaced && !state.pipeline.filtersLists && !session.modern) {
    // One server, nothing to filter: forward the request and its answer untouched. Except a 2026 server's tools,
    // whose x-mcp-header annotations are checked (federation.ts) like the gateway's other clients get them.
    const up = await session.upstream(session.scope!);
    if (!up) return mcp.refuse(call, res, msg.id, new GatewayError(Errors.UPSTREAM_UNAVAILABLE, `Upstream ${session.scope} is unavailable`));
    if (method !== 'tools/list' || !isModernSession(up)) return forward(mcp, { call, res, session, up, msg, raw, state, transform: undefined });
  }
  const scope = scopeOf(session, rule);
  const cacheKey = listCacheKey(method, msg.params?.cursor, scope);
  const now = Date.now();
  // A 2026-07-28 client gets the upstreams' own caching hints (ttlMs, cacheScope) and follows them itself: its list
  // is fetched each time it asks (public upstream pages are still cached in fetchListPage, for their ttl).
  const ttlMs = session.modern ? 0 : state.snapshot.gateway.mcp.listCacheTtlMs;
  let page = ttlMs > 0 ? cachedList(session, cacheKey, now) : undefined;
  if (page === undefined) {
    // A cursor is good only for the list and the view it was issued for (cursor.ts). A page found in the session's
    // cache was issued here for this list (its key names the method, the cursor and the scope).
    const issuedFor = `${method}\0${rule.route.name}\0${session.scope ?? ''}\0${session.fingerprint !== '' ? session.fingerprint : (session.principal ?? '')}`;
    // notifications/cancelled names it like any request: every upstream still asked is told, the client gets nothing.
    const cancel = new AbortController();
    const inflight = { downstreamId: msg.id, cancel: () => cancel.abort() };
    session.inflight.set(msg.id, inflight);
    try {
      page = await fetchListPage({
        signal: cancel.signal,
        method,
        state: mcp.cursors.decode(msg.params?.cursor, issuedFor),
        encode: (next) => mcp.cursors.encode(next, issuedFor),
        meta: msg.params?._meta,
        scope,
        namespaced,
        names: mcp.federatedNames,
        open: (b) => session.upstream(b),
        timeoutMs: LIST_TIMEOUT_MS,
        log: mcp.ctx.log,
      });
    } catch (err) {
      return cancel.signal.aborted ? mcp.abandon(call, res, keepAliveMs(state)) : mcp.refuse(call, res, msg.id, toGatewayError(err));
    } finally {
      if (session.inflight.get(msg.id) === inflight) session.inflight.delete(msg.id);
    }
    if (cancel.signal.aborted) return mcp.abandon(call, res, keepAliveMs(state));
    // A partial page is kept only as long as the session waits before asking a down upstream again.
    rememberList(session, cacheKey, page, page.unavailable.length > 0 ? Math.min(ttlMs, RETRY_AFTER_MS) : ttlMs, now);
  }
  let items = page.items;
  let visible: boolean[] | undefined;
  if (state.pipeline.filtersLists && items.length > 0) {
    try {
      visible = await state.pipeline.visible(call, page.targets);
    } catch (err) {
      return mcp.refuse(call, res, msg.id, toGatewayError(err));
    }
  }
  if (ttlMs > 0) {
    // A session-cached page (never a 2026 client's: its answer carries hints): its answer is kept serialised.
    let bytes = cachedAnswer(page, visible);
    if (bytes === undefined) {
      const result: Record<string, unknown> = { [LIST_KEY[method]]: visible === undefined ? items : items.filter((_, i) => visible[i]) };
      if (page.nextCursor !== undefined) result.nextCursor = page.nextCursor;
      if (page.unavailable.length > 0) result._meta = { [UNAVAILABLE_META]: page.unavailable };
      bytes = Buffer.from(JSON.stringify(result));
      rememberAnswer(page, visible, bytes);
    }
    return mcp.answerSerialised(call, res, msg.id, bytes);
  }
  if (visible !== undefined) items = items.filter((_, i) => visible[i]);
  const result: Record<string, unknown> = { [LIST_KEY[method]]: items };
  if (page.nextCursor !== undefined) result.nextCursor = page.nextCursor;
  if (page.unavailable.length > 0) result._meta = { [UNAVAILABLE_META]: page.unavailable };
  if (session.modern) {
    // A filtered list depends on who asked: never public, whatever the upstreams said.
    result.resultType = 'complete';
    result.ttlMs = page.ttlMs;
    result.cacheScope = state.pipeline.filtersLists ? 'private' : page.cacheScope;
  }
  mcp.answer(call, res, msg.id, result);
}

function keepAliveMs(state: GatewayState): number {
  return state.snapshot.gateway.http.sseKeepAliveMs;
}

async function virtualList(mcp: McpAdapter, call: Call, res: ServerResponse, session: McpSession, msg: RpcRequest, state: GatewayState): Promise<void> {
  if (msg.method !== 'tools/list') {
    // A virtual server offers tools only.
    const empty: Record<string, unknown> = { [LIST_KEY[msg.method as ListMethod]]: [] };
    if (session.modern) Object.assign(empty, { resultType: 'complete', ttlMs: 0, cacheScope: 'private' });
    return mcp.answer(call, res, msg.id, empty);
  }
  const { tools, targets } = await virtualToolList(session.virtual!, (b) => session.upstream(b), LIST_TIMEOUT_MS);
  let items = tools;
  if (state.pipeline.filtersLists && items.length > 0) {
    let visible: boolean[];
    try {
      visible = await state.pipeline.visible(call, targets);
    } catch (err) {
      return mcp.refuse(call, res, msg.id, toGatewayError(err), session.modern);
    }
    items = items.filter((_, i) => visible[i]);
  }
  const result: Record<string, unknown> = { tools: items };
  if (session.modern) Object.assign(result, { resultType: 'complete', ttlMs: 0, cacheScope: 'private' });
  mcp.answer(call, res, msg.id, result);
}
