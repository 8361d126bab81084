/**
 * Downstream MCP sessions (session era). A session remembers what the client said in initialize and holds one
 * upstream session per backend in its scope, opened at initialize and re-opened when an upstream comes back.
 */
import type { VirtualServerSpec } from '../../config/schema.ts';
import type { Logger } from '../../telemetry/logger.ts';
import type { RpcId } from './jsonrpc.ts';
import { listChanged } from './list-cache.ts';
import { LOG_LEVELS } from './modern.ts';
import { ReplayLog } from './replay.ts';
import { ServerRequests } from './server-requests.ts';
import { PrincipalSlots } from '../../core/slots.ts';
import type { McpUpstreams } from './upstream/registry.ts';
import type { ClientHello, InflightHandle, McpUpstream, UpstreamResumeState, UpstreamSession } from './upstream/types.ts';

/** How long a failed upstream open is remembered before a session tries that upstream again. */
export const RETRY_AFTER_MS = 3_000;
const SET_LEVEL_TIMEOUT_MS = 10_000;

interface UpstreamSlot {
  readonly upstream: McpUpstream;
  readonly opening: Promise<UpstreamSession | undefined>;
  session: UpstreamSession | undefined;
  failedAt: number;
}

export class McpSession {
  /** The session id: a sealed token (see session-token.ts), assigned once the upstreams are open. A secret. */
  id = '';
  /** Keyed hash of the id: what logs, spans, audit records and revocations carry instead of it. */
  fingerprint = '';
  readonly route: string;
  readonly mount: string;
  /** undefined: the federated view of every backend of the rule; otherwise the one backend's name. */
  readonly scope: string | undefined;
  readonly hello: ClientHello;
  readonly protocolVersion: string;
  readonly principal: string | undefined;
  readonly inflight = new Map<RpcId, InflightHandle>();
  /** Server-to-client requests relayed to this session's client, by the id the client sees. */
  readonly serverRequests: ServerRequests;
  /** Recent SSE events of this session's streams, for Last-Event-ID replay (undefined: resumability off). */
  replay: ReplayLog | undefined;
  /** The recorded server stream (GET), when resumability is on. */
  serverLog: import('./replay.ts').ReplayStream | undefined;
  /** Where server-initiated messages go when no request stream can carry them (the GET stream, if open). */
  serverStream: ((message: string) => boolean) | undefined;
  /** Absolute expiry of the session id (ms since epoch). */
  expiresAt = 0;
  /**
   * The level the client set with logging/setLevel (its index in LOG_LEVELS), undefined until it sets one: log
   * messages below it are not relayed (notifications.ts), and upstream sessions opened later are set to it.
   */
  logLevel: number | undefined;
  /** A 2026-07-28 (stateless) client's view: no session id, state kept per principal (stateless.ts). */
  modern = false;
  /** The virtual server this session's scope names, if it names one. */
  virtual: VirtualServerSpec | undefined;
  /** Upstream listeners feeding the server stream (kept across reconnects so a resume can catch up). */
  readonly unlisten: Array<() => void> = [];
  /** The upstream sessions those listeners follow. */
  readonly following = new Set<UpstreamSession>();
  /**
   * Called when an upstream (re)joins the session after it was down, died or was replaced (server-stream.ts: follow
   * it, tell the client its lists may have changed). Not called for the first open of each upstream.
   */
  joined: ((up: UpstreamSession) => void) | undefined;
  hasStream = false;
  /** Open subscriptions/listen streams of a 2026 context (it is not swept while one is open). */
  openStreams = 0;
  lastSeen = Date.now();
  private readonly slots = new Map<string, UpstreamSlot>();
  private readonly registry: McpUpstreams;
  private readonly log: Logger;
  closed = false;

  constructor(init: {
    route: string;
    mount: string;
    scope: string | undefined;
    hello: ClientHello;
    protocolVersion: string;
    principal: string | undefined;
    registry: McpUpstreams;
    log: Logger;
    /** Upstream sessions another replica opened, to continue rather than re-open (from the session token). */
    resume?: Readonly<Record<string, UpstreamResumeState>> | undefined;
    /** Bound on unanswered server-to-client requests relayed to this session's client. */
    maxPendingServerRequests?: number | undefined;
  }) {
    this.serverRequests = new ServerRequests(init.maxPendingServerRequests);
    this.route = init.route;
    this.mount = init.mount;
    this.scope = init.scope;
    this.hello = init.hello;
    this.protocolVersion = init.protocolVersion;
    this.principal = init.principal;
    this.registry = init.registry;
    this.log = init.log;
    this.resumeStates = init.resume;
  }

  private resumeStates: Readonly<Record<string, UpstreamResumeState>> | undefined;

  /** What another replica needs to continue this session's upstream sessions (sealed into the session id). */
  resumeState(): Record<string, UpstreamResumeState> | undefined {
    let out: Record<string, UpstreamResumeState> | undefined;
    for (const [name, slot] of this.slots) {
      const state = slot.session?.alive ? slot.session.resumeState?.() : undefined;
      if (state) (out ??= {})[name] = state;
    }
    return out;
  }

