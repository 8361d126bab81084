/**
 * A stand-in for the ServerResponse the adapter writes an answer to, for answers that do not go out as an HTTP
 * response of their own: a legacy HTTP+SSE channel (legacy-sse.ts) and the members of a JSON-RPC batch (batch.ts).
 * Whatever the adapter writes (a JSON body, or SSE events with ids, retry fields and keep-alive comments) becomes
 * one JSON-RPC message per event for the sink. Only the subset of ServerResponse the adapter uses is provided.
 */
import { EventEmitter } from 'node:events';
import type { OutgoingHttpHeaders } from 'node:http';

export interface MessageSink {
  /** One JSON-RPC message the adapter wrote (a JSON body, or the data of one SSE event). */
  message(data: string): void;
  /** The adapter wrote the response head (its status and headers). */
  head?(status: number, headers: OutgoingHttpHeaders | undefined): void;
  /** The answer is complete. */
  end?(): void;
  /** False once whatever carries the messages is gone (the adapter then stops writing). */
  isOpen(): boolean;
}

export class MessageResponse extends EventEmitter {
  headersSent = false;
  writableEnded = false;
  statusCode = 200;
  private sse = false;
  private partial = '';
  private readonly sink: MessageSink;

  constructor(sink: MessageSink) {
    super();
    this.sink = sink;
  }

  get destroyed(): boolean {
    return !this.sink.isOpen();
  }

  writeHead(status: number, headers?: OutgoingHttpHeaders): this {
    this.headersSent = true;
    this.statusCode = status;
    const type = headers?.['content-type'];
    this.sse = typeof type === 'string' && type.startsWith('text/event-stream');
    this.sink.head?.(status, headers);
    return this;
  }

  flushHeaders(): void {}

  write(chunk: string | Buffer): boolean {
    if (!this.sse) return true;
    // SSE frames from the adapter: each event's data is a message (comments, retry fields and priming events carry none).
    this.partial += chunk.toString();
    let end: number;
    while ((end = this.partial.indexOf('\n\n')) >= 0) {
      const frame = this.partial.slice(0, end);
      this.partial = this.partial.slice(end + 2);
      const data = frame
        .split('\n')
        .filter((l) => l.startsWith('data: '))
        .map((l) => l.slice(6))
        .join('\n');
      if (data !== '') this.sink.message(data);
    }
    return true;
  }

  end(chunk?: string | Buffer): this {
    if (this.writableEnded) return this;
    this.writableEnded = true;
    if (chunk !== undefined && chunk.length > 0) {
      if (this.sse) this.write(chunk);
      else this.sink.message(chunk.toString());
    }
    this.sink.end?.();
    this.emit('close');
    return this;
  }
}
