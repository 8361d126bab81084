/**
 * Tollgate's own identity towards upstreams: for each backend that names an audience (Backend `identity`), a
 * JWT-SVID fetched from the Workload API (FetchJWTSVID) and renewed in the background before it expires
 * (at `renewAt` of its lifetime; retries with backoff on failure while the current one is still valid).
 */
import type { ResolvedBackend } from '../../config/load.ts';
import type { Logger } from '../../telemetry/logger.ts';
import type { UpstreamCredential, UpstreamCredentials } from '../../upstream/credentials.ts';
import type { WorkloadApiClient } from './workload-api.ts';

/** Renew this long before exp at the latest, whatever renewAt says. */
const MIN_MARGIN_MS = 5_000;

export class SvidCredential implements UpstreamCredential {
  readonly audience: string;
  readonly spiffeId: string | undefined;
  private readonly client: () => WorkloadApiClient;
  private readonly renewAt: number;
  private readonly log: Logger;
  private header: string | undefined;
  private expiresAt = 0;
  private pending: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private backoff = 1_000;
  private closed = false;

  constructor(init: { client: () => WorkloadApiClient; audience: string; spiffeId: string | undefined; renewAt: number; log: Logger }) {
    this.client = init.client;
    this.audience = init.audience;
    this.spiffeId = init.spiffeId;
    this.renewAt = init.renewAt;
    this.log = init.log;
  }

  authorization(): string | undefined {
    // Renewal runs on its own timer (and retries on failure): nothing to start from the request path.
    return this.header !== undefined && Date.now() < this.expiresAt ? this.header : undefined;
  }

  ready(): Promise<void> {
    if (this.header !== undefined && Date.now() < this.expiresAt - MIN_MARGIN_MS) return Promise.resolve();
    return this.fetch();
  }

  /** The current token (tests and diagnostics). */
  get token(): string | undefined {
    return this.header?.slice('Bearer '.length);
  }

  private fetch(): Promise<void> {
    this.pending ??= this.fetchOnce().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  private async fetchOnce(): Promise<void> {
    try {
      const svids = await this.client().fetchJwtSvids([this.audience], this.spiffeId);
      const svid = this.spiffeId === undefined ? svids[0] : svids.find((s) => s.spiffeId === this.spiffeId);
      if (!svid) throw new Error(`the Workload API returned no JWT-SVID${this.spiffeId ? ` for ${this.spiffeId}` : ''}`);
      const { iat, exp } = lifetime(svid.token);
      this.header = `Bearer ${svid.token}`;
      this.expiresAt = exp;
      this.backoff = 1_000;
      const renewIn = Math.max(1_000, Math.min(iat + (exp - iat) * this.renewAt, exp - MIN_MARGIN_MS) - Date.now());
      this.schedule(renewIn);
      this.log.debug({ audience: this.audience, spiffeId: svid.spiffeId, renewInMs: renewIn }, 'upstream JWT-SVID renewed');
    } catch (err) {
      const reason = (err as Error).message;
      this.log.warn({ audience: this.audience, reason }, 'cannot fetch a JWT-SVID for an upstream; retrying');
      this.schedule(this.backoff);
      this.backoff = Math.min(this.backoff * 2, 30_000);
      throw new Error(`no JWT-SVID for audience ${this.audience}: ${reason}`);
    }
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.fetch().catch(() => {});
    }, ms);
    this.timer.unref();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
  }
}

/** iat/exp of a JWT in ms (iat defaults to now); the token came from our own agent, so it is only decoded. */
function lifetime(token: string): { iat: number; exp: number } {
  const payload = token.split('.')[1];
  const claims = payload ? (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { iat?: unknown; exp?: unknown }) : {};
  if (typeof claims.exp !== 'number') throw new Error('the JWT-SVID has no exp');
  return { iat: typeof claims.iat === 'number' ? claims.iat * 1000 : Date.now(), exp: claims.exp * 1000 };
}

/** One credential per (audience, SPIFFE ID), shared by the backends that ask for the same. */
export class WorkloadSvidCredentials implements UpstreamCredentials {
  private readonly byKey = new Map<string, SvidCredential>();
  private readonly client: () => WorkloadApiClient;
  private readonly renewAt: () => number;
  private readonly log: Logger;

  constructor(init: { client: () => WorkloadApiClient; renewAt: () => number; log: Logger }) {
    this.client = init.client;
    this.renewAt = init.renewAt;
    this.log = init.log;
  }

  for(backend: ResolvedBackend): SvidCredential | undefined {
    const id = backend.spec.identity;
    if (!id) return undefined;
    const key = `${id.audience}\n${id.spiffeId ?? ''}`;
    let cred = this.byKey.get(key);
    if (!cred) {
      cred = new SvidCredential({ client: this.client, audience: id.audience, spiffeId: id.spiffeId, renewAt: this.renewAt(), log: this.log });
      this.byKey.set(key, cred);
      void cred.ready().catch(() => {});
    }
    return cred;
  }

  close(): void {
    for (const c of this.byKey.values()) c.close();
    this.byKey.clear();
  }
}
