/**
 * The Gateway owns what outlives a single request: the current state (config snapshot + pipeline), the upstream
 * registries, the protocol adapters and the guard services. It is wired by main.ts and by tests.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ConfigIssue, ConfigSnapshot } from '../config/load.ts';
import type { Call } from '../core/call.ts';
import { Errors, GatewayError } from '../core/errors.ts';
import { McpAdapter, writeError } from '../protocols/mcp/adapter.ts';
import { McpUpstreams } from '../protocols/mcp/upstream/registry.ts';
import type { RedisStore } from '../store/redis.ts';
import { RevocationSet } from '../store/revocations.ts';
import type { Logger } from '../telemetry/logger.ts';
import { NO_TELEMETRY, type CallTelemetry } from '../telemetry/service.ts';
import type { UpstreamCredentials } from '../upstream/credentials.ts';
import { buildPipeline, type GuardServices } from './guards.ts';
import type { GatewayState } from './state.ts';

export interface GatewayOptions {
  readonly log: Logger;
  readonly services?: readonly GuardServices[];
  /** Spans and metrics per call (none by default). */
  readonly telemetry?: CallTelemetry;
  /** Tollgate's own credentials for upstream calls (e.g. JWT-SVIDs from the Workload API). */
  readonly credentials?: UpstreamCredentials | undefined;
  /** The shared Redis store (services.store): session revocations then hold across replicas. */
  readonly store?: RedisStore | undefined;
}

export interface Readiness {
  readonly ready: boolean;
  readonly config: { revision: number; loadedAt: string; dir: string; rejected?: { at: string; issues: readonly ConfigIssue[] } };
  readonly upstreams: Record<string, { up: boolean; transport: string; detail?: string | undefined }>;
  readonly sessions: number;
}

export class Gateway {
  readonly log: Logger;
  readonly mcpUpstreams: McpUpstreams;
  readonly mcp: McpAdapter;
  private readonly services: readonly GuardServices[];
  private readonly telemetry: CallTelemetry;
  /** Ended MCP sessions, by fingerprint (in Redis when configured). */
  readonly revocations: RevocationSet;
  private current: GatewayState;
  private rejected: { at: string; issues: readonly ConfigIssue[] } | undefined;

  constructor(snapshot: ConfigSnapshot, opts: GatewayOptions) {
    this.log = opts.log;
    this.services = opts.services ?? [];
    this.telemetry = opts.telemetry ?? NO_TELEMETRY;
    this.current = { snapshot, pipeline: buildPipeline(snapshot, this.services, this.telemetry.observer) };
    this.mcpUpstreams = new McpUpstreams(this.log, opts.credentials);
    this.mcpUpstreams.sync(snapshot);
    this.telemetry.watch(this);
    this.revocations = new RevocationSet('mcp:session', this.log, opts.store);
    this.mcp = new McpAdapter(
      {
        log: this.log,
        state: () => this.current,
        finish: (call) => this.finish(call),
        begin: (call, meta) => this.telemetry.begin(call, meta),
        propagate: (call) => this.telemetry.propagate(call),
        revocations: this.revocations,
      },
      this.mcpUpstreams,
    );
  }

  state(): GatewayState {
    return this.current;
  }

  /** Puts a new snapshot in force atomically. Live sessions and unchanged upstreams are kept. */
  apply(snapshot: ConfigSnapshot): void {
    const pipeline = buildPipeline(snapshot, this.services, this.telemetry.observer);
    this.current = { snapshot, pipeline };
    this.mcpUpstreams.sync(snapshot);
    this.mcp.reconfigure();
    this.rejected = undefined;
    this.log.info({ revision: snapshot.revision, routes: snapshot.routeSpecs.size, backends: snapshot.backends.size }, 'config applied');
  }

  /** Rebuilds the pipeline for the snapshot in force (a guard service's settings changed, e.g. the bound address). */
  refresh(): void {
    this.current = { snapshot: this.current.snapshot, pipeline: buildPipeline(this.current.snapshot, this.services, this.telemetry.observer) };
  }

  /** Records a refused reload (the previous snapshot stays in force); shown by /readyz until a reload succeeds. */
  rejectConfig(issues: readonly ConfigIssue[]): void {
    this.rejected = { at: new Date().toISOString(), issues };
  }

  /** Dispatches a request that matched a route to its protocol adapter. */
  dispatch(req: IncomingMessage, res: ServerResponse, path: string): boolean {
    const state = this.current;
    const match = state.snapshot.routes.match(path, req.headers);
    if (!match) return false;
    switch (match.rule.protocol) {
      case 'mcp':
        this.mcp.handle(req, res, match, state);
        return true;
      default:
        req.resume();
        writeError(res, null, new GatewayError(Errors.NOT_FOUND, `Protocol ${match.rule.protocol} is not served yet`));
        return true;
    }
  }

  /** Settles a finished call: guards' settle steps, its spans and metrics, then its one log line. */
  finish(call: Call): void {
    this.current.pipeline.settle(call, (guard, err) => this.log.error({ guard, call: call.id, err }, 'guard settle failed'));
    this.telemetry.end(call);
    this.log.info(
      {
        call: call.id,
        protocol: call.protocol,
        op: call.operation,
        route: call.route.name,
        upstream: call.upstream,
        target: call.target?.name,
        principal: call.principal?.id,
        outcome: call.outcome,
        status: call.status,
        code: call.error?.code,
        ms: Math.round(call.elapsedMs() * 1000) / 1000,
      },
      'call',
    );
  }

  readiness(strict = false): Readiness {
    const snapshot = this.current.snapshot;
    const upstreams = this.mcpUpstreams.statuses();
    const ready = Object.values(upstreams).every((u) => u.up || (!strict && u.transport !== 'stdio'));
    return {
      ready,
      config: {
        revision: snapshot.revision,
        loadedAt: new Date(snapshot.loadedAt).toISOString(),
        dir: snapshot.dir,
        ...(this.rejected ? { rejected: this.rejected } : {}),
      },
      upstreams,
      // Session-era sessions and 2026 stateless contexts: what callers hold open here.
      sessions: this.mcp.sessions.size + this.mcp.stateless.size,
    };
  }

  /** Shutdown has begun: end idle server streams so the drain only waits for real in-flight calls. */
  beginDrain(): void {
    this.mcp.endStreams();
  }

  async close(): Promise<void> {
    await this.mcp.close();
    await this.mcpUpstreams.close();
    await this.revocations.close();
  }
}
