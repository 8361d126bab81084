/**
 * Admission control for the listener: the gateway sheds load before its latency collapses.
 *
 * - at most `maxInFlight` calls run at once; the next `maxQueue` wait (first come, first served) up to
 *   `queueTimeoutMs` for a slot; anything past that is refused at once with TG_OVERLOADED (503 + Retry-After),
 *   rendered by the protocol's adapter in its own shape (JSON-RPC error, OpenAI error object...);
 * - while the event loop lags (its delay, sampled with perf_hooks `monitorEventLoopDelay`, is over
 *   `maxEventLoopDelayMs` in two 250 ms windows in a row, while the loop is busy at least 80% of the time), new calls are refused before they cost anything: when the loop is late, every call
 *   already admitted is late too, and adding more only makes all of them later;
 * - long-lived server streams (a GET asking for text/event-stream: MCP's server stream, legacy SSE channels) do not
 *   take a slot: they cost nothing while idle and are capped per principal (`mcp.limits.streamsPerPrincipal`) and by
 *   the listener's `maxConnections`; event-loop lag still refuses them.
 *
 * Nothing admitted is ever evicted to make room: the newcomer is the one refused.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { monitorEventLoopDelay, performance, type ELDHistogram, type EventLoopUtilization } from 'node:perf_hooks';
import { Errors, GatewayError } from '../core/errors.ts';

export interface OverloadSettings {
  /** Calls running at once (0: unbounded). */
  readonly maxInFlight: number;
  /** Calls waiting for a slot (0: none wait, the newcomer is refused at once). */
  readonly maxQueue: number;
  /** Longest wait for a slot before the call is refused. */
  readonly queueTimeoutMs: number;
  /** Event-loop delay (ms) over which new calls are refused (0: off). */
  readonly maxEventLoopDelayMs: number;
  /** Retry-After sent with a refusal, in seconds. */
  readonly retryAfterSeconds: number;
}

export type ShedReason = 'concurrency' | 'queue_timeout' | 'event_loop_lag';

/** What /readyz and the metrics show. */
export interface AdmissionStatus {
  readonly inFlight: number;
  readonly queued: number;
  /** The event loop's delay over the last sampling window (ms, p99). */
  readonly eventLoopDelayMs: number;
  /** Share of the last window the event loop was busy (0-1). */
  readonly eventLoopUtilization: number;
  readonly lagging: boolean;
  /** Calls refused since start, by reason. */
  readonly shed: Readonly<Record<ShedReason, number>>;
}

interface Waiter {
  readonly run: () => void;
  readonly refuse: (err: GatewayError) => void;
  readonly res: ServerResponse;
  readonly timer: NodeJS.Timeout;
  gone: boolean;
}

/** Sampling window of the event-loop delay: short enough to react within a fraction of a second. */
const LAG_WINDOW_MS = 250;
/** Event-loop utilization over which a lagging loop is this process's own overload. */
const BUSY = 0.8;

export class Admission {
  private settings: OverloadSettings;
  private inFlight = 0;
  private readonly queue: Waiter[] = [];
  private head = 0;
  /** Waiters still in the queue (not timed out, not gone, not started). */
  private waiting = 0;
  private readonly shed: Record<ShedReason, number> = { concurrency: 0, queue_timeout: 0, event_loop_lag: 0 };
  private histogram: ELDHistogram | undefined;
  private sampler: NodeJS.Timeout | undefined;
  private delayMs = 0;
  /** The delay of the window before (lag counts when two windows in a row are over the threshold). */
  private previousMs = 0;
  /** Share of the last window the loop was busy: lag with an idle loop is CPU taken by others, not our load. */
  private utilization = 0;
  private elu: EventLoopUtilization | undefined;

  constructor(settings: OverloadSettings) {
    this.settings = settings;
    this.configure(settings);
  }

  /** New settings (a config reload). Calls in flight and waiting keep their place. */
  configure(settings: OverloadSettings): void {
    this.settings = settings;
    if (settings.maxEventLoopDelayMs > 0 && this.histogram === undefined) {
      this.histogram = monitorEventLoopDelay({ resolution: 10 });
      this.histogram.enable();
      this.sampler = setInterval(() => this.sample(), LAG_WINDOW_MS);
      this.sampler.unref();
    } else if (settings.maxEventLoopDelayMs === 0 && this.histogram !== undefined) {
      this.stopSampling();
    }
    this.pump();
  }