  /** The upstream session for a backend, opening (or re-opening) it when needed; undefined if it is down. */
  upstream(name: string): Promise<UpstreamSession | undefined> {
    const current = this.registry.get(name);
    if (!current || this.closed) return Promise.resolve(undefined);
    const slot = this.slots.get(name);
    if (slot && slot.upstream === current) {
      if (slot.session?.alive) return Promise.resolve(slot.session);
      if (!slot.session && slot.failedAt === 0) return slot.opening; // still opening
      if (!slot.session && Date.now() - slot.failedAt < RETRY_AFTER_MS) return Promise.resolve(undefined);
    }
    if (slot?.session && slot.upstream !== current) void slot.session.close();
    const resumable = slot === undefined ? this.resumeStates?.[name] : undefined;
    const fresh: UpstreamSlot = {
      upstream: current,
      session: undefined,
      failedAt: 0,
      opening: this.registry.open(current, this.hello, resumable).then(
        (s) => {
          fresh.session = s;
          if (this.closed) void s.close();
          else {
            void this.applyLogLevel(s); // opened after the client set its level (a late or re-opened upstream)
            if (slot !== undefined) {
              // Back after a failure, or a new upstream session: what the session listed before may have changed.
              listChanged(this, 'list_changed');
              this.joined?.(s);
            }
          }
          return this.closed ? undefined : s;
        },
        (err: unknown) => {
          fresh.failedAt = Date.now();
          this.log.warn({ session: this.fingerprint, upstream: name, err: (err as Error).message }, 'upstream not available to session');
          return undefined;
        },
      ),
    };
    this.slots.set(name, fresh);
    return fresh.opening;
  }

  /**
   * Sets `up` to the session's log level (logging/setLevel), when the client set one and `up` logs. Not a shared
   * (stdio) upstream: its level would be every client's, and its log messages go to the gateway's log only.
   */
  applyLogLevel(up: UpstreamSession): Promise<void> {
    if (this.logLevel === undefined || !up.init.capabilities.logging || up.shared) return Promise.resolve();
    return up.call('logging/setLevel', { level: LOG_LEVELS[this.logLevel] }, SET_LEVEL_TIMEOUT_MS).then(
      () => {},
      (err: unknown) => this.log.debug({ session: this.fingerprint, upstream: up.backend, err: (err as Error).message }, 'upstream refused logging/setLevel'),
    );
  }

  /** Upstream sessions already open (no new opens). */
  openSessions(): UpstreamSession[] {
    const out: UpstreamSession[] = [];
    for (const slot of this.slots.values()) if (slot.session?.alive) out.push(slot.session);
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const h of this.inflight.values()) h.cancel();
    this.inflight.clear();
    this.serverRequests.clear();
    this.serverStream = undefined;
    for (const u of this.unlisten.splice(0)) u();
    await Promise.allSettled([...this.slots.values()].map(async (s) => (await s.opening)?.close()));
    this.slots.clear();
  }
}

/**
 * The session-era sessions this replica holds, with how many each principal holds: a new one (initialize, or a
 * session continued from its sealed id) first takes a slot under its principal's cap, and one over the cap is
 * refused (nothing ever evicts another caller's session). Idle and expired sessions are swept.
 */
export class SessionStore {
  private readonly sessions = new Map<string, McpSession>();
  private readonly releases = new Map<string, () => void>();
  private readonly slots = new PrincipalSlots();
  private readonly sweeper: NodeJS.Timeout;

  constructor(idleMs: () => number) {
    this.sweeper = setInterval(() => {
      const cutoff = Date.now() - idleMs();
      for (const s of this.sessions.values()) {
        if ((s.lastSeen < cutoff || s.expiresAt < Date.now()) && !s.hasStream && s.inflight.size === 0) this.delete(s.id);
      }
    }, 30_000);
    this.sweeper.unref();
  }

  get size(): number {
    return this.sessions.size;
  }

  /**
   * Reserves a slot for a new session of `principal` under `cap`: the release function (for a session that is not
   * added after all), or undefined when the principal holds `cap` sessions already.
   */
  reserve(principal: string | undefined, cap: number): (() => void) | undefined {
    return this.slots.take(principal, cap);
  }

  /** Adds a session with the slot it reserved (given back when the session goes). */
  add(session: McpSession, release: () => void): void {
    this.sessions.set(session.id, session);
    this.releases.set(session.id, release);
  }

  /** A session known to this replica (no token opening). */
  peek(id: string): McpSession | undefined {
    return this.sessions.get(id);
  }

  get(id: string): McpSession | undefined {
    const s = this.sessions.get(id);
    if (s) s.lastSeen = Date.now();
    return s;
  }

  /** Every session held (revocation resync). */
  all(): McpSession[] {
    return [...this.sessions.values()];
  }

  delete(id: string): boolean {
    const s = this.sessions.get(id);
    if (!s) return false;
    this.sessions.delete(id);
    this.releases.get(id)?.();
    this.releases.delete(id);
    void s.close();
    return true;
  }

  async closeAll(): Promise<void> {
    clearInterval(this.sweeper);
    const all = [...this.sessions.values()];
    this.sessions.clear();
    this.releases.clear();
    this.slots.clear();
    await Promise.allSettled(all.map((s) => s.close()));
  }
}
