/**
 * The MCP protocol adapter for Streamable HTTP (session era: 2025-03-26 .. 2025-11-25).
 *
 * `/mcp` (the rule's mount) is the federated view of every backend of the matched rule; `/mcp/<server>` is one
 * backend alone. Each JSON-RPC message becomes a `Call` that walks the guard pipeline before anything is forwarded.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { Call, outcomeOf, type Target } from '../../core/call.ts';
import { Errors, GatewayError, toGatewayError } from '../../core/errors.ts';
import type { GatewayState } from '../../gateway/state.ts';
import type { CompiledRule, RouteMatch } from '../../config/routes.ts';
import type { VirtualServerSpec } from '../../config/schema.ts';
import { accepts, readBody, remoteAddress, sendBody } from '../../server/io.ts';
import type { RevocationSet } from '../../store/revocations.ts';
import { SseWriter } from '../../server/sse.ts';
import type { Logger } from '../../telemetry/logger.ts';
import { LIST_KEY, fetchListPage, mergeInitialize, type ListMethod } from './federation.ts';
import {
  classify,
  errorResponse,
  peekId,
  resultResponse,
  withResultType,
  salvageId,
  type RpcId,
  type RpcMessage,
  type RpcNotification,
  type RpcRequest,
  type RpcResponse,
} from './jsonrpc.ts';
import { LegacySse } from './legacy-sse.ts';
import { META_PROTOCOL_VERSION, isModernVersion } from './modern.ts';
import { ParkedExchanges, bridgeInputRequired, type ParkedExchange } from './mrtr.ts';
import { FederatedNames, publicUri, resolveUri } from './names.ts';
import { DownstreamReply } from './reply.ts';
import { ReplayLog, type ReplayStream } from './replay.ts';
import { Sealer } from './sealer.ts';
import { McpSession, type SessionStore } from './session.ts';
import { SessionAccess } from './session-access.ts';
import { PrincipalSlots } from './slots.ts';
import { Stateless } from './stateless.ts';
import { isModernSession } from './upstream/http-modern.ts';
import type { McpUpstreams } from './upstream/registry.ts';
import type { ClientHello, UpstreamSession } from './upstream/types.ts';
import { resolveVirtualTool, virtualBackends, virtualToolList } from './virtual.ts';
import { DEFAULT_HEADER_VERSION, isSupportedVersion, negotiateVersion } from './versions.ts';

export interface AdapterContext {
  readonly log: Logger;
  state(): GatewayState;
  /** Settles the call's guards and writes its log line. Called exactly once per call. */
  finish(call: Call): void;
  /** A Call was created (telemetry: its server span, metrics). `meta`: the request's `params._meta` (trace context). */
  begin(call: Call, meta?: unknown): void;
  /** Starts the upstream span; the trace fields to add to the forwarded `params._meta`, or undefined (tracing off). */
  propagate(call: Call): Readonly<Record<string, string>> | undefined;
  /** A Call for a raw request, not begun, to authenticate from the headers (CallLifecycle.prepare). */
  prepare(init: { rule: CompiledRule; operation: string; req: IncomingMessage; resource: string }): Call;
  /** Records the refusal of a prepared Call whose answer the adapter wrote (CallLifecycle.refused). */
  refused(call: Call, err: GatewayError, status: number): void;
  /** Ended sessions (by fingerprint), shared by every replica when Redis is configured. */
  readonly revocations: RevocationSet;
}

/**
 * What a request acts in, as far as its URL says, before the caller is authenticated: the server scope and its
 * virtual server, and the era. The session itself (continued, or created for a 2026 caller) is resolved from it
 * only once the call is admitted, so nothing is created or looked up for a caller who is not authenticated.
 */
export interface SessionView {
  readonly scope: string | undefined;
  readonly virtual: VirtualServerSpec | undefined;
  readonly modern: boolean;
  resolve(call: Call): McpSession | GatewayError | Promise<McpSession | GatewayError>;
}

const LIST_METHODS = new Set<string>(['tools/list', 'prompts/list', 'resources/list', 'resources/templates/list']);
const LIST_TIMEOUT_MS = 30_000;

export class McpAdapter {
  readonly ctx: AdapterContext;
  readonly upstreams: McpUpstreams;
  private names: FederatedNames;
  /** Session-era sessions: continued, bound to their principal, capped, revoked (session-access.ts). */
  readonly access: SessionAccess;
  private parkedKeys: string;
  /** Multi round-trip exchanges parked for 2026 clients (see mrtr.ts). */
  private parked: ParkedExchanges;
  /** 2026-07-28 clients: validation, discovery, listen streams and their per-principal upstream state. */
  readonly stateless: Stateless;
  /** The legacy HTTP+SSE transport (2024-11-05) for old clients. */
  private readonly legacy: LegacySse;
  /** Open server-initiated (GET) streams: ended first at shutdown, since clients simply reconnect elsewhere. */
  private readonly streams = new Set<SseWriter>();
  /** Long-lived streams per principal (legacy SSE channels, subscriptions/listen): mcp.limits.streamsPerPrincipal. */
  readonly streamSlots = new PrincipalSlots();

  constructor(ctx: AdapterContext, upstreams: McpUpstreams) {
    this.ctx = ctx;
    this.upstreams = upstreams;
    const snapshot = ctx.state().snapshot;
    this.names = new FederatedNames(snapshot.gateway.mcp.separator, () => ctx.state().snapshot.gateway.mcp.limits.aliasesPerServer);
    this.access = new SessionAccess({ log: ctx.log, state: ctx.state, upstreams, revocations: ctx.revocations, prepare: (s, r, st) => this.prepare(s, r, st) });
    this.parkedKeys = keysFingerprint(snapshot.mcpSessionKeys);
    this.parked = new ParkedExchanges(new Sealer('mcp-request-state', snapshot.mcpSessionKeys));
    this.stateless = new Stateless(this);
    this.legacy = new LegacySse(this);
    if (this.access.ephemeral) ctx.log.info('no mcp.sessionKeys configured: session ids are sealed with a per-process key (one replica)');
  }

