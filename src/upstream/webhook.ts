/**
 * Delivering a notification to a URL a caller chose (A2A push notifications), with the SSRF guard held at delivery
 * time, not only when the URL was registered:
 *
 * - every attempt checks the URL again (egress.ts): scheme, allow-list, and a fresh DNS answer, every address of
 *   which must be public; then connects to exactly the checked address (the name still in Host and TLS SNI), so a
 *   DNS answer that changes between the check and the connection cannot point the request inward;
 * - redirects are never followed (a 3xx fails the delivery: the Location could be anywhere, loopback included);
 * - a webhook that refuses the connection, times out, or answers 5xx/429 is tried again, `attempts` times at most
 *   with a growing pause; other answers are final.
 *
 * The connector is injected (tests map a public address to a local server and prove a refused URL never reaches it).
 */
import { isIP, type LookupFunction } from 'node:net';
import { Agent, request, type Dispatcher } from 'undici';
import { checkUrl, type EgressPolicy, type Resolver } from './egress.ts';

/** The dispatcher that connects to `address`, the checked address of `url`'s host. Closed after the attempt. */
export type Connector = (address: string, url: URL) => Dispatcher;

export const pinnedConnector: Connector = (address) => {
  const family = isIP(address) === 6 ? 6 : 4;
  const lookup = ((_host: string, options: { all?: boolean }, cb: (...args: unknown[]) => void) =>
    options?.all === true ? cb(null, [{ address, family }]) : cb(null, address, family)) as unknown as LookupFunction;
  return new Agent({ connections: 1, connect: { lookup } });
};

export interface WebhookOptions {
  readonly resolve: Resolver;
  readonly connect: Connector;
  readonly attempts: number;
  /** Pause before attempt n+1: n x backoffMs. */
  readonly backoffMs: number;
  readonly timeoutMs: number;
  /** Aborts the delivery (the attempt under way and any pause before the next). */
  readonly signal?: AbortSignal | undefined;
}

export interface Delivery {
  readonly ok: boolean;
  /** Connections attempted (0: refused before any). */
  readonly attempts: number;
  readonly status?: number | undefined;
  readonly error?: string | undefined;
}

function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((r) => {
    const timer = setTimeout(done, ms).unref();
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      r();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** POSTs `body` to `raw` under `policy` (see the module comment). Never throws. */
export async function deliverWebhook(raw: string, body: string, headers: Record<string, string>, policy: EgressPolicy, o: WebhookOptions): Promise<Delivery> {
  let last: Delivery = { ok: false, attempts: 0, error: 'not attempted' };
  for (let attempt = 1; attempt <= o.attempts; attempt++) {
    if (o.signal?.aborted === true) return { ...last, ok: false, error: 'aborted' };
    const checked = await checkUrl(raw, policy, o.resolve);
    if ('error' in checked) return { ok: false, attempts: attempt - 1, error: `refused: ${checked.error}` };
    const dispatcher = o.connect(checked.address, checked.url);
    try {
      const res = await request(checked.url, { method: 'POST', headers, body, dispatcher, headersTimeout: o.timeoutMs, bodyTimeout: o.timeoutMs, signal: o.signal });
      await res.body.dump();
      const status = res.statusCode;
      if (status >= 200 && status < 300) return { ok: true, attempts: attempt, status };
      if (status >= 300 && status < 400) return { ok: false, attempts: attempt, status, error: `redirect not followed (the webhook answered ${status})` };
      last = { ok: false, attempts: attempt, status, error: `the webhook answered ${status}` };
      if (status < 500 && status !== 429) return last;
    } catch (err) {
      last = { ok: false, attempts: attempt, error: (err as { code?: string }).code ?? (err as Error).message };
    } finally {
      await dispatcher.close().catch(() => {});
    }
    if (attempt < o.attempts) await pause(o.backoffMs * attempt, o.signal);
  }
  return last;
}
