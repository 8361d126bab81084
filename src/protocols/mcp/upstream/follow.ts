/**
 * Long-lived upstream event streams (the session era's GET stream, the stateless era's subscriptions/listen): kept
 * open while someone listens, re-opened with exponential backoff (0.5 s doubling to 30 s) when they end or fail.
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
  open(signal: AbortSignal): Promise<Dispatcher.ResponseData | 'stop' | 'again'>;
  /** Called per event; return true to end this stream (it is then re-opened after the backoff). */
  onData(data: string): boolean;
}

/** Starts following; returns the function that stops it. */
export function followStream(opts: FollowOptions): () => void {
  const controller = new AbortController();
  let active = true;
  const run = async (): Promise<void> => {
    let backoff = 500;
    while (active) {
      try {
        const res = await opts.open(controller.signal);
        if (res === 'stop') return;
        if (res === 'again') continue;
        backoff = 500;
        await readEvents(res, opts.onData);
      } catch (err) {
        if (!active) return;
        opts.log.debug({ upstream: opts.upstream, err: (err as Error).message }, 'upstream stream ended; reconnecting');
      }
      if (!active) return;
      await new Promise((r) => setTimeout(r, backoff).unref());
      backoff = Math.min(backoff * 2, 30_000);
    }
  };
  void run();
  return () => {
    active = false;
    controller.abort();
  };
}

/** Reads an SSE body, calling `onData` per event until it returns true or the stream ends. */
export async function readEvents(res: Dispatcher.ResponseData, onData: (data: string) => boolean): Promise<void> {
  let stop = false;
  const parser = createParser({
    onEvent: (event) => {
      if (stop || (event.event !== undefined && event.event !== 'message')) return;
      if (event.data.length > 0 && onData(event.data)) stop = true;
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
