/**
 * The gateway's telemetry hooks for every call: `begin` when an adapter creates a Call, the pipeline observer for
 * guard stages, `propagate` when a call is forwarded, `end` in Gateway.finish. Each part is absent when off, so with
 * tracing off a call pays two property checks for it, and no attribute objects or context work.
 */
import type { ConfigSnapshot } from '../config/load.ts';
import type { Call } from '../core/call.ts';
import type { PipelineObserver } from '../core/pipeline.ts';
import type { AdminExtension } from '../server/admin.ts';
import { otlpMetricsWanted, tracingWanted } from './config.ts';
import type { Logger } from './logger.ts';
import { GatewayMetrics, type AuditFigures, type PolicySourceFigures, type StoreFigures, type TelemetrySource, type TokenCheckFigures } from './metrics.ts';
import type { RunningSdk } from './sdk.ts';
import type { Signal } from './export/wire.ts';
import { CallTracer } from './tracing.ts';
import { trace } from '@opentelemetry/api';

/** What the gateway and the protocol adapters call. */
export interface CallTelemetry {
  /** The pipeline observer for guard-stage spans; undefined when tracing is off. */
  readonly observer: PipelineObserver | undefined;
  /** A Call was created. `meta` is the MCP request's `params._meta`, for its trace context. */
  begin(call: Call, meta?: unknown): void;
  /** The call is being forwarded: trace fields to send upstream, or undefined (tracing off: send nothing). */
  propagate(call: Call): Readonly<Record<string, string>> | undefined;
  /** The call ended (after its guards settled). */
  end(call: Call): void;
  /** Gives metrics a view of gateway state read at scrape time. */
  watch(source: TelemetrySource): void;
}

export class Telemetry implements CallTelemetry {
  readonly tracer: CallTracer | undefined;
  readonly metrics: GatewayMetrics | undefined;
  readonly observer: PipelineObserver | undefined;

  constructor(tracer: CallTracer | undefined, metrics: GatewayMetrics | undefined) {
    this.tracer = tracer;
    this.metrics = metrics;
    this.observer = tracer;
  }

  begin(call: Call, meta?: unknown): void {
    const t = this.tracer;
    if (t !== undefined) t.begin(call, meta);
    const m = this.metrics;
    if (m !== undefined) m.begin(call);
  }

  propagate(call: Call): Readonly<Record<string, string>> | undefined {
    const m = this.metrics;
    if (m !== undefined) m.forwarded(call);
    const t = this.tracer;
    return t === undefined ? undefined : t.propagate(call);
  }

  end(call: Call): void {
    const m = this.metrics;
    if (m !== undefined) m.end(call);
    const t = this.tracer;
    if (t !== undefined) t.end(call);
  }

  watch(source: TelemetrySource): void {
    this.metrics?.watch(source);
  }

  watchAudit(figures: AuditFigures): void {
    this.metrics?.watchAudit(figures);
  }

  watchPolicy(sources: PolicySourceFigures): void {
    this.metrics?.watchPolicy(sources);
  }

  watchStore(store: StoreFigures): void {
    this.metrics?.watchStore(store);
  }

  watchTokenChecks(checks: TokenCheckFigures): void {
    this.metrics?.watchTokenChecks(checks);
  }
}

/** Telemetry that does nothing (a gateway built without services, e.g. in unit tests). */
export const NO_TELEMETRY: CallTelemetry = new Telemetry(undefined, undefined);

export interface TelemetryService {
  readonly telemetry: Telemetry;
  readonly admin: readonly AdminExtension[];
  close(): Promise<void>;
}

export async function createTelemetry(snapshot: ConfigSnapshot, log: Logger, env: NodeJS.ProcessEnv = process.env): Promise<TelemetryService> {
  const spec = snapshot.gateway.telemetry;
  const tracing = tracingWanted(spec, env);
  const otlpMetrics = otlpMetricsWanted(spec, env);
  const otlpLogs = snapshot.gateway.audit.enabled && snapshot.gateway.audit.sinks.otlp;
  const metrics = spec.metrics.prometheus || otlpMetrics ? new GatewayMetrics(spec.metrics.maxLabelValues) : undefined;
  let sdk: RunningSdk | undefined;
  let inWorker: Signal[] = [];
  if (tracing || otlpMetrics || otlpLogs) {
    // Loaded only when something is exported: NodeSDK and its exporters are a few hundred modules a gateway without
    // OTLP never needs (bench/NOTES.md, cold start).
    const [{ startSdk, workerSignals }, bridge] = await Promise.all([import('./sdk.ts'), otlpMetrics ? import('./otlp-metrics.ts') : undefined]);
    inWorker = workerSignals({ traces: tracing, logs: otlpLogs, exportThread: spec.exportThread }, env);
    sdk = await startSdk(
      {
        serviceName: spec.tracing.serviceName,
        traces: tracing,
        logs: otlpLogs,
        metrics: bridge && metrics ? new bridge.PrometheusRegistryProducer(metrics.registry) : undefined,
        exportThread: spec.exportThread,
        report: (level, message) => log[level](message),
      },
      env,
    );
  }
  const tracer = tracing ? new CallTracer(trace.getTracer('tollgate'), { stages: spec.tracing.stages, deferred: sdk?.spans }) : undefined;
  if (sdk !== undefined) metrics?.watchHandOff(sdk.handOff);
  log.info({ tracing, otlpMetrics, prometheus: spec.metrics.prometheus, otlpLogs, exportWorker: inWorker }, 'telemetry');
  const admin: AdminExtension[] = [];
  if (metrics && spec.metrics.prometheus) {
    admin.push((app) => {
      app.get('/metrics', async (c) => c.body(await metrics.scrape(), 200, { 'content-type': metrics.registry.contentType }));
    });
  }
  return {
    telemetry: new Telemetry(tracer, metrics),
    admin,
    close: async () => {
      await sdk?.shutdown();
    },
  };
}
