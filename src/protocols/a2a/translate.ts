/**
 * Translation between A2A v0.3 and v1.0, over JSON-RPC and HTTP+JSON, for an agent that serves only one of them: a
 * v0.3 client (0.3 method names or `/v1` paths, `kind` fields, lower-case enums) calling an agent that speaks only
 * v1.0, and a v1.0 client calling an agent that speaks only v0.3, plain answers and streams alike.
 *
 * The official SDK does the translating (no wire shapes are rewritten by hand): the caller's request is served by
 * the SDK's transport handler of the caller's version and binding (JSON-RPC: `JsonRpcTransportHandler` for 1.0,
 * `LegacyJsonRpcTransportHandler` for 0.3; HTTP+JSON: the SDK's REST router, `restHandler` / `legacyRestRouter`,
 * translate-rest.ts) over a request handler that is a bridge to the SDK's client transport of the agent's version
 * (`JsonRpcTransport` / `LegacyJsonRpcTransport`, or `RestTransport` / `LegacyRestTransport`: the caller's binding
 * when the agent serves it in its version, else the other one), whose HTTP requests go through the gateway's
 * forwarder (the agent's pool, timeouts, credentials, trace headers; never the caller's credentials).
 *
 * The bridge binds the tasks the agent creates to the caller (as the plain relay does: a streamed task is bound in
 * this replica before its event is passed on) and filters ListTasks to the caller's tasks. A gateway error met on
 * the way to the agent (unreachable, timeout) is answered as the gateway's own error, not as an SDK internal error.
 * Cards: `reshapeCard` gives a caller the card in its version's shape (a 0.3 card of a 1.0-only agent and the
 * reverse), advertising the interfaces (both bindings) the gateway serves by translation.
 */
import type { ServerResponse } from 'node:http';
import type { AgentCard } from '@a2a-js/sdk';
import type { Transport } from '@a2a-js/sdk/client';
import { Bridge } from './bridge.ts';
import type { A2ARequestHandler } from '@a2a-js/sdk/server';
import type { Call } from '../../core/call.ts';
import { Errors, GatewayError } from '../../core/errors.ts';
import type { Exchange } from '../../gateway/adapter.ts';
import { sendBody } from '../../server/io.ts';
import { encodeEvent } from '../../wire/sse.ts';
import { forward, type UpstreamResponse } from '../../upstream/forwarder.ts';
import { a2aJsonRpcErrorResponse } from '../../wire/errors.ts';
import type { A2aAdapter } from './adapter.ts';
import type { AgentInterfaces, Card } from './card.ts';
import type { A2aVersion } from './methods.ts';
import { extensionsHeader, HEADERS, type Agent } from './targets.ts';
import { serveRest } from './translate-rest.ts';
import { listOwnTasks } from './list-own.ts';
import type { Keep } from './tasks.ts';
import { ClientFeed, relayStream as relayEvents, type EventSource } from './streams.ts';
import { agentError, sdk, type Sdk } from './sdk.ts';

/**
 * A 0.3-shaped card (the SDK's own test, isLegacyAgentCard, without loading the SDK), and also one with a 0.3 `url`
 * and `protocolVersion` that embeds the 1.0 `supportedInterfaces` (what an agent serving both versions, and the
 * gateway, serve without A2A-Version): its other members are 0.3-shaped (security schemes...).
 */
export function isLegacyCard(card: Card): boolean {
  if (typeof card.url === 'string' && typeof card.protocolVersion === 'string' && /^0\.3(\.|$)/.test(card.protocolVersion.trim())) return true;
  if (Array.isArray(card.supportedInterfaces) && card.supportedInterfaces.length > 0) return false;
  if (typeof card.url === 'string' && !('supportedInterfaces' in card)) return true;
  if ('preferredTransport' in card || 'additionalInterfaces' in card || 'supportsAuthenticatedExtendedCard' in card) return true;
  const v = card.protocolVersion;
  return typeof v === 'string' && (v.trim() === '' || /^0\.3(\.|$)/.test(v.trim()));
}

/** A whole JSON answer of the agent read for translation may be at most this large. */
const READ_LIMIT = 16 * 1024 * 1024;
/** Statuses whose Fetch Response has no body (Fetch standard, "null body status"). */
const NULL_BODY: ReadonlySet<number> = new Set([101, 103, 204, 205, 304]);
/** The SDK transports need an absolute URL; only its path is used (the forwarder picks the agent's endpoint). */
const ORIGIN = 'http://agent.invalid';

