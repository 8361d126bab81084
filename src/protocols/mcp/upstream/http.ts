/**
 * An upstream MCP server over Streamable HTTP (session era). Each downstream session gets its own upstream session,
 * so request ids and progress tokens never collide and pass through unchanged; the JSON result of a tools/call is
 * forwarded as the bytes the upstream sent.
 */
import type { Dispatcher } from 'undici';
import type { ParamHeader } from '../modern.ts';
import { Errors, GatewayError } from '../../../core/errors.ts';
import type { ResolvedBackend } from '../../../config/load.ts';
import type { GatewaySpec } from '../../../config/schema.ts';
import { createPool, isConnectionError, upstreamError } from '../../../upstream/pools.ts';
import { followStream } from './follow.ts';
import { OnceSink } from './once-sink.ts';
import { withCredential, type UpstreamCredential } from '../../../upstream/credentials.ts';
import type { Logger } from '../../../telemetry/logger.ts';
import type { RpcId, RpcNotification, RpcRequest } from '../jsonrpc.ts';
import type {
  ClientHello,
  InflightHandle,
  InitializeResult,
  McpUpstream,
  MessageSink,
  ReplySink,
  UpstreamResumeState,
  UpstreamSession,
  UpstreamStatus,
} from './types.ts';
import { ModernHttpSession, discover } from './http-modern.ts';
import { callUpstream } from './call.ts';
import { firstResponse, relayResponse } from './http-response.ts';
import { UpstreamSessionState } from './session-state.ts';

/**
 * Methods that only read: safe to send again when the first attempt never reached the upstream (a stale keep-alive
 * connection reset). tools/call is never retried: a tool may have side effects whatever its annotations claim.
 */
const IDEMPOTENT = new Set([
  'initialize',
  'ping',
  'tools/list',
  'prompts/list',
  'prompts/get',
  'resources/list',
  'resources/templates/list',
  'resources/read',
  'completion/complete',
  'logging/setLevel',
]);

export class HttpMcpUpstream implements McpUpstream {
  readonly name: string;
  readonly transport = 'streamable-http' as const;
  readonly fingerprint: string;
  /** The backend's pool; wrapped so each request carries Tollgate's own credential when the backend has one. */
  readonly pool: Dispatcher;
  /** Long-lived streams' own pool (same credential): see the constructor. */
  readonly streamPool: Dispatcher;
  private readonly credential: UpstreamCredential | undefined;
  readonly path: string;
  readonly baseHeaders: Readonly<Record<string, string>>;
  readonly timeouts: GatewaySpec['timeouts'];
  readonly log: Logger;
  /** Which protocol era the server speaks: learned from the first open (server/discover probe). */
  era: 'session' | 'modern' | undefined;
  private lastError: string | undefined = 'not contacted yet';
  private lastOkAt = 0;
  private readonly sessions = new Set<HttpUpstreamSession>();
  /** 2026-07-28 upstreams: x-mcp-header declarations by tool name (learned from tools/list, shared by sessions). */
  readonly toolHeaders = new Map<string, ParamHeader[]>();
  /** Set once the tools of a 2026 upstream were listed (their x-mcp-header declarations are then known). */
  toolsListed: Promise<void> | undefined;
  /** Requests in flight to this upstream, and their bound (the Backend's circuitBreaker.maxRequests). */
  private inFlight = 0;
  private readonly maxRequests: number;

