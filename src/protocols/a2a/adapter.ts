/**
 * The A2A adapter: agents (Backends with `protocol: a2a`) at `<mount>/<agent>` (conventionally /a2a/<agent>).
 *
 * - `POST <mount>/<agent>`: the JSON-RPC binding; `<mount>/<agent>/message:send`, `/tasks/...` (and 0.3's `/v1/...`):
 *   the HTTP+JSON binding (calls.ts);
 * - `GET <mount>/<agent>/.well-known/agent-card.json` (and `agent.json`): the agent's card, rewritten for the caller
 *   (card.ts); `GET <mount>`: the cards of every agent of the route the caller may use.
 *
 * Every request is authenticated from its headers before its body is read or anything is looked up for it; each
 * becomes a Call (operation: the v1.0 method name; target: the skill a message is for, the task, or the agent) that
 * the policy, limits, telemetry and audit see like an MCP tool call. Errors are rendered in the caller's binding:
 * a JSON-RPC error object, or google.rpc.Status for REST and the cards.
 */
import { safeDecode } from '../../wire/path.ts';
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { ConfigSnapshot } from '../../config/load.ts';
import type { CompiledRule } from '../../config/routes.ts';
import type { RouteSpec } from '../../config/schema.ts';
import type { Call, Target } from '../../core/call.ts';
import { Errors, GatewayError } from '../../core/errors.ts';
import type { AdapterContext, ErrorTarget, Exchange } from '../../gateway/adapter.ts';
import { HttpProtocolAdapter } from '../../gateway/http-adapter.ts';
import type { GatewayState } from '../../gateway/state.ts';
import { sendBody } from '../../server/io.ts';
import { systemResolver, type Resolver } from '../../upstream/egress.ts';
import { writeA2aJsonRpcError, writeA2aJsonRpcErrorEvent, writeA2aRestError } from '../../wire/errors.ts';
import { A2aCalls } from './calls.ts';
import { CardCache, interfacesOf, rewriteCard, skillIds, type AgentInterfaces, type Card } from './card.ts';
import { headerVersion, type A2aVersion } from './methods.ts';
import { agentTarget, BINDING_KEY, REST_VERSION_KEY, skillTarget, SSE_ERRORS_KEY, type Agent } from './targets.ts';
import { CardSigner } from './signing.ts';
import { TaskOwners } from './tasks.ts';
import { StreamBuffers } from './resume.ts';
import { PushRelay, type PushDeliveryOptions } from './push.ts';
import { reshapeCard } from './translate.ts';

export type A2aRouteSpec = NonNullable<RouteSpec['a2a']>;

export const DEFAULTS: A2aRouteSpec = Object.freeze({
  defaultVersion: '0.3' as const,
  defaultSkills: Object.freeze({}),
  cardCacheMs: 60_000,
  traceMetadata: false,
  taskTtlMs: 7 * 24 * 3_600_000,
  push: Object.freeze({ allowHosts: Object.freeze([]) as unknown as string[], allowHttp: false, deliver: 'gateway' as const }),
});

const CARD_PATHS = new Set(['/.well-known/agent-card.json', '/.well-known/agent.json']);

const BINDING = BINDING_KEY;

export interface A2aAdapterOptions {
  /** Resolves push-notification hosts (tests inject one; default: the system resolver). */
  readonly resolver?: Resolver | undefined;
  /** How push notifications are delivered (tests inject the connector and shorter retries). */
  readonly push?: PushDeliveryOptions | undefined;
}

export class A2aAdapter extends HttpProtocolAdapter {
  readonly cards = new CardCache();
  /** Recent events of task streams, for clients that resume with Last-Event-ID. */
  readonly streams = new StreamBuffers();
  readonly owners: TaskOwners;
  readonly resolver: Resolver;
  /** Push notifications the gateway delivers (push.ts). */
  readonly push: PushRelay;
  private readonly calls: A2aCalls;
  /** When the gateway began to drain (the push relay's deadline counts from it). */
  private drainStarted: number | undefined;
  /** The card signer of each route that configures one (by its spec object: a reload makes a new one). */
  private readonly signers = new WeakMap<object, CardSigner>();