  /** Called when a new config snapshot is in force. */
  reconfigure(): void {
    const snapshot = this.ctx.state().snapshot;
    const sep = snapshot.gateway.mcp.separator;
    if (sep !== this.names.separator) this.names = new FederatedNames(sep, () => this.ctx.state().snapshot.gateway.mcp.limits.aliasesPerServer);
    this.access.reconfigure(snapshot.mcpSessionKeys);
    const keys = keysFingerprint(snapshot.mcpSessionKeys);
    if (keys !== this.parkedKeys) {
      this.parkedKeys = keys;
      this.parked = new ParkedExchanges(new Sealer('mcp-request-state', snapshot.mcpSessionKeys));
    }
  }

  /** The session-era sessions of this replica. */
  get sessions(): SessionStore {
    return this.access.sessions;
  }

  get federatedNames(): FederatedNames {
    return this.names;
  }

  handle(req: IncomingMessage, res: ServerResponse, match: RouteMatch, state: GatewayState): void {
    const { rule } = match;
    let rest = match.rest;
    let legacy: 'stream' | 'message' | undefined;
    const lsse = state.snapshot.gateway.mcp.legacySse;
    if (lsse.enabled && rest.length >= lsse.path.length) {
      if (rest.endsWith(lsse.path)) {
        legacy = 'stream';
        rest = rest.slice(0, rest.length - lsse.path.length);
      } else if (rest.endsWith(`${lsse.path}/message`)) {
        legacy = 'message';
        rest = rest.slice(0, rest.length - lsse.path.length - 8);
      }
    }
    const name = rest === '' ? undefined : rest.slice(1);
    const known = name !== undefined && (rule.backends.some((b) => b.name === name) || virtualServerOf(rule, name) !== undefined);
    // The protected resource (RFC 8707) the request is for: the mount, or one server of it.
    const resource = known ? `${rule.mount}/${name}` : rule.mount;
    const pre = this.ctx.prepare({ rule, operation: preOperation(req.method, legacy), req, resource });
    const origin = req.headers.origin;
    if (origin !== undefined) {
      const allowed = state.snapshot.gateway.http.allowedOrigins;
      if (!allowed.includes(origin) && !allowed.includes('*') && !sameLoopbackOrigin(origin, req.headers.host)) {
        return this.reject(pre, req, res, new GatewayError(Errors.ORIGIN_FORBIDDEN, `Origin ${origin} is not allowed`));
      }
    }
    // Who is calling, from the headers alone: before a body is read, a session looked up or anything created.
    let auth: void | Promise<void>;
    try {
      auth = state.pipeline.authenticate(pre);
    } catch (err) {
      return this.reject(pre, req, res, toGatewayError(err));
    }
    const next = (): void => {
      if (name !== undefined && !known) {
        return this.reject(pre, req, res, new GatewayError(Errors.MCP_UNKNOWN_SERVER, `No MCP server named "${name}" at ${rule.mount}`));
      }
      const scope = known ? name : undefined;
      if (legacy !== undefined) {
        this.legacy.handle(req, res, rule, scope, legacy, state, pre).catch((err: unknown) => this.crash(res, err));
        return;
      }
      switch (req.method) {
        case 'POST':
          this.post(req, res, rule, scope, state, pre).catch((err: unknown) => this.crash(res, err));
          return;
        case 'GET':
          this.get(req, res, rule, scope, state, pre).catch((err: unknown) => this.crash(res, err));
          return;
        case 'DELETE':
          this.delete(req, res, rule, scope, state).catch((err: unknown) => this.crash(res, err));
          return;
        default:
          return this.reject(pre, req, res, new GatewayError(Errors.METHOD_NOT_ALLOWED), null, { allow: 'GET, POST, DELETE' });
      }
    };
    if (auth === undefined) return next();
    auth.then(next, (err: unknown) => this.reject(pre, req, res, toGatewayError(err)));
  }

  crash(res: ServerResponse, err: unknown): void {
    this.ctx.log.error({ err }, 'MCP adapter failure');
    writeError(res, null, toGatewayError(err));
  }

  /**
   * Refuses a request before its Call exists (`pre`, from handle): recorded like a call (audit, metrics, log) with
   * the reason's code, answered in JSON-RPC. A body not read yet is never buffered or parsed, only drained (closing
   * at once would risk a reset that loses the answer; the server's request timeout bounds a body that never ends).
   */
  reject(pre: Call, req: IncomingMessage, res: ServerResponse, err: GatewayError, id: RpcId | null = null, extra?: OutgoingHttpHeaders, modern = false): void {
    this.ctx.refused(pre, err, statusOf(err, id, modern));
    if (!req.complete) req.resume();
    writeError(res, id, err, extra, modern);
  }

  newCall(req: IncomingMessage, rule: CompiledRule, operation: string, rpcId: RpcId | undefined, meta?: unknown): Call {
    const call = new Call({
      id: randomUUID(),
      protocol: 'mcp',
      operation,
      route: rule.route,
      request: { method: req.method ?? 'POST', path: req.url ?? '', headers: req.headers, remoteAddress: remoteAddress(req) },
      rpcId,
    });
    this.ctx.begin(call, meta);
    return call;
  }

  /** Runs the pipeline; on refusal answers the caller, finishes the call and returns false. */
  async admit(call: Call, res: ServerResponse, id: RpcId | null, modern: boolean, state: GatewayState): Promise<boolean> {
    try {
      const pending = state.pipeline.admit(call);
      if (pending) await pending;
      return true;
    } catch (err) {
      this.refuse(call, res, id, toGatewayError(err), modern);
      return false;
    }
  }

  /**
   * Admits the call, then resolves the session it acts in (continued, or created for a 2026 caller): only now, for
   * an authenticated caller. On refusal answers, finishes the call and returns undefined.
   */
  async enter(call: Call, res: ServerResponse, id: RpcId | null, view: SessionView, state: GatewayState): Promise<McpSession | undefined> {
    if (!(await this.admit(call, res, id, view.modern, state))) return undefined;
    let session = view.resolve(call);
    if (session instanceof Promise) session = await session;
    if (session instanceof GatewayError) {
      this.refuse(call, res, id, session, view.modern);
      return undefined;
    }
    if (session.fingerprint !== '') call.sessionId = session.fingerprint;
    return session;
  }