export type Binding = 'jsonrpc' | 'rest';

/** Where a translated call goes: the agent's interface (binding, version, path) it is served over. */
export interface Upstream {
  readonly binding: Binding;
  readonly version: A2aVersion;
  readonly path: string;
}

export interface Translation {
  readonly x: Exchange;
  readonly agent: Agent;
  readonly call: Call;
  /** The caller's binding and version. */
  readonly binding: Binding;
  readonly from: A2aVersion;
  /** JSON-RPC: the caller's request, as it sent it (or with trace metadata or a relay URL). */
  readonly body: string;
  /** HTTP+JSON: the path under the agent at the gateway (with its query) and the body's JSON (undefined: none). */
  readonly rest?: { readonly path: string; readonly params: unknown } | undefined;
  /** The agent's interface in the other version. */
  readonly to: Upstream;
  /** How the tasks the agent creates are bound to the caller. */
  readonly keep: Keep;
  /** A card of the agent (JSON, either shape) as the gateway serves it to this caller in its version. */
  readonly serve: (card: Card) => Promise<Card>;
  /** The agent's public card (JSON, as fetched). */
  readonly card: Card;
  /** A JSON-RPC resume (Last-Event-ID) whose buffer's stream was given up: the fresh subscription continues on it. */
  readonly resumed?: ClientFeed | undefined;
}