  constructor(ctx: AdapterContext, opts: A2aAdapterOptions = {}) {
    // An agent is healthy when it serves its card.
    super(ctx, { protocol: 'a2a', label: 'A2A', health: { path: '/.well-known/agent-card.json' }, crashWriter: writeA2aRestError });
    this.owners = new TaskOwners(ctx.store);
    this.resolver = opts.resolver ?? systemResolver;
    this.push = new PushRelay(ctx.store, opts.push);
    this.calls = new A2aCalls(this);
    this.reconfigure(ctx.state().snapshot);
  }

  settings(rule: CompiledRule): A2aRouteSpec {
    return rule.route.spec.a2a ?? DEFAULTS;
  }

  handle(x: Exchange): void {
    const { req, res, match } = x;
    const rest = match.rest;
    const slash = rest.indexOf('/', 1);
    const agentName = rest === '' ? '' : safeDecode(slash < 0 ? rest.slice(1) : rest.slice(1, slash));
    const sub = slash < 0 ? '' : rest.slice(slash);
    const method = req.method ?? 'GET';
    const kind: 'list' | 'card' | 'rpc' | 'rest' = rest === '' ? 'list' : CARD_PATHS.has(sub) ? 'card' : sub === '' && method === 'POST' ? 'rpc' : 'rest';
    if (method === 'POST' && sub.startsWith('/push/')) {
      // A notification from the agent to the relay (push.ts): the token in the path is its credential.
      const backend = match.rule.backends.find((b) => b.name === agentName);
      const upstream = backend === undefined ? undefined : this.upstreamSet.get(backend.name);
      if (backend !== undefined && upstream !== undefined) {
        const agent: Agent = { name: agentName, backend, upstream, base: `${match.rule.mount}/${encodeURIComponent(agentName)}` };
        return void this.push.receive(this, x, agent, sub).catch((err: unknown) => this.crash(res, err));
      }
    }
    const serve = (pre: Call): void | Promise<void> => {
      if (kind === 'list') {
        if (method !== 'GET') throw notAllowed(method, match.rule.mount, 'GET');
        return this.listAgents(x);
      }
      const backend = match.rule.backends.find((b) => b.name === agentName);
      const upstream = backend === undefined ? undefined : this.upstreamSet.get(backend.name);
      if (backend === undefined || upstream === undefined) throw new GatewayError(Errors.A2A_UNKNOWN_AGENT, `No agent ${agentName} at ${match.rule.mount}`);
      const agent: Agent = { name: agentName, backend, upstream, base: `${match.rule.mount}/${encodeURIComponent(agentName)}` };
      if (kind === 'card') {
        if (method !== 'GET') throw notAllowed(method, `${agent.base}${sub}`, 'GET');
        return this.serveCard(x, agent);
      }
      return kind === 'rpc' ? this.calls.rpc(x, pre, agent) : this.calls.rest(x, pre, agent, sub);
    };
    // The binding first: a refusal (even of authentication) answers in the caller's binding.
    this.admit(x, `a2a/${kind}`, serve, (pre) => pre.scratch.set(BINDING, kind === 'rpc' ? 'jsonrpc' : 'rest'));
  }

  /** The version a request speaks by its header alone (route default when absent); throws for an unknown one. */
  requestVersion(req: IncomingMessage): A2aVersion | undefined {
    const v = headerVersion(req.headers['a2a-version']);
    if (v === 'unsupported') {
      throw new GatewayError(Errors.A2A_VERSION_NOT_SUPPORTED, `A2A-Version ${String(req.headers['a2a-version'])} is not supported (1.0 and 0.3 are)`, {
        data: { supported: ['1.0', '0.3'] },
      });
    }
    return v;
  }

