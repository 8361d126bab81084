/**
 * The forwarder's failures as the gateway's errors: which network codes mean a request never reached the upstream
 * (safe to send again) or lost its connection, and the timeouts and unavailability naming the upstream, not its address.
 */
import { Errors, GatewayError } from '../core/errors.ts';
import type { UpstreamTimeouts } from './http-upstream.ts';

/** Codes meaning the request never reached the upstream: safe to send again whatever it does. */
export const NEVER_REACHED = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);
/** Codes of a connection that broke under the request (a stale keep-alive connection): retried if idempotent. */
export const CONNECTION_LOST = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED']);

export function codeOf(err: unknown): string {
  return (err as { code?: string } | null)?.code ?? '';
}

export function timeoutError(upstream: string, which: 'connect' | 'firstByte' | 'idle' | 'total', ms: number, cause?: unknown): GatewayError {
  const what =
    which === 'connect'
      ? `could not be connected to within ${ms} ms`
      : which === 'firstByte'
        ? `sent no response within ${ms} ms`
        : which === 'idle'
          ? `sent nothing for ${ms} ms`
          : `did not finish within ${ms} ms`;
  return new GatewayError(Errors.UPSTREAM_TIMEOUT, `Upstream ${upstream} ${what}`, { data: { upstream, timeout: which }, cause });
}

/** Maps an undici/network error (or an abort reason) to the gateway's error, naming the upstream, not its address. */
export function forwardError(upstream: string, err: unknown, t: UpstreamTimeouts): GatewayError {
  if (err instanceof GatewayError) return err;
  switch (codeOf(err)) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      return timeoutError(upstream, 'connect', t.connectMs, err);
    case 'UND_ERR_HEADERS_TIMEOUT':
      return timeoutError(upstream, 'firstByte', t.firstByteMs, err);
    case 'UND_ERR_BODY_TIMEOUT':
      return timeoutError(upstream, 'idle', t.idleMs, err);
    default:
      return new GatewayError(Errors.UPSTREAM_UNAVAILABLE, `Upstream ${upstream} is unavailable`, { data: { upstream }, cause: err });
  }
}
