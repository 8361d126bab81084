/**
 * An HTTP upstream (an A2A agent, a model server, any backend reached over HTTP) as the forwarder sees it: its
 * configured headers (the gateway's own credentials, secrets resolved), its timeouts, and its endpoints behind an
 * `EndpointPicker`. Today a backend has one URL, so one endpoint with one keep-alive undici Pool; a backend with
 * several replicas plugs in a picker (least outstanding requests, power of two choices, health, ejection, circuit
 * breaking) without the forwarder or any adapter changing: the forwarder asks `pick()` per attempt and reports
 * each outcome to `release()`.
 */
import type { Dispatcher } from 'undici';
import type { ConfigSnapshot, ResolvedBackend } from '../config/load.ts';
import type { GatewaySpec } from '../config/schema.ts';
import type { GatewayError } from '../core/errors.ts';
import type { Logger } from '../telemetry/logger.ts';
import { withCredential, type UpstreamCredential, type UpstreamCredentials } from './credentials.ts';
import { createPool } from './pools.ts';

/** One address of an upstream: an origin with its base path and its connection pool. */
export interface Endpoint {
  /** Stable key for logs and metrics (the origin; never credentials). */
  readonly key: string;
  /** Path prefix of the backend URL ('' or '/v1'...), prepended to every forwarded path. */
  readonly basePath: string;
  readonly dispatcher: Dispatcher;
}

/** How one attempt on an endpoint went (what a balancing/health picker learns from). */
export interface AttemptResult {
  /** The upstream answered (any status); false: connect error, timeout, abort. */
  readonly answered: boolean;
  readonly status?: number | undefined;
  readonly error?: GatewayError | undefined;
  /** Time from the request to its response headers (or failure), ms. */
  readonly ms: number;
}

/** Chooses the endpoint for each attempt. The seam for pools of replicas. */
export interface EndpointPicker {
  /** The endpoint for attempt `attempt` (1-based); `previous` failed the attempt before. Undefined: none available. */
  pick(attempt: number, previous?: Endpoint): Endpoint | undefined;
  /** Called once per attempt with its outcome (an outstanding-requests picker decrements here). */
  release(endpoint: Endpoint, result: AttemptResult): void;
  close(): Promise<void>;
}

export interface UpstreamTimeouts {
  readonly connectMs: number;
  /** Time to the response headers once the request is sent (undici refreshes it while a body is being written). */
  readonly firstByteMs: number;
  /** Longest silence between two chunks of the response body (0: none; long streams send keep-alives). */
  readonly idleMs: number;
  /** Whole exchange, request to the end of the response body (0: none). */
  readonly totalMs: number;
}

/** The one endpoint of a backend with one URL. */
export class SingleEndpoint implements EndpointPicker {
  private readonly endpoint: Endpoint;
  private readonly pool: Dispatcher;

  constructor(endpoint: Endpoint, pool: Dispatcher) {
    this.endpoint = endpoint;
    this.pool = pool;
  }

  pick(): Endpoint {
    return this.endpoint;
  }

  release(): void {}

  close(): Promise<void> {
    return this.pool.close();
  }
}

/** Retries before the first byte reached the client (see the Backend `retries` config). */
export interface RetryPolicy {
  /** Attempts in all, the first included. */
  readonly attempts: number;
  /** Statuses retried for idempotent requests. */
  readonly statuses: readonly number[];
  readonly backoffMs: number;
}

export const NO_RETRY: RetryPolicy = Object.freeze({ attempts: 1, statuses: [], backoffMs: 0 });

export class HttpUpstream {
  readonly name: string;
  readonly fingerprint: string;
  readonly transport = 'http';
  /** Headers configured for the backend (the gateway's credentials, resolved from secret references). */
  readonly headers: Readonly<Record<string, string>>;
  readonly timeouts: UpstreamTimeouts;
  readonly retries: RetryPolicy;
  readonly picker: EndpointPicker;
  private lastError: string | undefined;

