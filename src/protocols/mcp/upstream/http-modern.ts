/**
 * An upstream that speaks the stateless revision (2026-07-28) over Streamable HTTP. No session: every request
 * carries the `_meta` envelope (the downstream client's capabilities and info) and the mirrored headers. Change
 * notifications come from a `subscriptions/listen` stream. `input_required` results are relayed as they come: the
 * adapter bridges them for session-era clients (see mrtr.ts).
 */
import type { Dispatcher } from 'undici';
import { readAll, upstreamError } from '../../../upstream/pools.ts';
import { peekKind, type RpcId, type RpcNotification, type RpcRequest } from '../jsonrpc.ts';
import {
  META_CLIENT_CAPABILITIES,
  META_CLIENT_INFO,
  META_PROTOCOL_VERSION,
  META_SERVER_INFO,
  MODERN_VERSION,
  NAME_SOURCE,
  encodeHeaderValue,
  paramHeaderValues,
  paramHeaders,
  type ParamHeader,
} from '../modern.ts';
import type { HttpMcpUpstream } from './http.ts';
import { MAX_RESPONSE_BYTES, relayResponse } from './http-response.ts';
import { followStream, readEvents } from './follow.ts';
import type { ClientHello, InflightHandle, InitializeResult, MessageSink, ReplySink, UpstreamSession } from './types.ts';
import { callUpstream } from './call.ts';

export interface DiscoverResult {
  readonly supportedVersions: readonly string[];
  readonly capabilities: Readonly<Record<string, unknown>>;
  readonly instructions?: string;
  readonly _meta?: Readonly<Record<string, unknown>>;
}

function envelope(hello: ClientHello): Record<string, unknown> {
  return { [META_PROTOCOL_VERSION]: MODERN_VERSION, [META_CLIENT_CAPABILITIES]: hello.capabilities, [META_CLIENT_INFO]: hello.clientInfo };
}

function baseHeaders(up: HttpMcpUpstream, method: string): Record<string, string> {
  return {
    ...up.baseHeaders,
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': MODERN_VERSION,
    'mcp-method': method,
  };
}

/**
 * Probes an upstream with server/discover. Resolves with its DiscoverResult when it serves 2026-07-28, undefined
 * when it answers like a session-era server (any error that is not a modern one); rejects when it is unreachable.
 */
export async function discover(up: HttpMcpUpstream, hello: ClientHello): Promise<DiscoverResult | undefined> {
  let res: Dispatcher.ResponseData;
  try {
    res = await up.pool.request({
      method: 'POST',
      path: up.path,
      headers: baseHeaders(up, 'server/discover'),
      body: JSON.stringify({ jsonrpc: '2.0', id: 'tollgate-discover', method: 'server/discover', params: { _meta: envelope(hello) } }),
      headersTimeout: up.timeouts.initializeMs,
    });
  } catch (err) {
    throw upstreamError(up.name, err);
  }
  const type = String(res.headers['content-type'] ?? '');
  let text: string | undefined;
  if (type.startsWith('application/json')) text = (await readAll(res.body, MAX_RESPONSE_BYTES)).toString('utf8');
  else if (type.startsWith('text/event-stream') && res.statusCode === 200) {
    await readEvents(res, (data) => {
      if (peekKind(data) === 'response') text = data;
      return text !== undefined;
    });
  } else await res.body.dump();
  if (text === undefined) return undefined;
  try {
    const parsed = JSON.parse(text) as { result?: DiscoverResult };
    const r = parsed.result;
    if (res.statusCode === 200 && r && Array.isArray(r.supportedVersions) && r.supportedVersions.includes(MODERN_VERSION)) return r;
  } catch {
    // not JSON: not a modern server
  }
  return undefined;
}

let modernIds = 0;

export class ModernHttpSession implements UpstreamSession {
  readonly backend: string;
  readonly init: InitializeResult;
  readonly modern = true;
  private readonly up: HttpMcpUpstream;
  private readonly hello: ClientHello;
  private closed = false;
  /** x-mcp-header declarations of this upstream's tools, learned from tools/list results. */
  private readonly headerDecls: Map<string, ParamHeader[]>;

  constructor(up: HttpMcpUpstream, hello: ClientHello, found: DiscoverResult) {
    this.up = up;
    this.backend = up.name;
    this.hello = hello;
    const info = found._meta?.[META_SERVER_INFO] as InitializeResult['serverInfo'] | undefined;
    this.init = {
      protocolVersion: hello.protocolVersion,
      capabilities: found.capabilities ?? {},
      serverInfo: info && typeof info.name === 'string' ? info : { name: up.name, version: '0' },
      ...(typeof found.instructions === 'string' && { instructions: found.instructions }),
    };
    this.headerDecls = up.toolHeaders;
  }

  get alive(): boolean {
    return !this.closed;
  }

  private headersFor(msg: RpcRequest): Record<string, string> {
    const h = baseHeaders(this.up, msg.method);
    const field = Object.hasOwn(NAME_SOURCE, msg.method) ? NAME_SOURCE[msg.method] : undefined;
    const value = field ? msg.params?.[field] : undefined;
    if (typeof value === 'string') h['mcp-name'] = encodeHeaderValue(value);
    if (msg.method === 'tools/call' && typeof value === 'string') {
      const decls = this.headerDecls.get(value);
      if (decls) Object.assign(h, paramHeaderValues(decls, msg.params?.arguments));
    }
    return h;
  }