  constructor(backend: ResolvedBackend, gateway: GatewaySpec, log: Logger, credential?: UpstreamCredential) {
    this.name = backend.name;
    this.fingerprint = backend.fingerprint;
    const url = new URL(backend.spec.url!);
    this.path = `${url.pathname}${url.search}`;
    this.timeouts = { ...gateway.timeouts, ...backend.spec.timeouts };
    const pool = createPool(url.origin, {
      connections: backend.spec.pool.connections,
      keepAliveMs: backend.spec.pool.keepAliveMs,
      connectMs: this.timeouts.connectMs,
      headersMs: this.timeouts.headersMs,
      bodyIdleMs: this.timeouts.bodyIdleMs,
    });
    this.credential = credential;
    this.pool = credential ? withCredential(pool, credential) : pool;
    // Long-lived streams (server streams, listen subscriptions) get their own pool: with HTTP/1.1 each holds a
    // connection for its lifetime, and they must never starve the request pool.
    const streamPool = createPool(url.origin, {
      connections: 4096,
      keepAliveMs: backend.spec.pool.keepAliveMs,
      connectMs: this.timeouts.connectMs,
      headersMs: this.timeouts.headersMs,
      bodyIdleMs: 0,
    });
    this.streamPool = credential ? withCredential(streamPool, credential) : streamPool;
    this.baseHeaders = backend.headers;
    this.log = log;
    this.maxRequests = backend.spec.circuitBreaker.maxRequests;
  }

  /**
   * Takes an in-flight slot for one request (a hanging upstream must not hold every call the gateway admits): past
   * circuitBreaker.maxRequests the request fails at once with TG_UPSTREAM_OVERLOADED (nothing is queued). Returns
   * the sink to relay through (it frees the slot when the exchange settles), or undefined when refused.
   */
  enter(sink: ReplySink, onFinal?: (message: string | Buffer) => void): OnceSink | undefined {
    if (this.inFlight >= this.maxRequests) {
      sink.fail(
        new GatewayError(Errors.UPSTREAM_OVERLOADED, `Upstream ${this.name} has ${this.inFlight} requests in flight (circuit breaker maxRequests ${this.maxRequests})`, {
          data: { upstream: this.name },
          headers: { 'retry-after': '1' },
        }),
      );
      return undefined;
    }
    this.inFlight++;
    return new OnceSink(sink, onFinal, () => this.inFlight--);
  }

  status(): UpstreamStatus {
    return this.lastError === undefined ? { up: true } : { up: false, detail: this.lastError };
  }

  markOk(): void {
    this.lastError = undefined;
    this.lastOkAt = Date.now();
  }

  markFailed(err: unknown): void {
    const message = err instanceof GatewayError ? err.message : ((err as Error).message ?? String(err));
    if (this.lastError !== message) this.log.warn({ upstream: this.name, err: message }, 'upstream unreachable');
    this.lastError = message;
  }

  /** Checks reachability without a session: any HTTP answer proves the server is there. */
  async probe(): Promise<void> {
    if (Date.now() - this.lastOkAt < 5_000) return;
    try {
      await this.credential?.ready();
      const res = await this.pool.request({
        method: 'POST',
        path: this.path,
        headers: { ...this.baseHeaders, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: '{"jsonrpc":"2.0","id":"tollgate-probe","method":"ping"}',
        headersTimeout: this.timeouts.initializeMs,
      });
      await res.body.dump();
      if (res.statusCode >= 500) throw new Error(`HTTP ${res.statusCode}`);
      this.markOk();
    } catch (err) {
      this.markFailed(upstreamError(this.name, err));
    }
  }

  async open(hello: ClientHello): Promise<UpstreamSession> {
    if (this.era !== 'session') {
      // A 2026-07-28 server answers server/discover; a session-era one refuses it. The verdict is cached.
      let found: Awaited<ReturnType<typeof discover>>;
      try {
        found = await discover(this, hello);
      } catch (err) {
        this.markFailed(err);
        throw err;
      }
      if (found) {
        this.era = 'modern';
        this.markOk();
        return new ModernHttpSession(this, hello, found);
      }
      this.era = 'session';
    }
    const session = new HttpUpstreamSession(this, hello);
    try {
      await this.credential?.ready();
      await session.initialize();
      this.markOk();
    } catch (err) {
      this.markFailed(err);
      throw err;
    }
    this.track(session);
    return session;
  }

  private track(session: HttpUpstreamSession): void {
    this.sessions.add(session);
    session.onClose = () => this.sessions.delete(session);
  }

  /** Continues an upstream session another replica opened: its id and initialize result come from the token. */
  async resume(hello: ClientHello, state: UpstreamResumeState): Promise<UpstreamSession> {
    this.era = 'session';
    const session = new HttpUpstreamSession(this, hello);
    session.adopt(state);
    this.track(session);
    return session;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.sessions].map((s) => s.close()));
    await Promise.allSettled([this.pool.close(), this.streamPool.destroy()]);
  }
}