  refuse(call: Call, res: ServerResponse, id: RpcId | null, err: GatewayError, modern = false): void {
    call.error = err;
    call.outcome = outcomeOf(err);
    call.status = statusOf(err, id, modern);
    writeError(res, id, err, undefined, modern);
    this.ctx.finish(call);
  }

  // ---- POST -------------------------------------------------------------------------------------------------

  private async post(req: IncomingMessage, res: ServerResponse, rule: CompiledRule, scope: string | undefined, state: GatewayState, pre: Call): Promise<void> {
    const accept = req.headers.accept;
    if (!accepts(accept, 'application/json') || !accepts(accept, 'text/event-stream')) {
      return this.reject(pre, req, res, new GatewayError(Errors.NOT_ACCEPTABLE, 'Not Acceptable: Accept must include application/json and text/event-stream'));
    }
    const type = req.headers['content-type'];
    if (type === undefined || !type.startsWith('application/json')) {
      return this.reject(pre, req, res, new GatewayError(Errors.UNSUPPORTED_MEDIA_TYPE));
    }
    let body: Buffer;
    try {
      body = await readBody(req, rule.maxBodyBytes);
    } catch (err) {
      return this.reject(pre, req, res, toGatewayError(err));
    }
    let value: unknown;
    try {
      value = JSON.parse(body.toString('utf8'));
    } catch {
      return this.reject(pre, req, res, new GatewayError(Errors.PARSE_ERROR));
    }
    let message: RpcMessage;
    try {
      message = classify(value);
    } catch (err) {
      return this.reject(pre, req, res, toGatewayError(err), salvageId(value));
    }
    return this.dispatch(req, res, rule, scope, state, message, body, pre);
  }

  /**
   * Routes one validated JSON-RPC message (from a Streamable HTTP POST or the legacy SSE transport) of an
   * authenticated caller; `pre` records refusals decided before the message's own Call exists.
   */
  dispatch(req: IncomingMessage, res: ServerResponse, rule: CompiledRule, scope: string | undefined, state: GatewayState, message: RpcMessage, body: Buffer, pre: Call): void | Promise<void> {
    const id = message.kind === 'request' ? message.msg.id : null;
    if (message.kind !== 'response') {
      // Body-primary era classification (2026-07-28): a request carrying the _meta envelope claim is stateless.
      const meta = message.msg.params?._meta as Record<string, unknown> | undefined;
      if (meta !== undefined && meta !== null && typeof meta === 'object' && META_PROTOCOL_VERSION in meta) {
        return this.stateless.handle(req, res, rule, scope, state, message, body, pre);
      }
      const hv = req.headers['mcp-protocol-version'];
      if (typeof hv === 'string' && isModernVersion(hv.trim())) {
        return this.reject(pre, req, res, new GatewayError(Errors.MCP_INVALID_ENVELOPE, `Invalid params: the MCP-Protocol-Version header names ${hv.trim()}, but the request has no per-request _meta envelope`), id);
      }
    }
    if (message.kind === 'request' && message.msg.method === 'initialize') {
      return this.initialize(req, res, rule, scope, message.msg, state);
    }
    const version = req.headers['mcp-protocol-version'] ?? DEFAULT_HEADER_VERSION;
    if (typeof version !== 'string' || !isSupportedVersion(version)) {
      return this.reject(pre, req, res, new GatewayError(Errors.MCP_UNSUPPORTED_PROTOCOL_VERSION, `Bad Request: Unsupported protocol version: ${String(version)}`), id);
    }
    const view = this.sessionView(req.headers['mcp-session-id'], rule, scope);
    if (message.kind === 'request') return this.request(req, res, rule, view, message.msg, body, state);
    if (message.kind === 'notification') return this.notification(req, res, rule, view, message.msg, state);
    return this.response(req, res, rule, view, message.msg, body, state);
  }

  /** The session-era view of a request: its session is the one its Mcp-Session-Id names, for the admitted principal. */
  private sessionView(sid: unknown, rule: CompiledRule, scope: string | undefined): SessionView {
    return {
      scope,
      virtual: scope === undefined ? undefined : virtualServerOf(rule, scope),
      modern: false,
      resolve: (call) => this.access.resolve(sid, rule, scope, call.principal?.id),
    };
  }

  /**
   * The client's answer to a server-to-client request relayed through its session: a call like any other (admitted,
   * from the session's own principal), delivered only to a request that session is waiting on.
   */
  private async response(req: IncomingMessage, res: ServerResponse, rule: CompiledRule, view: SessionView, msg: RpcResponse, body: Buffer, state: GatewayState): Promise<void> {
    const call = this.newCall(req, rule, 'mcp/response', undefined);
    const session = await this.enter(call, res, null, view, state);
    if (!session) return;
    if (!session.serverRequests.inbound(msg.id, body.toString('utf8'))) return this.refuse(call, res, null, new GatewayError(Errors.MCP_UNKNOWN_RESPONSE));
    call.status = 202;
    res.writeHead(202).end();
    this.ctx.finish(call);
  }

  /** Per-snapshot settings a session needs (virtual server spec, replay log). */
  prepare(session: McpSession, rule: CompiledRule, state: GatewayState): void {
    session.virtual = session.scope === undefined ? undefined : virtualServerOf(rule, session.scope);
    const replay = state.snapshot.gateway.mcp.replay;
    if (replay.events > 0 && !session.modern) session.replay ??= new ReplayLog(replay.events, replay.ttlMs, replay.maxBytes);
  }

