/**
 * The one HTTP forwarder every HTTP-upstream protocol uses (A2A, OpenAI-compatible, KServe, and any adapter added
 * later). undici `dispatcher.request()` on keep-alive pools (never `fetch`: it costs three times as much), Node
 * streams end to end (no web streams: see ../shared/notes/performance.md on their disconnect crash):
 *
 * - request and response bodies stream through without being buffered when the protocol need not read them
 *   (`pipeTo`), with backpressure both ways; SSE is relayed as it arrives, or event by event (`events`);
 * - timeouts: connect (the pool), first byte (time to the response headers), idle (longest silence between body
 *   chunks), total (the whole exchange);
 * - the upstream request is aborted as soon as the client goes away (`client`), and the upstream sees the abort;
 * - retries happen only inside `forward()`, before any answer was handed back, so never after a byte reached the
 *   client; only with a body held in memory (a streamed body cannot be replayed);
 * - hop-by-hop headers are stripped and only the protocol's allow-listed headers cross, in each direction; the
 *   upstream's own credentials (config headers, the Workload API SVID) are added here, never the caller's;
 * - bytes and timings go to the Call (`call.transfer`), and each attempt's outcome to the endpoint picker.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Transfer } from '../core/call.ts';
import { Errors, GatewayError } from '../core/errors.ts';
import { readSse, type EventSourceMessage, type SseReadOptions } from '../wire/sse.ts';
import { AbortEmitter } from './abort-emitter.ts';
import { CONNECTION_LOST, codeOf, forwardError, NEVER_REACHED, timeoutError } from './forward-errors.ts';
import type { HeaderPolicy } from './headers.ts';
import type { Endpoint, HttpUpstream, UpstreamTimeouts } from './http-upstream.ts';

export interface ForwardRequest {
  readonly method: string;
  /** Path and query under the backend's base path ('' or '/...'). */
  readonly path: string;
  /** The caller's request headers (only the policy's request allow-list is copied). */
  readonly headers: IncomingHttpHeaders;
  readonly policy: HeaderPolicy;
  /** Headers the adapter sets itself (e.g. the content-type of a body it built). Config headers still win. */
  readonly set?: Readonly<Record<string, string>> | undefined;
  /** A body held in memory (replayable), or a stream (e.g. a BoundedBody of the client's request). */
  readonly body?: Buffer | string | Readable | null | undefined;
  /** Length of a streamed body when known (the client's Content-Length of a body forwarded unchanged). */
  readonly bodyLength?: number | undefined;
  /** The caller's response: when it closes before the exchange has ended, the upstream request is aborted. */
  readonly client?: ServerResponse | undefined;
  /** Sending it twice does no harm: it may be retried after a failure or a retryable status. */
  readonly idempotent?: boolean | undefined;
  /** Per-request overrides of the upstream's timeouts (e.g. idleMs 0 for a stream that sends no keep-alives). */
  readonly timeouts?: Partial<UpstreamTimeouts> | undefined;
  /** Where bytes and timings are reported (a Call). */
  readonly call?: { transfer: Transfer | undefined } | undefined;
  /** Requests with the same key reach the same endpoint of a pool while it is available (a stateful sequence). */
  readonly affinity?: string | undefined;
}

/** A body stream that counts what it passed (BoundedBody does). */
function streamedBytes(body: unknown): number {
  const n = (body as { bytes?: unknown }).bytes;
  return typeof n === 'number' ? n : -1;
}

/**
 * Sends one request to `upstream` and resolves with its answer once the response headers arrived. Consume the
 * answer (pipeTo, read, events or dump): the exchange, its timers and the client watch end with its body.
 */