let internalIds = 0;

class HttpUpstreamSession implements UpstreamSession {
  readonly backend: string;
  init!: InitializeResult;
  alive = true;
  onClose: (() => void) | undefined;
  private readonly up: HttpMcpUpstream;
  private readonly hello: ClientHello;
  private sessionId: string | undefined;
  private headers: Record<string, string> = {};
  private reinitializing: Promise<void> | undefined;
  /** Level and subscriptions set on this session: a re-created upstream session is set the same way. */
  private readonly set = new UpstreamSessionState();

  constructor(up: HttpMcpUpstream, hello: ClientHello) {
    this.up = up;
    this.backend = up.name;
    this.hello = hello;
  }

  private buildHeaders(): void {
    const h: Record<string, string> = { ...this.up.baseHeaders, 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    if (this.sessionId !== undefined) h['mcp-session-id'] = this.sessionId;
    if (this.init) h['mcp-protocol-version'] = this.init.protocolVersion;
    this.headers = h;
  }

  async initialize(): Promise<void> {
    this.sessionId = undefined;
    this.buildHeaders();
    const id = `tollgate-init-${++internalIds}`;
    const body = JSON.stringify({
      jsonrpc: '2.0',
      id,
      method: 'initialize',
      params: { protocolVersion: this.hello.protocolVersion, capabilities: this.hello.capabilities, clientInfo: this.hello.clientInfo },
    });
    let res: Dispatcher.ResponseData;
    try {
      res = await this.up.pool.request({
        method: 'POST',
        path: this.up.path,
        headers: this.headers,
        body,
        headersTimeout: this.up.timeouts.initializeMs,
      });
    } catch (err) {
      throw upstreamError(this.backend, err);
    }
    const sid = res.headers['mcp-session-id'];
    const message = await firstResponse(res, id, this.backend);
    const parsed = JSON.parse(message) as { result?: InitializeResult; error?: { message: string } };
    if (!parsed.result || typeof parsed.result.protocolVersion !== 'string') {
      throw new GatewayError(Errors.UPSTREAM_BAD_RESPONSE, `Upstream ${this.backend} refused initialize: ${parsed.error?.message ?? 'no result'}`, {
        data: { upstream: this.backend },
      });
    }
    this.init = parsed.result;
    this.sessionId = typeof sid === 'string' ? sid : undefined;
    this.buildHeaders();
    await this.post(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));
    for (const m of this.set.replay(() => `tollgate-replay-${++internalIds}`)) this.send(JSON.stringify(m));
  }

  /** Takes over an upstream session opened elsewhere (see HttpMcpUpstream.resume). */
  adopt(state: UpstreamResumeState): void {
    this.sessionId = state.id;
    this.init = { protocolVersion: state.v, capabilities: state.c, serverInfo: { name: this.backend, version: '0' } };
    this.buildHeaders();
  }

  resumeState(): UpstreamResumeState | undefined {
    return this.sessionId === undefined ? undefined : { id: this.sessionId, v: this.init.protocolVersion, c: this.init.capabilities };
  }

  /** Re-creates the upstream session once (the upstream forgot it: restarted or expired). */
  private reinitialize(): Promise<void> {
    this.reinitializing ??= this.initialize().finally(() => {
      this.reinitializing = undefined;
    });
    return this.reinitializing;
  }

  private async post(body: string | Buffer, signal?: AbortSignal): Promise<Dispatcher.ResponseData> {
    return this.up.pool.request({ method: 'POST', path: this.up.path, headers: this.headers, body, signal: signal ?? null });
  }