  private async initialize(
    req: IncomingMessage,
    res: ServerResponse,
    rule: CompiledRule,
    scope: string | undefined,
    msg: RpcRequest,
    state: GatewayState,
  ): Promise<void> {
    const call = this.newCall(req, rule, 'initialize', msg.id, msg.params?._meta);
    call.target = scope ? { kind: 'server', name: scope, server: scope } : undefined;
    const p = msg.params ?? {};
    const info = p.clientInfo as Record<string, unknown> | undefined;
    if (typeof p.protocolVersion !== 'string' || typeof p.capabilities !== 'object' || p.capabilities === null || typeof info?.name !== 'string') {
      return this.refuse(call, res, msg.id, new GatewayError(Errors.INVALID_PARAMS, 'Invalid params: initialize needs protocolVersion, capabilities and clientInfo'));
    }
    if (!(await this.admit(call, res, msg.id, false, state))) return;
    // A principal holds at most mcp.limits.sessionsPerPrincipal sessions here: the newcomer is refused.
    const release = this.access.reserve(call.principal?.id);
    if (release instanceof GatewayError) return this.refuse(call, res, msg.id, release);
    const protocolVersion = negotiateVersion(p.protocolVersion);
    const hello: ClientHello = {
      protocolVersion,
      capabilities: p.capabilities as Record<string, unknown>,
      clientInfo: { ...info, name: info.name, version: typeof info.version === 'string' ? info.version : '0' },
    };
    const session = new McpSession({
      route: rule.route.name,
      mount: rule.mount,
      scope,
      hello,
      protocolVersion,
      principal: call.principal?.id,
      registry: this.upstreams,
      log: this.ctx.log,
      maxPendingServerRequests: state.snapshot.gateway.mcp.limits.pendingServerRequests,
    });
    this.prepare(session, rule, state);
    const backends = this.scopeOf(session, rule);
    const opened = await Promise.all(backends.map(async (b) => [b, await session.upstream(b)] as const));
    const live = opened.filter((o): o is readonly [string, UpstreamSession] => o[1] !== undefined);
    let result: Record<string, unknown>;
    if (session.virtual) {
      result = { ...mergeInitialize(protocolVersion, []), serverInfo: { name: session.virtual.name, version: '1' } };
      if (session.virtual.description) result.instructions = session.virtual.description;
    } else if (scope) {
      const up = live[0]?.[1];
      if (!up) {
        release();
        void session.close();
        return this.refuse(call, res, msg.id, new GatewayError(Errors.UPSTREAM_UNAVAILABLE, `Upstream ${scope} is unavailable`, { data: { upstream: scope } }));
      }
      result = { ...up.init, protocolVersion };
    } else {
      result = mergeInitialize(protocolVersion, live.map(([b, s]) => [b, s.init] as const));
    }
    this.access.add(session, state.snapshot.gateway.mcp.sessionTtlMs, release);
    call.sessionId = session.fingerprint;
    call.status = 200;
    sendBody(res, 200, 'application/json', resultResponse(msg.id, result), { 'mcp-session-id': session.id });
    this.ctx.finish(call);
  }

  async request(req: IncomingMessage, res: ServerResponse, rule: CompiledRule, view: SessionView, msg: RpcRequest, raw: Buffer, state: GatewayState): Promise<void> {
    const method = msg.method;
    const call = this.newCall(req, rule, method, msg.id, msg.params?._meta);
    const namespaced = view.scope === undefined;
    const params = msg.params ?? {};
    const modern = view.modern;

    if (method === 'ping') {
      if (!(await this.enter(call, res, msg.id, view, state))) return;
      return this.answer(call, res, msg.id, modern ? { resultType: 'complete' } : {});
    }
    if (LIST_METHODS.has(method)) {
      const session = await this.enter(call, res, msg.id, view, state);
      if (!session) return;
      return this.list(call, res, rule, session, msg, raw, state);
    }
    if (method === 'logging/setLevel') {
      const session = await this.enter(call, res, msg.id, view, state);
      if (!session) return;
      const ups = await Promise.all(this.scopeOf(session, rule).map((b) => session.upstream(b)));
      await Promise.allSettled(ups.map((u) => u?.call(method, params, LIST_TIMEOUT_MS)));
      return this.answer(call, res, msg.id, modern ? { resultType: 'complete' } : {});
    }

    // Everything else is routed to the one upstream that owns its target.
    let target: Target;
    let upstreamParams: Record<string, unknown> | undefined;
    let rewriteUris = false;
    try {
      const routed = this.route(method, params, view, rule);
      target = routed.target;
      upstreamParams = routed.params;
      rewriteUris = routed.rewriteUris;
    } catch (err) {
      // Authenticate (and authorize on the name asked for) before saying a target does not exist, so a caller
      // without credentials learns nothing about what exists, and the audit record names who asked.
      call.target = requestedTarget(method, params);
      if (!(await this.enter(call, res, msg.id, view, state))) return;
      return this.refuse(call, res, msg.id, toGatewayError(err), modern);
    }
    call.target = target;
    call.upstream = target.server;
    if (method === 'tools/call' || method === 'prompts/get') call.args = params.arguments;
    const session = await this.enter(call, res, msg.id, view, state);
    if (!session) return;

    if (modern && ParkedExchanges.isOurs(params.requestState)) return this.resumeParked(call, res, session, msg, target, state);
    const up = await session.upstream(target.server!);
    if (!up) {
      return this.refuse(call, res, msg.id, new GatewayError(Errors.UPSTREAM_UNAVAILABLE, `Upstream ${target.server} is unavailable`, { data: { upstream: target.server } }), modern);
    }
    const forwarded: RpcRequest = upstreamParams === undefined ? msg : { ...msg, params: upstreamParams };
    let transform = namespaced && rewriteUris ? (text: string) => rewriteContentUris(text, target.server!) : undefined;
    if (modern && !isModernSession(up)) {
      // A 2026 client requires resultType on every result; a session-era upstream never sends it.
      const inner = transform;
      transform = inner ? (text: string) => withResultType(inner(text)) : withResultType;
    }
    this.forward(call, res, session, up, forwarded, upstreamParams === undefined ? raw : undefined, state, transform);
  }

