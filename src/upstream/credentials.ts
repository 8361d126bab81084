/**
 * Tollgate's own credentials for upstream calls (never the caller's: token passthrough is forbidden). A backend
 * configured with an identity gets an `UpstreamCredential`; its HTTP dispatcher is wrapped so that every request
 * carries the current `Authorization` value, read synchronously from the credential (renewed in the background).
 */
import type { Dispatcher } from 'undici';
import type { ResolvedBackend } from '../config/load.ts';

export interface UpstreamCredential {
  /** Resolves when a credential is available (awaited before an upstream session opens); rejects with the reason. */
  ready(): Promise<void>;
  /** The current Authorization header value, or undefined when none is valid right now. */
  authorization(): string | undefined;
}

/** Hands out the credential a backend's requests carry (undefined: the backend gets none). */
export interface UpstreamCredentials {
  for(backend: ResolvedBackend): UpstreamCredential | undefined;
}

/** Wraps a dispatcher so that each request carries the credential's current Authorization header. */
export function withCredential(dispatcher: Dispatcher, credential: UpstreamCredential): Dispatcher {
  return dispatcher.compose((dispatch) => (opts, handler) => {
    const value = credential.authorization();
    if (value === undefined) return dispatch(opts, handler);
    return dispatch({ ...opts, headers: withAuthorization(opts.headers, value) }, handler);
  });
}

function withAuthorization(headers: Dispatcher.DispatchOptions['headers'], value: string): Dispatcher.DispatchOptions['headers'] {
  if (headers == null) return { authorization: value };
  if (Array.isArray(headers)) {
    const out: string[] = [];
    for (let i = 0; i + 1 < headers.length; i += 2) {
      if (String(headers[i]).toLowerCase() !== 'authorization') out.push(headers[i] as string, headers[i + 1] as string);
    }
    out.push('authorization', value);
    return out;
  }
  const out: Record<string, string | string[] | undefined> = {};
  for (const [k, v] of Object.entries(headers as Record<string, string | string[] | undefined>)) {
    if (k.toLowerCase() !== 'authorization') out[k] = v;
  }
  out.authorization = value;
  return out;
}
