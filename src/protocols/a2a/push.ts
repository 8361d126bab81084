/**
 * Push notifications delivered by the gateway (route `a2a.push.deliver: gateway`, the default): the agent is never
 * given the caller's webhook URL. A push URL that passes the guard (calls.ts) is replaced, in the request forwarded
 * to the agent, by a relay URL of the gateway (`<agent URL at the gateway>/push/<token>`, the token 128 random bits,
 * remembered with the caller's URL, the agent and the caller for `taskTtlMs`). The agent POSTs its notifications
 * there (no other credential: the token is one); the gateway answers at once and delivers to the caller's URL with
 * the guard held again at delivery (src/upstream/webhook.ts: DNS checked again and the checked address connected to,
 * redirects never followed, bounded retries), and records each delivery as a Call (`DeliverPushNotification`, the
 * caller's identity, the webhook's host; a failed delivery with TG_A2A_PUSH_DELIVERY_FAILED) that audit and
 * telemetry see. Push configs the agent answers with are shown to the caller with its own URL again.
 *
 * Replicas (the shared store configured): a hook is also written to Redis (src/store/shared-table.ts), so the agent's
 * notification is taken by whichever replica it lands on, after a restart too, and every replica restores the
 * caller's URL: `SET <prefix>a2a:push:{<agent>}:<hex SHA-256 of the token> <hook> PX <taskTtlMs> NX`. The token itself
 * (the agent's only credential) is never kept: Redis and this replica's table find a hook by its digest. The stored
 * hook holds what delivery needs: the agent, the caller's URL and version, the expiry, and the caller's identity
 * without its claims. A replica that does not hold a hook and whose store cannot answer refuses the notification
 * (503 TG_STORE_UNAVAILABLE: the agent's sender may retry), and a webhook that cannot be shared is refused before the
 * agent is told anything. Without the store, hooks live in this replica's memory (bounded, a share per caller).
 *
 * Shutdown: when the gateway drains, the relay stops taking notifications (503 TG_SHUTTING_DOWN: the agent's sender
 * may retry, at another replica) and the adapter's close waits for the deliveries under way until the drain
 * deadline; each one still running then is aborted and recorded (TG_A2A_PUSH_DELIVERY_CUT): none is lost silently.
 */
import { createCipheriv, createDecipheriv, hash, hkdfSync, randomBytes } from 'node:crypto';
import { outcomeOf, type Call, type Principal } from '../../core/call.ts';
import { Errors, GatewayError } from '../../core/errors.ts';
import type { Exchange } from '../../gateway/adapter.ts';
import { readBody, sendBody } from '../../server/io.ts';
import type { RedisStore } from '../../store/redis.ts';
import { SharedTable } from '../../store/shared-table.ts';
import { deliverWebhook, pinnedConnector, type Connector } from '../../upstream/webhook.ts';
import { writeA2aRestError } from '../../wire/errors.ts';
import type { A2aAdapter } from './adapter.ts';
import type { A2aVersion } from './methods.ts';
import { pushPayloadIn } from './sdk.ts';
import type { Agent } from './targets.ts';

