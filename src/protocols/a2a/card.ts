/**
 * Agent cards: fetched from the agent, cached with revalidation (ETag / If-None-Match, and Last-Modified), and
 * rewritten for each caller before they are served:
 *
 * - every interface URL (1.0 `supportedInterfaces`, 0.3 `url` and `additionalInterfaces`) points at the gateway's
 *   own `<base>/<mount>/<agent>`; bindings the gateway does not serve (gRPC) are removed;
 * - other URLs that point at the agent itself (provider, documentation, icon), or at a loopback or private address,
 *   are removed: a card must not tell callers where the agent lives behind the gateway;
 * - `securitySchemes` / `securityRequirements` (0.3: `security`) describe Tollgate's authentication (a bearer JWT:
 *   SPIFFE JWT-SVID, OIDC or Kubernetes token), not the agent's (callers never authenticate to the agent);
 * - skills the caller may not use are removed (the policy's `visible` entrypoint, one evaluation per card);
 * - the agent's signatures are removed: rewriting the card invalidates them.
 *
 * The cached card also says where the agent serves each binding (its interface paths), which is where the gateway
 * forwards JSON-RPC and REST requests.
 */
import { isIP } from 'node:net';
import type { ResolvedBackend } from '../../config/load.ts';
import { Errors, GatewayError } from '../../core/errors.ts';
import { forward } from '../../upstream/forwarder.ts';
import type { HttpUpstream } from '../../upstream/http-upstream.ts';
import { HeaderPolicy } from '../../upstream/headers.ts';
import { isForbiddenAddress } from '../../upstream/egress.ts';
import type { A2aVersion } from './methods.ts';

export type Card = Record<string, unknown>;

export const CARD_HEADERS = new HeaderPolicy({ request: ['accept-language'], response: [] });

const CARD_LIMIT = 1024 * 1024;

interface Cached {
  card: Card;
  etag: string | undefined;
  lastModified: string | undefined;
  fetchedAt: number;
}

/** Where the agent serves each binding and version: paths under the backend's base URL. */
export interface AgentInterfaces {
  readonly jsonrpc: Partial<Record<A2aVersion, string>>;
  readonly rest: Partial<Record<A2aVersion, string>>;
}

