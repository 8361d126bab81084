/**
 * The live set of MCP upstreams, kept in step with config snapshots: an upstream whose resolved spec did not change
 * is kept (its processes, pools and sessions survive the reload); a changed or removed one takes no new sessions and
 * is closed once the calls in flight on it finished, or `shutdown.drainMs` after the reload at the latest.
 */
import type { ConfigSnapshot, ResolvedBackend } from '../../../config/load.ts';
import type { Logger } from '../../../telemetry/logger.ts';
import type { UpstreamCredentials } from '../../../upstream/credentials.ts';
import { trackSession, Inflight, type DrainState } from './drain.ts';
import { HttpMcpUpstream } from './http.ts';
import { OpenApiUpstream } from './openapi.ts';
import { SseMcpUpstream } from './sse.ts';
import { StdioMcpUpstream } from './stdio.ts';
import type { ClientHello, McpUpstream, UpstreamResumeState, UpstreamSession, UpstreamStatus } from './types.ts';

export class McpUpstreams {
  private readonly live = new Map<string, McpUpstream>();
  private readonly drains = new WeakMap<McpUpstream, DrainState>();
  /** Replaced or removed upstreams still finishing their calls, with their (once-only) close. */
  private readonly retiring = new Map<McpUpstream, () => Promise<void>>();
  private readonly log: Logger;
  private probeTimer: NodeJS.Timeout | undefined;
  private readonly credentials: UpstreamCredentials | undefined;

  constructor(log: Logger, credentials?: UpstreamCredentials) {
    this.log = log;
    this.credentials = credentials;
  }

  get(name: string): McpUpstream | undefined {
    return this.live.get(name);
  }

  /**
   * Opens an upstream session on `up` (or continues one another replica opened): its calls are counted, so that a
   * reload replacing `up` lets them finish.
   */
  async open(up: McpUpstream, hello: ClientHello, resume?: UpstreamResumeState): Promise<UpstreamSession> {
    const session = resume !== undefined && up.resume ? await up.resume(hello, resume) : await up.open(hello);
    return trackSession(session, this.drainState(up));
  }

  /** Calls in flight on an upstream (tests, status). */
  inflight(up: McpUpstream): number {
    return this.drains.get(up)?.inflight.count ?? 0;
  }

  private drainState(up: McpUpstream): DrainState {
    let d = this.drains.get(up);
    if (d === undefined) {
      d = { inflight: new Inflight(), retiring: undefined };
      this.drains.set(up, d);
    }
    return d;
  }

  /** Closes an upstream once its calls in flight finished, or after `deadlineMs`. */
  private retire(name: string, up: McpUpstream, deadlineMs: number, why: string): void {
    const d = this.drainState(up);
    d.retiring = deadlineMs;
    const calls = d.inflight.count;
    this.log.info({ upstream: name, inflight: calls, deadlineMs }, calls > 0 ? `${why}; draining its calls in flight` : why);
    let closing: Promise<void> | undefined;
    const close = (): Promise<void> =>
      (closing ??= up
        .close()
        .catch((err: unknown) => this.log.warn({ upstream: name, err: (err as Error).message }, 'closing upstream failed'))
        .finally(() => this.retiring.delete(up)));
    this.retiring.set(up, close);
    void d.inflight.idle(deadlineMs).then((drained) => {
      if (!drained) this.log.warn({ upstream: name, inflight: d.inflight.count, deadlineMs }, 'upstream drain deadline reached; closing with calls in flight');
      return close();
    });
  }

  /** Brings the set in line with a snapshot. Replaced or removed upstreams drain, then close. */
  sync(snapshot: ConfigSnapshot): void {
    const wanted = new Map<string, ResolvedBackend>();
    for (const b of snapshot.backends.values()) if (b.spec.protocol === 'mcp') wanted.set(b.name, b);
    for (const [name, up] of this.live) {
      const b = wanted.get(name);
      if (!b || b.fingerprint !== up.fingerprint) {
        this.live.delete(name);
        this.retire(name, up, snapshot.gateway.shutdown.drainMs, b ? 'upstream changed; replacing' : 'upstream removed');
      }
    }
    for (const [name, b] of wanted) {
      if (this.live.has(name)) continue;
      this.live.set(name, this.create(b, snapshot));
    }
    this.scheduleProbes();
  }

  private create(b: ResolvedBackend, snapshot: ConfigSnapshot): McpUpstream {
    switch (b.transport) {
      case 'stdio':
        return new StdioMcpUpstream(b, snapshot.gateway, snapshot.dir, this.log);
      case 'streamable-http':
        return new HttpMcpUpstream(b, snapshot.gateway, this.log, this.credentials?.for(b));
      case 'sse':
        return new SseMcpUpstream(b, snapshot.gateway, this.log, this.credentials?.for(b));
      case 'openapi':
        return new OpenApiUpstream(b, snapshot.gateway, snapshot.dir, this.log, this.credentials?.for(b));
      default:
        throw new Error(`MCP transport ${b.transport} is not supported yet`);
    }
  }

  /** HTTP upstreams are probed in the background so /readyz reports reachability without a client session. */
  private scheduleProbes(): void {
    const probe = (): void => {
      for (const up of this.live.values()) if (up instanceof HttpMcpUpstream) void up.probe();
    };
    probe();
    if (!this.probeTimer) {
      this.probeTimer = setInterval(probe, 10_000);
      this.probeTimer.unref();
    }
  }

  statuses(): Record<string, UpstreamStatus & { transport: string }> {
    const out: Record<string, UpstreamStatus & { transport: string }> = {};
    for (const [name, up] of this.live) out[name] = { transport: up.transport, ...up.status() };
    return out;
  }

  async close(): Promise<void> {
    if (this.probeTimer) clearInterval(this.probeTimer);
    await Promise.allSettled([...this.live.values()].map((u) => u.close()));
    this.live.clear();
    // Shutdown drained the calls already: upstreams still retiring close now.
    await Promise.allSettled([...this.retiring.values()].map((close) => close()));
  }
}