  /** Maps a routed request to its owner: target, and the params to send upstream (undefined: unchanged). */
  private route(
    method: string,
    params: Record<string, unknown>,
    view: SessionView,
    rule: CompiledRule,
  ): { target: Target; params: Record<string, unknown> | undefined; rewriteUris: boolean } {
    const single = view.scope;
    const virtual = view.virtual;
    const owns = (server: string): boolean => (single !== undefined ? server === single : rule.backends.some((b) => b.name === server));
    const byName = (name: unknown, kind: 'tool' | 'prompt', unknownErr: typeof Errors.MCP_UNKNOWN_TOOL): [Target, string] => {
      if (typeof name !== 'string' || name === '') throw new GatewayError(Errors.INVALID_PARAMS, `Invalid params: ${kind} name must be a non-empty string`);
      if (virtual !== undefined) {
        const t = kind === 'tool' ? resolveVirtualTool(virtual, name) : undefined;
        if (!t) throw new GatewayError(unknownErr, `Unknown ${kind}: ${name}`);
        return [{ kind, name, server: t.backend, local: t.tool }, t.tool];
      }
      if (single !== undefined) return [{ kind, name, server: single, local: name }, name];
      const owner = this.names.resolve(name);
      if (!owner || !owns(owner[0])) throw new GatewayError(unknownErr, `Unknown ${kind}: ${name}`);
      return [{ kind, name, server: owner[0], local: owner[1] }, owner[1]];
    };
    const byUri = (uri: unknown): [Target, string] => {
      if (typeof uri !== 'string' || uri === '') throw new GatewayError(Errors.INVALID_PARAMS, 'Invalid params: uri must be a non-empty string');
      if (virtual !== undefined) throw new GatewayError(Errors.MCP_RESOURCE_NOT_FOUND, `Resource not found: ${uri}`, { data: { uri } });
      if (single !== undefined) return [{ kind: 'resource', name: uri, server: single, local: uri }, uri];
      const owner = resolveUri(uri);
      if (!owner || !owns(owner[0])) throw new GatewayError(Errors.MCP_RESOURCE_NOT_FOUND, `Resource not found: ${uri}`, { data: { uri } });
      return [{ kind: 'resource', name: uri, server: owner[0], local: owner[1] }, owner[1]];
    };
    switch (method) {
      case 'tools/call': {
        const [target, local] = byName(params.name, 'tool', Errors.MCP_UNKNOWN_TOOL);
        return { target, params: local === params.name ? undefined : { ...params, name: local }, rewriteUris: false };
      }
      case 'prompts/get': {
        const [target, local] = byName(params.name, 'prompt', Errors.MCP_UNKNOWN_PROMPT);
        return { target, params: local === params.name ? undefined : { ...params, name: local }, rewriteUris: false };
      }
      case 'resources/read':
      case 'resources/subscribe':
      case 'resources/unsubscribe': {
        const [target, local] = byUri(params.uri);
        return { target, params: local === params.uri ? undefined : { ...params, uri: local }, rewriteUris: method === 'resources/read' };
      }
      case 'completion/complete': {
        const ref = params.ref as Record<string, unknown> | undefined;
        if (ref?.type === 'ref/prompt') {
          const [target, local] = byName(ref.name, 'prompt', Errors.MCP_UNKNOWN_PROMPT);
          return { target, params: local === ref.name ? undefined : { ...params, ref: { ...ref, name: local } }, rewriteUris: false };
        }
        if (ref?.type === 'ref/resource') {
          const [target, local] = byUri(ref.uri);
          return { target, params: local === ref.uri ? undefined : { ...params, ref: { ...ref, uri: local } }, rewriteUris: false };
        }
        throw new GatewayError(Errors.INVALID_PARAMS, 'Invalid params: ref must be a ref/prompt or ref/resource');
      }
      default:
        throw new GatewayError(Errors.METHOD_NOT_FOUND, `Method not found: ${method}`);
    }
  }

  scopeOf(session: McpSession, rule: CompiledRule): string[] {
    if (session.virtual) return virtualBackends(session.virtual);
    return session.scope !== undefined ? [session.scope] : rule.backends.map((b) => b.name);
  }

  private async list(call: Call, res: ServerResponse, rule: CompiledRule, session: McpSession, msg: RpcRequest, raw: Buffer, state: GatewayState): Promise<void> {
    const method = msg.method as ListMethod;
    const namespaced = session.scope === undefined;
    if (session.virtual) return this.virtualList(call, res, session, msg, state);
    if (!namespaced && !state.pipeline.filtersLists && !session.modern) {
      // One server, nothing to filter: forward the request and its answer untouched.
      const up = await session.upstream(session.scope!);
      if (!up) return this.refuse(call, res, msg.id, new GatewayError(Errors.UPSTREAM_UNAVAILABLE, `Upstream ${session.scope} is unavailable`));
      return this.forward(call, res, session, up, msg, raw, state, undefined);
    }
    let page;
    try {
      page = await fetchListPage({
        method,
        cursor: msg.params?.cursor,
        scope: this.scopeOf(session, rule),
        namespaced,
        names: this.names,
        open: (b) => session.upstream(b),
        timeoutMs: LIST_TIMEOUT_MS,
        log: this.ctx.log,
      });
    } catch (err) {
      return this.refuse(call, res, msg.id, toGatewayError(err));
    }
    let items = page.items;
    if (state.pipeline.filtersLists && items.length > 0) {
      let visible: boolean[];
      try {
        visible = await state.pipeline.visible(call, page.targets);
      } catch (err) {
        return this.refuse(call, res, msg.id, toGatewayError(err));
      }
      items = items.filter((_, i) => visible[i]);
    }
    const result: Record<string, unknown> = { [LIST_KEY[method]]: items };
    if (page.nextCursor !== undefined) result.nextCursor = page.nextCursor;
    if (session.modern) {
      // A filtered list depends on who asked: never public, whatever the upstreams said.
      result.resultType = 'complete';
      result.ttlMs = page.ttlMs;
      result.cacheScope = state.pipeline.filtersLists ? 'private' : page.cacheScope;
    }
    this.answer(call, res, msg.id, result);
  }

