/**
 * Calls in flight on an upstream, counted so that an upstream a config reload replaced or removed is closed only once
 * they finished (or a deadline passed), rather than failing them at once. Every upstream session the registry hands
 * out is wrapped: a forwarded request counts from `request()` until its final response, failure or cancellation; a
 * call the gateway makes itself (list fan-out) until it settles.
 */
import type { InflightHandle, ReplySink, UpstreamSession } from './types.ts';

/** A count of calls in flight, with waiters for it to reach zero. */
export class Inflight {
  private n = 0;
  private waiters: Array<() => void> = [];

  get count(): number {
    return this.n;
  }

  enter(): void {
    this.n++;
  }

  leave(): void {
    if (this.n > 0) this.n--;
    if (this.n === 0) for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves true once no call is in flight, false when `deadlineMs` passed first. */
  idle(deadlineMs: number): Promise<boolean> {
    if (this.n === 0) return Promise.resolve(true);
    return new Promise((done) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== wake);
        done(false);
      }, deadlineMs);
      timer.unref();
      const wake = (): void => {
        clearTimeout(timer);
        done(true);
      };
      this.waiters.push(wake);
    });
  }
}

/** What a tracked session needs to know about its upstream's fate. */
export interface DrainState {
  /** Calls in flight on the whole upstream. */
  readonly inflight: Inflight;
  /** Set once the upstream was replaced or removed: the deadline (ms) its calls still have. */
  retiring: number | undefined;
}

/**
 * Makes an upstream session count its calls on the upstream's and its own Inflight. The session object itself is
 * instrumented (its request, call and close), not wrapped: callers keep seeing what it is (a 2026-07-28 session's
 * own methods and marks).
 */
export function trackSession<S extends UpstreamSession>(session: S, state: DrainState): S {
  const own = new Inflight();
  const enter = (): (() => void) => {
    state.inflight.enter();
    own.enter();
    let left = false;
    return () => {
      if (left) return;
      left = true;
      own.leave();
      state.inflight.leave();
    };
  };
  const request = session.request.bind(session);
  const call = session.call.bind(session);
  const close = session.close.bind(session);
  session.request = (msg, raw, sink: ReplySink): InflightHandle => {
    const leave = enter();
    let handle: InflightHandle;
    try {
      handle = request(msg, raw, {
        interim: (m) => sink.interim(m),
        final: (m) => {
          leave();
          sink.final(m);
        },
        fail: (e) => {
          leave();
          sink.fail(e);
        },
      });
    } catch (err) {
      leave();
      throw err;
    }
    return {
      downstreamId: handle.downstreamId,
      cancel: (reason) => {
        leave();
        handle.cancel(reason);
      },
    };
  };
  session.call = async (method, params, timeoutMs, signal) => {
    const leave = enter();
    try {
      return await call(method, params, timeoutMs, signal);
    } finally {
      leave();
    }
  };
  // A session let go of because its upstream was replaced finishes its calls first (up to the deadline).
  session.close = async () => {
    if (state.retiring !== undefined && own.count > 0) await own.idle(state.retiring);
    await close();
  };
  return session;
}
