/**
 * Listener hardening and load shedding settings of the Gateway spec (referenced from schema.ts): how long a client
 * may take to send its request, how many connections are held, when a client that does not read is cut off
 * (src/server/http.ts), and admission control (src/gateway/admission.ts).
 */
import { z } from 'zod';

const durationMs = z.number().int().min(0);

/** Largest request body, in bytes (at least 1 KiB). */
export const bodyBytes = z.number().int().min(1024).max(Number.MAX_SAFE_INTEGER);

/** Listener timeouts and caps, part of `spec.http`. */
const listenerHttpShape = {
  /** A client must send its request headers within this long (slowloris); idle new connections are closed too. */
  headersTimeoutMs: z.number().int().min(100).default(10_000),
  /** A client must send its whole request (headers and body) within this long (slow bodies); 0 = no limit. */
  requestTimeoutMs: durationMs.default(120_000),
  /** An idle keep-alive connection is closed after this long. */
  keepAliveTimeoutMs: durationMs.default(65_000),
  /** Open client connections at once; a connection past it is closed as soon as it is accepted (0 = no limit). */
  maxConnections: z.number().int().min(0).default(10_000),
  /**
   * A response whose client reads slower than it is written: over `maxBufferedBytes` waiting for the client, or
   * unable to write anything for `slowClientMs`, the client is cut off (its memory is freed, the upstream released).
   */
  maxBufferedBytes: z.number().int().min(16 * 1024).default(1024 * 1024),
  slowClientMs: z.number().int().min(100).default(30_000),
};

/**
 * Load shedding: calls in flight, a bounded wait queue, and event-loop-lag-aware admission. A refused call gets
 * 503 + Retry-After (TG_OVERLOADED) in its protocol's shape.
 */
export const overloadSpec = z
  .strictObject({
    /** Calls running at once on this replica (0 = no limit). Long-lived server streams (GET event streams) do not count. */
    maxInFlight: z.number().int().min(0).default(1024),
    /** Calls waiting for a slot; past it the newcomer is refused at once. */
    maxQueue: z.number().int().min(0).default(512),
    /** Longest wait in the queue. */
    queueTimeoutMs: z.number().int().min(1).default(2_000),
    /** Event-loop delay (p99 over 250 ms windows, two in a row, the loop busy >= 80%) over which new calls are refused (0 = off). */
    maxEventLoopDelayMs: durationMs.default(500),
    /** Retry-After of a refusal, in seconds. */
    retryAfterSeconds: z.number().int().min(1).max(3600).default(1),
  });

/** The Gateway's `spec.http`. */
export const httpSpec = z
  .strictObject({
    /** Default request body limit of every route (a route's own http.maxBodyBytes overrides it). */
    maxBodyBytes: bodyBytes.default(4 * 1024 * 1024),
    /** Origins allowed to call (DNS-rebinding protection); requests without Origin are not affected. */
    allowedOrigins: z.array(z.string()).default([]),
    /** Keep-alive comment interval on long-lived SSE streams. */
    sseKeepAliveMs: durationMs.default(15_000),
    ...listenerHttpShape,
  })
  .refine((h) => h.requestTimeoutMs === 0 || h.headersTimeoutMs <= h.requestTimeoutMs, {
    message: 'headersTimeoutMs must not exceed requestTimeoutMs',
    path: ['headersTimeoutMs'],
  });
