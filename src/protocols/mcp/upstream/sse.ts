/**
 * An upstream MCP server on the legacy HTTP+SSE transport (2024-11-05). Each downstream session gets its own SSE
 * connection (so the upstream's state and ids stay per session); messages are POSTed to the URL the `endpoint`
 * event names, and every answer arrives on the stream, matched to its request by id.
 */
import type { Dispatcher } from 'undici';
import { createParser } from 'eventsource-parser';
import { Errors, GatewayError } from '../../../core/errors.ts';
import type { ResolvedBackend } from '../../../config/load.ts';
import type { GatewaySpec } from '../../../config/schema.ts';
import { withCredential, type UpstreamCredential } from '../../../upstream/credentials.ts';
import { createPool, upstreamError } from '../../../upstream/pools.ts';
import type { Logger } from '../../../telemetry/logger.ts';
import { peekId, peekKind, type RpcId, type RpcNotification, type RpcRequest } from '../jsonrpc.ts';
import type { ClientHello, InflightHandle, InitializeResult, McpUpstream, MessageSink, ReplySink, UpstreamSession, UpstreamStatus } from './types.ts';
import { callUpstream } from './call.ts';

export class SseMcpUpstream implements McpUpstream {
  readonly name: string;
  readonly transport = 'sse' as const;
  readonly fingerprint: string;
  /** One pool per upstream; carries Tollgate's own credential when the backend has one. */
  readonly pool: Dispatcher;
  readonly url: URL;
  readonly headers: Readonly<Record<string, string>>;
  readonly timeouts: GatewaySpec['timeouts'];
  readonly log: Logger;
  private lastError: string | undefined = 'not contacted yet';
  private readonly sessions = new Set<SseUpstreamSession>();

  constructor(backend: ResolvedBackend, gateway: GatewaySpec, log: Logger, credential?: UpstreamCredential) {
    this.name = backend.name;
    this.fingerprint = backend.fingerprint;
    this.url = new URL(backend.spec.url!);
    this.timeouts = { ...gateway.timeouts, ...backend.spec.timeouts };
    const pool = createPool(this.url.origin, {
      connections: backend.spec.pool.connections,
      keepAliveMs: backend.spec.pool.keepAliveMs,
      connectMs: this.timeouts.connectMs,
      headersMs: this.timeouts.headersMs,
      bodyIdleMs: this.timeouts.bodyIdleMs,
    });
    this.pool = credential ? withCredential(pool, credential) : pool;
    this.headers = backend.headers;
    this.log = log;
  }

  status(): UpstreamStatus {
    return this.lastError === undefined ? { up: true } : { up: false, detail: this.lastError };
  }

  async open(hello: ClientHello): Promise<UpstreamSession> {
    const s = new SseUpstreamSession(this, hello);
    try {
      await s.connect();
      this.lastError = undefined;
    } catch (err) {
      this.lastError = (err as Error).message;
      s.abort();
      throw err;
    }
    this.sessions.add(s);
    s.onClose = () => this.sessions.delete(s);
    return s;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.sessions].map((s) => s.close()));
    await this.pool.close();
  }
}

interface Pending {
  readonly sink: ReplySink;
  readonly progressToken: string | number | undefined;
}


class SseUpstreamSession implements UpstreamSession {
  readonly backend: string;
  init!: InitializeResult;
  alive = false;
  onClose: (() => void) | undefined;
  private readonly up: SseMcpUpstream;
  private readonly hello: ClientHello;
  private readonly controller = new AbortController();
  private postPath = '';
  private readonly pending = new Map<RpcId, Pending>();
  private readonly listeners = new Set<MessageSink>();

  constructor(up: SseMcpUpstream, hello: ClientHello) {
    this.up = up;
    this.backend = up.name;
    this.hello = hello;
  }

