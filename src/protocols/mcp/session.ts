/**
 * Downstream MCP sessions (session era). A session remembers what the client said in initialize and holds one
 * upstream session per backend in its scope, opened at initialize and re-opened when an upstream comes back.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from '../../telemetry/logger.ts';
import type { RpcId } from './jsonrpc.ts';
import type { McpUpstreams } from './upstream/registry.ts';
import type { ClientHello, InflightHandle, McpUpstream, UpstreamSession } from './upstream/types.ts';

/** How long a failed upstream open is remembered before a session tries that upstream again. */
const RETRY_AFTER_MS = 3_000;

interface UpstreamSlot {
  readonly upstream: McpUpstream;
  readonly opening: Promise<UpstreamSession | undefined>;
  session: UpstreamSession | undefined;
  failedAt: number;
}

export class McpSession {
  readonly id: string;
  readonly route: string;
  readonly mount: string;
  /** undefined: the federated view of every backend of the rule; otherwise the one backend's name. */
  readonly scope: string | undefined;
  readonly hello: ClientHello;
  readonly protocolVersion: string;
  readonly principal: string | undefined;
  readonly inflight = new Map<RpcId, InflightHandle>();
  hasStream = false;
  lastSeen = Date.now();
  private readonly slots = new Map<string, UpstreamSlot>();
  private readonly registry: McpUpstreams;
  private readonly log: Logger;
  private closed = false;

  constructor(init: {
    route: string;
    mount: string;
    scope: string | undefined;
    hello: ClientHello;
    protocolVersion: string;
    principal: string | undefined;
    registry: McpUpstreams;
    log: Logger;
  }) {
    this.id = randomBytes(24).toString('base64url');
    this.route = init.route;
    this.mount = init.mount;
    this.scope = init.scope;
    this.hello = init.hello;
    this.protocolVersion = init.protocolVersion;
    this.principal = init.principal;
    this.registry = init.registry;
    this.log = init.log;
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
    const fresh: UpstreamSlot = {
      upstream: current,
      session: undefined,
      failedAt: 0,
      opening: current.open(this.hello).then(
        (s) => {
          fresh.session = s;
          if (this.closed) void s.close();
          return this.closed ? undefined : s;
        },
        (err: unknown) => {
          fresh.failedAt = Date.now();
          this.log.warn({ session: this.id.slice(0, 8), upstream: name, err: (err as Error).message }, 'upstream not available to session');
          return undefined;
        },
      ),
    };
    this.slots.set(name, fresh);
    return fresh.opening;
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
    await Promise.allSettled([...this.slots.values()].map(async (s) => (await s.opening)?.close()));
    this.slots.clear();
  }
}

export class SessionStore {
  private readonly sessions = new Map<string, McpSession>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(idleMs: () => number) {
    this.sweeper = setInterval(() => {
      const cutoff = Date.now() - idleMs();
      for (const s of this.sessions.values()) {
        if (s.lastSeen < cutoff && !s.hasStream && s.inflight.size === 0) this.delete(s.id);
      }
    }, 30_000);
    this.sweeper.unref();
  }

  get size(): number {
    return this.sessions.size;
  }

  add(session: McpSession): void {
    this.sessions.set(session.id, session);
  }

  get(id: string): McpSession | undefined {
    const s = this.sessions.get(id);
    if (s) s.lastSeen = Date.now();
    return s;
  }

  delete(id: string): boolean {
    const s = this.sessions.get(id);
    if (!s) return false;
    this.sessions.delete(id);
    void s.close();
    return true;
  }

  async closeAll(): Promise<void> {
    clearInterval(this.sweeper);
    const all = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.allSettled(all.map((s) => s.close()));
  }
}