/** Serves one translated JSON-RPC call (the Call is admitted and its task checked already). */
export async function translate(a: A2aAdapter, t: Translation): Promise<void> {
  const { x, agent, call } = t;
  const { req, res } = x;
  const caller = call.principal?.id ?? '';
  let failure: GatewayError | undefined;
  /** The agent's streams being read (aborted when the translated stream is given up). */
  const streaming = new Set<UpstreamResponse>();
  const pushOp = call.operation.includes('PushNotificationConfig');
  const fetchImpl = (async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    const h = new Headers(init?.headers);
    const set: Record<string, string> = { ...a.ctx.calls.propagate(call) };
    for (const name of ['content-type', 'accept', 'a2a-version']) {
      const v = h.get(name);
      if (v !== null) set[name] = v;
    }
    if (t.to.version === '1.0') set['a2a-version'] = '1.0';
    // The extensions the caller asks for, under the agent's version's header (the SDK's 0.3 server reads both).
    const ext = req.headers[extensionsHeader(t.from)] ?? (t.from === '0.3' ? req.headers['a2a-extensions'] : undefined);
    if (ext !== undefined) set[extensionsHeader(t.to.version)] = Array.isArray(ext) ? ext.join(', ') : ext;
    const streams = (set.accept ?? '').includes('text/event-stream');
    try {
      const answer = await forward(agent.upstream, {
        method: init?.method ?? 'POST',
        path: url.pathname + url.search,
        headers: req.headers,
        policy: HEADERS,
        set,
        body: typeof init?.body === 'string' ? init.body : undefined,
        // A stream is the gateway's to read (resume.ts): the client going away does not end it at once.
        client: streams ? undefined : res,
        timeouts: streams ? { idleMs: 0 } : undefined,
        call,
      });
      const headers = { 'content-type': String(answer.headers['content-type'] ?? 'application/json') };
      // The extensions the agent activated, under the caller's version's header.
      const activated = answer.headers[extensionsHeader(t.to.version)];
      if (activated !== undefined && !res.headersSent) res.setHeader(extensionsHeader(t.from), activated);
      if (!headers['content-type'].startsWith('text/event-stream')) {
        const raw = await answer.read(READ_LIMIT);
        // A 204 (REST DeleteTaskPushNotificationConfig) or 205/304 has no body: the Fetch Response refuses one.
        if (NULL_BODY.has(answer.status)) return new Response(null, { status: answer.status, headers });
        // Push configs name the gateway's relay URLs (push.ts): the caller sees its own URLs again.
        return new Response(pushOp ? await a.push.restore(agent.name, raw.toString('utf8'), call.principal?.id ?? '') : new Uint8Array(raw), { status: answer.status, headers });
      }
      // A stream: each event passed on as it arrives (the SDK client parses `data:` lines).
      streaming.add(answer);
      const encoder = new TextEncoder();
      let controller!: ReadableStreamDefaultController<Uint8Array>;
      const body = new ReadableStream<Uint8Array>({
        start: (c) => void (controller = c),
        cancel: () => answer.abort(new GatewayError(Errors.REQUEST_CANCELLED, 'The translated stream was closed')),
      });
      answer
        .events((e) => void controller.enqueue(encoder.encode(`data: ${e.data.replace(/\n/g, '\ndata: ')}\n\n`)))
        .then(
          () => controller.close(),
          (err: unknown) => {
            failure ??= err instanceof GatewayError ? err : undefined;
            controller.error(err);
          },
        )
        .finally(() => streaming.delete(answer));
      return new Response(body, { status: answer.status, headers });
    } catch (err) {
      if (err instanceof GatewayError) failure ??= err;
      throw err;
    }
  }) as typeof fetch;
  const endpoint = `${ORIGIN}${t.to.path}`;
  const m = await sdk();
  const up = t.to;
  const transport: Transport =
    up.binding === 'jsonrpc'
      ? up.version === '1.0'
        ? await new m.client.JsonRpcTransportFactory({ fetchImpl }).create(endpoint, undefined as never)
        : new m.legacyClient.LegacyJsonRpcTransport({ endpoint, fetchImpl })
      : up.version === '1.0'
        ? await new m.client.RestTransportFactory({ fetchImpl }).create(endpoint, undefined as never)
        : new m.legacyClient.LegacyRestTransport({ endpoint, fetchImpl });
  const bridge = new Bridge(transport, {
    card: async () => {
      const served = toSdkCard(m, await t.serve(t.card));
      // The SDK's REST router checks the caller's version against the card's HTTP+JSON interfaces (the gateway
      // checked it already): the interface it is served over, in the caller's version.
      if (t.binding === 'rest') served.supportedInterfaces = [...served.supportedInterfaces, { url: `${ORIGIN}/`, protocolBinding: 'HTTP+JSON', protocolVersion: t.from, tenant: '' }];
      return served;
    },
    extended: async (raw) => toSdkCard(m, await t.serve(m.root.AgentCard.toJSON(raw) as Card)),
    bindLocal: (id) => a.owners.bindLocal(agent.name, id, caller, t.keep),
    bind: (id) => a.owners.bind(agent.name, id, caller, t.keep),
    mine: (ids) => a.owners.mine(agent.name, ids, caller),
    // 0.3 has no tasks/list: the gateway lists the caller's own tasks, each fetched from the agent (list-own.ts).
    listOwn:
      up.version === '0.3'
        ? async (p) => {
            try {
              return await listOwnTasks(p, await a.owners.list(agent.name, caller), (id) => transport.getTask({ id, historyLength: p.historyLength, tenant: '' }).catch(unlessNotFound));
            } catch (err) {
              if (err instanceof GatewayError) failure ??= err;
              throw err;
            }
          }
        : undefined,
    // The gateway checked the ids it read in the request already; the SDK may decode more spellings (snake_case).
    owned: async (ids) => {
      for (const id of ids) {
        if (id === undefined || id === '') continue;
        try {
          await a.owners.check(agent.name, id, caller);
        } catch (err) {
          if (err instanceof GatewayError) failure ??= err;
          throw err;
        }
      }
    },
  });
  if (t.binding === 'rest') {
    // A stream the SDK's router encodes is relayed like the agent's own (resumable, kept alive; streams.ts).
    const relay = (source: EventSource): Promise<void> =>
      relayEvents({
        answer: {
          events: source.events,
          abort: (reason) => {
            source.abort(reason);
            for (const answer of streaming) answer.abort(reason);
          },
        },
        feed: t.resumed ?? new ClientFeed(x.res, {}, x.state.snapshot.gateway.http.sseKeepAliveMs),
        open: (id, stop) => a.streams.open(agent.name, id, caller, t.from, 'rest', stop),
      });
    await serveRest(x, bridge, t.from, t.rest?.path ?? '/', t.rest?.params, () => failure, relay);
    if (x.res.statusCode >= 400 && call.outcome === 'ok') call.outcome = 'upstream_error';
    return;
  }
  const handler = t.from === '1.0' ? new m.server.JsonRpcTransportHandler(bridge) : new m.legacyServer.LegacyJsonRpcTransportHandler(bridge);
  const out = await handler.handle(t.body, new m.server.ServerCallContext({ requestedVersion: t.from }));
  if (!(Symbol.asyncIterator in out)) {
    if ('error' in out && out.error !== undefined && failure !== undefined) throw failure;
    if ('error' in out && out.error !== undefined && call.outcome === 'ok') call.outcome = 'upstream_error';
    sendBody(res, 200, 'application/json', JSON.stringify(out));
    return;
  }
  await relayTranslated(a, t, out, (err) => failure ?? agentError(m, t.from, err), (reason) => {
    for (const answer of streaming) answer.abort(reason);
  });
}

