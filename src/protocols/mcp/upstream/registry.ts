/**
 * The live set of MCP upstreams, kept in step with config snapshots: an upstream whose resolved spec did not change
 * is kept (its processes, pools and sessions survive the reload); a changed or removed one is closed after the
 * sessions using it let go of it.
 */
import type { ConfigSnapshot, ResolvedBackend } from '../../../config/load.ts';
import type { Logger } from '../../../telemetry/logger.ts';
import type { UpstreamCredentials } from '../../../upstream/credentials.ts';
import { HttpMcpUpstream } from './http.ts';
import { OpenApiUpstream } from './openapi.ts';
import { SseMcpUpstream } from './sse.ts';
import { StdioMcpUpstream } from './stdio.ts';
import type { McpUpstream, UpstreamStatus } from './types.ts';

export class McpUpstreams {
  private readonly live = new Map<string, McpUpstream>();
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

  /** Brings the set in line with a snapshot. Returns upstreams that were replaced or removed (already closing). */
  sync(snapshot: ConfigSnapshot): void {
    const wanted = new Map<string, ResolvedBackend>();
    for (const b of snapshot.backends.values()) if (b.spec.protocol === 'mcp') wanted.set(b.name, b);
    for (const [name, up] of this.live) {
      const b = wanted.get(name);
      if (!b || b.fingerprint !== up.fingerprint) {
        this.live.delete(name);
        this.log.info({ upstream: name }, b ? 'upstream changed; replacing' : 'upstream removed');
        void up.close().catch((err: unknown) => this.log.warn({ upstream: name, err: (err as Error).message }, 'closing upstream failed'));
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
  }
}
