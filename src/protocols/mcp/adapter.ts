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
import { accepts, readBody, remoteAddress, sendBody } from '../../server/io.ts';
import { SseWriter } from '../../server/sse.ts';
import type { Logger } from '../../telemetry/logger.ts';
import { LIST_KEY, fetchListPage, mergeInitialize, type ListMethod } from './federation.ts';
import {
  classify,
  errorResponse,
  peekOutcome,
  resultResponse,
  salvageId,
  type RpcId,
  type RpcNotification,
  type RpcRequest,
} from './jsonrpc.ts';
import { FederatedNames, publicUri, resolveUri } from './names.ts';
import { McpSession, SessionStore } from './session.ts';
import type { McpUpstreams } from './upstream/registry.ts';
import type { ClientHello, ReplySink, UpstreamSession } from './upstream/types.ts';
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
}

const LIST_METHODS = new Set<string>(['tools/list', 'prompts/list', 'resources/list', 'resources/templates/list']);
const LIST_TIMEOUT_MS = 30_000;

export class McpAdapter {
  readonly sessions: SessionStore;
  private readonly ctx: AdapterContext;
  private readonly upstreams: McpUpstreams;
  private names: FederatedNames;
  /** Open server-initiated (GET) streams: ended first at shutdown, since clients simply reconnect elsewhere. */
  private readonly streams = new Set<SseWriter>();

  constructor(ctx: AdapterContext, upstreams: McpUpstreams) {
    this.ctx = ctx;
    this.upstreams = upstreams;
    this.sessions = new SessionStore(() => ctx.state().snapshot.gateway.mcp.sessionIdleMs);
    this.names = new FederatedNames(ctx.state().snapshot.gateway.mcp.separator);
  }

  /** Called when a new config snapshot is in force. */
  reconfigure(): void {
    const sep = this.ctx.state().snapshot.gateway.mcp.separator;
    if (sep !== this.names.separator) this.names = new FederatedNames(sep);
  }

  handle(req: IncomingMessage, res: ServerResponse, match: RouteMatch, state: GatewayState): void {
    const { rule, rest } = match;
    let scope: string | undefined;
    if (rest !== '') {
      const name = rest.slice(1);
      if (!rule.backends.some((b) => b.name === name)) {
        return writeError(res, null, new GatewayError(Errors.MCP_UNKNOWN_SERVER, `No MCP server named "${name}" at ${rule.mount}`));
      }
      scope = name;
    }
    const origin = req.headers.origin;
    if (origin !== undefined) {
      const allowed = state.snapshot.gateway.http.allowedOrigins;
      if (!allowed.includes(origin) && !allowed.includes('*')) {
        return writeError(res, null, new GatewayError(Errors.ORIGIN_FORBIDDEN, `Origin ${origin} is not allowed`));
      }
    }
    switch (req.method) {
      case 'POST':
        this.post(req, res, rule, scope, state).catch((err: unknown) => this.crash(res, err));
        return;
      case 'GET':
        this.get(req, res, rule, scope, state).catch((err: unknown) => this.crash(res, err));
        return;
      case 'DELETE':
        this.delete(req, res, rule, scope, state).catch((err: unknown) => this.crash(res, err));
        return;
      default:
        return writeError(res, null, new GatewayError(Errors.METHOD_NOT_ALLOWED), { allow: 'GET, POST, DELETE' });
    }
  }

  private crash(res: ServerResponse, err: unknown): void {
    this.ctx.log.error({ err }, 'MCP adapter failure');
    writeError(res, null, toGatewayError(err));
  }

  private newCall(req: IncomingMessage, rule: CompiledRule, operation: string, rpcId: RpcId | undefined, session: McpSession | undefined, meta?: unknown): Call {
    const call = new Call({
      id: randomUUID(),
      protocol: 'mcp',
      operation,
      route: rule.route,
      request: { method: req.method ?? 'POST', path: req.url ?? '', headers: req.headers, remoteAddress: remoteAddress(req) },
      rpcId,
      sessionId: session?.id,
    });
    this.ctx.begin(call, meta);
    return call;
  }

