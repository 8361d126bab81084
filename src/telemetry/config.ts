/**
 * The Gateway's `telemetry` section. Exporters themselves (endpoint, protocol, headers, sampler) are configured the
 * standard way, with the OTEL_* environment variables read by @opentelemetry/sdk-node; this section only says what
 * Tollgate turns on.
 */
import { z } from 'zod';

const onOffAuto = z.union([z.boolean(), z.literal('auto')]);

export const telemetrySpec = z.strictObject({
  /**
   * Where spans and log records bound for OTLP are serialised and sent: `worker` (default), a worker thread, so a
   * batch export never stalls requests; `main`, the SDK's batch processors on the gateway's own thread.
   */
  exportThread: z.enum(['worker', 'main']).default('worker'),
  tracing: z
    .strictObject({
      /**
       * `auto` (default): on when the environment names a trace exporter (OTEL_TRACES_EXPORTER other than `none`, or
       * OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT). Off in the embedded default.
       */
      enabled: onOffAuto.default('auto'),
      serviceName: z.string().min(1).default('tollgate'),
      /**
       * Guard stages (authenticate, authorize, limit, audit) in a sampled trace: `events` of the server span (default:
       * name, guard, duration, error type), or child `spans` (a duration bar each in a trace view; costs more per call).
       */
      stages: z.enum(['events', 'spans']).default('events'),
    })
    .prefault({}),
  metrics: z
    .strictObject({
      /** Prometheus text at GET /metrics on the listener. */
      prometheus: z.boolean().default(true),
      /** OTLP metrics export; `auto`: on when OTEL_METRICS_EXPORTER includes `otlp`, or (unset) an OTLP endpoint is set. */
      otlp: onOffAuto.default('auto'),
      /** Distinct values kept per free-form label (model, team) before further values are counted as `other`. */
      maxLabelValues: z.number().int().min(1).max(10_000).default(100),
    })
    .prefault({}),
});
export type TelemetrySpec = z.infer<typeof telemetrySpec>;

/** Whether the environment asks for an OTLP trace exporter (the `auto` rule). */
export function tracingWanted(spec: TelemetrySpec, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.OTEL_SDK_DISABLED === 'true') return false;
  const setting = spec.tracing.enabled;
  if (setting !== 'auto') return setting;
  const exporters = env.OTEL_TRACES_EXPORTER?.trim();
  if (exporters !== undefined && exporters !== '') return !exporters.split(',').map((s) => s.trim()).includes('none');
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

/** Whether metrics go out over OTLP as well (the `auto` rule). */
export function otlpMetricsWanted(spec: TelemetrySpec, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.OTEL_SDK_DISABLED === 'true') return false;
  const setting = spec.metrics.otlp;
  if (setting !== 'auto') return setting;
  const exporters = env.OTEL_METRICS_EXPORTER?.trim();
  if (exporters !== undefined && exporters !== '') return exporters.split(',').map((s) => s.trim()).includes('otlp');
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT);
}