const MAX_HOOKS = 100_000;
/** Deliveries under way at once; a notification beyond them is refused (503: the agent's sender may retry). */
const MAX_PENDING = 256;
const BODY_LIMIT = 1024 * 1024;
const TOKEN = /\/push\/([A-Za-z0-9_-]{22})(?=["\s]|$)/;
const RELAY_URL = /https?:\/\/[^"\s]*?\/push\/([A-Za-z0-9_-]{22})(?=["\s]|$)/g;
/** Relay URLs of one answer looked up at most (an agent naming more gets the rest back as it wrote them). */
const MAX_RESTORED = 1_000;
/** What the agent's notification request carries on to the webhook. */
const PASSED = ['content-type', 'authorization', 'x-a2a-notification-token', 'a2a-version'];

/** A webhook the relay stands in for. */
export interface Hook {
  readonly agent: string;
  readonly url: string;
  /** The A2A version the caller registered the webhook in: the version its notifications are delivered in. */
  readonly version: A2aVersion;
  readonly principal: Principal | undefined;
  readonly until: number;
}

export interface PushDeliveryOptions {
  readonly connect?: Connector | undefined;
  readonly attempts?: number | undefined;
  readonly backoffMs?: number | undefined;
  readonly timeoutMs?: number | undefined;
  /** Relay hooks held at most (default 100,000; tests make it small). */
  readonly maxHooks?: number | undefined;
}

/** A delivery under way: its Call (finished once, by whichever ends it) and what aborts it. */
interface Delivering {
  readonly call: Call;
  readonly host: string;
  readonly abort: AbortController;
  ended: boolean;
}

export class PushRelay {
  /** By `hookKey`: this replica's hooks (without the shared store, the only record of them) and Redis. */
  private readonly hooks: SharedTable<Hook>;
  private readonly connect: Connector;
  private readonly attempts: number;
  private readonly backoffMs: number;
  private readonly timeoutMs: number;
  /** Deliveries under way (tests and shutdown wait for them). */
  readonly pending = new Set<Promise<void>>();
  private readonly delivering = new Set<Delivering>();
  /** Relay tokens being looked up in the shared store now (bounded with the deliveries: MAX_PENDING). */
  private lookups = 0;
  /** The gateway is draining: no new notification is taken. */
  private stopped = false;

  constructor(store: RedisStore | undefined, o: PushDeliveryOptions = {}) {
    this.hooks = new SharedTable(store, {
      what: 'push-notification webhooks',
      max: o.maxHooks ?? MAX_HOOKS,
      unavailable: 'The push-notification relay store is unavailable; the webhook cannot be looked up or shared',
      encode: encodeHook,
      decode: decodeHook,
      // A hook read from the store is kept here until it expires: the agent's next notification needs no round trip.
      cacheRead: (h) => ({ owner: h.principal?.id ?? '', until: h.until }),
    });
    this.connect = o.connect ?? pinnedConnector;
    this.attempts = o.attempts ?? 3;
    this.backoffMs = o.backoffMs ?? 500;
    this.timeoutMs = o.timeoutMs ?? 10_000;
  }

  /**
   * The relay URL that stands for `url` (the caller's webhook) in what the agent is told. Refused before anything is
   * forwarded when the hook could not be kept: without the shared store, a full table or a caller holding its share
   * of it (another caller's webhook is never dropped to make room); with it, a store that cannot answer.
   */
  async register(agentBase: string, agent: string, url: string, principal: Principal | undefined, ttlMs: number, version: A2aVersion): Promise<string> {
    const owner = principal?.id ?? '';
    this.hooks.assertRoom(owner);
    const until = Date.now() + ttlMs;
    const token = randomBytes(16).toString('base64url');
    const key = hookKey(agent, token);
    if (this.hooks.store === undefined) {
      this.hooks.local.add(key, owner, until, { agent, url, version, principal, until });
    } else {
      // What every replica reads back (no claims), here too: a delivery is recorded alike whichever replica makes it.
      // The caller's URL (which may carry its own credential) is sealed under the token: the store alone cannot read it.
      const hook: Hook = { agent, url: sealUrl(url, token), version, principal: principal === undefined ? undefined : portable(principal), until };
      // 128 random bits are never taken already; NX all the same: nothing is ever overwritten.
      if (!(await this.hooks.claim(key, hook, ttlMs))) throw new GatewayError(Errors.INTERNAL, 'Push relay token collision');
      this.hooks.local.add(key, owner, until, { ...hook, url });
    }
    return `${agentBase}/push/${token}`;
  }

  /** The live hook of `agent` a relay token stands for (this replica's, else the shared store's). */
  async lookup(agent: string, token: string): Promise<Hook | undefined> {
    const hook = await this.hooks.get(hookKey(agent, token));
    if (hook === undefined || hook.agent !== agent || hook.until < Date.now()) return undefined;
    const url = openUrl(hook.url, token);
    return url === undefined ? undefined : url === hook.url ? hook : { ...hook, url };
  }

  /**
   * An answer of `agent` to `caller` with every relay URL of the caller's own hooks it names replaced by the caller's
   * URL. Another caller's relay URL (an agent that mixes up its callers' configs) stays a relay URL: one caller never
   * learns another's webhook.
   */
  async restore(agent: string, text: string, caller: string): Promise<string> {
    const tokens = [...new Set(Array.from(text.matchAll(RELAY_URL), (m) => m[1]!))].slice(0, MAX_RESTORED);
    if (tokens.length === 0) return text;
    // One hash tag per agent: its hooks are read with one MGET, in a Redis Cluster too.
    const hooks = await this.hooks.getMany(tokens.map((t) => hookKey(agent, t)));
    const urls = new Map<string, string>();
    tokens.forEach((t, i) => {
      const h = hooks[i];
      const url = h !== undefined && h.agent === agent && (h.principal?.id ?? '') === caller ? openUrl(h.url, t) : undefined;
      if (url !== undefined) urls.set(t, url);
    });
    return text.replace(RELAY_URL, (whole, token: string) => {
      const url = urls.get(token);
      return url === undefined ? whole : JSON.stringify(url).slice(1, -1);
    });
  }

  /** POST <mount>/<agent>/push/<token>: a notification from the agent, answered at once, delivered after. */
  async receive(a: A2aAdapter, x: Exchange, agent: Agent, sub: string): Promise<void> {
    const { req, res, match } = x;
    const token = TOKEN.exec(sub)?.[1];
    // Draining, or as many deliveries and look-ups under way as are taken: refused before the token is looked up (the
    // relay URL is reached without a credential but the token: nothing of the store's is spent on a flood).
    if (this.stopped) {
      req.resume();
      return writeA2aRestError(res, new GatewayError(Errors.SHUTTING_DOWN, undefined, { headers: { connection: 'close' } }));
    }
    if (this.pending.size + this.lookups >= MAX_PENDING) {
      req.resume();
      return writeA2aRestError(res, new GatewayError(Errors.OVERLOADED, 'Too many push notifications being delivered; try again'));
    }
    let hook: Hook | undefined;
    this.lookups++;
    try {
      hook = token === undefined ? undefined : await this.lookup(agent.name, token);
    } catch (err) {
      // Not held here, and the store cannot say: refused (the agent's sender may retry), never delivered on a guess.
      req.resume();
      return writeA2aRestError(res, err instanceof GatewayError ? err : new GatewayError(Errors.STORE_UNAVAILABLE, undefined, { cause: err }));
    } finally {
      this.lookups--;
    }
    if (hook === undefined) {
      req.resume();
      return writeA2aRestError(res, new GatewayError(Errors.NOT_FOUND, 'No such push-notification relay'));
    }
    let body: Buffer;
    try {
      body = await readBody(req, BODY_LIMIT);
    } catch (err) {
      return writeA2aRestError(res, err instanceof GatewayError ? err : new GatewayError(Errors.PAYLOAD_TOO_LARGE));
    }
    // An agent reached by translation posts its own version's payload: the webhook gets the caller's version.
    let payload = body.toString('utf8');
    const converted = await pushPayloadIn(payload, hook.version).catch(() => undefined);
    // Shutdown began while the body was read: refused, so the agent's sender tries again (elsewhere).
    if (this.stopped) return writeA2aRestError(res, new GatewayError(Errors.SHUTTING_DOWN, undefined, { headers: { connection: 'close' } }));
    sendBody(res, 200, 'application/json', '{}');
    const headers: Record<string, string> = {};
    for (const h of PASSED) {
      const v = req.headers[h];
      if (typeof v === 'string') headers[h] = v;
    }
    if (converted !== undefined) {
      payload = converted.body;
      headers['content-type'] = converted.contentType;
      delete headers['a2a-version'];
    }
    const host = new URL(hook.url).hostname;
    const call = a.ctx.calls.start({ protocol: 'a2a', operation: 'DeliverPushNotification', rule: match.rule, req, target: { kind: 'server', name: agent.name, server: agent.name, local: agent.name }, upstream: agent.name, args: { push_host: host, callee: agent.name } });
    call.principal = hook.principal;
    const policy = a.settings(match.rule).push;
    const d: Delivering = { call, host, abort: new AbortController(), ended: false };
    this.delivering.add(d);
    const work = deliverWebhook(hook.url, payload, headers, policy, { resolve: a.resolver, connect: this.connect, attempts: this.attempts, backoffMs: this.backoffMs, timeoutMs: this.timeoutMs, signal: d.abort.signal }).then((r) => {
      this.delivering.delete(d);
      // Cut at the drain deadline: recorded already (settle).
      if (d.ended) return;
      d.ended = true;
      call.status = r.status ?? 0;
      if (!r.ok) {
        call.error = new GatewayError(Errors.A2A_PUSH_DELIVERY_FAILED, `Push notification to ${host} not delivered after ${r.attempts} attempt(s): ${r.error ?? 'failed'}`, { data: { attempts: r.attempts } });
        call.outcome = outcomeOf(call.error);
        a.ctx.log.warn({ upstream: agent.name, host, attempts: r.attempts, err: r.error }, 'A2A push notification not delivered');
      }
      a.ctx.calls.finish(call);
    });
    this.pending.add(work);
    await work.finally(() => this.pending.delete(work));
  }

  /** Shutdown has begun: notifications are refused from now on (503 TG_SHUTTING_DOWN). */
  stop(): void {
    this.stopped = true;
  }

  /**
   * Waits for the deliveries under way until `deadline` (epoch ms); each one still running then is aborted and its
   * Call finished with TG_A2A_PUSH_DELIVERY_CUT (audited like any failed delivery). Returns how many were cut.
   */
  async settle(deadline: number, finish: (call: Call) => void): Promise<number> {
    this.stop();
    const wait = deadline - Date.now();
    if (this.pending.size > 0 && wait > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled([...this.pending]), new Promise((r) => (timer = setTimeout(r, wait)))]);
      clearTimeout(timer);
    }
    let cut = 0;
    for (const d of this.delivering) {
      if (d.ended) continue;
      d.ended = true;
      cut++;
      d.call.status = 0;
      d.call.error = new GatewayError(Errors.A2A_PUSH_DELIVERY_CUT, `Push notification to ${d.host} cut at the drain deadline (shutdown): it may or may not have reached the webhook`);
      d.call.outcome = outcomeOf(d.call.error);
      d.abort.abort();
      finish(d.call);
    }
    this.delivering.clear();
    return cut;
  }
}

