/**
 * MCP as a registered protocol: the adapter the gateway routes `protocol: mcp` rules to, with its upstream set
 * (stdio, Streamable HTTP, SSE, OpenAPI servers) kept in step with config snapshots.
 */
import type { ConfigSnapshot } from '../../config/load.ts';
import type { GatewayError } from '../../core/errors.ts';
import type { AdapterContext, ErrorTarget, Exchange, ProtocolAdapter, ProtocolDefinition, UpstreamReadiness } from '../../gateway/adapter.ts';
import { McpAdapter, writeError } from './adapter.ts';
import { McpUpstreams } from './upstream/registry.ts';

export class McpProtocol implements ProtocolAdapter {
  readonly protocols = ['mcp'] as const;
  readonly upstreamSet: McpUpstreams;
  readonly adapter: McpAdapter;

  constructor(ctx: AdapterContext) {
    this.upstreamSet = new McpUpstreams(ctx.log, ctx.credentials);
    this.upstreamSet.sync(ctx.state().snapshot);
    const calls = ctx.calls;
    this.adapter = new McpAdapter(
      {
        log: ctx.log,
        state: () => ctx.state(),
        finish: (call) => calls.finish(call),
        begin: (call, meta) => calls.begin(call, meta),
        propagate: (call) => calls.propagate(call),
      },
      this.upstreamSet,
    );
  }

  handle(x: Exchange): void {
    this.adapter.handle(x.req, x.res, x.match, x.state);
  }

  renderError(err: GatewayError, to: ErrorTarget): void {
    writeError(to.res, to.call?.rpcId ?? null, err);
  }

  upstreams(): Record<string, UpstreamReadiness> {
    return this.upstreamSet.statuses();
  }

  sessions(): number {
    return this.adapter.sessions.size;
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
  }
}

export const mcpProtocol: ProtocolDefinition = {
  name: 'mcp',
  protocols: ['mcp'],
  create: (ctx) => new McpProtocol(ctx),
};