function obj(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function versionOf(v: unknown): A2aVersion | undefined {
  if (typeof v !== 'string' || v === '') return undefined;
  if (v === '1.0' || v.startsWith('1.')) return '1.0';
  if (v.startsWith('0.3')) return '0.3';
  return undefined;
}

function bindingOf(v: unknown): 'jsonrpc' | 'rest' | undefined {
  if (typeof v !== 'string') return undefined;
  const b = v.toUpperCase();
  if (b === 'JSONRPC') return 'jsonrpc';
  if (b === 'HTTP+JSON' || b === 'REST') return 'rest';
  return undefined;
}

/** The interface paths a card advertises (1.0 and 0.3 shapes), relative to the backend's base path. */
export function interfacesOf(card: Card, backendUrl: string): AgentInterfaces {
  const out: { jsonrpc: Partial<Record<A2aVersion, string>>; rest: Partial<Record<A2aVersion, string>> } = { jsonrpc: {}, rest: {} };
  const base = new URL(backendUrl).pathname.replace(/\/+$/, '');
  const rel = (url: unknown): string | undefined => {
    if (typeof url !== 'string') return undefined;
    try {
      let p = new URL(url).pathname.replace(/\/+$/, '');
      if (base !== '' && p.startsWith(base)) p = p.slice(base.length);
      return p;
    } catch {
      return undefined;
    }
  };
  const add = (binding: unknown, version: A2aVersion | undefined, url: unknown): void => {
    const b = bindingOf(binding);
    const p = rel(url);
    if (b === undefined || p === undefined || version === undefined) return;
    out[b][version] ??= p;
  };
  if (Array.isArray(card.supportedInterfaces)) {
    for (const i of card.supportedInterfaces) {
      const iface = obj(i);
      if (iface !== undefined) add(iface.protocolBinding, versionOf(iface.protocolVersion) ?? '1.0', iface.url);
    }
  }
  // 0.3: the main url with its preferred transport, and the additional interfaces.
  const v03 = versionOf(card.protocolVersion) ?? '0.3';
  if (typeof card.url === 'string') add(card.preferredTransport ?? 'JSONRPC', v03, card.url);
  if (Array.isArray(card.additionalInterfaces)) {
    for (const i of card.additionalInterfaces) {
      const iface = obj(i);
      if (iface !== undefined) add(iface.transport, v03, iface.url);
    }
  }
  return out;
}

/** Fetches and caches the cards of a set of agents (one entry per agent and requested version). */
export class CardCache {
  private readonly entries = new Map<string, Cached>();
  private readonly inflight = new Map<string, Promise<Card>>();

  /** The agent's card as it serves it to a client of `version` (undefined: no A2A-Version header). */
  async get(upstream: HttpUpstream, path: string, version: A2aVersion | undefined, maxAgeMs: number): Promise<Card> {
    const key = `${upstream.name}\u0000${path}\u0000${version ?? ''}`;
    const hit = this.entries.get(key);
    if (hit !== undefined && Date.now() - hit.fetchedAt < maxAgeMs) return hit.card;
    let p = this.inflight.get(key);
    if (p === undefined) {
      p = this.fetch(upstream, path, version, hit).then(
        (c) => {
          this.entries.set(key, c);
          this.inflight.delete(key);
          return c.card;
        },
        (err: unknown) => {
          this.inflight.delete(key);
          // The agent is down or answers nonsense: the last good card stays in service.
          if (hit !== undefined) return hit.card;
          throw err;
        },
      );
      this.inflight.set(key, p);
    }
    return p;
  }

  /** Forgets the cards of agents no longer configured. */
  retain(names: ReadonlySet<string>): void {
    for (const key of this.entries.keys()) if (!names.has(key.slice(0, key.indexOf('\u0000')))) this.entries.delete(key);
  }

  private async fetch(upstream: HttpUpstream, path: string, version: A2aVersion | undefined, prior: Cached | undefined): Promise<Cached> {
    const set: Record<string, string> = { accept: 'application/json' };
    if (version !== undefined) set['a2a-version'] = version;
    if (prior?.etag !== undefined) set['if-none-match'] = prior.etag;
    if (prior?.lastModified !== undefined) set['if-modified-since'] = prior.lastModified;
    const answer = await forward(upstream, { method: 'GET', path, headers: {}, policy: CARD_HEADERS, set, idempotent: true, timeouts: { totalMs: 10_000 } });
    if (answer.status === 304 && prior !== undefined) {
      await answer.dump();
      return { ...prior, fetchedAt: Date.now() };
    }
    if (answer.status !== 200) {
      await answer.dump();
      throw new GatewayError(Errors.A2A_INVALID_AGENT_RESPONSE, `Agent ${upstream.name} answered ${answer.status} for its agent card`, { data: { upstream: upstream.name } });
    }
    let card: unknown;
    try {
      card = JSON.parse((await answer.read(CARD_LIMIT)).toString('utf8'));
    } catch (err) {
      throw new GatewayError(Errors.A2A_INVALID_AGENT_RESPONSE, `Agent ${upstream.name} served an agent card that is not JSON`, { data: { upstream: upstream.name }, cause: err });
    }
    if (obj(card) === undefined || typeof (card as Card).name !== 'string') {
      throw new GatewayError(Errors.A2A_INVALID_AGENT_RESPONSE, `Agent ${upstream.name} served an invalid agent card`, { data: { upstream: upstream.name } });
    }
    const etag = answer.headers.etag;
    const lm = answer.headers['last-modified'];
    return { card: card as Card, etag: typeof etag === 'string' ? etag : undefined, lastModified: typeof lm === 'string' ? lm : undefined, fetchedAt: Date.now() };
  }
}

/** What a served card says about the gateway and the caller. */
export interface RewriteOptions {
  /** The agent's URL at the gateway: `<public base><mount>/<agent>`. */
  readonly url: string;
  /** The backend's own URLs (what must not leak). */
  readonly backend: ResolvedBackend;
  /** Skills (by id) the caller may use; undefined: all of them. */
  readonly visibleSkills: ReadonlySet<string> | undefined;
  /** The route accepts anonymous callers (no security requirement is advertised). */
  readonly anonymous: boolean;
  /** Push notifications are allowed by the route (else the capability is turned off). */
  readonly push: boolean;
}

/** The origins of the backend (its url or every endpoint's). */
function backendOrigins(b: ResolvedBackend): Set<string> {
  const urls = b.spec.endpoints?.map((e) => e.url) ?? (b.spec.url === undefined ? [] : [b.spec.url]);
  const out = new Set<string>();
  for (const u of urls) {
    try {
      out.add(new URL(u).origin);
    } catch {
      // the config schema validated the URLs
    }
  }
  return out;
}

/** A URL that would tell the caller where the agent lives (its own origin, or an internal address). */
function leaks(url: unknown, origins: ReadonlySet<string>): boolean {
  if (typeof url !== 'string') return false;
  try {
    const u = new URL(url);
    if (origins.has(u.origin)) return true;
    const host = u.hostname.replace(/^\[|\]$/g, '');
    if (host === 'localhost' || host.endsWith('.localhost') || host.endsWith('.internal') || host.endsWith('.local')) return true;
    return isIP(host) !== 0 && isForbiddenAddress(host);
  } catch {
    return true;
  }
}

const TOLLGATE_SCHEME_V1 = {
  httpAuthSecurityScheme: {
    scheme: 'Bearer',
    bearerFormat: 'JWT',
    description: 'Tollgate: a JWT-SVID (SPIFFE), or an OIDC or Kubernetes token the gateway accepts, as a bearer token',
  },
};

const TOLLGATE_SCHEME_V03 = {
  type: 'http',
  scheme: 'bearer',
  bearerFormat: 'JWT',
  description: TOLLGATE_SCHEME_V1.httpAuthSecurityScheme.description,
};

/** The card as this caller sees it through the gateway (see the module comment). A new object; `card` is untouched. */
export function rewriteCard(card: Card, o: RewriteOptions): Card {
  const out: Card = { ...card };
  const origins = backendOrigins(o.backend);
  const legacy = typeof card.url === 'string' || typeof card.protocolVersion === 'string';
  if (Array.isArray(card.supportedInterfaces)) {
    out.supportedInterfaces = card.supportedInterfaces
      .map((i) => obj(i))
      .filter((i): i is Record<string, unknown> => i !== undefined && bindingOf(i.protocolBinding) !== undefined)
      .map((i) => ({ ...i, url: o.url }));
  }
  if (typeof card.url === 'string') {
    out.url = o.url;
    if (bindingOf(card.preferredTransport ?? 'JSONRPC') === undefined) out.preferredTransport = 'JSONRPC';
  }
  if (Array.isArray(card.additionalInterfaces)) {
    out.additionalInterfaces = card.additionalInterfaces
      .map((i) => obj(i))
      .filter((i): i is Record<string, unknown> => i !== undefined && bindingOf(i.transport) !== undefined)
      .map((i) => ({ ...i, url: o.url }));
  }
  for (const field of ['documentationUrl', 'iconUrl']) if (leaks(card[field], origins)) delete out[field];
  const provider = obj(card.provider);
  if (provider !== undefined && leaks(provider.url, origins)) out.provider = { ...provider, url: '' };
  // Callers authenticate to Tollgate, never to the agent.
  if (legacy && !Array.isArray(card.securityRequirements)) {
    out.securitySchemes = o.anonymous ? {} : { tollgate: TOLLGATE_SCHEME_V03 };
    out.security = o.anonymous ? [] : [{ tollgate: [] }];
  } else {
    out.securitySchemes = o.anonymous ? {} : { tollgate: TOLLGATE_SCHEME_V1 };
    out.securityRequirements = o.anonymous ? [] : [{ schemes: { tollgate: { list: [] } } }];
    if ('security' in out) out.security = o.anonymous ? [] : [{ tollgate: [] }];
  }
  if (Array.isArray(card.skills)) {
    out.skills = card.skills
      .map((s) => obj(s))
      .filter((s): s is Record<string, unknown> => s !== undefined && typeof s.id === 'string' && (o.visibleSkills === undefined || o.visibleSkills.has(s.id)))
      .map((s) => {
        const skill = { ...s };
        if ('securityRequirements' in skill) skill.securityRequirements = [];
        if ('security' in skill) delete skill.security;
        return skill;
      });
  }
  const caps = obj(card.capabilities);
  if (caps !== undefined && !o.push && caps.pushNotifications === true) out.capabilities = { ...caps, pushNotifications: false };
  // Rewriting invalidates the agent's signatures (JWS over the canonical card): they are removed, never passed on broken.
  delete out.signatures;
  return out;
}

/** The skill ids a card lists. */
export function skillIds(card: Card): string[] {
  if (!Array.isArray(card.skills)) return [];
  const ids: string[] = [];
  for (const s of card.skills) {
    const id = obj(s)?.id;
    if (typeof id === 'string') ids.push(id);
  }
  return ids;
}