/**
 * Relays the translated events as SSE, resumably like the agent's own streams (streams.ts): each event that names a
 * task is buffered under it in the caller's version (with an SSE id), and the gateway, not the client, reads the
 * translation: a client that goes away may come back with Last-Event-ID within the grace period. A failure after the
 * first event ends the stream with an error event (the gateway's code when the gateway met it).
 */
async function relayTranslated(
  a: A2aAdapter,
  t: Translation,
  events: AsyncGenerator<unknown>,
  failure: (err: unknown) => GatewayError | { code: number; message: string } | undefined,
  abortUpstream: (reason: GatewayError) => void,
): Promise<void> {
  const { x, call, agent } = t;
  let refused: { code: number; message: string } | undefined;
  const first = await events.next().catch((err: unknown) => {
    const e = failure(err);
    if (e instanceof GatewayError) throw e;
    if (e === undefined || t.resumed !== undefined) throw err;
    refused = e;
    return undefined;
  });
  if (first === undefined) {
    // The agent refused before the first event (a task that has ended cannot be subscribed to...): its error in
    // the caller's version, a 0.3 stream's as an SSE error event (wire/errors.ts writeA2aJsonRpcErrorEvent).
    call.outcome = 'upstream_error';
    const body = JSON.stringify({ jsonrpc: '2.0', id: call.rpcId ?? null, error: refused });
    if (t.from === '0.3') sendBody(x.res, 200, 'text/event-stream', encodeEvent({ data: body }), { 'cache-control': 'no-cache' });
    else sendBody(x.res, 200, 'application/json', body);
    return;
  }
  let aborted: GatewayError | undefined;
  const source: EventSource = {
    events: async (onEvent) => {
      try {
        for (let next = first; next.done !== true; next = await events.next()) onEvent({ data: JSON.stringify(next.value) });
      } catch (err) {
        if (aborted !== undefined) throw aborted;
        const e = failure(err) ?? (err instanceof GatewayError ? err : new GatewayError(Errors.A2A_INVALID_AGENT_RESPONSE, (err as Error).message));
        call.outcome = 'upstream_error';
        onEvent({ data: e instanceof GatewayError ? a2aJsonRpcErrorResponse(call.rpcId ?? null, e) : JSON.stringify({ jsonrpc: '2.0', id: call.rpcId ?? null, error: e }) });
      }
      if (aborted !== undefined) throw aborted;
    },
    abort: (reason) => {
      aborted ??= reason;
      abortUpstream(reason);
    },
  };
  const caller = call.principal?.id ?? '';
  await relayEvents({
    answer: source,
    feed: t.resumed ?? new ClientFeed(x.res, {}, x.state.snapshot.gateway.http.sseKeepAliveMs),
    open: (id, stop) => a.streams.open(agent.name, id, caller, t.from, 'jsonrpc', stop),
  });
}

/** A card (either version's JSON shape) as the SDK's object. */
function toSdkCard(m: Sdk, card: Card): AgentCard {
  return isLegacyCard(card) ? m.legacyClient.parseLegacyAgentCard(card) : m.root.AgentCard.fromJSON(card);
}

const BINDINGS = [
  ['jsonrpc', 'JSONRPC'],
  ['rest', 'HTTP+JSON'],
] as const;

/**
 * Where a call the agent does not serve in the caller's version and binding is translated to: the other binding in
 * the caller's version when the agent serves it (REST <-> JSON-RPC, no version change: nothing lost), else the
 * caller's binding in the other version, else the other binding in the other version; undefined when the agent
 * serves none of them.
 */
export function translationTarget(where: AgentInterfaces, binding: Binding, version: A2aVersion): Upstream | undefined {
  const other: A2aVersion = version === '1.0' ? '0.3' : '1.0';
  const otherBinding: Binding = binding === 'jsonrpc' ? 'rest' : 'jsonrpc';
  for (const [b, v] of [[otherBinding, version], [binding, other], [otherBinding, other]] as const) {
    const path = where[b][v];
    if (path !== undefined) return { binding: b, version: v, path };
  }
  return undefined;
}

/**
 * The interfaces the gateway serves for an agent in `version`: each binding the agent serves in that version, and
 * both bindings when the agent serves the other version (translated, translationTarget).
 */
