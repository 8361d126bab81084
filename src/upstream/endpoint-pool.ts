/**
 * A pool of endpoints (replicas of one backend) behind the forwarder's `EndpointPicker` seam:
 *
 * - balancing: least outstanding requests (ties taken in turn), or power of two choices;
 * - active health: a probe per endpoint on an interval (health.ts); an endpoint failing `unhealthyThreshold` probes
 *   in a row is taken out, and put back after `healthyThreshold` passes;
 * - passive ejection (outlier detection): `consecutiveFailures` failed attempts in a row (no answer, a 5xx gateway
 *   status, a body that broke) eject the endpoint for `baseEjectionMs`, doubled on each further ejection up to
 *   `maxEjectionMs`; a passed probe ends an ejection early (Envoy's successful_active_health_check_uneject_host);
 *   at most `maxEjectionPercent` of the pool is ejected at once, but at least one endpoint always can be;
 * - circuit breaking: past `maxRequests` in flight, the newcomer is refused at once (TG_UPSTREAM_OVERLOADED) rather
 *   than queued behind the others.
 *
 * Retries stay in the forwarder (before the first byte only); on a retry the pool avoids the endpoint that failed.
 */
import type { Dispatcher } from 'undici';
import { Errors, GatewayError } from '../core/errors.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { OutlierDetectionSpec } from './config.ts';
import { HealthChecker, type HealthProbe, type HealthSettings } from './health.ts';
import type { AttemptResult, Endpoint, EndpointPicker } from './http-upstream.ts';

export type Balancing = 'least-request' | 'power-of-two';

/** One endpoint and what the pool knows of it. */
export class PooledEndpoint implements Endpoint {
  readonly key: string;
  readonly basePath: string;
  readonly dispatcher: Dispatcher;
  /** The undici Pool under `dispatcher` (closed with the pool). */
  readonly connections: Dispatcher;
  /** Requests picked and not yet released (response body included). */
  outstanding = 0;
  /** The active health checks' verdict (true until a probe says otherwise). */
  healthy = true;
  consecutiveFailures = 0;
  /** Ejections so far (each doubles the next one); decremented by successes once back. */
  ejections = 0;
  ejectedUntil = 0;
  lastError: string | undefined;

  constructor(init: { key: string; basePath: string; dispatcher: Dispatcher; connections: Dispatcher }) {
    this.key = init.key;
    this.basePath = init.basePath;
    this.dispatcher = init.dispatcher;
    this.connections = init.connections;
  }

  available(now: number): boolean {
    return this.healthy && now >= this.ejectedUntil;
  }

  state(now: number): 'available' | 'unhealthy' | 'ejected' {
    if (!this.healthy) return 'unhealthy';
    return now < this.ejectedUntil ? 'ejected' : 'available';
  }
}

/** What /readyz and metrics show of one endpoint. */
export interface EndpointStatus {
  readonly url: string;
  readonly state: 'available' | 'unhealthy' | 'ejected';
  readonly outstanding: number;
  readonly detail?: string | undefined;
}

export interface PoolOptions {
  readonly name: string;
  readonly endpoints: readonly PooledEndpoint[];
  readonly balancing: Balancing;
  readonly outlier: OutlierDetectionSpec;
  readonly maxRequests: number;
  /** Active health checks (undefined: none). */
  readonly health?: { readonly settings: HealthSettings; readonly probe: HealthProbe } | undefined;
  readonly log: Logger;
  /** Clock (tests). */
  readonly now?: () => number;
  /** Random in [0, 1) (tests). */
  readonly random?: () => number;
}

/** Statuses that count against an endpoint: the server failed (500) or could not serve (502, 503, 504). */
const FAILURE_STATUS = new Set([500, 502, 503, 504]);

export class EndpointPool implements EndpointPicker {
  readonly name: string;
  readonly endpoints: readonly PooledEndpoint[];
  private readonly balancing: Balancing;
  private readonly outlier: OutlierDetectionSpec;
  private readonly maxRequests: number;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly checker: HealthChecker<PooledEndpoint> | undefined;
  private inFlight = 0;
  private turn = 0;

  constructor(o: PoolOptions) {
    if (o.endpoints.length === 0) throw new Error(`pool ${o.name} has no endpoint`);
    this.name = o.name;
    this.endpoints = o.endpoints;
    this.balancing = o.balancing;
    this.outlier = o.outlier;
    this.maxRequests = o.maxRequests;
    this.log = o.log;
    this.now = o.now ?? Date.now;
    this.random = o.random ?? Math.random;
    this.checker = o.health ? new HealthChecker(o.health.settings, o.health.probe, this.endpoints, (e, ok, detail) => this.probed(e, ok, detail)) : undefined;
  }

  /** Starts the active health checks (first round at once). */
  start(): void {
    this.checker?.start();
  }

  /** Requests in flight to the whole pool. */
  get outstanding(): number {
    return this.inFlight;
  }