  request(msg: RpcRequest, raw: Buffer | undefined, sink: ReplySink): InflightHandle {
    const guarded = this.up.enter(sink);
    if (guarded === undefined) return { downstreamId: msg.id, cancel: () => {} };
    this.set.note(msg.method, msg.params);
    const controller = new AbortController();
    const body = raw ?? JSON.stringify(msg);
    this.exchange(msg.id, body, guarded, controller.signal, true).catch((err: unknown) => {
      if (!guarded.done && IDEMPOTENT.has(msg.method) && isConnectionError(err)) {
        this.exchange(msg.id, body, guarded, controller.signal, false).catch((again: unknown) => guarded.fail(upstreamError(this.backend, again)));
        return;
      }
      guarded.fail(upstreamError(this.backend, err));
    });
    return {
      downstreamId: msg.id,
      cancel: (reason) => {
        if (reason !== undefined) this.notify({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: msg.id, reason } });
        guarded.stop();
        controller.abort();
      },
    };
  }

  private async exchange(id: RpcId, body: string | Buffer, sink: ReplySink, signal: AbortSignal, mayRetry: boolean): Promise<void> {
    const res = await this.post(body, signal);
    const status = res.statusCode;
    if (status === 404 && this.sessionId !== undefined && mayRetry) {
      await res.body.dump();
      this.up.log.info({ upstream: this.backend }, 'upstream session expired; re-initializing');
      await this.reinitialize();
      return this.exchange(id, body, sink, signal, false);
    }
    // An SSE answer the upstream closes before the response is resumed with GET + Last-Event-ID (its events replayed).
    await relayResponse(this.up, res, id, sink, (lastEventId) => this.streamGet(signal, lastEventId, this.up.timeouts.bodyIdleMs));
  }

  /** GET of an event stream: the session's own (bodyTimeout 0: it may stay quiet), or a broken one resumed. */
  private streamGet(signal: AbortSignal, lastEventId: string | undefined, bodyTimeout: number): Promise<Dispatcher.ResponseData> {
    const headers = { ...this.headers, accept: 'text/event-stream', ...(lastEventId !== undefined ? { 'last-event-id': lastEventId } : {}) };
    return this.up.streamPool.request({ method: 'GET', path: this.up.path, headers, signal, bodyTimeout, headersTimeout: this.up.timeouts.headersMs });
  }

  call(method: string, params: Record<string, unknown> | undefined, timeoutMs: number, signal?: AbortSignal): Promise<Record<string, unknown>> {
    return callUpstream(this, method, params, timeoutMs, signal);
  }

  notify(msg: RpcNotification): void {
    this.send(JSON.stringify(msg));
  }

  respond(response: string): void {
    this.send(response);
  }

  private send(body: string): void {
    this.post(body)
      .then((res) => res.body.dump())
      .catch((err: unknown) => this.up.log.debug({ upstream: this.backend, err: (err as Error).message }, 'message not delivered upstream'));
  }

  listen(sink: MessageSink): () => void {
    return followStream({
      upstream: this.backend,
      log: this.up.log,
      open: async (signal, lastEventId) => {
        const res = await this.streamGet(signal, lastEventId, 0);
        if (res.statusCode === 405) {
          await res.body.dump();
          return 'stop'; // this server has no server-initiated stream
        }
        if (res.statusCode === 404 && this.sessionId !== undefined) {
          await res.body.dump();
          await this.reinitialize();
          return 'again';
        }
        if (res.statusCode !== 200) {
          await res.body.dump();
          throw new Error(`HTTP ${res.statusCode}`);
        }
        return res;
      },
      onData: (data) => {
        sink.message(data);
        return false;
      },
    });
  }

  async close(): Promise<void> {
    if (!this.alive) return;
    this.alive = false;
    this.onClose?.();
    if (this.sessionId === undefined) return;
    try {
      const res = await this.up.pool.request({ method: 'DELETE', path: this.up.path, headers: this.headers, headersTimeout: 5_000 });
      await res.body.dump();
    } catch {
      // The upstream session expires on its own.
    }
  }
}