  /** The request with the envelope added (requests from 2026 clients already carry one: forwarded as they are). */
  private withEnvelope(msg: RpcRequest): RpcRequest {
    const meta = msg.params?._meta as Record<string, unknown> | undefined;
    if (meta && typeof meta[META_PROTOCOL_VERSION] === 'string' && meta[META_PROTOCOL_VERSION] === MODERN_VERSION) return msg;
    return { ...msg, params: { ...msg.params, _meta: { ...meta, ...envelope(this.hello) } } };
  }

  request(msg: RpcRequest, raw: Buffer | undefined, sink: ReplySink): InflightHandle {
    if (msg.method === 'tools/call' && this.up.toolsListed === undefined) {
      // The Mcp-Param-* headers a call needs come from the tool's schema: learn the tools once, first.
      this.up.toolsListed = this.call('tools/list', undefined, this.up.timeouts.initializeMs).then(
        () => {},
        () => {},
      );
    }
    const listed = this.up.toolsListed;
    if (msg.method === 'tools/call' && listed !== undefined && !this.listedDone) {
      let inner: InflightHandle | undefined;
      let cancelled = false;
      void listed.then(() => {
        this.listedDone = true;
        if (!cancelled) inner = this.send(msg, raw, sink);
      });
      return {
        downstreamId: msg.id,
        cancel: (reason) => {
          cancelled = true;
          inner?.cancel(reason);
        },
      };
    }
    return this.send(msg, raw, sink);
  }

  private listedDone = false;

  private send(msg: RpcRequest, raw: Buffer | undefined, sink: ReplySink): InflightHandle {
    const controller = new AbortController();
    const sent = this.withEnvelope(msg);
    const body = sent === msg && raw !== undefined ? raw : JSON.stringify(sent);
    const learn = msg.method === 'tools/list';
    if (learn) this.up.toolsListed ??= Promise.resolve();
    const guarded = this.up.enter(sink, learn ? (m) => this.learnHeaders(m) : undefined);
    if (guarded === undefined) return { downstreamId: msg.id, cancel: () => {} };
    this.up.pool
      .request({ method: 'POST', path: this.up.path, headers: this.headersFor(msg), body, signal: controller.signal })
      .then((res) => relayResponse(this.up, res, msg.id, guarded))
      .catch((err: unknown) => guarded.fail(upstreamError(this.backend, err)));
    return {
      downstreamId: msg.id,
      // Closing the response stream is the cancellation in this revision.
      cancel: () => {
        guarded.stop();
        controller.abort();
      },
    };
  }

  private learnHeaders(m: string | Buffer): void {
    try {
      const tools = (JSON.parse(m.toString()) as { result?: { tools?: Array<{ name?: unknown; inputSchema?: unknown }> } }).result?.tools;
      if (!Array.isArray(tools)) return;
      for (const t of tools) {
        if (typeof t.name !== 'string') continue;
        const decls = paramHeaders(t.inputSchema);
        if (decls.length > 0) this.headerDecls.set(t.name, decls);
        else this.headerDecls.delete(t.name);
      }
    } catch {
      // an unparsable list is the client's problem to report, not ours
    }
  }

  call(method: string, params: Record<string, unknown> | undefined, timeoutMs: number, signal?: AbortSignal): Promise<Record<string, unknown>> {
    return callUpstream(this, method, params, timeoutMs, signal);
  }

  notify(_msg: RpcNotification): void {
    // The 2026-07-28 revision defines no client notifications over Streamable HTTP (closing a stream cancels).
  }

  /** Change notifications: a subscriptions/listen stream, re-opened with backoff while someone listens. */
  listen(sink: MessageSink): () => void {
    const caps = this.init.capabilities as Record<string, { listChanged?: boolean } | undefined>;
    const filter = {
      ...(caps.tools?.listChanged && { toolsListChanged: true }),
      ...(caps.prompts?.listChanged && { promptsListChanged: true }),
      ...(caps.resources?.listChanged && { resourcesListChanged: true }),
    };
    if (Object.keys(filter).length === 0) return () => {};
    return followStream({
      upstream: this.backend,
      log: this.up.log,
      open: async (signal) => {
        const id: RpcId = `tollgate-listen-${++modernIds}`;
        const res = await this.up.streamPool.request({
          method: 'POST',
          path: this.up.path,
          headers: baseHeaders(this.up, 'subscriptions/listen'),
          body: JSON.stringify({ jsonrpc: '2.0', id, method: 'subscriptions/listen', params: { notifications: filter, _meta: envelope(this.hello) } }),
          signal,
          bodyTimeout: 0,
        });
        if (res.statusCode !== 200) {
          await res.body.dump();
          throw new Error(`HTTP ${res.statusCode}`);
        }
        return res;
      },
      onData: (data) => {
        if (peekKind(data) === 'response') return true; // the server ended the subscription
        if (!data.includes('notifications/subscriptions/acknowledged')) sink.message(data);
        return false;
      },
    });
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** Whether an upstream session speaks the stateless revision. */
export function isModernSession(s: UpstreamSession): s is ModernHttpSession {
  return (s as { modern?: boolean }).modern === true;
}
