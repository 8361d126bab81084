/**
 * 2026-07-28 clients on the same endpoint as session-era ones. Each request is validated on its own (the `_meta`
 * envelope, and the headers that mirror the body: mismatch -> 400/-32020, unsupported version -> 400/-32022 with
 * `data.supported`), then served in a stateless context: one per (principal, route, scope, client capabilities and
 * info), holding the upstream sessions a session-era upstream needs. A context is created only for an admitted
 * (authenticated) caller, and a principal holds at most `mcp.limits.statelessContextsPerPrincipal` of them: a newcomer
 * past the cap is refused, nobody else's context is ever evicted. `server/discover` and `subscriptions/listen` are
 * answered here; everything else walks the same request path as the session era.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CompiledRule } from '../../config/routes.ts';
import type { VirtualServerSpec } from '../../config/schema.ts';
import type { Call } from '../../core/call.ts';
import { Errors, GatewayError, toGatewayError } from '../../core/errors.ts';
import type { GatewayState } from '../../gateway/state.ts';
import { SseWriter } from '../../server/sse.ts';
import type { McpAdapter } from './adapter.ts';
import { GATEWAY_INFO, mergeInitialize } from './federation.ts';
import { notification, type RpcMessage, type RpcRequest } from './jsonrpc.ts';
import {
  META_CLIENT_CAPABILITIES,
  META_CLIENT_INFO,
  META_LOG_LEVEL,
  META_PROTOCOL_VERSION,
  META_SERVER_INFO,
  META_SUBSCRIPTION_ID,
  LOG_LEVELS,
  MODERN_VERSIONS,
  NAME_SOURCE,
  checkParamHeaders,
  decodeHeaderValue,
  type ParamHeader,
} from './modern.ts';
import { publicUri } from './names.ts';
import { request } from './requests.ts';
import { scopeOf, type SessionView } from './routing.ts';
import { prepareSession } from './session-era.ts';
import { McpSession } from './session.ts';
import { capReached } from './session-access.ts';
import { PrincipalSlots } from '../../core/slots.ts';
import { SESSION_VERSIONS } from './versions.ts';
import { VIRTUAL_CAPABILITIES, resolveVirtualTool } from './virtual.ts';

/** Every version the endpoint serves (reported in server/discover and in -32022 errors). */
export const SUPPORTED_VERSIONS: readonly string[] = [...MODERN_VERSIONS, ...SESSION_VERSIONS];

/** subscriptions/listen filter flags: the capability that says the server can notify it, and the notification. */
const LIST_CHANGED: Readonly<Record<string, readonly [string, string]>> = {
  toolsListChanged: ['tools', 'notifications/tools/list_changed'],
  promptsListChanged: ['prompts', 'notifications/prompts/list_changed'],
  resourcesListChanged: ['resources', 'notifications/resources/list_changed'],
};

/**
 * What this endpoint is, for a 2026 client: the virtual server's, the one upstream's, or the merged capabilities
 * (without logging: server-to-client requests reach 2026 clients through input_required results), its info and
 * instructions. Undefined when the one upstream of a single-server endpoint is unavailable.
 */
async function describe(session: McpSession, rule: CompiledRule): Promise<{ capabilities: Record<string, unknown>; serverInfo: Record<string, unknown>; instructions: string | undefined } | undefined> {
  const opened = await Promise.all(scopeOf(session, rule).map(async (b) => [b, await session.upstream(b)] as const));
  const live = opened.filter((o): o is readonly [string, NonNullable<(typeof o)[1]>] => o[1] !== undefined);
  let described: { capabilities: Record<string, unknown>; serverInfo: Record<string, unknown>; instructions: string | undefined };
  if (session.virtual) {
    described = { capabilities: { ...VIRTUAL_CAPABILITIES }, serverInfo: { name: session.virtual.name, version: '1' }, instructions: session.virtual.description };
  } else if (session.scope !== undefined) {
    const up = live[0]?.[1];
    if (!up) return undefined;
    described = { capabilities: { ...up.init.capabilities }, serverInfo: up.init.serverInfo, instructions: up.init.instructions };
    if (up.shared) delete described.capabilities.tasks; // one process for every client: its tasks are everyone's
  } else {
    const merged = mergeInitialize(MODERN_VERSIONS[0]!, live.map(([b, s]) => [b, s.init] as const));
    described = { capabilities: merged.capabilities as Record<string, unknown>, serverInfo: GATEWAY_INFO, instructions: merged.instructions as string | undefined };
  }
  delete described.capabilities.logging;
  return described;
}