  constructor(init: {
    name: string;
    fingerprint: string;
    headers: Readonly<Record<string, string>>;
    timeouts: UpstreamTimeouts;
    retries?: RetryPolicy;
    picker: EndpointPicker;
  }) {
    this.name = init.name;
    this.fingerprint = init.fingerprint;
    this.headers = init.headers;
    this.timeouts = init.timeouts;
    this.retries = init.retries ?? NO_RETRY;
    this.picker = init.picker;
  }

  /** Builds the upstream of a configured backend: one pool on its URL, its credential wrapped around it. */
  static fromBackend(backend: ResolvedBackend, gateway: GatewaySpec, credential?: UpstreamCredential): HttpUpstream {
    const url = new URL(backend.spec.url!);
    const t = { ...gateway.timeouts, ...backend.spec.timeouts };
    const timeouts: UpstreamTimeouts = { connectMs: t.connectMs, firstByteMs: t.headersMs, idleMs: t.bodyIdleMs, totalMs: t.totalMs ?? 0 };
    const pool = createPool(url.origin, {
      connections: backend.spec.pool.connections,
      keepAliveMs: backend.spec.pool.keepAliveMs,
      connectMs: timeouts.connectMs,
      headersMs: timeouts.firstByteMs,
      bodyIdleMs: timeouts.idleMs,
    });
    const dispatcher = credential ? withCredential(pool, credential) : pool;
    const basePath = url.pathname.replace(/\/+$/, '');
    const endpoint: Endpoint = { key: url.origin, basePath, dispatcher };
    return new HttpUpstream({
      name: backend.name,
      fingerprint: backend.fingerprint,
      headers: backend.headers,
      timeouts,
      retries: backend.spec.retries,
      picker: new SingleEndpoint(endpoint, pool),
    });
  }

  /** Reachability as the last exchange saw it (no active probing here; a health-checking picker adds it). */
  status(): { up: boolean; transport: string; detail?: string | undefined } {
    return this.lastError === undefined ? { up: true, transport: this.transport } : { up: false, transport: this.transport, detail: this.lastError };
  }

  markOk(): void {
    this.lastError = undefined;
  }

  markFailed(err: GatewayError): void {
    this.lastError = err.message;
  }

  close(): Promise<void> {
    return this.picker.close();
  }
}

/**
 * The live HTTP upstreams of the backends whose protocol an adapter serves, kept in step with snapshots: an
 * unchanged backend keeps its pools; a changed or removed one is replaced and closed.
 */
export class HttpUpstreams {
  private readonly live = new Map<string, HttpUpstream>();
  private readonly protocols: ReadonlySet<string>;
  private readonly log: Logger;
  private readonly credentials: UpstreamCredentials | undefined;

  constructor(opts: { protocols: readonly string[]; log: Logger; credentials?: UpstreamCredentials | undefined }) {
    this.protocols = new Set(opts.protocols);
    this.log = opts.log;
    this.credentials = opts.credentials;
  }

  get(name: string): HttpUpstream | undefined {
    return this.live.get(name);
  }

  sync(snapshot: ConfigSnapshot): void {
    const wanted = new Map<string, ResolvedBackend>();
    for (const b of snapshot.backends.values()) if (this.protocols.has(b.spec.protocol) && b.spec.url !== undefined) wanted.set(b.name, b);
    for (const [name, up] of this.live) {
      const b = wanted.get(name);
      if (!b || b.fingerprint !== up.fingerprint) {
        this.live.delete(name);
        void up.close().catch((err: unknown) => this.log.warn({ upstream: name, err: (err as Error).message }, 'closing upstream failed'));
      }
    }
    for (const [name, b] of wanted) {
      if (!this.live.has(name)) this.live.set(name, HttpUpstream.fromBackend(b, snapshot.gateway, this.credentials?.for(b)));
    }
  }

  statuses(): Record<string, { up: boolean; transport: string; detail?: string | undefined }> {
    const out: Record<string, { up: boolean; transport: string; detail?: string | undefined }> = {};
    for (const [name, up] of this.live) out[name] = up.status();
    return out;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.live.values()].map((u) => u.close()));
    this.live.clear();
  }
}
