/**
 * Who may act in which session-era session, decided only after the caller is authenticated:
 * - a session id names a session of this replica, or one any replica minted (rebuilt from its sealed id, see
 *   session-token.ts) that was not revoked: a replica's first sight of an id asks the revocation set, and fails
 *   closed (TG_MCP_SESSION_UNVERIFIABLE, 404: the client re-initializes) when the shared store cannot answer;
 * - a session is bound to the principal that created it: another principal is told it does not exist;
 * - a principal holds at most `mcp.limits.sessionsPerPrincipal` sessions on a replica (the newcomer is refused);
 * - DELETE ends a session everywhere: it is revoked (by fingerprint) until its id would have expired.
 */
import type { CompiledRule } from '../../config/routes.ts';
import { Errors, GatewayError } from '../../core/errors.ts';
import type { GatewayState } from '../../gateway/state.ts';
import type { RevocationSet } from '../../store/revocations.ts';
import type { Logger } from '../../telemetry/logger.ts';
import { keysFingerprint, type SealKey } from './sealer.ts';
import { McpSession, SessionStore } from './session.ts';
import { SessionTokens } from './session-token.ts';
import type { McpUpstreams } from './upstream/registry.ts';

export interface SessionAccessDeps {
  readonly log: Logger;
  state(): GatewayState;
  readonly upstreams: McpUpstreams;
  readonly revocations: RevocationSet;
  /** Per-snapshot settings a session needs (virtual server, replay log). */
  prepare(session: McpSession, rule: CompiledRule, state: GatewayState): void;
}

export class SessionAccess {
  readonly sessions: SessionStore;
  private readonly deps: SessionAccessDeps;
  private tokens: SessionTokens;
  private tokenKeys: string;
  private readonly unsubscribe: Array<() => void> = [];

  constructor(deps: SessionAccessDeps) {
    this.deps = deps;
    const snapshot = deps.state().snapshot;
    this.sessions = new SessionStore(() => deps.state().snapshot.gateway.mcp.sessionIdleMs);
    this.tokenKeys = keysFingerprint(snapshot.mcpSessionKeys);
    this.tokens = new SessionTokens(snapshot.mcpSessionKeys);
    // Another replica ended a session: forget it here at once (its next request finds it revoked).
    this.unsubscribe.push(deps.revocations.onRevoked((fp) => this.dropFingerprint(fp)));
    this.unsubscribe.push(deps.revocations.onResync(() => void this.resync()));
  }

  get ephemeral(): boolean {
    return this.tokens.ephemeral;
  }

  /** New session keys: sessions in memory go on; ids sealed with a removed key no longer open elsewhere. */
  reconfigure(keys: readonly SealKey[]): void {
    const fp = keysFingerprint(keys);
    if (fp === this.tokenKeys) return;
    this.tokenKeys = fp;
    this.tokens = new SessionTokens(keys);
  }

  /** Reserves a slot for a new session of `principal`, or the cap refusal. */
  reserve(principal: string | undefined): (() => void) | GatewayError {
    const cap = this.deps.state().snapshot.gateway.mcp.limits.sessionsPerPrincipal;
    return this.sessions.reserve(principal, cap) ?? capReached('sessionsPerPrincipal', cap);
  }

  /** Seals a new session's id (and fingerprint) and keeps the session, with the slot it reserved. */
  add(session: McpSession, ttlMs: number, release: () => void): void {
    session.id = this.tokens.mint(session, ttlMs);
    this.sessions.add(session, release);
  }

  /**
   * The session `sid` names, for an authenticated `principal` on this rule and scope (errors are the caller's
   * answer). Synchronous for a session this replica holds; a promise when it is continued from its sealed id.
   */
  resolve(sid: unknown, rule: CompiledRule, scope: string | undefined, principal: string | undefined): McpSession | GatewayError | Promise<McpSession | GatewayError> {
    if (typeof sid !== 'string' || sid === '') return new GatewayError(Errors.MCP_SESSION_REQUIRED);
    const session = this.sessions.get(sid);
    if (!session) return this.restore(sid, rule, scope, principal);
    return this.check(session, rule, scope, principal);
  }

