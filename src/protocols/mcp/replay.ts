/**
 * SSE resumability (session era): every event written on a session's SSE streams gets an id `<stream>_<seq>`, and
 * the last `max` events of each stream are kept for `ttlMs` after it ends. As the 2025-11-25 revision describes, a
 * stream starts with `retry` and a priming event (the id `<stream>_0`, empty data), so a client whose connection
 * breaks before the first message can resume too. A client whose stream broke reconnects
 * with GET + Last-Event-ID and receives what it missed; if the stream is still live it then continues on the new
 * connection. Only the broken stream is replayed. The buffer is per replica: a resume reaching another replica is
 * refused like an id out of range (the client then re-sends or re-initializes). A session's kept events are bounded
 * in bytes too (`replay.maxBytes`): past it, ended streams are forgotten first, then a stream's oldest events.
 */
import { Errors, GatewayError } from '../../core/errors.ts';
import type { SseWriter } from '../../server/sse.ts';

export class ReplayStream {
  readonly id: number;
  private readonly max: number;
  private readonly events: string[] = [];
  /** Sequence number of events[0]. */
  private first = 1;
  private seq = 0;
  private writer: SseWriter | undefined;
  ended = false;
  endedAt = 0;
  /** Bytes of the events kept. */
  bytes = 0;
  /** Called with the change in bytes kept (the log's total). */
  private readonly account: (delta: number) => void;

  constructor(id: number, max: number, writer: SseWriter | undefined, account: (delta: number) => void) {
    this.id = id;
    this.max = max;
    this.writer = writer;
    this.account = account;
  }

  /** Writes the priming event: the id of the last event sent (`<stream>_0` on a new stream) and no data. */
  prime(): void {
    this.writer?.event({ id: `${this.id}_${this.seq}`, data: '' });
  }

  /** Writes one message event (recorded for replay; delivered if a connection is attached). */
  send(data: string): void {
    const seq = ++this.seq;
    this.events.push(data);
    this.bytes += data.length;
    this.account(data.length);
    if (this.events.length > this.max) this.dropOldest();
    this.writer?.send(data, `${this.id}_${seq}`);
  }

  /** Forgets the oldest kept event (it can no longer be replayed). False when none is kept. */
  dropOldest(): boolean {
    const old = this.events.shift();
    if (old === undefined) return false;
    this.first++;
    this.bytes -= old.length;
    this.account(-old.length);
    return true;
  }

  /** Forgets every kept event. */
  forget(): void {
    this.events.length = 0;
    this.first = this.seq + 1;
    this.account(-this.bytes);
    this.bytes = 0;
  }

  /** True while a client connection is attached and open. */
  get attached(): boolean {
    return this.writer?.isOpen === true;
  }

  /** The connection `writer` went away (a later connection that resumed the stream stays attached). */
  detach(writer: SseWriter | undefined): void {
    if (this.writer === writer) this.writer = undefined;
  }

  /** Continues live on a new connection, without replay (a reconnect that names no event). */
  attach(writer: SseWriter): void {
    if (this.ended) writer.end();
    else this.writer = writer;
  }

  /** The stream is complete: closes the attached connection, keeps the events for replay until the ttl. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.endedAt = Date.now();
    this.writer?.end();
    this.writer = undefined;
  }

  /** Throws the out-of-range error unless every event after `afterSeq` is still held. */
  check(afterSeq: number): void {
    if (afterSeq > this.seq || afterSeq < this.first - 1) {
      throw new GatewayError(Errors.MCP_EVENT_ID_OUT_OF_RANGE, `Last-Event-ID ${this.id}_${afterSeq} is outside the replay window`);
    }
  }

  /** Replays events after `afterSeq` on `writer` and attaches it if the stream is still live. */
  resume(afterSeq: number, writer: SseWriter): void {
    this.check(afterSeq);
    for (let s = afterSeq + 1; s <= this.seq; s++) writer.send(this.events[s - this.first]!, `${this.id}_${s}`);
    if (this.ended) writer.end();
    else this.writer = writer;
  }
}

/** Streams remembered per session (ended ones are forgotten first beyond it). */
const MAX_STREAMS = 1024;

export class ReplayLog {
  private readonly max: number;
  private readonly ttlMs: number;
  private readonly maxBytes: number;
  private next = 0;
  private bytes = 0;
  private trimming = false;
  private readonly streams = new Map<number, ReplayStream>();
  /** `retry` for the streams' writers (ms). */
  readonly retryMs: number | undefined;
  private readonly priming: boolean;

  constructor(max: number, ttlMs: number, maxBytes = Number.POSITIVE_INFINITY, opts: { retryMs?: number; prime?: boolean } = {}) {
    this.max = max;
    this.ttlMs = ttlMs;
    this.maxBytes = maxBytes;
    this.retryMs = opts.retryMs;
    this.priming = opts.prime ?? false;
  }

  /** Bytes of events kept across the session's streams. */
  get size(): number {
    return this.bytes;
  }

  /** A new recorded stream writing to `writer`. */
  open(writer: SseWriter): ReplayStream {
    this.sweep();
    if (this.streams.size >= MAX_STREAMS) {
      for (const [id, old] of this.streams) {
        if (!old.ended) continue;
        old.forget();
        this.streams.delete(id);
        if (this.streams.size < MAX_STREAMS) break;
      }
    }
    const s: ReplayStream = new ReplayStream(++this.next, this.max, writer, (delta) => {
      this.bytes += delta;
      if (delta > 0 && this.bytes > this.maxBytes) this.trim(s);
    });
    this.streams.set(s.id, s);
    if (this.priming) s.prime();
    return s;
  }

  /** Over the byte bound: ended streams go first (oldest first), then the oldest events of the live ones. */
  private trim(current: ReplayStream): void {
    if (this.trimming) return;
    this.trimming = true;
    try {
      for (const [id, s] of this.streams) {
        if (this.bytes <= this.maxBytes) return;
        if (s.ended && s !== current) {
          s.forget();
          this.streams.delete(id);
        }
      }
      for (const s of this.streams.values()) {
        while (this.bytes > this.maxBytes && s !== current && s.dropOldest());
      }
      // Then the stream being written (down to nothing if one event alone is over the bound: it was delivered live).
      while (this.bytes > this.maxBytes && current.bytes > 0 && current.dropOldest());
    } finally {
      this.trimming = false;
    }
  }

  /** Finds the stream and position a Last-Event-ID names; throws the out-of-range error when it cannot. */
  locate(lastEventId: string): { stream: ReplayStream; seq: number } {
    const m = /^(\d{1,9})_(\d{1,12})$/.exec(lastEventId);
    const stream = m ? this.streams.get(Number(m[1])) : undefined;
    if (!m || !stream) throw new GatewayError(Errors.MCP_EVENT_ID_OUT_OF_RANGE, 'Last-Event-ID names no stream this server can replay');
    return { stream, seq: Number(m[2]) };
  }

  private sweep(): void {
    const cutoff = Date.now() - this.ttlMs;
    for (const [id, s] of this.streams) {
      if (s.ended && s.endedAt < cutoff) {
        s.forget();
        this.streams.delete(id);
      }
    }
  }
}