/**
 * Where a hook is kept: the hex SHA-256 of its token (the token is the agent's credential: never stored), under the
 * agent's hash tag (one agent's hooks share a Redis Cluster slot: an answer's relay URLs are read with one MGET).
 */
function hookKey(agent: string, token: string): string {
  return `a2a:push:{${agent}}:${hash('sha256', token)}`;
}

const SEALED = 'sealed:';

/** The key a hook's URL is sealed under in the store: derived from its relay token (the agent and the replicas hold it). */
function urlKey(token: string): Buffer {
  return Buffer.from(hkdfSync('sha256', token, '', 'tollgate a2a push webhook url', 32));
}

/** The caller's webhook URL as the store keeps it: AES-256-GCM under the token's key (`sealed:` iv | ciphertext | tag). */
function sealUrl(url: string, token: string): string {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', urlKey(token), iv);
  const sealed = Buffer.concat([iv, c.update(url, 'utf8'), c.final(), c.getAuthTag()]);
  return `${SEALED}${sealed.toString('base64url')}`;
}

/** A hook's URL in the clear: a sealed one opened with its token (undefined when it does not open), else as it is. */
function openUrl(url: string, token: string): string | undefined {
  if (!url.startsWith(SEALED)) return url;
  const raw = Buffer.from(url.slice(SEALED.length), 'base64url');
  if (raw.length < 28) return undefined;
  try {
    const d = createDecipheriv('aes-256-gcm', urlKey(token), raw.subarray(0, 12), { authTagLength: 16 });
    d.setAuthTag(raw.subarray(raw.length - 16));
    return Buffer.concat([d.update(raw.subarray(12, raw.length - 16)), d.final()]).toString('utf8');
  } catch {
    return undefined;
  }
}