  pick(attempt: number, previous?: Endpoint, affinity?: string): Endpoint | undefined {
    if (this.inFlight >= this.maxRequests) {
      throw new GatewayError(Errors.UPSTREAM_OVERLOADED, `Upstream ${this.name} has ${this.inFlight} requests in flight (circuit breaker maxRequests ${this.maxRequests})`, {
        data: { upstream: this.name },
        headers: { 'retry-after': '1' },
      });
    }
    const now = this.now();
    const all = this.endpoints;
    let candidates: PooledEndpoint[] = [];
    for (const e of all) if (e.available(now)) candidates.push(e);
    // A retry goes elsewhere when there is anywhere else to go.
    if (attempt > 1 && previous !== undefined && candidates.length > 1) candidates = candidates.filter((e) => e !== previous);
    if (candidates.length === 0) return undefined;
    const chosen =
      candidates.length === 1
        ? candidates[0]!
        : affinity !== undefined
          ? rendezvous(candidates, affinity)
          : this.balancing === 'power-of-two'
            ? this.twoChoices(candidates)
            : this.leastRequest(candidates);
    chosen.outstanding++;
    this.inFlight++;
    return chosen;
  }

  private leastRequest(candidates: readonly PooledEndpoint[]): PooledEndpoint {
    const n = candidates.length;
    const start = this.turn++ % n;
    let best = candidates[start]!;
    for (let i = 1; i < n; i++) {
      const e = candidates[(start + i) % n]!;
      if (e.outstanding < best.outstanding) best = e;
    }
    return best;
  }

  private twoChoices(candidates: readonly PooledEndpoint[]): PooledEndpoint {
    const n = candidates.length;
    const i = Math.floor(this.random() * n);
    let j = Math.floor(this.random() * (n - 1));
    if (j >= i) j++;
    const a = candidates[i]!;
    const b = candidates[j]!;
    return b.outstanding < a.outstanding ? b : a;
  }

  release(endpoint: Endpoint, result: AttemptResult): void {
    const e = endpoint as PooledEndpoint;
    e.outstanding--;
    this.inFlight--;
    const err = result.error;
    // The client going away, or its body over the limit, says nothing about the endpoint.
    if (err !== undefined && (err.def === Errors.REQUEST_CANCELLED || err.def === Errors.PAYLOAD_TOO_LARGE)) return;
    const failed = !result.answered || err !== undefined || (result.status !== undefined && FAILURE_STATUS.has(result.status));
    if (!failed) {
      e.consecutiveFailures = 0;
      e.lastError = undefined;
      if (e.ejections > 0 && this.now() >= e.ejectedUntil) e.ejections--;
      return;
    }
    e.consecutiveFailures++;
    e.lastError = err?.message ?? `status ${result.status}`;
    if (e.consecutiveFailures >= this.outlier.consecutiveFailures) this.eject(e);
  }

  private eject(e: PooledEndpoint): void {
    const now = this.now();
    if (now < e.ejectedUntil) return;
    let ejected = 0;
    for (const x of this.endpoints) if (now < x.ejectedUntil) ejected++;
    const cap = Math.max(1, Math.floor((this.endpoints.length * this.outlier.maxEjectionPercent) / 100));
    if (ejected >= cap) return;
    const ms = Math.min(this.outlier.baseEjectionMs * 2 ** e.ejections, Math.max(this.outlier.maxEjectionMs, this.outlier.baseEjectionMs));
    e.ejections++;
    e.ejectedUntil = now + ms;
    e.consecutiveFailures = 0;
    this.log.warn({ upstream: this.name, endpoint: e.key, ejectedMs: ms, reason: e.lastError }, 'endpoint ejected after consecutive failures');
  }

  /** A probe's verdict (from the health checker). */
  private probed(e: PooledEndpoint, ok: boolean, detail: string | undefined): void {
    if (ok) {
      if (!e.healthy) {
        e.healthy = true;
        this.log.info({ upstream: this.name, endpoint: e.key }, 'endpoint healthy again');
      }
      if (this.now() < e.ejectedUntil) {
        e.ejectedUntil = 0;
        e.consecutiveFailures = 0;
        this.log.info({ upstream: this.name, endpoint: e.key }, 'ejection ended by a passed health check');
      }
    } else if (e.healthy) {
      e.healthy = false;
      e.lastError = detail;
      this.log.warn({ upstream: this.name, endpoint: e.key, reason: detail }, 'endpoint failed its health checks');
    }
  }

  /** True when some endpoint may take a request now. */
  up(): boolean {
    const now = this.now();
    return this.endpoints.some((e) => e.available(now));
  }

  statuses(): EndpointStatus[] {
    const now = this.now();
    return this.endpoints.map((e) => {
      const state = e.state(now);
      return { url: e.key + e.basePath, state, outstanding: e.outstanding, ...(state !== 'available' && e.lastError !== undefined ? { detail: e.lastError } : {}) };
    });
  }

  async close(): Promise<void> {
    this.checker?.stop();
    await Promise.allSettled(this.endpoints.map((e) => e.connections.close()));
  }
}

/**
 * The endpoint a key belongs to: the available one scoring highest for it (rendezvous hashing), so a key keeps its
 * endpoint while that endpoint is available, and only the keys of an endpoint that goes away move.
 */
function rendezvous(candidates: readonly PooledEndpoint[], key: string): PooledEndpoint {
  let best = candidates[0]!;
  let top = -1;
  for (const e of candidates) {
    const score = fnv1a(`${e.key}\n${key}`);
    if (score > top) {
      top = score;
      best = e;
    }
  }
  return best;
}

/** FNV-1a, 32 bits, then a final avalanche (murmur3's fmix32) so near keys score apart. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