export async function forward(upstream: HttpUpstream, r: ForwardRequest): Promise<UpstreamResponse> {
  const t: UpstreamTimeouts = r.timeouts === undefined ? upstream.timeouts : { ...upstream.timeouts, ...r.timeouts };
  const transfer: Transfer = { requestBytes: 0, responseBytes: 0, attempts: 0, firstByteMs: -1, totalMs: -1 };
  if (r.call) r.call.transfer = transfer;
  const started = performance.now();
  const exchange = new Exchange(upstream.name, t, r.client, started, transfer);
  const body = r.body ?? null;
  const replayable = !(body instanceof Readable);
  if (replayable && body !== null) transfer.requestBytes = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
  const headers: Record<string, string | string[]> = { ...r.policy.requestHeaders(r.headers), ...r.set, ...upstream.headers };
  if (!replayable && r.bodyLength !== undefined) headers['content-length'] = String(r.bodyLength);
  const retries = upstream.retries;
  let previous: Endpoint | undefined;
  for (let attempt = 1; ; attempt++) {
    let endpoint: Endpoint | undefined;
    try {
      endpoint = upstream.picker.pick(attempt, previous, r.affinity);
    } catch (err) {
      // The pool refused outright (its circuit breaker): nothing was sent.
      const e = exchange.error(err);
      exchange.end(e);
      throw e;
    }
    if (endpoint === undefined) {
      const e = new GatewayError(Errors.UPSTREAM_UNAVAILABLE, `Upstream ${upstream.name} has no endpoint available`, { data: { upstream: upstream.name } });
      exchange.end(e);
      throw e;
    }
    transfer.attempts = attempt;
    const t0 = performance.now();
    let res: Dispatcher.ResponseData;
    try {
      if (exchange.aborted) throw exchange.reason; // undici does not check an emitter signal for a past abort
      res = await endpoint.dispatcher.request({
        method: r.method as Dispatcher.HttpMethod,
        path: endpoint.basePath + r.path,
        headers,
        body,
        signal: exchange.signal,
        headersTimeout: t.firstByteMs,
        bodyTimeout: t.idleMs,
      });
    } catch (err) {
      const e = exchange.error(err);
      upstream.picker.release(endpoint, { answered: false, error: e, ms: performance.now() - t0 });
      const code = codeOf(err);
      const retry =
        attempt < retries.attempts && replayable && !exchange.aborted && (NEVER_REACHED.has(code) || (r.idempotent === true && CONNECTION_LOST.has(code)));
      if (retry) {
        previous = endpoint;
        await pause(retries.backoffMs);
        continue;
      }
      if (e.def !== Errors.REQUEST_CANCELLED && e.def !== Errors.PAYLOAD_TOO_LARGE) upstream.markFailed(e);
      if (!replayable) transfer.requestBytes = streamedBytes(body);
      exchange.end(e);
      throw e;
    }
    if (attempt < retries.attempts && replayable && r.idempotent === true && retries.statuses.includes(res.statusCode)) {
      upstream.picker.release(endpoint, { answered: true, status: res.statusCode, ms: performance.now() - t0 });
      await res.body.dump().catch(() => {});
      previous = endpoint;
      await pause(retries.backoffMs);
      continue;
    }
    upstream.markOk();
    transfer.firstByteMs = round(performance.now() - started);
    const answered = endpoint;
    return new UpstreamResponse(res, r.policy, exchange, (err) => {
      if (!replayable) transfer.requestBytes = streamedBytes(body);
      // A body that broke (or went silent) counts against the endpoint; the client going away does not (the pool says).
      upstream.picker.release(answered, { answered: true, status: res.statusCode, ms: performance.now() - t0, error: err });
    });
  }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

function pause(ms: number): Promise<void> {
  return ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve();
}

/** The state of one forwarded exchange: its abort signal, total timer and client watch. */
class Exchange {
  readonly upstream: string;
  readonly timeouts: UpstreamTimeouts;
  private readonly controller = new AbortEmitter();
  private readonly client: ServerResponse | undefined;
  private readonly started: number;
  /** Figures of the exchange, also referenced by the Call. */
  readonly transfer: Transfer;
  private timer: NodeJS.Timeout | undefined;
  private ended = false;
  private readonly onClientClose = (): void => {
    if (!this.ended && !this.client!.writableFinished) {
      this.controller.abort(new GatewayError(Errors.REQUEST_CANCELLED, 'Client went away before the upstream answer was complete'));
    }
  };

  constructor(upstream: string, t: UpstreamTimeouts, client: ServerResponse | undefined, started: number, transfer: Transfer) {
    this.upstream = upstream;
    this.timeouts = t;
    this.client = client;
    this.started = started;
    this.transfer = transfer;
    if (t.totalMs > 0) this.timer = setTimeout(() => this.controller.abort(timeoutError(upstream, 'total', t.totalMs)), t.totalMs);
    if (client !== undefined) {
      if (client.destroyed) this.onClientClose();
      else client.once('close', this.onClientClose);
    }
  }

  get signal(): AbortEmitter {
    return this.controller;
  }

  get aborted(): boolean {
    return this.controller.fired;
  }
  get reason(): unknown {
    return this.controller.reason;
  }

  /** The error to report for `err`: the abort reason when we aborted (client gone, total timeout), else mapped. */
  error(err: unknown): GatewayError {
    const reason: unknown = this.controller.fired ? this.controller.reason : undefined;
    return forwardError(this.upstream, reason instanceof GatewayError ? reason : err, this.timeouts);
  }

  abort(reason: GatewayError): void {
    this.controller.abort(reason);
  }

  end(_err?: GatewayError): void {
    if (this.ended) return;
    this.ended = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.client?.off('close', this.onClientClose);
    this.transfer.totalMs = round(performance.now() - this.started);
  }
}

/**
 * Looks at (and may change) a relayed body chunk by chunk, for protocols that read what they relay (usage in model
 * answers) or must end a broken stream in their own terms. Synchronous: a chunk leaves as soon as it is filtered.
 */
export interface ChunkFilter {
  /** True when the filter never changes the bytes (the upstream's Content-Length can be kept). */
  readonly sameBytes: boolean;
  /** The bytes to send for this chunk now (undefined or empty: nothing yet). */
  chunk(data: Buffer): Buffer | undefined;
  /** Bytes to send last when the upstream body ended cleanly. */
  end(): Buffer | undefined;
  /** When the upstream body failed: bytes that end the response cleanly, or undefined to break it. */
  fail(err: GatewayError): Buffer | undefined;
  /**
   * When set, the response head waits for the filter's first bytes (or the end of the body) and this adjusts its
   * headers then: the upstream's Content-Length is kept for it to correct (a filter that edits a known part of the
   * body, e.g. a renamed model, knows the change by then).
   */
  head?(headers: OutgoingHttpHeaders): void;
}

/** An upstream answer whose headers arrived. Consume its body exactly once. */
export class UpstreamResponse {
  readonly status: number;
  /** The upstream's response headers, unfiltered (for the adapter to read; not to copy to the client). */
  readonly headers: IncomingHttpHeaders;
  private readonly body: Dispatcher.ResponseData['body'];
  private readonly policy: HeaderPolicy;
  private readonly exchange: Exchange;
  private readonly onEnd: (err: GatewayError | undefined) => void;
  private finished = false;

  constructor(res: Dispatcher.ResponseData, policy: HeaderPolicy, exchange: Exchange, onEnd: (err: GatewayError | undefined) => void) {
    this.status = res.statusCode;
    this.headers = res.headers;
    this.body = res.body;
    this.policy = policy;
    this.exchange = exchange;
    this.onEnd = onEnd;
  }

  /** The response headers that may go back to the caller (hop-by-hop and unlisted ones removed). */
  forwardedHeaders(): OutgoingHttpHeaders {
    return this.policy.responseHeaders(this.headers);
  }

  /** Ends the exchange (timers, client watch, picker) and reports its figures. */
  private done(bytes: number, err?: GatewayError): void {
    if (this.finished) return;
    this.finished = true;
    this.exchange.transfer.responseBytes = bytes;
    this.exchange.end(err);
    this.onEnd(err);
  }

  /**
   * Streams the answer to the client as it arrives: status and allowed headers (plus `headers`), then the body
   * chunk by chunk with backpressure (the upstream is read no faster than the client reads), through `filter` when
   * given. Resolves at the end; rejects when the upstream fails, times out or the client goes away (the client's
   * response is destroyed, unless the filter ended it cleanly).
   */
  pipeTo(res: ServerResponse, opts?: { status?: number; headers?: OutgoingHttpHeaders; filter?: ChunkFilter | undefined }): Promise<void> {
    const filter = opts?.filter;
    const headers = this.forwardedHeaders();
    const deferred = filter?.head !== undefined;
    const length = filter === undefined || filter.sameBytes || deferred ? this.headers['content-length'] : undefined;
    if (length !== undefined) headers['content-length'] = length;
    if (opts?.headers !== undefined) Object.assign(headers, opts.headers);
    const status = opts?.status ?? this.status;
    let headed = false;
    const writeHead = (): void => {
      headed = true;
      filter?.head?.(headers);
      res.writeHead(status, headers);
    };
    if (!deferred) {
      writeHead();
      // A stream of unknown length (SSE, chunked completions): the client gets the headers now, not with the first chunk.
      if (length === undefined) res.flushHeaders();
    }
    const body = this.body;
    return new Promise((resolve, reject) => {
      let bytes = 0;
      const onData = (chunk: Buffer): void => {
        bytes += chunk.length;
        const out = filter === undefined ? chunk : filter.chunk(chunk);
        if (out === undefined || out.length === 0) return;
        if (!headed) writeHead();
        if (!res.write(out)) body.pause();
      };
      const onDrain = (): void => {
        body.resume();
      };
      const finish = (err?: GatewayError): void => {
        body.off('data', onData);
        res.off('drain', onDrain);
        this.done(bytes, err);
        if (err) {
          // A filter may close the stream in its protocol's terms (an error event) instead of breaking it.
          const tail = filter?.fail(err);
          if (tail !== undefined && !res.destroyed && !res.writableEnded) {
            if (!headed) writeHead();
            res.end(tail);
          } else res.destroy();
          reject(err);
        } else {
          const tail = filter?.end();
          if (!headed) writeHead();
          res.end(tail);
          resolve();
        }
      };
      body.on('data', onData);
      res.on('drain', onDrain);
      body.once('end', () => finish());
      body.once('error', (err: Error) => finish(this.exchange.error(err)));
    });
  }

  /** Reads the whole body (bounded: over `limit` bytes fails with TG_UPSTREAM_BAD_RESPONSE). */
  read(limit: number): Promise<Buffer> {
    const body = this.body;
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      body.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes > limit) {
          const e = new GatewayError(Errors.UPSTREAM_BAD_RESPONSE, `Upstream ${this.exchange.upstream} answered more than ${limit} bytes`, {
            data: { upstream: this.exchange.upstream },
          });
          this.done(bytes, e);
          body.destroy();
          reject(e);
          return;
        }
        chunks.push(chunk);
      });
      body.once('end', () => {
        this.done(bytes);
        resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, bytes));
      });
      body.once('error', (err: Error) => {
        const e = this.exchange.error(err);
        this.done(bytes, e);
        reject(e);
      });
    });
  }

  /**
   * Reads an SSE answer event by event as it arrives (for protocols that look at each event: usage in the last
   * completion chunk, task states). Return true from `onEvent` to stop reading. Rejects like `read`.
   */
  async events(onEvent: (event: EventSourceMessage) => boolean | void, options?: Omit<SseReadOptions, 'onBytes'>): Promise<void> {
    let bytes = 0;
    try {
      await readSse(this.body, onEvent, { ...options, onBytes: (n) => (bytes += n) });
    } catch (err) {
      const e = this.exchange.error(err);
      this.done(bytes, e);
      throw e;
    }
    this.done(bytes);
  }

  /** Discards the body (the connection goes back to the pool when it can). */
  async dump(): Promise<void> {
    try {
      await this.body.dump();
    } finally {
      this.done(0);
    }
  }

  /** Stops the exchange (the upstream sees the abort). */
  abort(reason: GatewayError): void {
    this.exchange.abort(reason);
  }
}
