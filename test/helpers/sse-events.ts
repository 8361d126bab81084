/**
 * An SSE response read event by event (the A2A stream and resume tests): each event's id and JSON data, keep-alive
 * comments counted and skipped.
 */
export interface SseEvent {
  readonly id: string | undefined;
  readonly data: Record<string, unknown>;
}

export class SseEvents {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly decoder = new TextDecoder();
  private buffer = '';
  ended = false;
  /** Comment lines seen (`: keep-alive`). */
  comments = 0;

  constructor(res: Response) {
    this.reader = res.body!.getReader();
  }

  async next(): Promise<SseEvent | undefined> {
    for (;;) {
      const end = this.buffer.indexOf('\n\n');
      if (end >= 0) {
        const block = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end + 2);
        if (block.startsWith(':')) {
          this.comments++;
          continue;
        }
        const lines = block.split('\n');
        const id = lines.find((l) => l.startsWith('id: '))?.slice(4);
        const data = lines.filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
        return { id, data: JSON.parse(data) as Record<string, unknown> };
      }
      const { value, done } = await this.reader.read();
      if (done) {
        this.ended = true;
        return undefined;
      }
      this.buffer += this.decoder.decode(value, { stream: true });
    }
  }

  /** Every event to the end of the stream. */
  async rest(): Promise<SseEvent[]> {
    const out: SseEvent[] = [];
    for (let e = await this.next(); e !== undefined; e = await this.next()) out.push(e);
    return out;
  }

  /** Waits for at least `n` comments (reading and keeping events that arrive meanwhile). */
  async comment(n = 1): Promise<SseEvent[]> {
    const seen: SseEvent[] = [];
    while (this.comments < n) {
      const end = this.buffer.indexOf('\n\n');
      if (end < 0) {
        const { value, done } = await this.reader.read();
        if (done) throw new Error(`the stream ended after ${this.comments} comment(s)`);
        this.buffer += this.decoder.decode(value, { stream: true });
      } else if (this.buffer.startsWith(':')) {
        this.buffer = this.buffer.slice(end + 2);
        this.comments++;
      } else {
        const e = await this.next();
        if (e !== undefined) seen.push(e);
      }
    }
    return seen;
  }

  async cancel(): Promise<void> {
    await this.reader.cancel();
  }
}

/** `<payload kind>[:<task state>]` of an A2A 1.0 stream event (JSON-RPC response or bare REST payload). */
export function eventKind(e: SseEvent): string {
  const r = ('jsonrpc' in e.data ? e.data.result : e.data) as Record<string, { status?: { state?: string } }>;
  const k = Object.keys(r)[0]!;
  return `${k}${r[k]?.status?.state === undefined ? '' : `:${r[k]!.status!.state}`}`;
}
