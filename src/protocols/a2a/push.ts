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
 * Shutdown: when the gateway drains, the relay stops taking notifications (503 TG_SHUTTING_DOWN: the agent's sender
 * may retry, at another replica) and the adapter's close waits for the deliveries under way until the drain
 * deadline; each one still running then is aborted and recorded (TG_A2A_PUSH_DELIVERY_CUT): none is lost silently.
 */
import { randomBytes } from 'node:crypto';
import { outcomeOf, type Call, type Principal } from '../../core/call.ts';
import { Errors, GatewayError } from '../../core/errors.ts';
import { OwnedTable } from '../../core/owned-table.ts';
import type { Exchange } from '../../gateway/adapter.ts';
import { readBody, sendBody } from '../../server/io.ts';
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
/** What the agent's notification request carries on to the webhook. */
const PASSED = ['content-type', 'authorization', 'x-a2a-notification-token', 'a2a-version'];

interface Hook {
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
  private readonly hooks: OwnedTable<Hook>;
  private readonly connect: Connector;
  private readonly attempts: number;
  private readonly backoffMs: number;
  private readonly timeoutMs: number;
  /** Deliveries under way (tests and shutdown wait for them). */
  readonly pending = new Set<Promise<void>>();
  private readonly delivering = new Set<Delivering>();
  /** The gateway is draining: no new notification is taken. */
  private stopped = false;

  constructor(o: PushDeliveryOptions = {}) {
    this.hooks = new OwnedTable('push-notification webhooks', o.maxHooks ?? MAX_HOOKS);
    this.connect = o.connect ?? pinnedConnector;
    this.attempts = o.attempts ?? 3;
    this.backoffMs = o.backoffMs ?? 500;
    this.timeoutMs = o.timeoutMs ?? 10_000;
  }

  /** The relay URL that stands for `url` (the caller's webhook) in what the agent is told. */
  register(agentBase: string, agent: string, url: string, principal: Principal | undefined, ttlMs: number, version: A2aVersion): string {
    const now = Date.now();
    const token = randomBytes(16).toString('base64url');
    // A full table, or a caller holding its share of it, refuses the newcomer before anything is forwarded: another
    // caller's webhook is never dropped to make room.
    const owner = principal?.id ?? '';
    this.hooks.assertRoom(owner);
    this.hooks.add(token, owner, now + ttlMs, { agent, url, version, principal, until: now + ttlMs });
    return `${agentBase}/push/${token}`;
  }

  /** An answer of the agent with every relay URL it names replaced by the caller's own URL. */
  restore(text: string): string {
    return text.replace(RELAY_URL, (whole, token: string) => {
      const h = this.hooks.get(token);
      return h === undefined ? whole : JSON.stringify(h.url).slice(1, -1);
    });
  }

  /** POST <mount>/<agent>/push/<token>: a notification from the agent, answered at once, delivered after. */
  async receive(a: A2aAdapter, x: Exchange, agent: Agent, sub: string): Promise<void> {
    const { req, res, match } = x;
    const token = TOKEN.exec(sub)?.[1];
    const hook = token === undefined ? undefined : this.hooks.get(token);
    if (hook === undefined || hook.agent !== agent.name || hook.until < Date.now()) {
      req.resume();
      return writeA2aRestError(res, new GatewayError(Errors.NOT_FOUND, 'No such push-notification relay'));
    }
    if (this.stopped) {
      req.resume();
      return writeA2aRestError(res, new GatewayError(Errors.SHUTTING_DOWN, undefined, { headers: { connection: 'close' } }));
    }
    if (this.pending.size >= MAX_PENDING) {
      req.resume();
      return writeA2aRestError(res, new GatewayError(Errors.OVERLOADED, 'Too many push notifications being delivered; try again'));
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
