/**
 * An upstream MCP server over stdio: one process, spawned once and shared by every downstream session. Request ids
 * and progress tokens are mapped to gateway-unique ones on the way in and spliced back on the way out. Unsolicited
 * messages are delivered only where they cannot leak one tenant's data to another: list_changed goes to everyone,
 * resources/updated only to sessions that subscribed to that URI, logging stays in the gateway's log.
 */
import { resolve } from 'node:path';
import { Errors, GatewayError } from '../../../core/errors.ts';
import type { ResolvedBackend } from '../../../config/load.ts';
import type { GatewaySpec } from '../../../config/schema.ts';
import { StdioProcess } from '../../../upstream/stdio.ts';
import type { Logger } from '../../../telemetry/logger.ts';
import { errorResponse, notification, peekId, peekKind, spliceId, type RpcId, type RpcNotification, type RpcRequest } from '../jsonrpc.ts';
import { LATEST_SESSION_VERSION } from '../versions.ts';
import type {
  ClientHello,
  InflightHandle,
  InitializeResult,
  McpUpstream,
  MessageSink,
  ReplySink,
  UpstreamSession,
  UpstreamStatus,
} from './types.ts';
import { callUpstream } from './call.ts';

interface Pending {
  readonly sink: ReplySink;
  readonly downstreamId: RpcId;
  readonly progressToken: string | undefined;
}

interface ProgressRoute {
  readonly sink: ReplySink;
  readonly original: string | number;
}

const LIST_CHANGED = new Set([
  'notifications/tools/list_changed',
  'notifications/prompts/list_changed',
  'notifications/resources/list_changed',
]);

export class StdioMcpUpstream implements McpUpstream {
  readonly name: string;
  readonly transport = 'stdio' as const;
  readonly fingerprint: string;
  private readonly proc: StdioProcess;
  private readonly log: Logger;
  private readonly initTimeoutMs: number;
  private init: InitializeResult | undefined;
  private ready!: Promise<InitializeResult>;
  private settleReady!: (r: InitializeResult) => void;
  private readonly pending = new Map<number, Pending>();
  private readonly progress = new Map<string, ProgressRoute>();
  private readonly views = new Set<StdioSessionView>();
  private readonly subscriptions = new Map<string, number>();
  private nextId = 1;
  private handshakeId = 0;
  private generation = 0;

  constructor(backend: ResolvedBackend, gateway: GatewaySpec, configDir: string, log: Logger) {
    this.name = backend.name;
    this.fingerprint = backend.fingerprint;
    this.log = log;
    this.initTimeoutMs = backend.spec.timeouts?.initializeMs ?? gateway.timeouts.initializeMs;
    const stdio = backend.spec.stdio!;
    this.resetReady();
    this.proc = new StdioProcess({
      name: backend.name,
      command: stdio.command,
      args: stdio.args,
      env: backend.env,
      cwd: stdio.cwd === undefined ? undefined : resolve(configDir, stdio.cwd),
      log,
    });
    this.proc.on('spawn', (generation) => this.handshake(generation));
    this.proc.on('exit', () => this.onExit());
    this.proc.on('line', (line) => this.onLine(line));
    this.proc.start();
  }

  private resetReady(): void {
    this.ready = new Promise((r) => {
      this.settleReady = r;
    });
    this.ready.catch(() => {});
  }

  /** The child's pid, for operators (and tests that kill it). */
  get pid(): number | undefined {
    return this.proc.pid;
  }

  status(): UpstreamStatus {
    if (this.init && this.proc.running) return { up: true };
    return { up: false, detail: this.proc.lastError ?? 'starting' };
  }

  private handshake(generation: number): void {
    this.generation = generation;
    const id = this.nextId++;
    this.handshakeId = id;
    this.proc.send(
      JSON.stringify({
        jsonrpc: '2.0',
        id,
        method: 'initialize',
        params: {
          protocolVersion: LATEST_SESSION_VERSION,
          // A shared connection declares no client capabilities: server-to-client requests could not be attributed
          // to one downstream client.
          capabilities: {},
          clientInfo: { name: 'tollgate', version: '0.1.0' },
        },
      }),
    );
  }

  private onExit(): void {
    const wasReady = this.init !== undefined;
    this.init = undefined;
    if (wasReady) this.resetReady();
    const err = new GatewayError(Errors.UPSTREAM_UNAVAILABLE, `Upstream ${this.name} exited`, { data: { upstream: this.name } });
    for (const p of this.pending.values()) p.sink.fail(err);
    this.pending.clear();
    this.progress.clear();
    this.subscriptions.clear();
  }

