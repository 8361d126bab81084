/**
 * Federation: many upstream servers seen as one. Merges initialize results and paginated lists, namespaces names and
 * URIs, and maps a public name back to its owner.
 */
import type { Target } from '../../core/call.ts';
import type { Logger } from '../../telemetry/logger.ts';
import type { CursorState } from './cursor.ts';
import { validParamHeaders } from './modern.ts';
import { type FederatedNames, publicUri } from './names.ts';
import type { InitializeResult, UpstreamSession } from './upstream/types.ts';

export type ListMethod = 'tools/list' | 'prompts/list' | 'resources/list' | 'resources/templates/list';

export const LIST_KEY: Readonly<Record<ListMethod, string>> = {
  'tools/list': 'tools',
  'prompts/list': 'prompts',
  'resources/list': 'resources',
  'resources/templates/list': 'resourceTemplates',
};

const CAPABILITY: Readonly<Record<ListMethod, string>> = {
  'tools/list': 'tools',
  'prompts/list': 'prompts',
  'resources/list': 'resources',
  'resources/templates/list': 'resources',
};

const TARGET_KIND: Readonly<Record<ListMethod, Target['kind']>> = {
  'tools/list': 'tool',
  'prompts/list': 'prompt',
  'resources/list': 'resource',
  'resources/templates/list': 'resource',
};

export const GATEWAY_INFO = Object.freeze({ name: 'tollgate', title: 'Tollgate MCP gateway', version: '0.1.0' });

/** The initialize result of the federated view: capabilities are the union of the upstreams'. */
export function mergeInitialize(
  protocolVersion: string,
  inits: ReadonlyArray<readonly [string, InitializeResult]>,
): Record<string, unknown> {
  const caps: Record<string, unknown> = {};
  let subscribe = false;
  const instructions: string[] = [];
  for (const [name, init] of inits) {
    const c = init.capabilities as Record<string, Record<string, unknown> | undefined>;
    if (c.tools) caps.tools = { listChanged: true };
    if (c.prompts) caps.prompts = { listChanged: true };
    if (c.resources) {
      subscribe ||= c.resources.subscribe === true;
      caps.resources = { listChanged: true, subscribe };
    }
    if (c.logging) caps.logging = {};
    if (c.completions) caps.completions = {};
    if (init.instructions) instructions.push(`## ${name}\n${init.instructions}`);
  }
  // The gateway re-emits list_changed (an upstream restart or a config reload can change the lists).
  caps.tools ??= { listChanged: true };
  const result: Record<string, unknown> = { protocolVersion, capabilities: caps, serverInfo: GATEWAY_INFO };
  if (instructions.length > 0) {
    result.instructions = `Tools, prompts and resources of several servers, named <server>__<name>.\n\n${instructions.join('\n\n')}`;
  }
  return result;
}

export interface ListPage {
  items: Record<string, unknown>[];
  targets: Target[];
  nextCursor: string | undefined;
  /**
   * Backends in scope that could not give their page (down, or their list failed): the page is answered without
   * them and says so in its `_meta` (lists.ts); the session keeps it only until it would ask the missing ones again.
   */
  unavailable: readonly string[];
  /** 2026-07-28 caching hints of the merged page: the shortest upstream ttl, and public only if all were public. */
  ttlMs: number;
  cacheScope: 'public' | 'private';
}

/**
 * Upstream list pages their server marked `cacheScope: public` (2026-07-28), kept for their `ttlMs`. Private pages
 * are never cached: they may depend on who asked.
 */
const publicPages = new Map<string, { until: number; result: Record<string, unknown> }>();
const MAX_CACHED_PAGES = 1024;

function cachedPage(key: string): Record<string, unknown> | undefined {
  const hit = publicPages.get(key);
  if (!hit) return undefined;
  if (hit.until > Date.now()) return hit.result;
  publicPages.delete(key);
  return undefined;
}

function rememberPage(key: string, result: Record<string, unknown>): void {
  const ttl = result.ttlMs;
  if (result.cacheScope !== 'public' || typeof ttl !== 'number' || ttl <= 0) return;
  if (publicPages.size >= MAX_CACHED_PAGES) publicPages.delete(publicPages.keys().next().value!);
  publicPages.set(key, { until: Date.now() + Math.min(ttl, 3_600_000), result });
}

/**
 * Fetches one page of a list from every upstream in `scope` (or those the cursor names) at once and merges them.
 * `namespaced` is false for a single-server endpoint: names and URIs are then left as the upstream gave them.
 * `meta`, the client request's `_meta`, goes to every upstream asked, without its progressToken: the gateway asks
 * several servers under one token and relays no progress of its own fan-out.
 */
