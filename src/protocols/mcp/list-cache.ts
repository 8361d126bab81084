/**
 * Merged list pages per client session: a session listing its tools again gets the page it got last (the upstreams'
 * lists fetched, parsed, merged and renamed once), until one of its upstreams says its list changed
 * (`notifications/*\/list_changed` on the session's server stream) or the TTL (`mcp.listCacheTtlMs`, for upstreams
 * that never send it, and for a stream that is not open) runs out. The policy filter still runs on every list, on
 * the cached targets (memoized per principal and policy revision by the policy guard).
 *
 * Per session, never shared: an upstream may answer two sessions differently. Bounded per session.
 */
import type { ListPage } from './federation.ts';
import type { McpSession } from './session.ts';

const MAX_PAGES_PER_SESSION = 16;

interface Entry {
  readonly page: ListPage;
  readonly until: number;
}

const pages = new WeakMap<McpSession, Map<string, Entry>>();

export function listCacheKey(method: string, cursor: unknown, scope: readonly string[]): string {
  return `${method}\u0000${typeof cursor === 'string' ? cursor : ''}\u0000${scope.join('\u0000')}`;
}

export function cachedList(session: McpSession, key: string, now: number): ListPage | undefined {
  const m = pages.get(session);
  const e = m?.get(key);
  if (e === undefined) return undefined;
  if (now < e.until) return e.page;
  m!.delete(key);
  return undefined;
}

export function rememberList(session: McpSession, key: string, page: ListPage, ttlMs: number, now: number): void {
  if (ttlMs <= 0) return;
  let m = pages.get(session);
  if (m === undefined) {
    m = new Map();
    pages.set(session, m);
  }
  if (!m.has(key) && m.size >= MAX_PAGES_PER_SESSION) m.delete(m.keys().next().value!);
  m.set(key, { page, until: now + ttlMs });
}

/** An upstream of this session announced a list change (any kind): every cached page of the session goes. */
export function listChanged(session: McpSession, message: string): void {
  if (message.includes('list_changed')) pages.delete(session);
}
