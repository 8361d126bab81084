/** Writes Server-Sent Events to a node:http response, with keep-alive comments and disconnect safety. */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';

export class SseWriter {
  private readonly res: ServerResponse;
  private keepAlive: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly onClose: Array<() => void> = [];

  constructor(res: ServerResponse, headers: OutgoingHttpHeaders, keepAliveMs: number) {
    this.res = res;
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
      ...headers,
    });
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

  /** Writes one `message` event. Returns false if the client is gone. */
  send(data: string, id?: string): boolean {
    if (!this.isOpen) return false;
    // JSON-RPC messages are single-line JSON; split defensively so a newline can never end the event early.
    const body = data.includes('\n') ? data.split('\n').join('\ndata: ') : data;
    this.res.write(id === undefined ? `event: message\ndata: ${body}\n\n` : `event: message\nid: ${id}\ndata: ${body}\n\n`);
    return true;
  }

  comment(text: string): void {
    if (this.isOpen) this.res.write(`: ${text}\n\n`);
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