  /** Where the agent serves each binding (from its 1.0 card, cached). */
  async interfaces(agent: Agent, rule: CompiledRule): Promise<{ card: Card; interfaces: AgentInterfaces }> {
    const card = await this.cards.get(agent.upstream, '/.well-known/agent-card.json', '1.0', this.settings(rule).cardCacheMs);
    return { card, interfaces: interfacesOf(card, backendUrl(agent)) };
  }

  /** The skills of `card` the caller may use (one `visible` evaluation); undefined when lists are not filtered. */
  async visibleSkills(call: Call, state: GatewayState, agent: Agent, card: Card): Promise<Set<string> | undefined> {
    if (!state.pipeline.filtersLists) return undefined;
    const ids = skillIds(card);
    if (ids.length === 0) return new Set();
    const seen = await state.pipeline.visible(call, ids.map((id) => skillTarget(agent.name, id)));
    return new Set(ids.filter((_, i) => seen[i]));
  }

  /** The public base URL of the gateway as the caller reached it. */
  publicBase(req: IncomingMessage, state: GatewayState): string {
    const configured = state.snapshot.gateway.listener.publicUrl;
    if (configured !== undefined) return configured.replace(/\/+$/, '');
    const host = req.headers.host ?? `${state.snapshot.gateway.listener.host}:${state.snapshot.gateway.listener.port}`;
    return `http://${host}`;
  }

  /** The card as this caller may see it: rewritten, filtered, and signed by the gateway when the route says so. */
  async served(x: Exchange, agent: Agent, card: Card, skills: ReadonlySet<string> | undefined, version?: A2aVersion): Promise<Card> {
    const s = this.settings(x.match.rule);
    // In the shape of the caller's version (no header: 0.3), translated when the agent serves the other one only.
    const shaped = await reshapeCard(card, version ?? this.requestVersion(x.req) ?? '0.3', interfacesOf(card, backendUrl(agent)));
    const out = rewriteCard(shaped, {
      url: `${this.publicBase(x.req, x.state)}${agent.base}`,
      backend: agent.backend,
      visibleSkills: skills,
      anonymous: x.match.rule.route.spec.auth?.anonymous === true,
      push: s.push.allowHosts.length > 0,
    });
    const signing = s.cardSigning;
    if (signing === undefined) return out;
    let signer = this.signers.get(signing);
    if (signer === undefined) {
      signer = CardSigner.load(signing, x.state.snapshot.dir);
      this.signers.set(signing, signer);
    }
    return signer.signed(out);
  }

  /** GET <mount>/<agent>/.well-known/agent-card.json: the card as this caller may see it. */
  private async serveCard(x: Exchange, agent: Agent): Promise<void> {
    const { req, res, match, state } = x;
    const call = this.ctx.calls.start({ protocol: 'a2a', operation: 'GetAgentCard', rule: match.rule, req, target: agentTarget(agent.name), upstream: agent.name });
    call.scratch.set(BINDING, 'rest');
    await this.ctx.calls.run(call, { res, req, call }, state, async () => {
      const version = this.requestVersion(req);
      const path = new URL(req.url ?? '/', 'http://x').pathname.endsWith('/agent.json') ? '/.well-known/agent.json' : '/.well-known/agent-card.json';
      const card = await this.cards.get(agent.upstream, path, version, this.settings(match.rule).cardCacheMs);
      const skills = await this.visibleSkills(call, state, agent, card);
      const body = JSON.stringify(await this.served(x, agent, card, skills));
      // An ETag of the card as this caller gets it (A2A v1.0 8.6.1): a client revalidates with If-None-Match.
      const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
      const headers = { 'cache-control': 'private, max-age=60', vary: 'Authorization, A2A-Version', etag };
      if (matches(req.headers['if-none-match'], etag)) {
        res.writeHead(304, headers);
        res.end();
        return;
      }
      sendBody(res, 200, 'application/json', body, headers);
    });
  }

