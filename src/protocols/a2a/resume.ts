/**
 * Resumable A2A task streams (`SendStreamingMessage`, `SubscribeToTask`, either binding): a client that lost its
 * stream reconnects with `SubscribeToTask` and the `Last-Event-ID` of the last event it got, and receives the events
 * it missed, then the rest of the stream.
 *
 * Every event of a task's stream gets an SSE id (`<epoch>.<seq>`: the epoch names this replica's buffer of that
 * task, the sequence counts its events) and is kept in a bounded buffer of the task (`MAX_EVENTS`, the oldest
 * dropped). The agent's stream is read by the gateway, not by the client: when the client goes away the gateway
 * keeps reading (and buffering) for `GRACE_MS`, so nothing the agent sends in between is lost; after that with no
 * client attached it stops reading (the agent sees the abort). A finished buffer is kept `KEEP_MS` for late
 * resumers. A resume whose id is unknown here (another replica, expired, another version or binding) is not an
 * error: the caller gets a fresh subscription from the agent, which starts with the task as it is now.
 *
 * Only the identity that created the task may subscribe to it (checked before this: TaskNotFound otherwise), and
 * each buffer also remembers its owner: a resume never reaches another identity's events.
 */
import type { A2aVersion } from './methods.ts';

const MAX_EVENTS = 256;
const MAX_STREAMS = 10_000;
export const GRACE_MS = 30_000;
const KEEP_MS = 5 * 60_000;

export interface BufferedEvent {
  readonly seq: number;
  /** The event's `data` as the agent sent it (a JSON-RPC response object, or the bare REST payload). */
  readonly data: string;
}

/** Gets each event (undefined: the stream ended; `complete`: the agent ended it, else it was abandoned). */
export type Listener = (event: BufferedEvent | undefined, complete: boolean) => void;

export class TaskStream {
  readonly key: string;
  readonly owner: string;
  readonly epoch: string;
  readonly version: A2aVersion;
  readonly binding: 'jsonrpc' | 'rest';
  private readonly events: BufferedEvent[] = [];
  private next = 1;
  private readonly listeners = new Set<Listener>();
  /** The agent's stream is still being read. */
  live = true;
  /** The agent ended the stream (not abandoned by the gateway). */
  complete = false;
  lastUse = Date.now();
  private grace: NodeJS.Timeout | undefined;
  private readonly stop: () => void;

  constructor(key: string, owner: string, version: A2aVersion, binding: 'jsonrpc' | 'rest', stop: () => void) {
    this.key = key;
    this.owner = owner;
    this.version = version;
    this.binding = binding;
    this.epoch = Math.floor(Math.random() * 2 ** 32).toString(36);
    this.stop = stop;
  }

  id(seq: number): string {
    return `${this.epoch}.${seq}`;
  }

  /** Buffers an event of the agent and hands it to every attached client. */
  push(data: string): BufferedEvent {
    const e: BufferedEvent = { seq: this.next++, data };
    this.events.push(e);
    if (this.events.length > MAX_EVENTS) this.events.shift();
    this.lastUse = Date.now();
    for (const l of this.listeners) l(e, false);
    return e;
  }

  /** The buffered events after `lastEventId` (undefined: that id is not one of this buffer's, or fell out of it). */
  after(lastEventId: string): BufferedEvent[] | undefined {
    const dot = lastEventId.lastIndexOf('.');
    if (dot < 0 || lastEventId.slice(0, dot) !== this.epoch) return undefined;
    const seq = Number(lastEventId.slice(dot + 1));
    if (!Number.isSafeInteger(seq) || seq < 0 || seq >= this.next) return undefined;
    const first = this.events[0]?.seq ?? this.next;
    // Events after `seq` that were dropped from the buffer: the caller cannot be made whole from here.
    if (seq + 1 < first) return undefined;
    return this.events.filter((e) => e.seq > seq);
  }

  attach(l: Listener): void {
    this.listeners.add(l);
    if (this.grace !== undefined) clearTimeout(this.grace);
    this.grace = undefined;
  }

  /** A client went away: with none left, the agent's stream is read `GRACE_MS` more for a client to come back. */
  detach(l: Listener): void {
    this.listeners.delete(l);
    this.lastUse = Date.now();
    if (this.listeners.size > 0 || !this.live || this.grace !== undefined) return;
    this.grace = setTimeout(() => {
      this.grace = undefined;
      if (this.listeners.size === 0 && this.live) this.stop();
    }, GRACE_MS);
    this.grace.unref();
  }

  /** The agent's stream ended (`complete`) or was given up (an error, or no client came back). */
  end(complete: boolean): void {
    if (!this.live) return;
    this.live = false;
    this.complete = complete;
    this.lastUse = Date.now();
    if (this.grace !== undefined) clearTimeout(this.grace);
    this.grace = undefined;
    for (const l of [...this.listeners]) l(undefined, complete);
    this.listeners.clear();
  }
}

/** The buffers of the task streams of one adapter (this replica), by agent and task. */
export class StreamBuffers {
  private readonly streams = new Map<string, TaskStream>();

  private key(agent: string, taskId: string): string {
    return `${agent}\u0000${taskId}`;
  }

  /**
   * A new buffer for a task's stream (replacing an older one of the same task); undefined when `MAX_STREAMS` are
   * live (the stream is still relayed, just not resumable: newcomers are refused, running streams are kept).
   */
  open(agent: string, taskId: string, owner: string, version: A2aVersion, binding: 'jsonrpc' | 'rest', stop: () => void): TaskStream | undefined {
    this.sweep();
    const key = this.key(agent, taskId);
    if (!this.streams.has(key) && this.streams.size >= MAX_STREAMS) return undefined;
    const s = new TaskStream(key, owner, version, binding, stop);
    this.streams.set(key, s);
    return s;
  }

  /** The buffer a resume with `lastEventId` continues: this caller's, same version and binding, id known. */
  find(agent: string, taskId: string, owner: string, version: A2aVersion, binding: 'jsonrpc' | 'rest'): TaskStream | undefined {
    const s = this.streams.get(this.key(agent, taskId));
    if (s === undefined || s.owner !== owner || s.version !== version || s.binding !== binding) return undefined;
    return s;
  }

  /** Forgets finished buffers nobody used for `KEEP_MS`. */
  private sweep(): void {
    const now = Date.now();
    for (const [k, s] of this.streams) if (!s.live && now - s.lastUse > KEEP_MS) this.streams.delete(k);
  }
}
