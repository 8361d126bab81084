/**
 * Starts @opentelemetry/sdk-node when something needs it (tracing, OTLP metrics, the audit log's OTLP sink), with
 * exporters chosen from the standard OTEL_* variables (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL =
 * http/protobuf | grpc | http/json, OTEL_TRACES_SAMPLER, ...). No instrumentation packages: spans are made by hand.
 *
 * Spans and log records going to OTLP are serialised and sent from a worker thread (export/) unless the config says
 * `exportThread: main`; other exporters (console, zipkin) stay NodeSDK's own, on the gateway's thread. OTLP metrics
 * stay here too: they are collected here (the Prometheus registry) and exported once a minute, not per call.
 */
import { context, diag, metrics, propagation, trace } from '@opentelemetry/api';
import { logs } from '@opentelemetry/api-logs';
import { PeriodicExportingMetricReader, type MetricProducer, type PushMetricExporter } from '@opentelemetry/sdk-metrics';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { ExportLink, type Report } from './export/link.ts';
import { WorkerLogRecordProcessor, WorkerSpanProcessor, type HandOffFigures } from './export/processors.ts';
import type { Signal } from './export/wire.ts';
import { PresetIds, samplerFromEnv, type DeferredSpans } from './span-ids.ts';

export interface SdkOptions {
  readonly serviceName: string;
  readonly traces: boolean;
  readonly logs: boolean;
  /** Metrics to export over OTLP (the Prometheus registry bridge), if any. */
  readonly metrics: MetricProducer | undefined;
  /** Where OTLP spans and log records are serialised and sent: a worker thread (default) or the gateway's thread. */
  readonly exportThread?: 'worker' | 'main';
  /** Export problems worth an operator's attention (the export worker died, items dropped). Default: OTel's diag. */
  readonly report?: Report;
}

export interface RunningSdk {
  /** Hand-off figures per signal exported from the worker (absent for a signal exported on the gateway's thread). */
  readonly handOff: { readonly spans?: HandOffFigures; readonly logs?: HandOffFigures };
  /** The sampler and id generator the tracer provider was built with, when spans are exported at all. */
  readonly spans: DeferredSpans | undefined;
  shutdown(): Promise<void>;
}

/** Only the exporter package of the configured protocol is loaded (the gRPC one brings @grpc/grpc-js). */
async function metricExporter(env: NodeJS.ProcessEnv): Promise<PushMetricExporter> {
  const protocol = (env.OTEL_EXPORTER_OTLP_METRICS_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf').trim();
  if (protocol === 'grpc') return new (await import('@opentelemetry/exporter-metrics-otlp-grpc')).OTLPMetricExporter();
  if (protocol === 'http/json') return new (await import('@opentelemetry/exporter-metrics-otlp-http')).OTLPMetricExporter();
  return new (await import('@opentelemetry/exporter-metrics-otlp-proto')).OTLPMetricExporter();
}

/** Whether an OTEL_{TRACES,LOGS}_EXPORTER value asks for OTLP alone (unset means OTLP, as NodeSDK reads it). */
export function otlpOnly(value: string | undefined): boolean {
  const names = new Set((value ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '' && s !== 'null'));
  return names.size === 0 || (names.size === 1 && names.has('otlp'));
}

/** The signals exported from the worker thread under these options. */
export function workerSignals(opts: Pick<SdkOptions, 'traces' | 'logs' | 'exportThread'>, env: NodeJS.ProcessEnv): Signal[] {
  if (opts.exportThread === 'main') return [];
  const out: Signal[] = [];
  if (opts.traces && otlpOnly(env.OTEL_TRACES_EXPORTER)) out.push('spans');
  if (opts.logs && otlpOnly(env.OTEL_LOGS_EXPORTER)) out.push('logs');
  return out;
}

export async function startSdk(opts: SdkOptions, env: NodeJS.ProcessEnv = process.env): Promise<RunningSdk> {
  const interval = Number(env.OTEL_METRIC_EXPORT_INTERVAL ?? 60_000);
  const signals = workerSignals(opts, env);
  const link = signals.length === 0 ? undefined : new ExportLink({ env, signals, report: opts.report ?? ((level, message) => diag[level](message)) });
  const spanProcessor = link && signals.includes('spans') ? new WorkerSpanProcessor(link, env) : undefined;
  const logProcessor = link && signals.includes('logs') ? new WorkerLogRecordProcessor(link, env) : undefined;
  // Our own sampler and id generator, so the call tracer can decide a span's context when a call begins and make the
  // span when it ends (tracing.ts). With OTEL_TRACES_EXPORTER=none NodeSDK registers no tracer provider at all.
  const exported = opts.traces && (spanProcessor !== undefined || !(env.OTEL_TRACES_EXPORTER ?? '').split(',').map((s) => s.trim()).includes('none'));
  const spans: DeferredSpans | undefined = exported ? { sampler: samplerFromEnv(env), ids: new PresetIds() } : undefined;
  const sdk = new NodeSDK({
    serviceName: opts.serviceName,
    ...(spans !== undefined ? { sampler: spans.sampler, idGenerator: spans.ids } : {}),
    instrumentations: [],
    // An empty list means "none" to NodeSDK; leaving a signal undefined lets it configure that signal from OTEL_*.
    ...(!opts.traces ? { spanProcessors: [] } : spanProcessor ? { spanProcessors: [spanProcessor] } : {}),
    ...(!opts.logs ? { logRecordProcessors: [] } : logProcessor ? { logRecordProcessors: [logProcessor] } : {}),
    metricReaders: opts.metrics
      ? [new PeriodicExportingMetricReader({ exporter: await metricExporter(env), metricProducers: [opts.metrics], exportIntervalMillis: interval > 0 ? interval : 60_000 })]
      : [],
  });
  sdk.start();
  return {
    handOff: { ...(spanProcessor ? { spans: spanProcessor.figures } : {}), ...(logProcessor ? { logs: logProcessor.figures } : {}) },
    spans,
    shutdown: async () => {
      try {
        await sdk.shutdown();
      } catch (err) {
        diag.error('OpenTelemetry SDK shutdown failed', err);
      }
      // Unregister the globals so a gateway started later in this process (tests) can register its own.
      trace.disable();
      metrics.disable();
      logs.disable();
      propagation.disable();
      context.disable();
    },
  };
}