  private async virtualList(call: Call, res: ServerResponse, session: McpSession, msg: RpcRequest, state: GatewayState): Promise<void> {
    if (msg.method !== 'tools/list') {
      // A virtual server offers tools only.
      const empty: Record<string, unknown> = { [LIST_KEY[msg.method as ListMethod]]: [] };
      if (session.modern) Object.assign(empty, { resultType: 'complete', ttlMs: 0, cacheScope: 'private' });
      return this.answer(call, res, msg.id, empty);
    }
    const { tools, targets } = await virtualToolList(session.virtual!, (b) => session.upstream(b), LIST_TIMEOUT_MS);
    let items = tools;
    if (state.pipeline.filtersLists && items.length > 0) {
      let visible: boolean[];
      try {
        visible = await state.pipeline.visible(call, targets);
      } catch (err) {
        return this.refuse(call, res, msg.id, toGatewayError(err), session.modern);
      }
      items = items.filter((_, i) => visible[i]);
    }
    const result: Record<string, unknown> = { tools: items };
    if (session.modern) Object.assign(result, { resultType: 'complete', ttlMs: 0, cacheScope: 'private' });
    this.answer(call, res, msg.id, result);
  }

  answer(call: Call, res: ServerResponse, id: RpcId, result: unknown): void {
    call.status = 200;
    sendBody(res, 200, 'application/json', resultResponse(id, result));
    this.ctx.finish(call);
  }

  /** Sends a request upstream and relays what comes back (JSON as is, or an SSE stream when there is progress). */
  private forward(
    call: Call,
    res: ServerResponse,
    session: McpSession,
    up: UpstreamSession,
    msg: RpcRequest,
    raw: Buffer | undefined,
    state: GatewayState,
    transform: ((final: string) => string) | undefined,
  ): void {
    const trace = this.ctx.propagate(call);
    if (trace !== undefined) {
      // Tracing on: the upstream gets the trace context in params._meta (MCP convention), so the bytes change.
      msg = { ...msg, params: { ...msg.params, _meta: { ...(msg.params?._meta as Record<string, unknown> | undefined), ...trace } } };
      raw = undefined;
    }
    const modern = session.modern;
    const reply: DownstreamReply = new DownstreamReply(res, msg.id, {
      keepAliveMs: state.snapshot.gateway.http.sseKeepAliveMs,
      transform,
      replay: session.replay,
      serverRequest: modern
        ? (m) => this.park(call, reply, session, up, m)
        : (m) => relayServerRequest(session, up, m),
      errorStatus: modern ? (err) => statusOf(err, msg.id, true) : undefined,
      onDone: (outcome) => {
        if (session.inflight.get(msg.id) === inflight) session.inflight.delete(msg.id);
        if (outcome instanceof GatewayError) {
          call.error = outcome;
          call.outcome = outcomeOf(outcome);
          call.status = outcome.def.status;
        } else {
          call.status = 200;
          if (outcome === 'rpc-error') call.outcome = 'error';
        }
        this.ctx.finish(call);
      },
    });
    let handle: ReturnType<UpstreamSession['request']>;
    let sink: import('./upstream/types.ts').ReplySink = reply;
    if (!modern && isModernSession(up)) {
      // A 2026 upstream may answer input_required: ask this session-era client, then retry (mrtr.ts).
      sink = bridgeInputRequired({ msg, up, downstream: reply, push: (m) => reply.push(m), requests: session.serverRequests, track: (h) => (handle = h) });
    }
    handle = up.request(msg, raw, sink);
    const inflight = {
      downstreamId: msg.id,
      cancel: (reason?: string) => {
        handle.cancel(reason);
        reply.fail(new GatewayError(Errors.REQUEST_CANCELLED));
      },
    };
    session.inflight.set(msg.id, inflight);
    res.once('close', () => {
      if (reply.done || reply.redirect) return;
      if (modern) {
        // 2026-07-28: closing the response stream is the cancellation.
        handle.cancel('client closed the response stream');
        reply.fail(new GatewayError(Errors.REQUEST_CANCELLED, 'Client closed the response stream'));
      } else if (reply.resumable) {
        // Session era: a disconnect is not a cancellation; the stream keeps recording for a Last-Event-ID resume.
        reply.detach();
      } else {
        handle.cancel();
        reply.fail(new GatewayError(Errors.REQUEST_CANCELLED, 'Client disconnected before the response'));
      }
    });
  }

  /**
   * A 2026 client's call met a server-to-client request from a session-era upstream: park the exchange and answer
   * input_required (the retry continues it, see resumeParked).
   */
  private park(call: Call, reply: DownstreamReply, session: McpSession, up: UpstreamSession, message: string, resumed?: ParkedExchange): undefined {
    const upstreamId = peekId(message);
    let parsed: { method?: unknown; params?: unknown };
    try {
      parsed = JSON.parse(message) as typeof parsed;
    } catch {
      return undefined;
    }
    if (upstreamId === undefined || upstreamId === null) return undefined;
    if (parsed.method === 'ping') {
      up.respond?.(resultResponse(upstreamId, {}));
      return undefined;
    }
    const principal = call.principal?.id;
    const x = resumed ?? this.parked.create(up, principal, this.ctx.state().snapshot.gateway.mcp.limits.parkedPerPrincipal);
    if (x === undefined) {
      // At the cap of parked exchanges: this request is refused, the caller's other exchanges are untouched.
      up.respond?.(errorResponse(upstreamId, new GatewayError(Errors.MCP_SERVER_REQUEST_REFUSED, 'Too many requests are waiting for this client\'s input')));
      return undefined;
    }
    const key = x.ask(upstreamId);
    // The first park keeps the upstream request's handle (to cancel it if the client never comes back).
    x.handle ??= session.inflight.get(reply.id);
    const inputRequests = { [key]: { method: parsed.method, ...(parsed.params !== undefined && { params: parsed.params }) } };
    const name = call.target?.name;
    const requestState = this.parked.state(x, principal, call.operation, name);
    if (resumed) this.parked.keep(x, principal);
    x.park();
    reply.redirect = x;
    session.inflight.delete(reply.id);
    reply.answer(resultResponse(reply.id, { resultType: 'input_required', inputRequests, requestState }));
    return undefined;
  }