  /** Runs the pipeline; on refusal answers the caller, finishes the call and returns false. */
  private async admit(call: Call, res: ServerResponse, id: RpcId | null, session: McpSession | undefined, state: GatewayState): Promise<boolean> {
    try {
      const pending = state.pipeline.admit(call);
      if (pending) await pending;
      // Sessions are bound to the identity that created them: another identity never sees it exists.
      if (session && session.principal !== call.principal?.id) throw new GatewayError(Errors.SESSION_IDENTITY_MISMATCH);
      return true;
    } catch (err) {
      this.refuse(call, res, id, toGatewayError(err));
      return false;
    }
  }

  private refuse(call: Call, res: ServerResponse, id: RpcId | null, err: GatewayError): void {
    call.error = err;
    call.outcome = outcomeOf(err);
    call.status = err.def.inBand && id !== null ? 200 : err.def.status;
    writeError(res, id, err);
    this.ctx.finish(call);
  }

  // ---- POST -------------------------------------------------------------------------------------------------

  private async post(req: IncomingMessage, res: ServerResponse, rule: CompiledRule, scope: string | undefined, state: GatewayState): Promise<void> {
    const accept = req.headers.accept;
    if (!accepts(accept, 'application/json') || !accepts(accept, 'text/event-stream')) {
      req.resume();
      return writeError(res, null, new GatewayError(Errors.NOT_ACCEPTABLE, 'Not Acceptable: Accept must include application/json and text/event-stream'));
    }
    const type = req.headers['content-type'];
    if (type === undefined || !type.startsWith('application/json')) {
      req.resume();
      return writeError(res, null, new GatewayError(Errors.UNSUPPORTED_MEDIA_TYPE));
    }
    let body: Buffer;
    try {
      body = await readBody(req, state.snapshot.gateway.http.maxBodyBytes);
    } catch (err) {
      return writeError(res, null, toGatewayError(err));
    }
    let value: unknown;
    try {
      value = JSON.parse(body.toString('utf8'));
    } catch {
      return writeError(res, null, new GatewayError(Errors.PARSE_ERROR));
    }
    let message: ReturnType<typeof classify>;
    try {
      message = classify(value);
    } catch (err) {
      return writeError(res, salvageId(value), toGatewayError(err));
    }

    if (message.kind === 'request' && message.msg.method === 'initialize') {
      return this.initialize(req, res, rule, scope, message.msg, state);
    }
    const sid = req.headers['mcp-session-id'];
    if (typeof sid !== 'string' || sid === '') {
      return writeError(res, message.kind === 'request' ? message.msg.id : null, new GatewayError(Errors.MCP_SESSION_REQUIRED));
    }
    const session = this.sessions.get(sid);
    if (!session || session.route !== rule.route.name || session.mount !== rule.mount || session.scope !== scope) {
      return writeError(res, message.kind === 'request' ? message.msg.id : null, new GatewayError(Errors.MCP_SESSION_NOT_FOUND));
    }
    const version = req.headers['mcp-protocol-version'] ?? DEFAULT_HEADER_VERSION;
    if (typeof version !== 'string' || !isSupportedVersion(version)) {
      return writeError(res, message.kind === 'request' ? message.msg.id : null, new GatewayError(Errors.MCP_UNSUPPORTED_PROTOCOL_VERSION, `Bad Request: Unsupported protocol version: ${String(version)}`));
    }

    if (message.kind === 'request') return this.request(req, res, rule, session, message.msg, body, state);
    if (message.kind === 'notification') return this.notification(req, res, rule, session, message.msg, state);
    // A response to a server-initiated request: nothing is outstanding through the gateway in this era yet.
    res.writeHead(202).end();
  }