const ISSUERS: ReadonlySet<string> = new Set<Principal['issuer']>(['spiffe', 'oidc', 'kubernetes', 'anonymous']);
const NO_CLAIMS: Principal['claims'] = Object.freeze({});

/** The caller's identity as a hook keeps it in the shared store: who it is, not what its credential said. */
function portable(p: Principal): Principal {
  return { id: p.id, issuer: p.issuer, trustDomain: p.trustDomain, path: p.path, segments: [...p.segments], claims: NO_CLAIMS, expiresAt: 0 };
}

/** A hook as the shared store keeps it: what delivery needs, the caller without its claims. */
function encodeHook(h: Hook): string {
  const p = h.principal;
  const principal = p === undefined ? null : { id: p.id, issuer: p.issuer, trustDomain: p.trustDomain, path: p.path, segments: p.segments };
  return JSON.stringify({ agent: h.agent, url: h.url, version: h.version, until: h.until, principal });
}

/** A hook read back from the store; undefined when it is not one. */
function decodeHook(raw: string): Hook | undefined {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const h = v as Record<string, unknown>;
  // The URL is always sealed in the store (register): a plain one was not written by the gateway.
  if (typeof h.agent !== 'string' || typeof h.url !== 'string' || !h.url.startsWith(SEALED) || (h.version !== '1.0' && h.version !== '0.3') || typeof h.until !== 'number') return undefined;
  let principal: Principal | undefined;
  if (h.principal !== undefined && h.principal !== null) {
    const p = h.principal as Record<string, unknown>;
    const segments = p.segments;
    if (typeof p.id !== 'string' || typeof p.issuer !== 'string' || !ISSUERS.has(p.issuer) || typeof p.trustDomain !== 'string' || typeof p.path !== 'string') return undefined;
    if (!Array.isArray(segments) || !segments.every((s) => typeof s === 'string')) return undefined;
    principal = portable({ id: p.id, issuer: p.issuer as Principal['issuer'], trustDomain: p.trustDomain, path: p.path, segments: segments as string[], claims: NO_CLAIMS, expiresAt: 0 });
  }
  return { agent: h.agent, url: h.url, version: h.version, principal, until: h.until };
}