  private check(session: McpSession, rule: CompiledRule, scope: string | undefined, principal: string | undefined): McpSession | GatewayError {
    if (session.route !== rule.route.name || session.mount !== rule.mount || session.scope !== scope) return new GatewayError(Errors.MCP_SESSION_NOT_FOUND);
    // Sessions are bound to the identity that created them: another identity never learns it exists.
    if (session.principal !== principal) return new GatewayError(Errors.SESSION_IDENTITY_MISMATCH);
    if (session.expiresAt < Date.now()) {
      this.sessions.delete(session.id);
      return new GatewayError(Errors.MCP_SESSION_EXPIRED);
    }
    if (this.deps.revocations.isRevokedLocally(session.fingerprint)) {
      this.sessions.delete(session.id);
      return new GatewayError(Errors.MCP_SESSION_NOT_FOUND);
    }
    return session;
  }

  private async restore(sid: string, rule: CompiledRule, scope: string | undefined, principal: string | undefined): Promise<McpSession | GatewayError> {
    const restored = this.tokens.restore(sid, this.deps.upstreams, this.deps.log);
    if ('error' in restored) return new GatewayError(restored.error === 'expired' ? Errors.MCP_SESSION_EXPIRED : Errors.MCP_SESSION_NOT_FOUND);
    const fresh = restored.session;
    if (fresh.route !== rule.route.name || fresh.mount !== rule.mount || fresh.scope !== scope) return new GatewayError(Errors.MCP_SESSION_NOT_FOUND);
    if (fresh.principal !== principal) return new GatewayError(Errors.SESSION_IDENTITY_MISMATCH);
    let revoked: boolean;
    try {
      revoked = await this.deps.revocations.check(fresh.fingerprint);
    } catch (err) {
      this.deps.log.warn({ session: fresh.fingerprint, err: (err as Error).message }, 'session revocation cannot be checked; refused');
      return new GatewayError(Errors.MCP_SESSION_UNVERIFIABLE);
    }
    if (revoked) return new GatewayError(Errors.MCP_SESSION_NOT_FOUND);
    // Another request of the same session may have continued it meanwhile.
    const raced = this.sessions.get(sid);
    if (raced) return this.check(raced, rule, scope, principal);
    const release = this.reserve(principal);
    if (release instanceof GatewayError) return release;
    const state = this.deps.state();
    this.deps.prepare(fresh, rule, state);
    this.sessions.add(fresh, release);
    this.deps.log.info({ session: fresh.fingerprint, route: fresh.route }, 'session continued from its sealed id');
    return fresh;
  }

  /** Ends a session (DELETE): here at once, and revoked on every replica until its id expires. */
  async end(session: McpSession): Promise<void> {
    this.sessions.delete(session.id);
    await this.deps.revocations.revoke(session.fingerprint, session.expiresAt);
  }

  private dropFingerprint(fp: string): void {
    for (const s of this.sessions.all()) if (s.fingerprint === fp) this.sessions.delete(s.id);
  }

  /** After a lost subscription: re-checks every held session against the shared revocations. */
  private async resync(): Promise<void> {
    for (const s of this.sessions.all()) {
      try {
        if (await this.deps.revocations.check(s.fingerprint)) this.sessions.delete(s.id);
      } catch {
        return; // the store went away again: the next resync catches up
      }
    }
  }

  async close(): Promise<void> {
    for (const u of this.unsubscribe.splice(0)) u();
    await this.sessions.closeAll();
  }
}

export function capReached(cap: string, limit: number): GatewayError {
  return new GatewayError(Errors.CAP_REACHED, `Too many open at once for this identity: ${cap} is ${limit}`, { data: { cap, limit } });
}