export async function fetchListPage(opts: {
  method: ListMethod;
  /** The per-upstream cursors of the client's cursor (cursor.ts); undefined for the first page. */
  state: CursorState | undefined;
  /** Seals the cursor of the next page. */
  encode: (next: CursorState) => string | undefined;
  meta: unknown;
  scope: readonly string[];
  namespaced: boolean;
  names: FederatedNames;
  open: (backend: string) => Promise<UpstreamSession | undefined>;
  timeoutMs: number;
  log: Logger;
  /** The client cancelled its list: every upstream still asked is told so. */
  signal?: AbortSignal;
}): Promise<ListPage> {
  const { method, namespaced, names } = opts;
  const { state } = opts;
  const key = LIST_KEY[method];
  const backends = state ? Object.keys(state).filter((b) => opts.scope.includes(b)) : opts.scope;
  const meta = forwardedMeta(opts.meta);
  const unavailable: string[] = [];
  const pages = await Promise.all(
    backends.map(async (backend) => {
      const up = await opts.open(backend);
      if (!up) {
        unavailable.push(backend);
        return undefined;
      }
      if (!(up.init.capabilities as Record<string, unknown>)[CAPABILITY[method]]) return undefined;
      const cursor = state?.[backend];
      const params = cursor === undefined && meta === undefined ? undefined : { ...(cursor !== undefined && { cursor }), ...(meta !== undefined && { _meta: meta }) };
      const cacheKey = `${backend}\0${up.init.serverInfo.name}\0${method}\0${cursor ?? ''}`;
      const cached = cachedPage(cacheKey);
      if (cached) return [backend, cached] as const;
      try {
        const result = await up.call(method, params, opts.timeoutMs, opts.signal);
        rememberPage(cacheKey, result);
        return [backend, result] as const;
      } catch (err) {
        opts.log.warn({ upstream: backend, method, err: (err as Error).message }, 'upstream list failed; omitted');
        unavailable.push(backend);
        return undefined;
      }
    }),
  );
  const items: Record<string, unknown>[] = [];
  const targets: Target[] = [];
  const next: Record<string, string> = {};
  const kind = TARGET_KIND[method];
  let ttlMs = Number.MAX_SAFE_INTEGER;
  let allPublic = true;
  for (const page of pages) {
    if (!page) continue;
    const [backend, result] = page;
    ttlMs = Math.min(ttlMs, typeof result.ttlMs === 'number' && result.ttlMs >= 0 ? result.ttlMs : 0);
    allPublic &&= result.cacheScope === 'public';
    const list = result[key];
    if (Array.isArray(list)) {
      for (const raw of list as Record<string, unknown>[]) {
        if (typeof raw !== 'object' || raw === null) continue;
        // A tool whose x-mcp-header annotations break the rules is left out, as a client must (streamable-http.mdx).
        if (method === 'tools/list' && !validParamHeaders(raw.inputSchema)) {
          opts.log.warn({ upstream: backend, tool: String(raw.name) }, 'tool with an invalid x-mcp-header annotation left out of tools/list');
          continue;
        }
        const item = namespaced ? rename(method, backend, raw, names) : raw;
        if (!item) continue;
        items.push(item);
        targets.push({ kind, name: targetName(method, item), server: backend, local: targetName(method, raw) });
      }
    }
    if (typeof result.nextCursor === 'string' && result.nextCursor !== '') next[backend] = result.nextCursor;
  }
  return {
    items,
    targets,
    nextCursor: opts.encode(next),
    unavailable: unavailable.sort(),
    ttlMs: ttlMs === Number.MAX_SAFE_INTEGER ? 0 : ttlMs,
    cacheScope: allPublic && items.length > 0 ? 'public' : 'private',
  };
}

/**
 * The client's `_meta` as each upstream of a fan-out gets it: without a progressToken, and without the 2026 envelope
 * (`io.modelcontextprotocol/...`: it describes the client's hop; each upstream gets the gateway's own); undefined
 * when nothing is left.
 */
function forwardedMeta(meta: unknown): Record<string, unknown> | undefined {
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) return undefined;
  let out: Record<string, unknown> | undefined;
  for (const [k, v] of Object.entries(meta)) if (k !== 'progressToken' && !k.startsWith('io.modelcontextprotocol/')) (out ??= {})[k] = v;
  return out;
}

function targetName(method: ListMethod, item: Record<string, unknown>): string {
  if (method === 'resources/list') return String(item.uri);
  if (method === 'resources/templates/list') return String(item.uriTemplate);
  return String(item.name);
}

function rename(
  method: ListMethod,
  backend: string,
  item: Record<string, unknown>,
  names: FederatedNames,
): Record<string, unknown> | undefined {
  switch (method) {
    case 'tools/list':
    case 'prompts/list':
      return typeof item.name === 'string' ? { ...item, name: names.publicName(backend, item.name) } : undefined;
    case 'resources/list':
      return typeof item.uri === 'string' ? { ...item, uri: publicUri(backend, item.uri) } : undefined;
    case 'resources/templates/list':
      return typeof item.uriTemplate === 'string' ? { ...item, uriTemplate: publicUri(backend, item.uriTemplate) } : undefined;
  }
}
