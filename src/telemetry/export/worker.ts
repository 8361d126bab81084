/**
 * The export worker (a worker_threads thread): takes finished spans as plain data from the gateway's thread,
 * rebuilds them as ReadableSpans, and exports them with the standard BatchSpanProcessor and OTLP exporter,
 * configured from the same OTEL_* environment NodeSDK reads (protocol http/protobuf | grpc | http/json, endpoint,
 * headers, timeout, compression; OTEL_BSP_* batch size, delay, queue bound, export timeout). The OTLP serialisation
 * and the network I/O happen here, off the request path.
 */
import { parentPort } from 'node:worker_threads';
import { DiagConsoleLogger, diag } from '@opentelemetry/api';
import { diagLogLevelFromString, getStringFromEnv, type InstrumentationScope } from '@opentelemetry/core';
import { OTLPTraceExporter as GrpcTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as JsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtoTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { BatchSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { ExportedSpan, type FromWorker, type ToWorker } from './span-data.ts';

const port = parentPort;
if (port === null) throw new Error('src/telemetry/export/worker.ts runs as a worker thread');

// As NodeSDK does in the gateway's thread: the SDK's own diagnostics on the console when OTEL_LOG_LEVEL asks.
const logLevel = getStringFromEnv('OTEL_LOG_LEVEL');
if (logLevel !== undefined) diag.setLogger(new DiagConsoleLogger(), { logLevel: diagLogLevelFromString(logLevel) });

/** The OTLP trace exporter for the configured protocol (the same choice as NodeSDK's). */
function traceExporter(): SpanExporter {
  const protocol = (getStringFromEnv('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') ?? getStringFromEnv('OTEL_EXPORTER_OTLP_PROTOCOL') ?? 'http/protobuf').trim();
  switch (protocol) {
    case 'grpc':
      return new GrpcTraceExporter();
    case 'http/json':
      return new JsonTraceExporter();
    case 'http/protobuf':
      return new ProtoTraceExporter();
    default:
      diag.warn(`Unsupported OTLP traces protocol: ${protocol}. Using http/protobuf.`);
      return new ProtoTraceExporter();
  }
}

// BatchSpanProcessor reads OTEL_BSP_MAX_QUEUE_SIZE, _SCHEDULE_DELAY, _EXPORT_TIMEOUT and _MAX_EXPORT_BATCH_SIZE.
const processor = new BatchSpanProcessor(traceExporter());
const resources = new Map<number, Resource>();
const scopes = new Map<number, InstrumentationScope>();

function reply(m: FromWorker): void {
  port!.postMessage(m);
}

function answer(id: number, work: Promise<void>): void {
  work.then(
    () => reply({ t: 'done', id, error: undefined }),
    (err: unknown) => reply({ t: 'done', id, error: err instanceof Error ? err.message : String(err) }),
  );
}

port.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'spans': {
      if (m.resources !== undefined) for (const r of m.resources) resources.set(r.id, resourceFromAttributes(r.attributes, r.schemaUrl === undefined ? undefined : { schemaUrl: r.schemaUrl }));
      if (m.scopes !== undefined) for (const s of m.scopes) scopes.set(s.id, s.version === undefined && s.schemaUrl === undefined ? { name: s.name } : { name: s.name, version: s.version, schemaUrl: s.schemaUrl });
      for (const d of m.spans) processor.onEnd(new ExportedSpan(d, resources.get(d[0])!, scopes.get(d[1])!));
      reply({ t: 'ack', n: m.spans.length });
      break;
    }
    case 'flush':
      answer(m.id, processor.forceFlush());
      break;
    case 'shutdown':
      answer(m.id, processor.shutdown());
      break;
  }
});
