/**
 * Session ids that any replica can continue: the id is the session's own description, sealed (see sealer.ts).
 * It carries what a replica needs to rebuild the session without a shared store: route, scope, the identity it is
 * bound to, what the client said in initialize, and the upstream sessions to continue. The replica that minted a
 * session keeps it in memory, so the seal is paid once at initialize and the open only on a replica's first sight
 * of the id.
 */
import type { Logger } from '../../telemetry/logger.ts';
import { Sealer, type SealKey } from './sealer.ts';
import { McpSession } from './session.ts';
import type { McpUpstreams } from './upstream/registry.ts';
import type { ClientHello, UpstreamResumeState } from './upstream/types.ts';

/** The sealed claims (short keys: they travel in a header on every request). */
export interface SessionClaims {
  readonly v: 1;
  /** route, mount, scope (server name or virtual server; absent: federated view). */
  readonly r: string;
  readonly m: string;
  readonly s?: string;
  /** The principal the session is bound to (absent: anonymous). */
  readonly p?: string;
  /** Negotiated protocol version, client capabilities and info. */
  readonly pv: string;
  readonly c: Readonly<Record<string, unknown>>;
  readonly i: ClientHello['clientInfo'];
  /** Upstream sessions to continue, by backend. */
  readonly u?: Readonly<Record<string, UpstreamResumeState>>;
  /** Expiry, ms since epoch. */
  readonly e: number;
}

export type RestoreResult = { session: McpSession } | { error: 'invalid' | 'expired' };

export class SessionTokens {
  private readonly sealer: Sealer;

  constructor(keys: readonly SealKey[]) {
    this.sealer = new Sealer('mcp-session', keys);
  }

  get ephemeral(): boolean {
    return this.sealer.ephemeral;
  }

  /** Seals a session's description; the result is its id. */
  mint(session: McpSession, ttlMs: number): string {
    const expiresAt = Date.now() + ttlMs;
    const claims: SessionClaims = {
      v: 1,
      r: session.route,
      m: session.mount,
      ...(session.scope !== undefined && { s: session.scope }),
      ...(session.principal !== undefined && { p: session.principal }),
      pv: session.protocolVersion,
      c: session.hello.capabilities,
      i: session.hello.clientInfo,
      ...(session.resumeState() !== undefined && { u: session.resumeState() }),
      e: expiresAt,
    };
    session.expiresAt = expiresAt;
    const id = this.sealer.seal(claims);
    session.fingerprint = this.sealer.fingerprint(id);
    return id;
  }

  /** The fingerprint of a session id: the one value of it logs, spans, audit records and revocations carry. */
  fingerprint(id: string): string {
    return this.sealer.fingerprint(id);
  }

  /** Opens a session id minted by any replica sharing the keys and rebuilds the session. */
  restore(id: string, registry: McpUpstreams, log: Logger): RestoreResult {
    const c = this.sealer.open(id) as SessionClaims | undefined;
    if (!c || c.v !== 1 || typeof c.r !== 'string' || typeof c.e !== 'number') return { error: 'invalid' };
    if (c.e < Date.now()) return { error: 'expired' };
    const session = new McpSession({
      route: c.r,
      mount: c.m,
      scope: c.s,
      hello: { protocolVersion: c.pv, capabilities: c.c, clientInfo: c.i },
      protocolVersion: c.pv,
      principal: c.p,
      registry,
      log,
      resume: c.u,
    });
    session.id = id;
    session.fingerprint = this.sealer.fingerprint(id);
    session.expiresAt = c.e;
    return { session };
  }
}