  private sample(): void {
    const h = this.histogram!;
    // p99 of the window, in ms: one long pause (a GC, a sync burst) shows, the timer's own jitter does not.
    this.previousMs = this.delayMs;
    this.delayMs = h.count > 0 ? h.percentile(99) / 1e6 : 0;
    const now = performance.eventLoopUtilization();
    this.utilization = this.elu === undefined ? 0 : performance.eventLoopUtilization(now, this.elu).utilization;
    this.elu = now;
    h.reset();
  }

  private stopSampling(): void {
    this.histogram?.disable();
    this.histogram = undefined;
    if (this.sampler !== undefined) clearInterval(this.sampler);
    this.sampler = undefined;
    this.delayMs = 0;
    this.previousMs = 0;
    this.utilization = 0;
    this.elu = undefined;
  }

  get lagging(): boolean {
    const max = this.settings.maxEventLoopDelayMs;
    // Sustained lag only: one long pause (a GC, a policy compiled) is over before anything could be shed for it.
    // And only while the loop itself is busy: a process starved of CPU by its neighbours lags with an idle loop, and
    // refusing calls would not give it the CPU back.
    return max > 0 && this.delayMs > max && this.previousMs > max && this.utilization >= BUSY;
  }

  /**
   * Runs `run` now or once a slot frees, or calls `refuse` with TG_OVERLOADED. The slot is released when `res`
   * closes (the exchange ended, answered or not).
   */
  admit(req: IncomingMessage, res: ServerResponse, run: () => void, refuse: (err: GatewayError) => void): void {
    if (this.lagging) return this.refuse(refuse, 'event_loop_lag');
    if (isServerStream(req)) return run();
    const max = this.settings.maxInFlight;
    if (max === 0 || (this.inFlight < max && this.waiting === 0)) return this.start(res, run);
    if (this.waiting >= this.settings.maxQueue) return this.refuse(refuse, 'concurrency');
    const waiter: Waiter = {
      run,
      refuse,
      res,
      gone: false,
      timer: setTimeout(() => {
        if (this.leave(waiter)) this.refuse(refuse, 'queue_timeout');
      }, this.settings.queueTimeoutMs),
    };
    res.once('close', () => this.leave(waiter));
    this.queue.push(waiter);
    this.waiting++;
  }

  /** A waiter leaves the queue (timed out, client gone, or started). False if it had left already. */
  private leave(w: Waiter): boolean {
    if (w.gone) return false;
    w.gone = true;
    clearTimeout(w.timer);
    this.waiting--;
    if (this.waiting === 0) {
      this.queue.length = 0;
      this.head = 0;
    }
    return true;
  }

  private start(res: ServerResponse, run: () => void): void {
    this.inFlight++;
    let released = false;
    res.once('close', () => {
      if (released) return;
      released = true;
      this.inFlight--;
      this.pump();
    });
    run();
  }

  /** Starts waiting calls while slots are free. */
  private pump(): void {
    const max = this.settings.maxInFlight;
    while (this.waiting > 0 && (max === 0 || this.inFlight < max)) {
      const w = this.queue[this.head++]!;
      if (!this.leave(w)) continue;
      if (!w.res.destroyed) this.start(w.res, w.run);
    }
    if (this.head > 1024) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
  }

  private refuse(refuse: (err: GatewayError) => void, reason: ShedReason): void {
    this.shed[reason]++;
    const message =
      reason === 'event_loop_lag'
        ? 'The gateway is overloaded (its event loop is lagging); retry later'
        : reason === 'queue_timeout'
          ? 'The gateway is overloaded (no slot freed in time); retry later'
          : 'The gateway is overloaded (too many calls in flight); retry later';
    refuse(
      new GatewayError(Errors.OVERLOADED, message, {
        data: { reason },
        headers: { 'retry-after': String(this.settings.retryAfterSeconds) },
      }),
    );
  }

  status(): AdmissionStatus {
    return { inFlight: this.inFlight, queued: this.waiting, eventLoopDelayMs: Math.round(this.delayMs * 10) / 10, eventLoopUtilization: Math.round(this.utilization * 100) / 100, lagging: this.lagging, shed: { ...this.shed } };
  }

  close(): void {
    this.stopSampling();
  }
}

/** A GET that asks for an event stream: a long-lived server stream, not a call. */
function isServerStream(req: IncomingMessage): boolean {
  if (req.method !== 'GET') return false;
  const accept = req.headers.accept;
  return accept !== undefined && accept.includes('text/event-stream');
}
