/**
 * Config of upstream pools (Backend spec), protocol-neutral: every protocol forwarded over HTTP (OpenAI-compatible,
 * KServe v2, A2A) uses it. Referenced from src/config/schema.ts.
 *
 * A Backend is a pool: one `url`, or several `endpoints` (replicas serving the same models), balanced by least
 * outstanding requests or power of two choices, checked actively (`healthCheck`) and passively (`outlierDetection`:
 * an endpoint that keeps failing is ejected for a while), and capped (`circuitBreaker`).
 */
import { z } from 'zod';

const durationMs = z.number().int().min(0);

export const endpointSpec = z.strictObject({
  /** Base URL of one replica (scheme, host, port, optional base path). */
  url: z.url(),
});

export const loadBalancingSpec = z.strictObject({
  /**
   * `least-request`: the available endpoint with the fewest requests in flight (ties taken in turn);
   * `power-of-two`: the less busy of two endpoints drawn at random (cheaper with many endpoints, and several gateway
   * replicas do not all pile onto the same "least busy" one).
   */
  policy: z.enum(['least-request', 'power-of-two']).default('least-request'),
});

export const healthCheckSpec = z.strictObject({
  /** Active checks: off only when said (the protocol's adapter provides the probe: vLLM GET /health, Triton ready). */
  enabled: z.boolean().default(true),
  /** Path probed with GET on each endpoint (default: the protocol's, e.g. /health for OpenAI-compatible servers). */
  path: z.string().regex(/^\/[^\s?#]*(\?[^\s#]*)?$/, 'must be an absolute path').optional(),
  intervalMs: z.number().int().min(100).default(5_000),
  /** A probe that has not answered (2xx) within this long failed. */
  timeoutMs: z.number().int().min(50).default(2_000),
  /** Consecutive failed probes before a healthy endpoint is taken out. */
  unhealthyThreshold: z.number().int().min(1).max(100).default(2),
  /** Consecutive passed probes before an unhealthy endpoint is put back. */
  healthyThreshold: z.number().int().min(1).max(100).default(1),
});
export type HealthCheckSpec = z.infer<typeof healthCheckSpec>;

export const outlierDetectionSpec = z.strictObject({
  /**
   * Consecutive failures (no answer: refused, reset, timed out; a 500/502/503/504; a response body that broke) that
   * eject an endpoint. A client going away is never the endpoint's fault.
   */
  consecutiveFailures: z.number().int().min(1).max(1000).default(5),
  /** First ejection; each further one doubles it (up to maxEjectionMs); a passed health check ends it early. */
  baseEjectionMs: durationMs.default(30_000),
  maxEjectionMs: durationMs.default(300_000),
  /** At most this share of a pool's endpoints is ejected at once (at least one can always be). */
  maxEjectionPercent: z.number().int().min(0).max(100).default(50),
});
export type OutlierDetectionSpec = z.infer<typeof outlierDetectionSpec>;

export const circuitBreakerSpec = z.strictObject({
  /** Requests in flight to this backend (all endpoints); the next one is refused at once (503) instead of queued. */
  maxRequests: z.number().int().min(1).max(1_000_000).default(1024),
});

/** The pool settings a Backend spec may carry (schema.ts spreads these into backendSpec). */
export const poolShape = {
  /** Several replicas of one backend (instead of `url`). */
  endpoints: z.array(endpointSpec).min(1).max(256).optional(),
  loadBalancing: loadBalancingSpec.prefault({}),
  healthCheck: healthCheckSpec.prefault({}),
  outlierDetection: outlierDetectionSpec.prefault({}),
  circuitBreaker: circuitBreakerSpec.prefault({}),
};
