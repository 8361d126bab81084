/** A request the gateway itself makes to an upstream session (list fan-out, initialize over SSE...). */
import { Errors, GatewayError } from '../../../core/errors.ts';
import type { RpcRequest } from '../jsonrpc.ts';
import type { InflightHandle, UpstreamSession } from './types.ts';

let internalIds = 0;

/**
 * Sends `method` through `session.request` and resolves with its result; rejects on an error, a failure, a timeout
 * or `signal` (the upstream is then told the request is cancelled, under the id it was sent).
 */
export function callUpstream(
  session: Pick<UpstreamSession, 'backend' | 'request'>,
  method: string,
  params: Record<string, unknown> | undefined,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<Record<string, unknown>> {
  const backend = session.backend;
  const id = `tollgate-${++internalIds}`;
  const msg: RpcRequest = params === undefined ? { jsonrpc: '2.0', id, method } : { jsonrpc: '2.0', id, method, params };
  if (signal?.aborted) return Promise.reject(new GatewayError(Errors.REQUEST_CANCELLED));
  return new Promise((resolve, reject) => {
    // The sink may be called before request() returns (answers a transport gives synchronously).
    let handle: InflightHandle | undefined;
    let settled = false;
    const onAbort = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      handle?.cancel('cancelled by the client');
      reject(new GatewayError(Errors.REQUEST_CANCELLED));
    };
    const timer = setTimeout(() => {
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      handle?.cancel('timeout');
      reject(new GatewayError(Errors.UPSTREAM_TIMEOUT, `Upstream ${backend} did not answer ${method} in time`, { data: { upstream: backend } }));
    }, timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    handle = session.request(msg, undefined, {
      interim: () => {},
      final: (m) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (settled) return;
        settled = true;
        try {
          const parsed = JSON.parse(m.toString()) as { result?: Record<string, unknown>; error?: { code: number; message: string } };
          if (parsed.result && typeof parsed.result === 'object') resolve(parsed.result);
          else reject(new GatewayError(Errors.UPSTREAM_BAD_RESPONSE, `Upstream ${backend}: ${parsed.error?.message ?? 'no result'}`, { data: { upstream: backend, upstreamCode: parsed.error?.code } }));
        } catch (err) {
          reject(new GatewayError(Errors.UPSTREAM_BAD_RESPONSE, `Upstream ${backend} sent invalid JSON`, { cause: err }));
        }
      },
      fail: (e) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (settled) return;
        settled = true;
        reject(e);
      },
    });
  });
}
