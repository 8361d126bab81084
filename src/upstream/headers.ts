/**
 * Which headers cross the gateway. Hop-by-hop headers (RFC 9110 7.6.1) never do; of the rest, only the names a
 * protocol lists in its allow-list pass, in each direction. Credentials never come from the caller: an allow-list
 * naming one is refused when it is built, and the upstream's own credentials are added from config by the forwarder.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

/** Connection-scoped headers, never forwarded (plus any header the Connection header names). */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Caller headers that carry the caller's credentials: forwarding them would be token passthrough. */
const CALLER_CREDENTIALS: ReadonlySet<string> = new Set(['authorization', 'proxy-authorization', 'cookie']);

/** Set by the forwarder itself from the upstream and the body, never copied. */
const FORWARDER_OWNED: ReadonlySet<string> = new Set(['host', 'content-length']);

export interface HeaderAllowList {
  /** Caller headers copied to the upstream request (lowercase; `x-foo-*` allows a prefix). */
  readonly request: readonly string[];
  /** Upstream response headers copied to the caller (same syntax). */
  readonly response: readonly string[];
}

class NameSet {
  private readonly exact: ReadonlySet<string>;
  private readonly prefixes: readonly string[];

  constructor(names: readonly string[]) {
    this.exact = new Set(names.filter((n) => !n.endsWith('*')));
    this.prefixes = names.filter((n) => n.endsWith('*')).map((n) => n.slice(0, -1));
  }

  has(name: string): boolean {
    if (this.exact.has(name)) return true;
    for (const p of this.prefixes) if (name.startsWith(p)) return true;
    return false;
  }
}

/** A protocol's header allow-lists, checked and compiled once (adapters build theirs at start). */
export class HeaderPolicy {
  private readonly request: NameSet;
  private readonly response: NameSet;

  constructor(lists: HeaderAllowList) {
    for (const name of [...lists.request, ...lists.response]) {
      if (name !== name.toLowerCase()) throw new Error(`header allow-list entry ${name} must be lowercase`);
      if (HOP_BY_HOP.has(name)) throw new Error(`header ${name} is hop-by-hop and is never forwarded`);
    }
    for (const name of lists.request) {
      const bare = name.endsWith('*') ? name.slice(0, -1) : name;
      for (const c of CALLER_CREDENTIALS) {
        if (name === c || (name.endsWith('*') && c.startsWith(bare))) throw new Error(`header ${name} would forward the caller's credentials upstream`);
      }
    }
    this.request = new NameSet(lists.request);
    this.response = new NameSet(lists.response);
  }

  /** The caller's headers that may go upstream. */
  requestHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
    return pick(headers, this.request, true);
  }

  /** The upstream's response headers that may go back to the caller. */
  responseHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
    return pick(headers, this.response, false);
  }
}

/** Names listed in a Connection header (they are hop-by-hop for this message). */
function connectionTokens(headers: IncomingHttpHeaders): ReadonlySet<string> | undefined {
  const c = headers.connection;
  if (c === undefined || c === '') return undefined;
  return new Set(c.split(',').map((t) => t.trim().toLowerCase()));
}

function pick(headers: IncomingHttpHeaders, allowed: NameSet, fromCaller: boolean): Record<string, string | string[]> {
  const tokens = connectionTokens(headers);
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || HOP_BY_HOP.has(name) || FORWARDER_OWNED.has(name) || tokens?.has(name)) continue;
    if (fromCaller && CALLER_CREDENTIALS.has(name)) continue;
    if (allowed.has(name)) out[name] = value;
  }
  return out;
}