  private async initialize(
    req: IncomingMessage,
    res: ServerResponse,
    rule: CompiledRule,
    scope: string | undefined,
    msg: RpcRequest,
    state: GatewayState,
  ): Promise<void> {
    const call = this.newCall(req, rule, 'initialize', msg.id, undefined, msg.params?._meta);
    call.target = scope ? { kind: 'server', name: scope, server: scope } : undefined;
    const p = msg.params ?? {};
    const info = p.clientInfo as Record<string, unknown> | undefined;
    if (typeof p.protocolVersion !== 'string' || typeof p.capabilities !== 'object' || p.capabilities === null || typeof info?.name !== 'string') {
      return this.refuse(call, res, msg.id, new GatewayError(Errors.INVALID_PARAMS, 'Invalid params: initialize needs protocolVersion, capabilities and clientInfo'));
    }
    if (!(await this.admit(call, res, msg.id, undefined, state))) return;
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
    });
    call.sessionId = session.id;
    const backends = scope ? [scope] : rule.backends.map((b) => b.name);
    const opened = await Promise.all(backends.map(async (b) => [b, await session.upstream(b)] as const));
    const live = opened.filter((o): o is readonly [string, UpstreamSession] => o[1] !== undefined);
    let result: Record<string, unknown>;
    if (scope) {
      const up = live[0]?.[1];
      if (!up) {
        void session.close();
        return this.refuse(call, res, msg.id, new GatewayError(Errors.UPSTREAM_UNAVAILABLE, `Upstream ${scope} is unavailable`, { data: { upstream: scope } }));
      }
      result = { ...up.init, protocolVersion };
    } else {
      result = mergeInitialize(protocolVersion, live.map(([b, s]) => [b, s.init] as const));
    }
    this.sessions.add(session);
    call.status = 200;
    sendBody(res, 200, 'application/json', resultResponse(msg.id, result), { 'mcp-session-id': session.id });
    this.ctx.finish(call);
  }

  private async request(
    req: IncomingMessage,
    res: ServerResponse,
    rule: CompiledRule,
    session: McpSession,
    msg: RpcRequest,
    raw: Buffer,
    state: GatewayState,
  ): Promise<void> {
    const method = msg.method;
    const call = this.newCall(req, rule, method, msg.id, session, msg.params?._meta);
    const namespaced = session.scope === undefined;
    const params = msg.params ?? {};

    if (method === 'ping') {
      if (!(await this.admit(call, res, msg.id, session, state))) return;
      return this.answer(call, res, msg.id, {});
    }
    if (LIST_METHODS.has(method)) {
      if (!(await this.admit(call, res, msg.id, session, state))) return;
      return this.list(call, res, rule, session, msg, raw, state);
    }
    if (method === 'logging/setLevel') {
      if (!(await this.admit(call, res, msg.id, session, state))) return;
      const ups = await Promise.all(this.scopeOf(session, rule).map((b) => session.upstream(b)));
      await Promise.allSettled(ups.map((u) => u?.call(method, params, LIST_TIMEOUT_MS)));
      return this.answer(call, res, msg.id, {});
    }

    // Everything else is routed to the one upstream that owns its target.
    let target: Target;
    let upstreamParams: Record<string, unknown> | undefined;
    let rewriteUris = false;
    try {
      const routed = this.route(method, params, session, rule);
      target = routed.target;
      upstreamParams = routed.params;
      rewriteUris = routed.rewriteUris;
    } catch (err) {
      return this.refuse(call, res, msg.id, toGatewayError(err));
    }
    call.target = target;
    call.upstream = target.server;
    if (method === 'tools/call' || method === 'prompts/get') call.args = params.arguments;
    if (!(await this.admit(call, res, msg.id, session, state))) return;

    const up = await session.upstream(target.server!);
    if (!up) {
      return this.refuse(call, res, msg.id, new GatewayError(Errors.UPSTREAM_UNAVAILABLE, `Upstream ${target.server} is unavailable`, { data: { upstream: target.server } }));
    }
    const forwarded: RpcRequest = upstreamParams === undefined ? msg : { ...msg, params: upstreamParams };
    const transform = namespaced && rewriteUris ? (text: string) => rewriteContentUris(text, target.server!) : undefined;
    this.forward(call, res, session, up, forwarded, upstreamParams === undefined ? raw : undefined, state, transform);
  }

  /** Maps a routed request to its owner: target, and the params to send upstream (undefined: unchanged). */
  private route(
    method: string,
    params: Record<string, unknown>,
    session: McpSession,
    rule: CompiledRule,
  ): { target: Target; params: Record<string, unknown> | undefined; rewriteUris: boolean } {
    const single = session.scope;
    const owns = (server: string): boolean => (single !== undefined ? server === single : rule.backends.some((b) => b.name === server));
    const byName = (name: unknown, kind: 'tool' | 'prompt', unknownErr: typeof Errors.MCP_UNKNOWN_TOOL): [Target, string] => {
      if (typeof name !== 'string' || name === '') throw new GatewayError(Errors.INVALID_PARAMS, `Invalid params: ${kind} name must be a non-empty string`);
      if (single !== undefined) return [{ kind, name, server: single, local: name }, name];
      const owner = this.names.resolve(name);
      if (!owner || !owns(owner[0])) throw new GatewayError(unknownErr, `Unknown ${kind}: ${name}`);
      return [{ kind, name, server: owner[0], local: owner[1] }, owner[1]];
    };
    const byUri = (uri: unknown): [Target, string] => {
      if (typeof uri !== 'string' || uri === '') throw new GatewayError(Errors.INVALID_PARAMS, 'Invalid params: uri must be a non-empty string');
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

  private scopeOf(session: McpSession, rule: CompiledRule): string[] {
    return session.scope !== undefined ? [session.scope] : rule.backends.map((b) => b.name);
  }

  private async list(call: Call, res: ServerResponse, rule: CompiledRule, session: McpSession, msg: RpcRequest, raw: Buffer, state: GatewayState): Promise<void> {
    const method = msg.method as ListMethod;
    const namespaced = session.scope === undefined;
    if (!namespaced && !state.pipeline.filtersLists) {
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
    this.answer(call, res, msg.id, result);
  }

  private answer(call: Call, res: ServerResponse, id: RpcId, result: unknown): void {
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
    const reply = new DownstreamReply(res, msg.id, state.snapshot.gateway.http.sseKeepAliveMs, transform, (outcome) => {
      session.inflight.delete(msg.id);
      if (outcome instanceof GatewayError) {
        call.error = outcome;
        call.outcome = outcomeOf(outcome);
        call.status = outcome.def.status;
      } else {
        call.status = 200;
        if (outcome === 'rpc-error') call.outcome = 'error';
      }
      this.ctx.finish(call);
    });
    const handle = up.request(msg, raw, reply);
    session.inflight.set(msg.id, {
      downstreamId: msg.id,
      cancel: (reason) => {
        handle.cancel(reason);
        reply.fail(new GatewayError(Errors.REQUEST_CANCELLED));
      },
    });
    res.once('close', () => {
      // The client went away before the answer: stop relaying (session era: a disconnect is not a cancellation,
      // so the upstream is not told to stop).
      if (!reply.done) {
        handle.cancel();
        reply.fail(new GatewayError(Errors.REQUEST_CANCELLED, 'Client disconnected before the response'));
      }
    });
  }

  private async notification(req: IncomingMessage, res: ServerResponse, rule: CompiledRule, session: McpSession, msg: RpcNotification, state: GatewayState): Promise<void> {
    const call = this.newCall(req, rule, msg.method, undefined, session, msg.params?._meta);
    if (!(await this.admit(call, res, null, session, state))) return;
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

  private async get(req: IncomingMessage, res: ServerResponse, rule: CompiledRule, scope: string | undefined, state: GatewayState): Promise<void> {
    if (!accepts(req.headers.accept, 'text/event-stream')) {
      return writeError(res, null, new GatewayError(Errors.NOT_ACCEPTABLE, 'Not Acceptable: Accept must include text/event-stream'));
    }
    const session = this.sessionFor(req, res, rule, scope);
    if (!session) return;
    const call = this.newCall(req, rule, 'mcp/stream', undefined, session);
    if (!(await this.admit(call, res, null, session, state))) return;
    if (session.hasStream) return this.refuse(call, res, null, new GatewayError(Errors.MCP_STREAM_CONFLICT));
    session.hasStream = true;
    const sse = new SseWriter(res, { 'mcp-session-id': session.id }, state.snapshot.gateway.http.sseKeepAliveMs);
    this.streams.add(sse);
    const unsubscribe: Array<() => void> = [];
    sse.whenClosed(() => {
      this.streams.delete(sse);
      session.hasStream = false;
      for (const u of unsubscribe) u();
      call.status = 200;
      this.ctx.finish(call);
    });
    const namespaced = scope === undefined;
    const backends = this.scopeOf(session, rule);
    await Promise.all(
      backends.map(async (backend) => {
        const up = await session.upstream(backend);
        if (!up || !sse.isOpen) return;
        unsubscribe.push(
          up.listen({
            message: (m) => {
              sse.send(namespaced ? rewriteNotificationUri(m, backend) : m);
            },
          }),
        );
      }),
    );
  }

  private sessionFor(req: IncomingMessage, res: ServerResponse, rule: CompiledRule, scope: string | undefined): McpSession | undefined {
    const sid = req.headers['mcp-session-id'];
    if (typeof sid !== 'string' || sid === '') {
      writeError(res, null, new GatewayError(Errors.MCP_SESSION_REQUIRED));
      return undefined;
    }
    const session = this.sessions.get(sid);
    if (!session || session.route !== rule.route.name || session.mount !== rule.mount || session.scope !== scope) {
      writeError(res, null, new GatewayError(Errors.MCP_SESSION_NOT_FOUND));
      return undefined;
    }
    return session;
  }

  // ---- DELETE -------------------------------------------------------------------------------------------------

  private async delete(req: IncomingMessage, res: ServerResponse, rule: CompiledRule, scope: string | undefined, state: GatewayState): Promise<void> {
    const session = this.sessionFor(req, res, rule, scope);
    if (!session) return;
    const call = this.newCall(req, rule, 'mcp/delete', undefined, session);
    if (!(await this.admit(call, res, null, session, state))) return;
    this.sessions.delete(session.id);
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
    await this.sessions.closeAll();
  }
}

/** Writes a JSON-RPC error: in-band errors answering a request go out as HTTP 200, the others with their status. */
export function writeError(res: ServerResponse, id: RpcId | null, err: GatewayError, extra?: OutgoingHttpHeaders): void {
  const status = err.def.inBand && id !== null ? 200 : err.def.status;
  const headers: OutgoingHttpHeaders = { ...err.headers, ...extra };
  sendBody(res, status, 'application/json', errorResponse(id, err), headers);
}

/**
 * Relays one request's answer downstream: a single JSON body when the upstream's first message is the response,
 * otherwise an SSE stream carrying interim messages (progress, logs) and then the response.
 */
class DownstreamReply implements ReplySink {
  done = false;
  private sse: SseWriter | undefined;
  private readonly res: ServerResponse;
  private readonly id: RpcId;
  private readonly keepAliveMs: number;
  private readonly transform: ((final: string) => string) | undefined;
  private readonly onDone: (outcome: 'ok' | 'rpc-error' | GatewayError) => void;

  constructor(
    res: ServerResponse,
    id: RpcId,
    keepAliveMs: number,
    transform: ((final: string) => string) | undefined,
    onDone: (outcome: 'ok' | 'rpc-error' | GatewayError) => void,
  ) {
    this.res = res;
    this.id = id;
    this.keepAliveMs = keepAliveMs;
    this.transform = transform;
    this.onDone = onDone;
  }

  interim(message: string): void {
    if (this.done) return;
    this.sse ??= new SseWriter(this.res, {}, this.keepAliveMs);
    this.sse.send(message);
  }

  final(message: string | Buffer): void {
    if (this.done) return;
    this.done = true;
    let body: string | Buffer = message;
    if (this.transform) body = this.transform(message.toString('utf8'));
    const isError = responseIsError(body);
    if (this.sse) {
      this.sse.send(typeof body === 'string' ? body : body.toString('utf8'));
      this.sse.end();
    } else sendBody(this.res, 200, 'application/json', body);
    this.onDone(isError ? 'rpc-error' : 'ok');
  }

  fail(err: GatewayError): void {
    if (this.done) return;
    this.done = true;
    if (this.sse) {
      this.sse.send(errorResponse(this.id, err));
      this.sse.end();
    } else writeError(this.res, this.id, err);
    this.onDone(err);
  }
}

/** Whether a serialized response is a JSON-RPC error (decided from its first top-level keys; bounded cost). */
function responseIsError(body: string | Buffer): boolean {
  // The decisive key comes first or after "jsonrpc"/"id" in every SDK's output; a prefix is enough to find it.
  const head = typeof body === 'string' ? body.slice(0, 256) : body.subarray(0, 256).toString('latin1');
  return peekOutcome(head) === 'error';
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

