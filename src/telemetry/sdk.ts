/**
 * Starts @opentelemetry/sdk-node when something needs it (tracing, OTLP metrics, the audit log's OTLP sink), with
 * exporters chosen from the standard OTEL_* variables (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL =
 * http/protobuf | grpc | http/json, OTEL_TRACES_SAMPLER, ...). No instrumentation packages: spans are made by hand.
 *
 * Spans going to OTLP are serialised and sent from a worker thread (export/worker-span-processor.ts) unless the
 * config says `exportThread: main`; other trace exporters (console, zipkin) stay NodeSDK's, on the main thread.
 */
import { context, diag, metrics, propagation, trace } from '@opentelemetry/api';
import { logs } from '@opentelemetry/api-logs';
import { OTLPMetricExporter as GrpcMetricExporter } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { OTLPMetricExporter as JsonMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPMetricExporter as ProtoMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { PeriodicExportingMetricReader, type MetricProducer, type PushMetricExporter } from '@opentelemetry/sdk-metrics';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { WorkerSpanProcessor } from './export/worker-span-processor.ts';

export interface SdkOptions {
  readonly serviceName: string;
  readonly traces: boolean;
  readonly logs: boolean;
  /** Metrics to export over OTLP (the Prometheus registry bridge), if any. */
  readonly metrics: MetricProducer | undefined;
  /** Where OTLP spans are serialised and sent: a worker thread (default) or the gateway's own thread. */
  readonly exportThread?: 'worker' | 'main';
  /** Export problems worth an operator's attention (the export worker died, spans dropped). */
  readonly report?: (level: 'warn' | 'error', message: string) => void;
}

export interface RunningSdk {
  shutdown(): Promise<void>;
}

function metricExporter(env: NodeJS.ProcessEnv): PushMetricExporter {
  const protocol = (env.OTEL_EXPORTER_OTLP_METRICS_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf').trim();
  if (protocol === 'grpc') return new GrpcMetricExporter();
  if (protocol === 'http/json') return new JsonMetricExporter();
  return new ProtoMetricExporter();
}

/** Whether OTEL_TRACES_EXPORTER asks for OTLP alone (unset means OTLP, as NodeSDK reads it). */
export function otlpTracesOnly(env: NodeJS.ProcessEnv): boolean {
  const names = new Set((env.OTEL_TRACES_EXPORTER ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '' && s !== 'null'));
  return names.size === 0 || (names.size === 1 && names.has('otlp'));
}

export function startSdk(opts: SdkOptions, env: NodeJS.ProcessEnv = process.env): RunningSdk {
  const interval = Number(env.OTEL_METRIC_EXPORT_INTERVAL ?? 60_000);
  const sdk = new NodeSDK({
    serviceName: opts.serviceName,
    instrumentations: [],
    // An empty list means "none" to NodeSDK; leaving a signal undefined lets it configure that signal from OTEL_*.
    ...(!opts.traces
      ? { spanProcessors: [] }
      : opts.exportThread !== 'main' && otlpTracesOnly(env)
        ? { spanProcessors: [new WorkerSpanProcessor({ env, ...(opts.report ? { report: opts.report } : {}) })] }
        : {}),
    ...(opts.logs ? {} : { logRecordProcessors: [] }),
    metricReaders: opts.metrics
      ? [new PeriodicExportingMetricReader({ exporter: metricExporter(env), metricProducers: [opts.metrics], exportIntervalMillis: interval > 0 ? interval : 60_000 })]
      : [],
  });
  sdk.start();
  return {
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