  async connect(): Promise<void> {
    let res: Dispatcher.ResponseData;
    try {
      res = await this.up.pool.request({
        method: 'GET',
        path: `${this.up.url.pathname}${this.up.url.search}`,
        headers: { ...this.up.headers, accept: 'text/event-stream' },
        signal: this.controller.signal,
        bodyTimeout: 0,
        headersTimeout: this.up.timeouts.initializeMs,
      });
    } catch (err) {
      throw upstreamError(this.backend, err);
    }
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new GatewayError(Errors.UPSTREAM_BAD_RESPONSE, `Upstream ${this.backend} answered HTTP ${res.statusCode} to the SSE GET`, { data: { upstream: this.backend } });
    }
    const endpoint = new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new GatewayError(Errors.UPSTREAM_TIMEOUT, `Upstream ${this.backend} sent no endpoint event`)), this.up.timeouts.initializeMs);
      this.read(res, (url) => {
        clearTimeout(timer);
        resolve(url);
      }).finally(() => {
        clearTimeout(timer);
        reject(new GatewayError(Errors.UPSTREAM_UNAVAILABLE, `Upstream ${this.backend} closed its SSE stream`, { data: { upstream: this.backend } }));
      });
    });
    const target = new URL(await endpoint, this.up.url);
    if (target.origin !== this.up.url.origin) throw new GatewayError(Errors.UPSTREAM_BAD_RESPONSE, `Upstream ${this.backend} named an endpoint on another origin`);
    this.postPath = `${target.pathname}${target.search}`;
    this.alive = true;
    const init = await this.call('initialize', { protocolVersion: this.hello.protocolVersion, capabilities: this.hello.capabilities, clientInfo: this.hello.clientInfo }, this.up.timeouts.initializeMs);
    if (typeof init.protocolVersion !== 'string') throw new GatewayError(Errors.UPSTREAM_BAD_RESPONSE, `Upstream ${this.backend} refused initialize`);
    this.init = init as unknown as InitializeResult;
    this.send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));
  }

  /** Reads the stream until it ends: the endpoint event, then messages. */
  private async read(res: Dispatcher.ResponseData, onEndpoint: (url: string) => void): Promise<void> {
    const parser = createParser({
      onEvent: (e) => {
        if (e.event === 'endpoint') onEndpoint(e.data.trim());
        else if ((e.event === undefined || e.event === 'message') && e.data.length > 0) this.onMessage(e.data);
      },
    });
    res.body.setEncoding('utf8');
    try {
      for await (const chunk of res.body) parser.feed(chunk as string);
    } catch {
      // aborted or broken: handled below
    }
    this.gone();
  }

  private onMessage(data: string): void {
    if (peekKind(data) === 'response') {
      const id = peekId(data);
      const p = id === undefined || id === null ? undefined : this.pending.get(id);
      if (p && id !== undefined && id !== null) {
        this.pending.delete(id);
        p.sink.final(data);
      }
      return;
    }
    // Progress goes to the request that asked for it; other messages (server requests, logs) belong to this
    // session: to the one request in flight if there is exactly one, otherwise to the server stream.
    if (data.includes('notifications/progress')) {
      // The token compared as a value: a substring test matched token 1 in `"progress":1`.
      const token = progressTokenOf(data);
      if (token !== undefined) {
        for (const p of this.pending.values()) if (p.progressToken === token) return p.sink.interim(data);
      }
    }
    if (this.pending.size === 1) return this.pending.values().next().value!.sink.interim(data);
    for (const l of this.listeners) l.message(data);
  }

  private gone(): void {
    if (!this.alive && this.pending.size === 0) return;
    this.alive = false;
    const err = new GatewayError(Errors.UPSTREAM_UNAVAILABLE, `Upstream ${this.backend} closed its SSE stream`, { data: { upstream: this.backend } });
    for (const p of this.pending.values()) p.sink.fail(err);
    this.pending.clear();
    this.onClose?.();
  }

  private send(body: string | Buffer, onError?: (err: GatewayError) => void): void {
    this.up.pool
      .request({ method: 'POST', path: this.postPath, headers: { ...this.up.headers, 'content-type': 'application/json' }, body })
      .then(async (res) => {
        await res.body.dump();
        if (res.statusCode >= 300) throw new Error(`HTTP ${res.statusCode}`);
      })
      .catch((err: unknown) => onError?.(upstreamError(this.backend, err)));
  }

  request(msg: RpcRequest, raw: Buffer | undefined, sink: ReplySink): InflightHandle {
    const meta = msg.params?._meta as { progressToken?: string | number } | undefined;
    this.pending.set(msg.id, { sink, progressToken: meta?.progressToken });
    this.send(raw ?? JSON.stringify(msg), (err) => {
      if (this.pending.delete(msg.id)) sink.fail(err);
    });
    return {
      downstreamId: msg.id,
      cancel: (reason) => {
        if (!this.pending.delete(msg.id)) return;
        if (reason !== undefined) this.send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: msg.id, reason } }));
      },
    };
  }

  call(method: string, params: Record<string, unknown> | undefined, timeoutMs: number, signal?: AbortSignal): Promise<Record<string, unknown>> {
    return callUpstream(this, method, params, timeoutMs, signal);
  }

  notify(msg: RpcNotification): void {
    if (msg.method === 'notifications/initialized') return;
    this.send(JSON.stringify(msg));
  }

  respond(response: string): void {
    this.send(response);
  }

  listen(sink: MessageSink): () => void {
    this.listeners.add(sink);
    return () => this.listeners.delete(sink);
  }

  abort(): void {
    this.controller.abort();
  }

  async close(): Promise<void> {
    this.alive = false;
    this.controller.abort();
    this.onClose?.();
  }
}

/** The `params.progressToken` of a progress notification's JSON text, or undefined. */
function progressTokenOf(data: string): unknown {
  try {
    const m = JSON.parse(data) as { method?: unknown; params?: { progressToken?: unknown } | null } | null;
    return m?.method === 'notifications/progress' ? m.params?.progressToken : undefined;
  } catch {
    return undefined;
  }
}
