/**
 * Relaying an agent's SSE stream to the caller, resumably (resume.ts): the gateway reads the agent's stream event by
 * event; each event that names a task is bound to the caller (before it is passed on), buffered under that task with
 * an SSE id, and handed to the clients attached to the task's stream: the one that asked, and any that resumed. A
 * client that goes away does not end the agent's stream at once (a grace period for it to come back); the events
 * before a task id is known are passed on without an id (nothing to resume them by).
 *
 * The caller gets `: keep-alive` comments while the agent is silent, whole events only.
 */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { Errors, GatewayError } from '../../core/errors.ts';
import { SseWriter } from '../../wire/sse.ts';
import { taskIdIn } from './relay.ts';
import type { Listener, StreamBuffers, TaskStream } from './resume.ts';
import type { A2aVersion } from './methods.ts';

/** One client's SSE response: events with ids, keep-alive comments while silent, JSON-RPC ids made its own. */
export class ClientFeed {
  private readonly res: ServerResponse;
  private readonly sse: SseWriter;
  private readonly rpcId: string | number | null | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastWrite = Date.now();

  /** `rpcId`: the JSON-RPC id of this client's request, written into events buffered from another request. */
  constructor(res: ServerResponse, headers: OutgoingHttpHeaders, keepAliveMs: number, rpcId?: string | number | null) {
    this.res = res;
    this.sse = new SseWriter(res, headers, 0);
    this.rpcId = rpcId;
    if (keepAliveMs > 0) {
      this.timer = setInterval(
        () => {
          if (Date.now() - this.lastWrite < keepAliveMs) return;
          this.lastWrite = Date.now();
          this.sse.comment('keep-alive');
        },
        Math.max(10, Math.floor(keepAliveMs / 2)),
      );
      this.timer.unref();
      this.sse.whenClosed(() => clearInterval(this.timer));
    }
  }

  get open(): boolean {
    return this.sse.isOpen;
  }

  whenClosed(fn: () => void): void {
    this.sse.whenClosed(fn);
  }

  write(id: string | undefined, data: string): void {
    let out = data;
    if (this.rpcId !== undefined) {
      try {
        const o = JSON.parse(data) as Record<string, unknown>;
        if ('jsonrpc' in o && o.id !== this.rpcId) out = JSON.stringify({ ...o, id: this.rpcId });
      } catch {
        // Not JSON: as the agent sent it.
      }
    }
    this.lastWrite = Date.now();
    this.sse.event({ id, data: out });
  }

  /** The listener that feeds this client from a task's stream (ends this response when the stream ends). */
  listener(stream: TaskStream): Listener {
    return (e, complete) => {
      if (e !== undefined) return this.write(stream.id(e.seq), e.data);
      if (complete) this.end();
      else this.break();
    };
  }

  end(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.sse.end();
  }

  /** Closes the response without a clean end: the client sees the stream broke (and may resume). */
  break(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.res.destroy();
  }

  /** Resolves when the client's response is closed (ended, broken, or the client went away). */
  closed(): Promise<void> {
    return new Promise((resolve) => this.sse.whenClosed(resolve));
  }
}

/** What a relayed stream is read from: the agent's SSE answer, or the translated events of the SDK (translate.ts). */
export interface EventSource {
  /** Calls `onEvent` for each whole event; resolves at the end, rejects when the stream broke or was aborted. */
  events(onEvent: (event: { readonly data: string }) => unknown): Promise<void>;
  abort(reason: GatewayError): void;
}

export interface StreamRelay {
  readonly answer: EventSource;
  /** The feed of the client (a resumed client's, already written to; else one is made). */
  readonly feed: ClientFeed;
  /** Sees each task id an event names, before the event is passed on (binding a new task to the caller). */
  readonly onTask?: ((taskId: string) => void) | undefined;
  /** Opens the buffer of the task the stream is about (undefined: not resumable, e.g. the cap is reached). */
  readonly open: (taskId: string, stop: () => void) => TaskStream | undefined;
}

/** Reads the agent's stream to its end (or until it is given up), feeding the buffer and the caller. */
export async function relayStream(r: StreamRelay): Promise<void> {
  const { answer, feed } = r;
  let stream: TaskStream | undefined;
  let listener: Listener | undefined;
  const cancel = (): void => answer.abort(new GatewayError(Errors.REQUEST_CANCELLED, 'No client is reading the stream any more'));
  feed.whenClosed(() => {
    if (stream !== undefined && listener !== undefined) stream.detach(listener);
    else if (stream === undefined) cancel();
  });
  try {
    await answer.events((e) => {
      let taskId: string | undefined;
      try {
        taskId = taskIdIn(JSON.parse(e.data));
      } catch {
        // Not JSON: relayed as it is, the client judges it.
      }
      if (taskId !== undefined) r.onTask?.(taskId);
      if (stream === undefined && taskId !== undefined && feed.open) {
        stream = r.open(taskId, cancel);
        if (stream !== undefined) {
          listener = feed.listener(stream);
          stream.attach(listener);
        }
      }
      if (stream !== undefined) stream.push(e.data);
      else feed.write(undefined, e.data);
    });
  } catch (err) {
    // A half event is never delivered; the stream breaks so the client sees it did not end cleanly.
    if (stream !== undefined) stream.end(false);
    else feed.break();
    throw err;
  }
  if (stream !== undefined) stream.end(true);
  else feed.end();
}

export interface Resume {
  readonly res: ServerResponse;
  readonly agent: string;
  readonly taskId: string;
  readonly caller: string;
  readonly version: A2aVersion;
  readonly binding: 'jsonrpc' | 'rest';
  readonly lastEventId: string;
  readonly rpcId: string | number | undefined;
  readonly keepAliveMs: number;
}

/**
 * Serves a SubscribeToTask with Last-Event-ID from the task's buffer: the missed events, then the live rest of the
 * stream ('done' once it ended), or, when the agent's stream was given up, the feed a fresh subscription continues
 * on. Undefined: nothing to resume here (the caller subscribes afresh).
 */
export async function resume(buffers: StreamBuffers, o: Resume): Promise<ClientFeed | 'done' | undefined> {
  const s = buffers.find(o.agent, o.taskId, o.caller, o.version, o.binding);
  const missed = s?.after(o.lastEventId);
  if (s === undefined || missed === undefined) return undefined;
  const feed = new ClientFeed(o.res, {}, o.keepAliveMs, o.binding === 'jsonrpc' ? (o.rpcId ?? null) : undefined);
  for (const e of missed) feed.write(s.id(e.seq), e.data);
  if (s.live) {
    const l = feed.listener(s);
    s.attach(l);
    feed.whenClosed(() => s.detach(l));
    await feed.closed();
    return 'done';
  }
  if (s.complete) {
    feed.end();
    return 'done';
  }
  return feed;
}
