/**
 * One undici Pool per upstream origin (keep-alive connections reused across calls). The request path calls
 * `pool.request()` directly: `fetch()` costs three times as much (WHATWG streams and Response objects).
 */
import { Pool, type Dispatcher } from 'undici';
import { Errors, GatewayError } from '../core/errors.ts';

export interface PoolOptions {
  readonly connections: number;
  readonly keepAliveMs: number;
  readonly connectMs: number;
  readonly headersMs: number;
  readonly bodyIdleMs: number;
}

export function createPool(origin: string, o: PoolOptions): Pool {
  return new Pool(origin, {
    connections: o.connections,
    keepAliveTimeout: o.keepAliveMs,
    keepAliveMaxTimeout: Math.max(o.keepAliveMs, 600_000),
    connect: { timeout: o.connectMs },
    headersTimeout: o.headersMs,
    // A per-request bodyTimeout overrides this; long-lived SSE streams pass 0 and rely on keep-alives.
    bodyTimeout: o.bodyIdleMs,
    pipelining: 1,
  });
}

const CONNECT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_DESTROYED',
]);
const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

/** True when an error means the request never reached the upstream's application (safe to retry idempotent calls). */
export function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  return code !== undefined && (CONNECT_CODES.has(code) || code === 'UND_ERR_CONNECT_TIMEOUT');
}

/** Maps an undici/network error to the gateway's upstream error, naming the upstream but not its address. */
export function upstreamError(upstream: string, err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  const code = (err as { code?: string } | null)?.code ?? '';
  if (TIMEOUT_CODES.has(code)) {
    return new GatewayError(Errors.UPSTREAM_TIMEOUT, `Upstream ${upstream} timed out`, { data: { upstream }, cause: err });
  }
  return new GatewayError(Errors.UPSTREAM_UNAVAILABLE, `Upstream ${upstream} is unavailable`, {
    data: { upstream },
    cause: err,
  });
}

/**
 * Reads a whole response body into one Buffer (small JSON bodies: cheaper than streaming them through). Event
 * listeners, not `for await`: the async iterator costs a stream iterator, end-of-stream tracking and a promise per
 * chunk (measured in the gateway's profile under load, see bench/NOTES.md).
 */
export function readAll(body: Dispatcher.ResponseData['body'], limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    body.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        body.destroy();
        reject(new GatewayError(Errors.UPSTREAM_BAD_RESPONSE, 'Upstream response exceeds the size limit'));
        return;
      }
      chunks.push(chunk);
    });
    body.once('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)));
    body.once('error', reject);
  });
}