export function servedInterfaces(where: AgentInterfaces, version: A2aVersion): string[] {
  const out: string[] = [];
  for (const [key, name] of BINDINGS) if (where[key][version] !== undefined || translationTarget(where, key, version) !== undefined) out.push(name);
  return out;
}

/**
 * The card in the shape of the caller's version: unchanged when the agent served that shape; else translated by
 * the SDK (0.3 -> 1.0: `parseLegacyAgentCard`; 1.0 -> 0.3: the SDK's own card translator) with the interfaces the
 * gateway serves in that version (their URLs are rewritten to the gateway's afterwards).
 */
export async function reshapeCard(card: Card, version: A2aVersion, where: AgentInterfaces): Promise<Card> {
  const shaped = await shapeCard(card, version, where);
  return version === '0.3' ? withAllInterfaces(shaped, where) : shaped;
}

/**
 * A 0.3-shaped card also lists every interface the gateway serves, 1.0 first, in `supportedInterfaces`, as the A2A
 * SDK's agent does when it serves both versions: a 1.0 client that fetched the card without A2A-Version (the A2A
 * TCK does) finds its interfaces there; 0.3 clients ignore the field. The URLs are rewritten afterwards.
 */
function withAllInterfaces(card: Card, where: AgentInterfaces): Card {
  const list = (['1.0', '0.3'] as const).flatMap((v) => servedInterfaces(where, v).map((protocolBinding) => ({ url: `${ORIGIN}/`, protocolBinding, protocolVersion: v, tenant: '' })));
  return list.length === 0 ? card : { ...card, supportedInterfaces: list };
}

async function shapeCard(card: Card, version: A2aVersion, where: AgentInterfaces): Promise<Card> {
  const legacy = isLegacyCard(card);
  const bindings = servedInterfaces(where, version);
  if (legacy === (version === '0.3')) return withBindings(card, version, bindings);
  if (bindings.length === 0) return card;
  const m = await sdk();
  const core = toSdkCard(m, card);
  core.supportedInterfaces = bindings.map((protocolBinding) => ({ url: `${ORIGIN}/`, protocolBinding, protocolVersion: version, tenant: '' }));
  if (version === '1.0') return m.root.AgentCard.toJSON(core) as Card;
  // The SDK's 1.0 -> 0.3 card translator, reached through the one handler method that applies it.
  const handler = new m.legacyServer.LegacyRestTransportHandler({ getAuthenticatedExtendedAgentCard: async () => core } as unknown as A2ARequestHandler);
  return (await handler.getAuthenticatedExtendedAgentCard(new m.server.ServerCallContext())) as unknown as Card;
}

/**
 * A card already in the caller's version's shape, with the bindings the gateway serves in that version by
 * translating between bindings (REST <-> JSON-RPC) added beside the agent's own (their URLs are rewritten after).
 */
function withBindings(card: Card, version: A2aVersion, bindings: readonly string[]): Card {
  if (version === '1.0') {
    const list = Array.isArray(card.supportedInterfaces) ? (card.supportedInterfaces as Record<string, unknown>[]) : [];
    const have = new Set(list.filter((i) => !String(i?.protocolVersion ?? '').startsWith('0.3')).map((i) => bindingName(i?.protocolBinding)));
    const added = bindings.filter((b) => !have.has(b)).map((protocolBinding) => ({ url: `${ORIGIN}/`, protocolBinding, protocolVersion: '1.0' }));
    return added.length === 0 ? card : { ...card, supportedInterfaces: [...list, ...added] };
  }
  const extra = Array.isArray(card.additionalInterfaces) ? (card.additionalInterfaces as Record<string, unknown>[]) : [];
  const have = new Set([bindingName(card.preferredTransport ?? 'JSONRPC'), ...extra.map((i) => bindingName(i?.transport))]);
  const added = bindings.filter((b) => !have.has(b)).map((transport) => ({ url: `${ORIGIN}/`, transport }));
  return added.length === 0 ? card : { ...card, additionalInterfaces: [...extra, ...added] };
}

function bindingName(v: unknown): string {
  const u = String(v ?? '').toUpperCase();
  return u === 'REST' ? 'HTTP+JSON' : u;
}

/** A task the agent does not know (any more) is undefined; any other failure stands. */
function unlessNotFound(err: unknown): undefined {
  if ((err as Error | undefined)?.name === 'TaskNotFoundError' || (err as { code?: unknown } | undefined)?.code === -32001) return undefined;
  throw err;
}