  /** A 2026 client's retry of a parked call: answer the upstream's requests, continue the exchange on this reply. */
  private resumeParked(call: Call, res: ServerResponse, session: McpSession, msg: RpcRequest, target: Target, state: GatewayState): void {
    let x: ParkedExchange;
    try {
      x = this.parked.take(msg.params!.requestState as string, call.principal?.id, msg.method, target.name);
    } catch (err) {
      return this.refuse(call, res, msg.id, toGatewayError(err), true);
    }
    const responses = (msg.params?.inputResponses ?? {}) as Record<string, unknown>;
    for (const [key, upstreamId] of x.pending) {
      const answer = responses[key];
      x.up.respond?.(
        answer !== undefined && answer !== null && typeof answer === 'object'
          ? resultResponse(upstreamId, answer)
          : errorResponse(upstreamId, new GatewayError(Errors.INVALID_PARAMS, 'The client provided no response to this request')),
      );
    }
    x.pending.clear();
    const reply: DownstreamReply = new DownstreamReply(res, msg.id, {
      keepAliveMs: state.snapshot.gateway.http.sseKeepAliveMs,
      // Parked exchanges are always with session-era upstreams: their results lack resultType.
      transform: withResultType,
      serverRequest: (m) => this.park(call, reply, session, x.up, m, x),
      errorStatus: (err) => statusOf(err, msg.id, true),
      onDone: (outcome) => {
        if (outcome instanceof GatewayError) {
          call.error = outcome;
          call.outcome = outcomeOf(outcome);
          call.status = outcome.def.status;
        } else call.status = 200;
        this.ctx.finish(call);
      },
    });
    reply.resplice = true;
    res.once('close', () => {
      if (!reply.done && !reply.redirect) x.handle?.cancel('client closed the response stream');
    });
    x.attach(reply);
  }

  private async notification(req: IncomingMessage, res: ServerResponse, rule: CompiledRule, view: SessionView, msg: RpcNotification, state: GatewayState): Promise<void> {
    const call = this.newCall(req, rule, msg.method, undefined, msg.params?._meta);
    const session = await this.enter(call, res, null, view, state);
    if (!session) return;
    switch (msg.method) {
      case 'notifications/cancelled': {
        const requestId = msg.params?.requestId as RpcId | undefined;
        const handle = requestId === undefined ? undefined : session.inflight.get(requestId);
        if (handle) {
          const reason = msg.params?.reason;
          handle.cancel(typeof reason === 'string' ? reason : 'cancelled by client');
        }
        break;
      }
      case 'notifications/initialized':
        break; // the gateway completed each upstream's handshake itself
      default:
        for (const up of session.openSessions()) up.notify(msg);
    }
    call.status = 202;
    res.writeHead(202).end();
    this.ctx.finish(call);
  }

  // ---- GET: the server-initiated stream -----------------------------------------------------------------------

  private async get(req: IncomingMessage, res: ServerResponse, rule: CompiledRule, scope: string | undefined, state: GatewayState, pre: Call): Promise<void> {
    if (!accepts(req.headers.accept, 'text/event-stream')) {
      return this.reject(pre, req, res, new GatewayError(Errors.NOT_ACCEPTABLE, 'Not Acceptable: Accept must include text/event-stream'));
    }
    const call = this.newCall(req, rule, 'mcp/stream', undefined);
    const session = await this.enter(call, res, null, this.sessionView(req.headers['mcp-session-id'], rule, scope), state);
    if (!session) return;
    const lastEventId = req.headers['last-event-id'];
    if (typeof lastEventId === 'string' && lastEventId !== '') {
      // Resumability: replay the broken stream (a request's stream or the server stream) after that event.
      let found: { stream: ReplayStream; seq: number };
      try {
        if (!session.replay) throw new GatewayError(Errors.MCP_EVENT_ID_OUT_OF_RANGE, 'This server does not replay events');
        found = session.replay.locate(lastEventId);
        found.stream.check(found.seq);
      } catch (err) {
        return this.refuse(call, res, null, toGatewayError(err));
      }
      if (found.stream === session.serverLog && session.hasStream) return this.refuse(call, res, null, new GatewayError(Errors.MCP_STREAM_CONFLICT));
      const sse = new SseWriter(res, { 'mcp-session-id': session.id }, state.snapshot.gateway.http.sseKeepAliveMs);
      const isServer = found.stream === session.serverLog;
      if (isServer) session.hasStream = true;
      sse.whenClosed(() => {
        found.stream.detach(sse);
        if (isServer) {
          session.hasStream = false;
          this.stopServerStream(session);
        }
        call.status = 200;
        this.ctx.finish(call);
      });
      found.stream.resume(found.seq, sse);
      if (isServer) await this.startServerStream(session, rule, (m) => (found.stream.send(m), true));
      return;
    }
    if (session.hasStream) return this.refuse(call, res, null, new GatewayError(Errors.MCP_STREAM_CONFLICT));
    session.hasStream = true;
    const sse = new SseWriter(res, { 'mcp-session-id': session.id }, state.snapshot.gateway.http.sseKeepAliveMs);
    this.streams.add(sse);
    let stream: ReplayStream | undefined;
    if (session.replay) {
      // One recorded server stream per session: a reconnect without Last-Event-ID continues it live.
      stream = session.serverLog ??= session.replay.open(sse);
      stream.attach(sse);
    }
    sse.whenClosed(() => {
      this.streams.delete(sse);
      session.hasStream = false;
      // Upstream streams are not kept open for a client that went away (each holds a connection); what was sent
      // before the break stays replayable.
      stream?.detach(sse);
      this.stopServerStream(session);
      call.status = 200;
      this.ctx.finish(call);
    });
    const send = stream ? (m: string): boolean => (stream.send(m), true) : (m: string): boolean => sse.send(m);
    await this.startServerStream(session, rule, send);
  }

  /** Feeds upstream server-initiated messages (list_changed, server requests...) to `send`, once per session. */
  async startServerStream(session: McpSession, rule: CompiledRule, send: (message: string) => boolean): Promise<void> {
    session.serverStream = send;
    if (session.unlisten.length > 0) return;
    const namespaced = session.scope === undefined;
    await Promise.all(
      this.scopeOf(session, rule).map(async (backend) => {
        const up = await session.upstream(backend);
        if (!up || !session.serverStream) return;
        session.unlisten.push(
          up.listen({
            message: (m) => {
              let out: string | undefined = m;
              if (m.includes('"method"') && peekId(m) !== undefined) out = relayServerRequest(session, up, m);
              else if (namespaced) out = rewriteNotificationUri(m, backend);
              if (out !== undefined) session.serverStream?.(out);
            },
          }),
        );
      }),
    );
  }