function mismatch(detail: string): GatewayError {
  return new GatewayError(Errors.MCP_HEADER_MISMATCH, `Bad Request: the request headers and body disagree: ${detail}`);
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' ? v.trim() : undefined;
}

/**
 * Validates the envelope and the mirrored standard headers of a 2026 request; throws the spec's error. Allocates
 * nothing when the request is valid (it runs on every stateless request).
 */
export function validateModernRequest(req: IncomingMessage, msg: RpcRequest): void {
  const meta = msg.params!._meta as Record<string, unknown>;
  const version = meta[META_PROTOCOL_VERSION];
  if (typeof version !== 'string') throw new GatewayError(Errors.MCP_INVALID_ENVELOPE, `Invalid params: ${META_PROTOCOL_VERSION} must be a string`);
  const hv = header(req, 'mcp-protocol-version');
  if (hv !== undefined && hv !== version) throw mismatch(`the body names protocol version ${version} but the MCP-Protocol-Version header names ${hv}`);
  const mh = header(req, 'mcp-method');
  if (mh !== undefined && mh !== msg.method) throw mismatch(`the body names method ${msg.method} but the Mcp-Method header names ${mh}`);
  if (!MODERN_VERSIONS.includes(version)) {
    throw new GatewayError(Errors.MCP_VERSION_NOT_SUPPORTED, 'Unsupported protocol version', { data: { supported: [...SUPPORTED_VERSIONS], requested: version } });
  }
  const caps = meta[META_CLIENT_CAPABILITIES];
  if (typeof caps !== 'object' || caps === null || Array.isArray(caps)) {
    throw new GatewayError(Errors.MCP_INVALID_ENVELOPE, `Invalid params: ${META_CLIENT_CAPABILITIES} must be an object`);
  }
  const logLevel = meta[META_LOG_LEVEL];
  if (logLevel !== undefined && !(typeof logLevel === 'string' && LOG_LEVELS.includes(logLevel))) {
    throw new GatewayError(Errors.MCP_INVALID_ENVELOPE, `Invalid params: ${META_LOG_LEVEL} must be one of ${LOG_LEVELS.join(', ')}`);
  }
  if (hv === undefined) throw mismatch('the required MCP-Protocol-Version header is absent');
  if (mh === undefined) throw mismatch('the required Mcp-Method header is absent');
  const field = Object.hasOwn(NAME_SOURCE, msg.method) ? NAME_SOURCE[msg.method] : undefined;
  if (field !== undefined) {
    const body = msg.params?.[field];
    const nh = header(req, 'mcp-name');
    if (typeof body === 'string') {
      if (nh === undefined) throw mismatch(`the body carries params.${field} but the required Mcp-Name header is absent`);
      const decoded = decodeHeaderValue(nh);
      if (decoded === undefined) throw mismatch('the Mcp-Name header carries an invalid Base64 value');
      if (decoded !== body) throw mismatch(`the body carries params.${field}="${body}" but the Mcp-Name header names "${decoded}"`);
    }
  }
}

/** What a 2026 client says about itself in each request's envelope (clientInfo is only a SHOULD). */
function helloOf(meta: Record<string, unknown>): { capabilities: Record<string, unknown>; clientInfo: { name: string; version: string } } {
  const info = meta[META_CLIENT_INFO] as { name?: unknown; version?: unknown } | undefined;
  return {
    capabilities: meta[META_CLIENT_CAPABILITIES] as Record<string, unknown>,
    clientInfo: {
      ...(typeof info === 'object' && info !== null ? info : {}),
      name: typeof info?.name === 'string' ? info.name : 'unknown',
      version: typeof info?.version === 'string' ? info.version : '0',
    },
  };
}

export class Stateless {
  private readonly adapter: McpAdapter;
  private readonly contexts = new Map<string, { session: McpSession; release: () => void }>();
  private readonly slots = new PrincipalSlots();
  private readonly sweeper: NodeJS.Timeout;

  constructor(adapter: McpAdapter) {
    this.adapter = adapter;
    this.sweeper = setInterval(() => this.sweep(), 30_000);
    this.sweeper.unref();
  }

  /** Contexts held (tests, metrics). */
  get size(): number {
    return this.contexts.size;
  }

  private sweep(): void {
    const cutoff = Date.now() - this.adapter.ctx.state().snapshot.gateway.mcp.sessionIdleMs;
    for (const [key, c] of this.contexts) {
      if ((c.session.lastSeen < cutoff || c.session.closed) && c.session.inflight.size === 0 && c.session.openStreams === 0) this.drop(key);
    }
  }

  private drop(key: string): void {
    const c = this.contexts.get(key);
    if (!c) return;
    this.contexts.delete(key);
    c.release();
    void c.session.close();
  }

