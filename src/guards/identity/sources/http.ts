/**
 * Keys fetched over HTTP(S) and refreshed on a timer: a SPIFFE `https_web` bundle endpoint (period from the
 * bundle's spiffe_refresh_hint), a Kubernetes issuer's JWKS, or an OIDC provider's JWKS found through its discovery
 * document. A failed refresh keeps the last good set and retries sooner.
 */
import type { Logger } from '../../../telemetry/logger.ts';
import type { Dispatcher } from 'undici';
import { agentFor, fetchJson } from '../fetch-json.ts';
import type { KeyProfile, KeySet } from '../keys.ts';
import { KeySource } from './source.ts';

const MAX_PERIOD_S = 24 * 3600;
const RETRY_CAP_S = 30;

export interface HttpKeySourceOptions {
  readonly label: string;
  readonly fingerprint: string;
  readonly profile: KeyProfile;
  readonly log: Logger;
  /** Where the keys are; called before each fetch (OIDC resolves jwks_uri through discovery). */
  readonly locate: (dispatcher: Dispatcher | undefined) => Promise<string>;
  /** Refresh period (seconds) after a successful fetch of `set`. */
  readonly period: (set: KeySet) => number;
  /** No two fetches closer than this (seconds), including on-demand refreshes for unknown kids. */
  readonly minPeriodSeconds: number;
  readonly caFile?: string | undefined;
}

export class HttpKeySource extends KeySource {
  private readonly opts: HttpKeySourceOptions;
  private timer: NodeJS.Timeout | undefined;
  private inflight: Promise<void> | undefined;
  private lastFetchAt = 0;
  private nextAt = 0;
  private closed = false;
  private dispatcher: Dispatcher | undefined;

  constructor(opts: HttpKeySourceOptions) {
    super(opts);
    this.opts = opts;
  }

  start(): void {
    try {
      if (this.opts.caFile) this.dispatcher = agentFor(this.opts.caFile);
    } catch (err) {
      this.fail(`cannot read caFile ${this.opts.caFile}: ${(err as Error).message}`);
    }
    void this.fetchNow();
  }

  /** Fetches now (coalesced with a fetch already under way) and schedules the next one. */
  fetchNow(): Promise<void> {
    this.inflight ??= this.fetchOnce().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  private async fetchOnce(): Promise<void> {
    if (this.closed) return;
    this.lastFetchAt = Date.now();
    let ok = false;
    try {
      const url = await this.opts.locate(this.dispatcher);
      ok = this.publish(await fetchJson(url, this.dispatcher));
    } catch (err) {
      this.fail((err as Error).message);
    }
    if (this.closed) return;
    const min = this.opts.minPeriodSeconds;
    // After a failure retry at the usual pace, but at least every RETRY_CAP_S.
    const usual = this.current ? this.opts.period(this.current) : RETRY_CAP_S;
    const period = ok ? clamp(usual, min, MAX_PERIOD_S) : clamp(usual, min, RETRY_CAP_S);
    this.schedule(period * 1000);
  }

  private schedule(ms: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.nextAt = Date.now() + ms;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.fetchNow();
    }, ms);
    this.timer.unref();
  }

  /** On-demand refresh (unknown kid): at most once per minPeriodSeconds, so tokens cannot drive fetches. */
  override refresh(): void {
    if (this.closed || this.inflight) return;
    const wait = this.lastFetchAt + this.opts.minPeriodSeconds * 1000 - Date.now();
    if (wait <= 0) void this.fetchNow();
    else if (Date.now() + wait < this.nextAt) this.schedule(wait);
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    void this.dispatcher?.close().catch(() => {});
  }
}

function clamp(v: number, min: number, max: number): number {
  return Math.min(Math.max(v, min), Math.max(min, max));
}
