/**
 * MCP as a registered protocol: the adapter the gateway routes `protocol: mcp` rules to, with its upstream set
 * (stdio, Streamable HTTP, SSE, OpenAPI servers) kept in step with config snapshots.
 */
import type { ConfigSnapshot } from '../../config/load.ts';
import type { GatewayError } from '../../core/errors.ts';
import type { AdapterContext, ErrorTarget, Exchange, ProtocolAdapter, ProtocolDefinition, UpstreamReadiness } from '../../gateway/adapter.ts';
import { RevocationSet } from '../../store/revocations.ts';
import { McpAdapter } from './adapter.ts';
import { modernHeader, writeError } from './respond.ts';
import { McpUpstreams } from './upstream/registry.ts';

export class McpProtocol implements ProtocolAdapter {
  readonly protocols = ['mcp'] as const;
  readonly upstreamSet: McpUpstreams;
  readonly adapter: McpAdapter;
  /** Ended sessions, by fingerprint: in Redis when the gateway has a store (every replica refuses them), else here. */
  readonly revocations: RevocationSet;

  constructor(ctx: AdapterContext) {
    this.upstreamSet = new McpUpstreams(ctx.log, ctx.credentials);
    this.upstreamSet.sync(ctx.state().snapshot);
    this.revocations = new RevocationSet('mcp:session', ctx.log, ctx.store);
    const calls = ctx.calls;
    this.adapter = new McpAdapter(
      {
        log: ctx.log,
        state: () => ctx.state(),
        finish: (call) => calls.finish(call),
        begin: (call, meta) => calls.begin(call, meta),
        propagate: (call) => calls.propagate(call),
        prepare: (init) => calls.prepare({ protocol: 'mcp', ...init }),
        refused: (call, err, status) => calls.refused(call, err, status),
        revocations: this.revocations,
      },
      this.upstreamSet,
    );
  }

  handle(x: Exchange): void {
    this.adapter.handle(x.req, x.res, x.match, x.state);
  }

  renderError(err: GatewayError, to: ErrorTarget): void {
    writeError(to.res, to.call?.rpcId ?? null, err, undefined, modernHeader(to.req));
  }

  upstreams(): Record<string, UpstreamReadiness> {
    return this.upstreamSet.statuses();
  }

  sessions(): number {
    // Session-era sessions and 2026 stateless contexts: what callers hold open here.
    return this.adapter.sessions.size + this.adapter.stateless.size;
  }

  reconfigure(snapshot: ConfigSnapshot): void {
    this.upstreamSet.sync(snapshot);
    this.adapter.reconfigure();
  }

  drain(): void {
    this.adapter.endStreams();
  }

  async close(): Promise<void> {
    await this.adapter.close();
    await this.upstreamSet.close();
    await this.revocations.close();
  }
}

export const mcpProtocol: ProtocolDefinition = {
  name: 'mcp',
  protocols: ['mcp'],
  create: (ctx) => new McpProtocol(ctx),
};
