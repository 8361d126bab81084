/**
 * An HTTP upstream (an A2A agent, a model server, any backend reached over HTTP) as the forwarder sees it: its
 * configured headers (the gateway's own credentials, secrets resolved), its timeouts, and its endpoints behind an
 * `EndpointPicker`: an EndpointPool (endpoint-pool.ts) of one or more replicas, each with its keep-alive undici Pool,
 * balanced by least outstanding requests or power of two choices, health-checked, ejected on errors and capped
 * (circuit breaker). The forwarder asks `pick()` per attempt and reports each outcome to `release()`; adapters never
 * see endpoints.
 */
import type { Dispatcher } from 'undici';
import type { ConfigSnapshot, ResolvedBackend } from '../config/load.ts';
import type { GatewaySpec } from '../config/schema.ts';
import type { GatewayError } from '../core/errors.ts';
import type { Logger } from '../telemetry/logger.ts';
import { withCredential, type UpstreamCredential, type UpstreamCredentials } from './credentials.ts';
import { EndpointPool, PooledEndpoint, type EndpointStatus } from './endpoint-pool.ts';
import { httpProbe, type HealthProbe, type HealthSettings } from './health.ts';
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
  /**
   * The endpoint for attempt `attempt` (1-based); `previous` failed the attempt before. Undefined: none available.
   * Throws a GatewayError to refuse the request outright (a circuit breaker). `affinity`: requests with the same key
   * go to the same endpoint while it is available (state kept in one replica, e.g. a Triton sequence).
   */
  pick(attempt: number, previous?: Endpoint, affinity?: string): Endpoint | undefined;
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

/** Retries before the first byte reached the client (see the Backend `retries` config). */
export interface RetryPolicy {
  /** Attempts in all, the first included. */
  readonly attempts: number;
  /** Statuses retried for idempotent requests. */
  readonly statuses: readonly number[];
  readonly backoffMs: number;
}

export const NO_RETRY: RetryPolicy = Object.freeze({ attempts: 1, statuses: [], backoffMs: 0 });

/** How an adapter checks its backends' endpoints: GET a path (2xx = healthy), or its own probe (the hook). */
export type HealthDefaults = { readonly path: string } | { readonly probe: (backend: ResolvedBackend) => HealthProbe };

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

  /**
   * Builds the upstream of a configured backend: one keep-alive undici Pool per endpoint (its `url`, or each of its
   * `endpoints`), its credential wrapped around each, behind an EndpointPool (balancing, health, ejection, circuit
   * breaking). Active checks run when the backend sets `healthCheck.path` or the adapter gives `health` (its default
   * path or its own probe), unless `healthCheck.enabled: false`.
   */
  static fromBackend(backend: ResolvedBackend, gateway: GatewaySpec, opts: { credential?: UpstreamCredential | undefined; log: Logger; health?: HealthDefaults | undefined }): HttpUpstream {
    const spec = backend.spec;
    const t = { ...gateway.timeouts, ...spec.timeouts };
    const timeouts: UpstreamTimeouts = { connectMs: t.connectMs, firstByteMs: t.headersMs, idleMs: t.bodyIdleMs, totalMs: t.totalMs ?? 0 };
    const urls = spec.endpoints?.map((e) => e.url) ?? [spec.url!];
    const endpoints = urls.map((u) => {
      const url = new URL(u);
      const pool = createPool(url.origin, {
        connections: spec.pool.connections,
        keepAliveMs: spec.pool.keepAliveMs,
        connectMs: timeouts.connectMs,
        headersMs: timeouts.firstByteMs,
        bodyIdleMs: timeouts.idleMs,
      });
      const dispatcher = opts.credential ? withCredential(pool, opts.credential) : pool;
      return new PooledEndpoint({ key: url.origin, basePath: url.pathname.replace(/\/+$/, ''), dispatcher, connections: pool });
    });
    const hc = spec.healthCheck;
    let health: { settings: HealthSettings; probe: HealthProbe } | undefined;
    if (hc.enabled && (hc.path !== undefined || opts.health !== undefined)) {
      // A configured path wins; else the adapter's probe (its hook) or its default path.
      const d = opts.health;
      const probe = hc.path !== undefined || d === undefined ? httpProbe(hc.path!, backend.headers, hc.timeoutMs) : 'probe' in d ? d.probe(backend) : httpProbe(d.path, backend.headers, hc.timeoutMs);
      health = { settings: hc, probe };
    }
    const picker = new EndpointPool({
      name: backend.name,
      endpoints,
      balancing: spec.loadBalancing.policy,
      outlier: spec.outlierDetection,
      maxRequests: spec.circuitBreaker.maxRequests,
      health,
      log: opts.log,
    });
    picker.start();
    return new HttpUpstream({ name: backend.name, fingerprint: backend.fingerprint, headers: backend.headers, timeouts, retries: spec.retries, picker });
  }

  /** Reachability: the pool's endpoints when it has them, else what the last exchange saw. */
  status(): UpstreamStatus {
    const picker = this.picker;
    if (picker instanceof EndpointPool) {
      const endpoints = picker.statuses();
      const available = endpoints.filter((e) => e.state === 'available').length;
      const up = available > 0;
      const detail = up && available === endpoints.length ? undefined : `${available}/${endpoints.length} endpoints available`;
      return { up, transport: this.transport, ...(detail !== undefined ? { detail } : {}), endpoints };
    }
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

export interface UpstreamStatus {
  readonly up: boolean;
  readonly transport: string;
  readonly detail?: string | undefined;
  readonly endpoints?: readonly EndpointStatus[];
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
  private readonly health: HealthDefaults | undefined;

  constructor(opts: { protocols: readonly string[]; log: Logger; credentials?: UpstreamCredentials | undefined; health?: HealthDefaults | undefined }) {
    this.protocols = new Set(opts.protocols);
    this.log = opts.log;
    this.credentials = opts.credentials;
    this.health = opts.health;
  }

  get(name: string): HttpUpstream | undefined {
    return this.live.get(name);
  }

  sync(snapshot: ConfigSnapshot): void {
    const wanted = new Map<string, ResolvedBackend>();
    for (const b of snapshot.backends.values()) {
      if (this.protocols.has(b.spec.protocol) && (b.spec.url !== undefined || b.spec.endpoints !== undefined)) wanted.set(b.name, b);
    }
    for (const [name, up] of this.live) {
      const b = wanted.get(name);
      if (!b || b.fingerprint !== up.fingerprint) {
        this.live.delete(name);
        void up.close().catch((err: unknown) => this.log.warn({ upstream: name, err: (err as Error).message }, 'closing upstream failed'));
      }
    }
    for (const [name, b] of wanted) {
      if (!this.live.has(name)) {
        this.live.set(name, HttpUpstream.fromBackend(b, snapshot.gateway, { credential: this.credentials?.for(b), log: this.log, health: this.health }));
      }
    }
  }

  statuses(): Record<string, UpstreamStatus> {
    const out: Record<string, UpstreamStatus> = {};
    for (const [name, up] of this.live) out[name] = up.status();
    return out;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.live.values()].map((u) => u.close()));
    this.live.clear();
  }
}
