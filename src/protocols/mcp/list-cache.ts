/**
 * Merged list pages per client session: a session listing its tools again gets the page it got last (the upstreams'
 * lists fetched, parsed, merged and renamed once), until one of its upstreams says its list changed
 * (`notifications/*\/list_changed` on the session's server stream) or the TTL (`mcp.listCacheTtlMs`, for upstreams
 * that never send it, and for a stream that is not open) runs out. The policy filter still runs on every list, on
 * the cached targets (memoized per principal and policy revision by the policy guard).
 *
 * Per session, never shared: an upstream may answer two sessions differently. Bounded per session.
 *
 * A cached page also keeps its last answer serialised (the `result` member's JSON as bytes) with the policy's
 * verdict it was filtered by: the same session listing again with the same verdict (same principal, same policy
 * answer) gets those bytes written as they are, without renaming, filtering or serialising hundreds of items again.
 * Whatever changes the answer changes the verdict (another policy revision that hides something else) or drops the
 * page (list_changed, TTL).
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

interface Answer {
  /** The policy's verdict per item (undefined: lists are not filtered). */
  readonly verdict: readonly boolean[] | undefined;
  readonly result: Buffer;
}

const answers = new WeakMap<ListPage, Answer>();

/** The serialised result of `page` filtered by `verdict`, when it was answered so before. */
export function cachedAnswer(page: ListPage, verdict: readonly boolean[] | undefined): Buffer | undefined {
  const a = answers.get(page);
  if (a === undefined || !sameVerdict(a.verdict, verdict)) return undefined;
  return a.result;
}

export function rememberAnswer(page: ListPage, verdict: readonly boolean[] | undefined, result: Buffer): void {
  answers.set(page, { verdict, result });
}

function sameVerdict(a: readonly boolean[] | undefined, b: readonly boolean[] | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