  private onLine(line: string): void {
    const kind = peekKind(line);
    if (kind === 'response') return this.onResponse(line);
    let msg: { id?: RpcId; method?: string; params?: Record<string, unknown> };
    try {
      msg = JSON.parse(line) as typeof msg;
    } catch {
      this.log.warn({ upstream: this.name, line: line.slice(0, 200) }, 'upstream wrote a non-JSON line on stdout');
      return;
    }
    if (typeof msg.method !== 'string') return;
    if (msg.id !== undefined) return this.onServerRequest(msg.id, msg.method);
    this.onNotification(msg.method, msg.params ?? {}, line);
  }

  private onResponse(line: string): void {
    const id = peekId(line);
    if (typeof id !== 'number') return;
    if (id === this.handshakeId) {
      this.handshakeId = 0;
      const parsed = JSON.parse(line) as { result?: InitializeResult; error?: { message: string } };
      if (!parsed.result) {
        this.log.error({ upstream: this.name, err: parsed.error?.message }, 'stdio upstream refused initialize');
        return;
      }
      const first = this.generation === 1;
      this.init = parsed.result;
      this.proc.send(notification('notifications/initialized'));
      this.settleReady(parsed.result);
      if (!first) {
        // A restarted server may offer different lists: tell every session.
        const changed = notification('notifications/tools/list_changed');
        for (const v of this.views) v.deliver(changed);
      }
      return;
    }
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    if (p.progressToken !== undefined) this.progress.delete(p.progressToken);
    p.sink.final(spliceId(line, p.downstreamId));
  }

  /**
   * Server-to-client requests on a shared process are refused (ping is answered here). stdio carries no link from
   * a server request to the client request that caused it, so any routing would be a guess, and a wrong guess sends
   * one tenant's prompt or form to another tenant's client. The handshake declares no client capabilities, so a
   * conforming server never asks; servers that need sampling or elicitation belong behind Streamable HTTP or SSE,
   * where each client session has its own upstream session and requests are routed exactly.
   */
  private onServerRequest(id: RpcId, method: string): void {
    if (method === 'ping') {
      this.proc.send(JSON.stringify({ jsonrpc: '2.0', id, result: {} }));
      return;
    }
    this.proc.send(
      errorResponse(
        id,
        new GatewayError(Errors.METHOD_NOT_FOUND, `${method} is not available through a shared stdio upstream`),
      ),
    );
  }

  private onNotification(method: string, params: Record<string, unknown>, line: string): void {
    if (method === 'notifications/progress') {
      const token = params.progressToken;
      const route = typeof token === 'string' ? this.progress.get(token) : undefined;
      if (route) route.sink.interim(JSON.stringify({ jsonrpc: '2.0', method, params: { ...params, progressToken: route.original } }));
      return;
    }
    if (LIST_CHANGED.has(method)) {
      for (const v of this.views) v.deliver(line);
      return;
    }
    if (method === 'notifications/resources/updated') {
      const uri = params.uri;
      for (const v of this.views) if (typeof uri === 'string' && v.subscribed.has(uri)) v.deliver(line);
      return;
    }
    if (method === 'notifications/message') {
      this.log.info({ upstream: this.name, mcpLog: params }, 'upstream log message');
      return;
    }
    this.log.debug({ upstream: this.name, method }, 'unattributable upstream notification dropped');
  }