  /** GET <mount>: every agent of the route the caller may use, with its card (rewritten and filtered). */
  private async listAgents(x: Exchange): Promise<void> {
    const { req, res, match, state } = x;
    const call = this.ctx.calls.start({ protocol: 'a2a', operation: 'ListAgents', rule: match.rule, req });
    call.scratch.set(BINDING, 'rest');
    await this.ctx.calls.run(call, { res, req, call }, state, async () => {
      const version = this.requestVersion(req);
      const agents: { name: string; url: string; card: Card }[] = [];
      const found: { agent: Agent; card: Card }[] = [];
      for (const backend of match.rule.backends) {
        const upstream = this.upstreamSet.get(backend.name);
        if (upstream === undefined) continue;
        const agent: Agent = { name: backend.name, backend, upstream, base: `${match.rule.mount}/${encodeURIComponent(backend.name)}` };
        try {
          found.push({ agent, card: await this.cards.get(upstream, '/.well-known/agent-card.json', version, this.settings(match.rule).cardCacheMs) });
        } catch (err) {
          // An agent that is down is left out of the list; the others are still listed.
          this.ctx.log.warn({ upstream: backend.name, err: (err as Error).message }, 'agent card unavailable');
        }
      }
      // One evaluation for every skill of every agent, plus one "any skill" entry per agent.
      const targets: Target[] = [];
      for (const f of found) {
        targets.push(skillTarget(f.agent.name, '*'));
        for (const id of skillIds(f.card)) targets.push(skillTarget(f.agent.name, id));
      }
      const seen = state.pipeline.filtersLists && targets.length > 0 ? await state.pipeline.visible(call, targets) : targets.map(() => true);
      let i = 0;
      for (const f of found) {
        const any = seen[i++] === true;
        const skills = new Set<string>();
        for (const id of skillIds(f.card)) if (seen[i++] === true) skills.add(id);
        if (!any && skills.size === 0) continue;
        const url = `${this.publicBase(req, state)}${f.agent.base}`;
        agents.push({ name: f.agent.name, url, card: await this.served(x, f.agent, f.card, state.pipeline.filtersLists ? skills : undefined) });
      }
      sendBody(res, 200, 'application/json', JSON.stringify({ agents }), { 'cache-control': 'private, no-store' });
    });
  }

  renderError(err: GatewayError, to: ErrorTarget): void {
    const binding = to.call?.scratch.get(BINDING);
    if (binding === 'jsonrpc') (to.call?.scratch.get(SSE_ERRORS_KEY) === true ? writeA2aJsonRpcErrorEvent : writeA2aJsonRpcError)(to.res, to.call?.rpcId ?? null, err);
    else writeA2aRestError(to.res, err, undefined, to.call?.scratch.get(REST_VERSION_KEY) === '0.3');
  }

  /** Shutdown has begun: the push relay takes no new notification; the drain deadline counts from now. */
  override drain(): void {
    this.drainStarted ??= Date.now();
    this.push.stop();
  }

  /** Waits for push deliveries under way until the drain deadline, records those cut, then closes the upstreams. */
  override async close(): Promise<void> {
    const deadline = (this.drainStarted ?? Date.now()) + this.ctx.state().snapshot.gateway.shutdown.drainMs;
    const cut = await this.push.settle(deadline, (call) => this.ctx.calls.finish(call));
    if (cut > 0) this.ctx.log.warn({ cut }, 'A2A push deliveries cut at the drain deadline');
    await super.close();
  }

  override reconfigure(snapshot: ConfigSnapshot): void {
    super.reconfigure(snapshot);
    this.cards.retain(this.backendsOf(snapshot));
  }
}

function notAllowed(method: string, path: string, allow: string): GatewayError {
  return new GatewayError(Errors.METHOD_NOT_ALLOWED, `Method ${method} is not allowed on ${path}`, { headers: { allow } });
}

/** If-None-Match names this entity tag (weak comparison, RFC 9110 13.1.2), or is `*`. */
function matches(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header.split(',').some((t) => {
    const tag = t.trim();
    return tag === '*' || tag.replace(/^W\//, '') === etag;
  });
}

function backendUrl(agent: Agent): string {
  return agent.backend.spec.url ?? agent.backend.spec.endpoints?.[0]?.url ?? 'http://invalid';
}