  /**
   * The context of an admitted principal for this route/scope and client self-description (capabilities and info
   * decide how a session-era upstream is initialized on the client's behalf); created now if new, under the cap.
   */
  private contextFor(principal: string | undefined, rule: CompiledRule, scope: string | undefined, meta: Record<string, unknown>, state: GatewayState): McpSession | GatewayError {
    const info = meta[META_CLIENT_INFO] as { name?: unknown; version?: unknown } | undefined;
    const key = `${principal ?? ''}\0${rule.route.name}\0${rule.mount}\0${scope ?? ''}\0${JSON.stringify(meta[META_CLIENT_CAPABILITIES])}\0${String(info?.name)}\0${String(info?.version)}`;
    const held = this.contexts.get(key);
    if (held && !held.session.closed) {
      held.session.lastSeen = Date.now();
      return held.session;
    }
    if (held) this.drop(key);
    const limits = state.snapshot.gateway.mcp.limits;
    const release = this.slots.take(principal, limits.statelessContextsPerPrincipal);
    if (!release) return capReached('statelessContextsPerPrincipal', limits.statelessContextsPerPrincipal);
    const { capabilities, clientInfo } = helloOf(meta);
    const session = new McpSession({
      route: rule.route.name,
      mount: rule.mount,
      scope,
      // Session-era upstreams are initialized with the newest session-era version on the client's behalf.
      hello: { protocolVersion: SESSION_VERSIONS[0], capabilities, clientInfo },
      protocolVersion: SESSION_VERSIONS[0],
      principal,
      registry: this.adapter.upstreams,
      log: this.adapter.ctx.log,
      maxPendingServerRequests: limits.pendingServerRequests,
    });
    session.modern = true;
    prepareSession(session, rule, state);
    this.contexts.set(key, { session, release });
    return session;
  }

  /** Serves one 2026 request of an authenticated caller (`pre` records refusals before its Call exists). */
  handle(req: IncomingMessage, res: ServerResponse, rule: CompiledRule, scope: string | undefined, state: GatewayState, message: RpcMessage, raw: Buffer, pre: Call): void | Promise<void> {
    if (message.kind !== 'request') {
      // This revision defines no client notifications over HTTP: accepted and dropped.
      res.writeHead(202).end();
      return;
    }
    const msg = message.msg;
    try {
      validateModernRequest(req, msg);
    } catch (err) {
      return this.adapter.reject(pre, req, res, toGatewayError(err), msg.id, undefined, true);
    }
    const meta = msg.params!._meta as Record<string, unknown>;
    const view: SessionView = {
      scope,
      virtual: scope === undefined ? undefined : rule.route.spec.mcp?.virtualServers.find((v) => v.name === scope),
      modern: true,
      resolve: (call) => this.contextFor(call.principal?.id, rule, scope, meta, state),
    };
    switch (msg.method) {
      case 'server/discover':
        return this.discover(req, res, rule, view, msg, state);
      case 'subscriptions/listen':
        return this.listen(req, res, rule, view, msg, state);
      case 'initialize':
        return this.adapter.reject(pre, req, res, new GatewayError(Errors.METHOD_NOT_FOUND, 'Method not found: initialize (2026-07-28 has no handshake)'), msg.id, undefined, true);
      case 'tools/call': {
        const err = this.checkParamHeaders(req, scope, view.virtual, msg);
        if (err) return this.adapter.reject(pre, req, res, err, msg.id, undefined, true);
        break;
      }
    }
    return request(this.adapter, req, res, rule, view, msg, raw, state);
  }

  /** Mcp-Param-* headers checked against the arguments, for tools whose x-mcp-header declarations are known. */
  private checkParamHeaders(req: IncomingMessage, scope: string | undefined, virtual: VirtualServerSpec | undefined, msg: RpcRequest): GatewayError | undefined {
    const name = msg.params?.name;
    if (typeof name !== 'string') return undefined;
    let backend: string | undefined;
    let local = name;
    if (scope === undefined) {
      const owner = this.adapter.federatedNames.resolve(name);
      if (!owner) return undefined;
      [backend, local] = owner;
    } else if (virtual !== undefined) {
      // A virtual server's public name maps to a backend's own tool name.
      const owner = resolveVirtualTool(virtual, name);
      if (!owner) return undefined;
      backend = owner.backend;
      local = owner.tool;
    } else backend = scope;
    const up = this.adapter.upstreams.get(backend) as { toolHeaders?: Map<string, ParamHeader[]> } | undefined;
    const decls = up?.toolHeaders?.get(local);
    if (!decls) return undefined;
    const problem = checkParamHeaders(decls, msg.params?.arguments, req.headers as Record<string, string | string[] | undefined>);
    return problem === undefined ? undefined : mismatch(problem);
  }