  async open(_hello: ClientHello): Promise<UpstreamSession> {
    let timer: NodeJS.Timeout | undefined;
    const init = await Promise.race([
      this.ready,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new GatewayError(Errors.UPSTREAM_UNAVAILABLE, `Upstream ${this.name} is not ready`, { data: { upstream: this.name } })),
          this.initTimeoutMs,
        );
      }),
    ]).finally(() => clearTimeout(timer));
    const view = new StdioSessionView(this, init, this.generation);
    this.views.add(view);
    return view;
  }

  /** Sends a request on behalf of a view. */
  send(msg: RpcRequest, sink: ReplySink): number | undefined {
    const id = this.nextId++;
    let progressToken: string | undefined;
    let params = msg.params;
    const meta = params?._meta as Record<string, unknown> | undefined;
    if (meta && (typeof meta.progressToken === 'string' || typeof meta.progressToken === 'number')) {
      progressToken = `tollgate-progress-${id}`;
      this.progress.set(progressToken, { sink, original: meta.progressToken });
      params = { ...params, _meta: { ...meta, progressToken } };
    }
    this.pending.set(id, { sink, downstreamId: msg.id, progressToken });
    const line = JSON.stringify(params === undefined ? { jsonrpc: '2.0', id, method: msg.method } : { jsonrpc: '2.0', id, method: msg.method, params });
    if (!this.proc.send(line)) {
      this.pending.delete(id);
      if (progressToken) this.progress.delete(progressToken);
      sink.fail(new GatewayError(Errors.UPSTREAM_UNAVAILABLE, `Upstream ${this.name} is not running`, { data: { upstream: this.name } }));
      return undefined;
    }
    return id;
  }

  forget(id: number, reason: string | undefined): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    if (p.progressToken) this.progress.delete(p.progressToken);
    if (reason !== undefined) this.proc.send(notification('notifications/cancelled', { requestId: id, reason }));
  }

  sendNotification(line: string): void {
    this.proc.send(line);
  }

  /** Reference counts resource subscriptions so one session's unsubscribe does not end another's. */
  subscription(uri: string, delta: 1 | -1): boolean {
    const n = (this.subscriptions.get(uri) ?? 0) + delta;
    if (n <= 0) this.subscriptions.delete(uri);
    else this.subscriptions.set(uri, n);
    return delta === 1 ? n === 1 : n <= 0;
  }

  isCurrent(generation: number): boolean {
    return generation === this.generation && this.init !== undefined;
  }

  detach(view: StdioSessionView): void {
    this.views.delete(view);
    for (const uri of view.subscribed) {
      if (this.subscription(uri, -1)) this.proc.send(JSON.stringify({ jsonrpc: '2.0', id: this.nextId++, method: 'resources/unsubscribe', params: { uri } }));
    }
  }

  async close(): Promise<void> {
    await this.proc.close();
  }
}


class StdioSessionView implements UpstreamSession {
  readonly backend: string;
  readonly shared = true;
  readonly init: InitializeResult;
  readonly subscribed = new Set<string>();
  private readonly up: StdioMcpUpstream;
  private readonly generation: number;
  private readonly sinks = new Set<MessageSink>();
  private closed = false;

  constructor(up: StdioMcpUpstream, init: InitializeResult, generation: number) {
    this.up = up;
    this.backend = up.name;
    this.init = init;
    this.generation = generation;
  }

  get alive(): boolean {
    return !this.closed && this.up.isCurrent(this.generation);
  }

  deliver(line: string): void {
    for (const s of this.sinks) s.message(line);
  }

  request(msg: RpcRequest, _raw: Buffer | undefined, sink: ReplySink): InflightHandle {
    const uri = typeof msg.params?.uri === 'string' ? msg.params.uri : undefined;
    if (uri !== undefined && msg.method === 'resources/subscribe') {
      if (this.subscribed.has(uri) || !this.up.subscription(uri, 1)) {
        this.subscribed.add(uri);
        sink.final(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result: {} }));
        return { downstreamId: msg.id, cancel: () => {} };
      }
      this.subscribed.add(uri);
    } else if (uri !== undefined && msg.method === 'resources/unsubscribe') {
      const was = this.subscribed.delete(uri);
      if (!was || !this.up.subscription(uri, -1)) {
        sink.final(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result: {} }));
        return { downstreamId: msg.id, cancel: () => {} };
      }
    }
    const id = this.up.send(msg, sink);
    return {
      downstreamId: msg.id,
      cancel: (reason) => {
        if (id !== undefined) this.up.forget(id, reason);
      },
    };
  }

  call(method: string, params: Record<string, unknown> | undefined, timeoutMs: number, signal?: AbortSignal): Promise<Record<string, unknown>> {
    return callUpstream(this, method, params, timeoutMs, signal);
  }

  notify(msg: RpcNotification): void {
    // Cancellations are mapped by the InflightHandle; other client notifications (roots changed...) pass through.
    if (msg.method === 'notifications/cancelled' || msg.method === 'notifications/initialized') return;
    this.up.sendNotification(JSON.stringify(msg));
  }

  listen(sink: MessageSink): () => void {
    this.sinks.add(sink);
    return () => this.sinks.delete(sink);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.sinks.clear();
    this.up.detach(this);
  }
}
