/**
 * Long-lived upstream event streams (the session era's GET stream, the stateless era's subscriptions/listen): kept
 * open while someone listens, re-opened when they end or fail: after the server's `retry` when it sent one (a server
 * that closes its stream on purpose says when to come back), else with exponential backoff (0.5 s doubling to 30 s),
 * naming the last event id received (`Last-Event-ID`) so that a server keeping events replays what was missed.
 */
import type { Dispatcher } from 'undici';
import type { Logger } from '../../../telemetry/logger.ts';
import { createParser } from 'eventsource-parser';

export interface FollowOptions {
  readonly upstream: string;
  readonly log: Logger;
  /**
   * Opens the stream once. Resolve with the response to read it, 'stop' when the upstream has no such stream, or
   * 'again' to re-open at once (e.g. after re-creating an expired session). Throw to back off and retry.
   */
  open(signal: AbortSignal, lastEventId: string | undefined): Promise<Dispatcher.ResponseData | 'stop' | 'again'>;
  /** Called per event; return true to end this stream (it is then re-opened after the backoff). */
  onData(data: string): boolean;
}

/** Starts following; returns the function that stops it. */
export function followStream(opts: FollowOptions): () => void {
  const controller = new AbortController();
  let active = true;
  const cursor: StreamCursor = { lastEventId: undefined, retryMs: undefined };
  const run = async (): Promise<void> => {
    let backoff = 500;
    while (active) {
      let read = false;
      try {
        const res = await opts.open(controller.signal, cursor.lastEventId);
        if (res === 'stop') return;
        if (res === 'again') continue;
        backoff = 500;
        read = true;
        await readEvents(res, opts.onData, cursor);
      } catch (err) {
        if (!active) return;
        opts.log.debug({ upstream: opts.upstream, err: (err as Error).message }, 'upstream stream ended; reconnecting');
      }
      if (!active) return;
      // A stream that was open and ended (the server closed it) comes back after the server's retry, if it gave one.
      const wait = read && cursor.retryMs !== undefined ? retryDelay(cursor.retryMs) : backoff;
      await new Promise((r) => setTimeout(r, wait).unref());
      if (!(read && cursor.retryMs !== undefined)) backoff = Math.min(backoff * 2, 30_000);
    }
  };
  void run();
  return () => {
    active = false;
    controller.abort();
  };
}

/** Where a stream got to: the last event id it carried and the last `retry` it asked for (resumption). */
export interface StreamCursor {
  lastEventId: string | undefined;
  retryMs: number | undefined;
}

/** A server's `retry`, bounded: at least 0, at most 30 s (a server cannot park the gateway's call for hours). */
export function retryDelay(ms: number): number {
  return Math.min(Math.max(0, ms), 30_000);
}

/**
 * Reads an SSE body, calling `onData` per event until it returns true or the stream ends. With a cursor, keeps the
 * last event id (a priming event, id and empty data, counts) and the last `retry`.
 */
export async function readEvents(res: Dispatcher.ResponseData, onData: (data: string) => boolean, cursor?: StreamCursor): Promise<void> {
  let stop = false;
  const parser = createParser({
    onEvent: (event) => {
      if (stop) return;
      if (cursor && event.id !== undefined) cursor.lastEventId = event.id;
      if (event.event !== undefined && event.event !== 'message') return;
      if (event.data.length > 0 && onData(event.data)) stop = true;
    },
    onRetry: (ms) => {
      if (cursor) cursor.retryMs = ms;
    },
  });
  res.body.setEncoding('utf8');
  for await (const chunk of res.body) {
    parser.feed(chunk as string);
    if (stop) {
      res.body.destroy();
      return;
    }
  }
}