  private async discover(req: IncomingMessage, res: ServerResponse, rule: CompiledRule, view: SessionView, msg: RpcRequest, state: GatewayState): Promise<void> {
    const call = this.adapter.newCall(req, rule, msg.method, msg.id, msg.params?._meta);
    const session = await this.adapter.enter(call, res, msg.id, view, state);
    if (!session) return;
    const described = await describe(session, rule);
    if (!described) {
      return this.adapter.refuse(call, res, msg.id, new GatewayError(Errors.UPSTREAM_UNAVAILABLE, `Upstream ${session.scope} is unavailable`, { data: { upstream: session.scope } }), true);
    }
    const { capabilities, serverInfo, instructions } = described;
    const result: Record<string, unknown> = {
      resultType: 'complete',
      supportedVersions: SUPPORTED_VERSIONS,
      capabilities,
      ttlMs: 0,
      cacheScope: 'private',
      _meta: { [META_SERVER_INFO]: serverInfo },
    };
    if (instructions) result.instructions = instructions;
    this.adapter.answer(call, res, msg.id, result);
  }

  /** subscriptions/listen: a long-lived SSE stream of the change notifications the client opted in to. */
  private async listen(req: IncomingMessage, res: ServerResponse, rule: CompiledRule, view: SessionView, msg: RpcRequest, state: GatewayState): Promise<void> {
    const call = this.adapter.newCall(req, rule, msg.method, msg.id, msg.params?._meta);
    const session = await this.adapter.enter(call, res, msg.id, view, state);
    if (!session) return;
    // A long-lived stream: under the principal's stream cap (shared with legacy SSE channels).
    const cap = state.snapshot.gateway.mcp.limits.streamsPerPrincipal;
    const release = this.adapter.streamSlots.take(call.principal?.id, cap);
    if (!release) return this.adapter.refuse(call, res, msg.id, capReached('streamsPerPrincipal', cap), true);
    // Acknowledged: what was asked and this server can notify (subscriptions: unsupported types are omitted).
    const capabilities = (await describe(session, rule))?.capabilities ?? {};
    if (res.destroyed) {
      release();
      return this.adapter.refuse(call, res, msg.id, new GatewayError(Errors.REQUEST_CANCELLED, 'Client closed the response stream'), true);
    }
    const asked = (msg.params?.notifications ?? {}) as Record<string, unknown>;
    const wanted = new Set<string>();
    const ack: Record<string, unknown> = {};
    for (const [flag, [kind, method]] of Object.entries(LIST_CHANGED)) {
      if (asked[flag] === true && (capabilities[kind] as { listChanged?: unknown } | undefined)?.listChanged === true) {
        wanted.add(method);
        ack[flag] = true;
      }
    }
    const sse = new SseWriter(res, {}, state.snapshot.gateway.http.sseKeepAliveMs);
    const subscription = { [META_SUBSCRIPTION_ID]: msg.id };
    sse.send(notification('notifications/subscriptions/acknowledged', { _meta: subscription, notifications: ack }));
    const unlisten: Array<() => void> = [];
    session.openStreams++;
    sse.whenClosed(() => {
      release();
      session.openStreams--;
      for (const u of unlisten) u();
      call.status = 200;
      this.adapter.ctx.finish(call);
    });
    const namespaced = session.scope === undefined;
    await Promise.all(
      scopeOf(session, rule).map(async (backend) => {
        const up = await session.upstream(backend);
        if (!up || !sse.isOpen) return;
        unlisten.push(
          up.listen({
            message: (m) => {
              let parsed: { method?: unknown; id?: unknown; params?: Record<string, unknown> };
              try {
                parsed = JSON.parse(m) as typeof parsed;
              } catch {
                return;
              }
              // Only opted-in change notifications: never server requests or another request's progress.
              if (parsed.id !== undefined || typeof parsed.method !== 'string' || !wanted.has(parsed.method)) return;
              const params: Record<string, unknown> = { ...parsed.params, _meta: { ...(parsed.params?._meta as object | undefined), ...subscription } };
              if (namespaced && typeof params.uri === 'string') params.uri = publicUri(backend, params.uri);
              sse.send(notification(parsed.method, params));
            },
          }),
        );
      }),
    );
    if (!sse.isOpen) for (const u of unlisten.splice(0)) u();
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const c of this.contexts.values()) void c.session.close();
    this.contexts.clear();
    this.slots.clear();
  }
}
