/**
 * Server-Sent Events for every protocol that streams (MCP, A2A, OpenAI-compatible completions): a writer for
 * node:http responses (event ids, `retry`, keep-alive comments, backpressure, disconnect safety) and a reader of
 * upstream streams built on `eventsource-parser` (the WHATWG parsing rules: CR/LF/CRLF, multi-line data, BOM,
 * `retry`, comments), so no protocol parses SSE itself.
 */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { createParser, type EventSourceMessage } from 'eventsource-parser';

export type { EventSourceMessage } from 'eventsource-parser';

/** One event to write. `data` may hold newlines: each line becomes its own `data:` field. */
export interface SseEvent {
  readonly data: string;
  readonly id?: string | undefined;
  /** Event type; absent means the default `message` (no `event:` line is written). */
  readonly event?: string | undefined;
}

const LINE_BREAK = /\r\n|\r|\n/;

/** The wire form of one event (ends with the blank line that dispatches it). */
export function encodeEvent(e: SseEvent): string {
  let out = '';
  if (e.event !== undefined) out += `event: ${e.event}\n`;
  if (e.id !== undefined) out += `id: ${e.id}\n`;
  // A line break inside data would end the field early: split it into several data fields (the reader joins them).
  const data = LINE_BREAK.test(e.data) ? e.data.split(LINE_BREAK).join('\ndata: ') : e.data;
  return `${out}data: ${data}\n\n`;
}

export interface SseWriterOptions {
  /** Status of the stream response (200 unless a protocol says otherwise). */
  readonly status?: number;
  /** `retry:` field sent first: how long a reconnecting client should wait, in ms. */
  readonly retryMs?: number;
}

/** Writes Server-Sent Events to a node:http response, with keep-alive comments and disconnect safety. */
export class SseWriter {
  private readonly res: ServerResponse;
  private keepAlive: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly onClose: Array<() => void> = [];

  constructor(res: ServerResponse, headers: OutgoingHttpHeaders, keepAliveMs: number, options?: SseWriterOptions) {
    this.res = res;
    res.writeHead(options?.status ?? 200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
      ...headers,
    });
    if (options?.retryMs !== undefined) res.write(`retry: ${Math.max(0, Math.floor(options.retryMs))}\n\n`);
    res.flushHeaders();
    res.once('close', () => this.shutdown());
    if (keepAliveMs > 0) {
      this.keepAlive = setInterval(() => this.comment('keepalive'), keepAliveMs);
      this.keepAlive.unref();
    }
  }

  get isOpen(): boolean {
    return !this.closed && !this.res.destroyed && !this.res.writableEnded;
  }

  /**
   * True while the client reads slower than events are written (the socket buffer is over its high-water mark).
   * A producer that can wait (a relayed upstream stream) pauses until `drained()`.
   */
  get backpressured(): boolean {
    return this.res.writableNeedDrain;
  }

  /** Resolves when the client has read what was buffered, or the stream closed. */
  drained(): Promise<void> {
    if (!this.isOpen || !this.res.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.res.off('drain', done);
        this.res.off('close', done);
        resolve();
      };
      this.res.once('drain', done);
      this.res.once('close', done);
    });
  }

  /** Writes one `message` event (the MCP convention: an explicit `event: message`). Returns false if the client is gone. */
  send(data: string, id?: string): boolean {
    return this.event({ data, id, event: 'message' });
  }

  /** Writes one event. Returns false if the client is gone (see `backpressured` for flow control). */
  event(e: SseEvent): boolean {
    if (!this.isOpen) return false;
    this.res.write(encodeEvent(e));
    return true;
  }

  /** Tells the client how long to wait before reconnecting. */
  retry(ms: number): void {
    if (this.isOpen) this.res.write(`retry: ${Math.max(0, Math.floor(ms))}\n\n`);
  }

  comment(text: string): void {
    if (this.isOpen) this.res.write(`: ${text.replace(LINE_BREAK, ' ')}\n\n`);
  }

  /** Runs `fn` when the stream closes (client gone or end()). */
  whenClosed(fn: () => void): void {
    if (this.closed) fn();
    else this.onClose.push(fn);
  }

  end(): void {
    if (!this.res.writableEnded) this.res.end();
    this.shutdown();
  }

  private shutdown(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.keepAlive) clearInterval(this.keepAlive);
    for (const fn of this.onClose.splice(0)) fn();
  }
}

export interface SseReadOptions {
  /** Called with each `retry:` the stream sends. */
  readonly onRetry?: (ms: number) => void;
  /** Called with each comment (keep-alives). */
  readonly onComment?: (text: string) => void;
  /** Largest event (or unterminated line) accepted, in characters; a bigger one fails the read. Default 64 MiB. */
  readonly maxEventChars?: number;
  /** Called with the byte length of each chunk read (the forwarder counts response bytes). */
  readonly onBytes?: (bytes: number) => void;
}

/**
 * Reads an SSE body event by event as it arrives, calling `onEvent` for each; stops (and destroys the body) when
 * it returns true. Resolves at the end of the stream, rejects when the body fails or an event is over the bound.
 * Event listeners rather than `for await`: the async iterator costs a promise per chunk on a hot path.
 */
export function readSse(body: Readable, onEvent: (event: EventSourceMessage) => boolean | void, options?: SseReadOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    let stop = false;
    let failed: Error | undefined;
    const parser = createParser({
      onEvent: (event) => {
        if (!stop && onEvent(event) === true) stop = true;
      },
      onRetry: options?.onRetry,
      onComment: options?.onComment,
      onError: (err) => {
        if (err.type === 'max-buffer-size-exceeded') failed = err;
      },
      maxBufferSize: options?.maxEventChars ?? 64 * 1024 * 1024,
    });
    const finish = (err?: Error): void => {
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onError);
      body.off('close', onEnd);
      if (err) reject(err);
      else resolve();
    };
    const decoder = new StringDecoder('utf8');
    const onBytes = options?.onBytes;
    const onData = (chunk: Buffer | string): void => {
      try {
        if (typeof chunk === 'string') parser.feed(chunk);
        else {
          onBytes?.(chunk.length);
          parser.feed(decoder.write(chunk));
        }
      } catch (err) {
        failed ??= err as Error;
      }
      if (failed !== undefined) {
        body.destroy();
        finish(failed);
      } else if (stop) {
        body.destroy();
        finish();
      }
    };
    const onEnd = (): void => finish();
    const onError = (err: Error): void => finish(err);
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('error', onError);
    // A destroyed body (aborted by us or the peer) may close without 'end' or 'error'.
    body.once('close', onEnd);
  });
}