  stopServerStream(session: McpSession): void {
    session.serverStream = undefined;
    for (const u of session.unlisten.splice(0)) u();
  }

  // ---- DELETE -------------------------------------------------------------------------------------------------

  private async delete(req: IncomingMessage, res: ServerResponse, rule: CompiledRule, scope: string | undefined, state: GatewayState): Promise<void> {
    const call = this.newCall(req, rule, 'mcp/delete', undefined);
    const session = await this.enter(call, res, null, this.sessionView(req.headers['mcp-session-id'], rule, scope), state);
    if (!session) return;
    try {
      await this.access.end(session);
    } catch (err) {
      // Ended here, but other replicas could not be told: say so rather than pretend it ended everywhere.
      this.ctx.log.error({ session: session.fingerprint, err: (err as Error).message }, 'session ended here but its revocation could not be shared');
      return this.refuse(call, res, null, new GatewayError(Errors.STORE_UNAVAILABLE, 'The session ended on this replica, but its revocation could not be recorded for the others; retry the DELETE'));
    }
    call.status = 200;
    res.writeHead(200).end();
    this.ctx.finish(call);
  }

  /** Ends every server-initiated stream (shutdown): they carry no in-flight call, and clients reconnect. */
  endStreams(): void {
    for (const s of [...this.streams]) s.end();
  }

  async close(): Promise<void> {
    this.endStreams();
    this.stateless.close();
    this.legacy.close();
    await this.access.close();
  }
}

/**
 * Relays a server-to-client request from an upstream to the session's client under a session-unique id; the
 * client's answer goes back to that upstream under the upstream's id. Returns the message to write downstream.
 */
function relayServerRequest(session: McpSession, up: UpstreamSession, message: string): string | undefined {
  const upstreamId = peekId(message);
  if (upstreamId === undefined || upstreamId === null) return undefined;
  if (!up.respond) return undefined;
  const mapped = session.serverRequests.outbound(message, upstreamId, (response) => up.respond!(response));
  if (mapped === undefined) up.respond(errorResponse(upstreamId, new GatewayError(Errors.MCP_SERVER_REQUEST_REFUSED, 'Too many unanswered requests to this client')));
  return mapped;
}

function virtualServerOf(rule: CompiledRule, name: string): VirtualServerSpec | undefined {
  return rule.route.spec.mcp?.virtualServers.find((v) => v.name === name);
}

const LOOPBACK_HOST = /^(?:127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost|\[::1\])(?::\d{1,5})?$/;

/**
 * A page served by the gateway's own loopback address calling it (Origin = http://<Host>). Safe against DNS
 * rebinding because the Host is a loopback literal: a rebinding page carries its own host name in Host.
 */
function sameLoopbackOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined || !LOOPBACK_HOST.test(host)) return false;
  return origin === `http://${host}` || origin === `https://${host}`;
}

function keysFingerprint(keys: readonly { id: string; secret: string }[]): string {
  return keys.map((k) => `${k.id}:${k.secret}`).join('|');
}

/** The operation a refusal before the message's own Call is recorded under (the HTTP exchange it refused). */
function preOperation(method: string | undefined, legacy: 'stream' | 'message' | undefined): string {
  if (legacy === 'stream') return 'mcp/legacy-stream';
  if (legacy === 'message') return 'mcp/legacy-message';
  switch (method) {
    case 'POST':
      return 'mcp/post';
    case 'GET':
      return 'mcp/get';
    case 'DELETE':
      return 'mcp/delete';
    default:
      return 'mcp/other';
  }
}

/** HTTP status of an error answer. 2026-07-28: an unknown method is 404 even though it answers a request. */
function statusOf(err: GatewayError, id: RpcId | null, modern: boolean): number {
  if (modern && err.def === Errors.METHOD_NOT_FOUND) return 404;
  return err.def.inBand && id !== null ? 200 : err.def.status;
}

/** What a request names, before it is known to exist (for refusals decided after authentication). */
function requestedTarget(method: string, params: Record<string, unknown>): Target | undefined {
  const ref = params.ref as Record<string, unknown> | undefined;
  const name = method === 'completion/complete' ? (ref?.name ?? ref?.uri) : (params.name ?? params.uri);
  if (typeof name !== 'string') return undefined;
  const kind: Target['kind'] = method.startsWith('tools/') ? 'tool' : method.startsWith('prompts/') || ref?.type === 'ref/prompt' ? 'prompt' : 'resource';
  return { kind, name };
}

/** Writes a JSON-RPC error: in-band errors answering a request go out as HTTP 200, the others with their status. */
export function writeError(res: ServerResponse, id: RpcId | null, err: GatewayError, extra?: OutgoingHttpHeaders, modern = false): void {
  const headers: OutgoingHttpHeaders = { ...err.headers, ...extra };
  sendBody(res, statusOf(err, id, modern), 'application/json', errorResponse(id, err), headers);
}

/** Federated resources/read: the contents' URIs are given back in their public (namespaced) form. */
function rewriteContentUris(text: string, server: string): string {
  const parsed = JSON.parse(text) as { result?: { contents?: Array<Record<string, unknown>> } };
  const contents = parsed.result?.contents;
  if (!Array.isArray(contents)) return text;
  for (const c of contents) if (typeof c.uri === 'string') c.uri = publicUri(server, c.uri);
  return JSON.stringify(parsed);
}

/** Federated streams: resources/updated names the resource by its public URI. */
function rewriteNotificationUri(message: string, server: string): string {
  if (!message.includes('notifications/resources/updated')) return message;
  const parsed = JSON.parse(message) as { method?: string; params?: { uri?: unknown } };
  if (parsed.method !== 'notifications/resources/updated' || typeof parsed.params?.uri !== 'string') return message;
  parsed.params.uri = publicUri(server, parsed.params.uri);
  return JSON.stringify(parsed);
}

