/**
 * The OTLP export worker (a worker_threads thread, started by link.ts): takes spans and log records as plain data,
 * rebuilds them as the SDK's readable records, and exports them with the SDK's own batch processors and OTLP
 * exporters, configured from the same OTEL_* environment NodeSDK reads: protocol (http/protobuf, grpc, http/json),
 * endpoint, headers, timeout, compression; OTEL_BSP_* / OTEL_BLRP_* batch size, delay, queue bound, export
 * timeout. Serialisation and network I/O happen here, off the gateway's thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { DiagConsoleLogger, diag, type Attributes } from '@opentelemetry/api';
import { ExportResultCode, diagLogLevelFromString, getStringFromEnv, type ExportResult, type InstrumentationScope } from '@opentelemetry/core';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { BatchLogRecordProcessor, type LogRecordExporter, type SdkLogRecord } from '@opentelemetry/sdk-logs';
import { BatchSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { ExportedLogRecord } from './log-data.ts';
import { ExportedSpan } from './span-data.ts';
import { FAILED, SETTLED, SIGNALS, type FromWorker, type ResourceDef, type ScopeDef, type Signal, type ToWorker, type WorkerSetup } from './wire.ts';

const port = parentPort;
if (port === null) throw new Error('src/telemetry/export/worker.ts runs as a worker thread');
const setup = workerData as WorkerSetup;
const counters = new Int32Array(setup.counters);

// As NodeSDK does on the gateway's thread: the SDK's own diagnostics on the console when OTEL_LOG_LEVEL asks.
const logLevel = getStringFromEnv('OTEL_LOG_LEVEL');
if (logLevel !== undefined) diag.setLogger(new DiagConsoleLogger(), { logLevel: diagLogLevelFromString(logLevel) });

/** The OTLP protocol for a signal, as NodeSDK picks it (signal-specific variable first). */
function protocol(signal: 'TRACES' | 'LOGS'): string {
  const p = (getStringFromEnv(`OTEL_EXPORTER_OTLP_${signal}_PROTOCOL`) ?? getStringFromEnv('OTEL_EXPORTER_OTLP_PROTOCOL') ?? 'http/protobuf').trim();
  if (p === 'grpc' || p === 'http/json' || p === 'http/protobuf') return p;
  diag.warn(`Unsupported OTLP ${signal.toLowerCase()} protocol: ${p}. Using http/protobuf.`);
  return 'http/protobuf';
}

/** What the batch processors need of an exporter (SpanExporter and LogRecordExporter alike). */
interface Exporter<T> {
  export(items: T[], done: (result: ExportResult) => void): void;
  shutdown(): Promise<void>;
  forceFlush?(): Promise<void>;
}

/**
 * Counts each export's items in the shared counters once it finished: exported or failed, or when the batch
 * processor's export timeout passed (it gives up on the export then, and so does the gateway's queue bound).
 */
function counted<T>(inner: Exporter<T>, signal: Signal, timeoutMs: number): Exporter<T> {
  const i = SIGNALS.indexOf(signal);
  return {
    export(items, done) {
      let settled = false;
      const settle = (failed: boolean): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (failed) Atomics.add(counters, FAILED + i, items.length);
        Atomics.add(counters, SETTLED + i, items.length);
      };
      const timer = setTimeout(() => settle(true), timeoutMs);
      inner.export(items, (result) => {
        settle(result.code !== ExportResultCode.SUCCESS);
        done(result);
      });
    },
    shutdown: () => inner.shutdown(),
    forceFlush: () => inner.forceFlush?.() ?? Promise.resolve(),
  };
}

// Only the exporter package of the configured protocol is loaded (the gRPC one brings @grpc/grpc-js).
async function traceExporter(): Promise<SpanExporter> {
  const p = protocol('TRACES');
  if (p === 'grpc') return new (await import('@opentelemetry/exporter-trace-otlp-grpc')).OTLPTraceExporter();
  if (p === 'http/json') return new (await import('@opentelemetry/exporter-trace-otlp-http')).OTLPTraceExporter();
  return new (await import('@opentelemetry/exporter-trace-otlp-proto')).OTLPTraceExporter();
}

async function logExporter(): Promise<LogRecordExporter> {
  const p = protocol('LOGS');
  if (p === 'grpc') return new (await import('@opentelemetry/exporter-logs-otlp-grpc')).OTLPLogExporter();
  if (p === 'http/json') return new (await import('@opentelemetry/exporter-logs-otlp-http')).OTLPLogExporter();
  return new (await import('@opentelemetry/exporter-logs-otlp-proto')).OTLPLogExporter();
}

/** A number from the environment for a batch option (as NodeSDK reads OTEL_BLRP_*), or undefined for the default. */
function envNumber(name: string): number | undefined {
  const raw = getStringFromEnv(name);
  const n = raw === undefined ? Number.NaN : Number(raw);
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}

// BatchSpanProcessor (sdk-trace-base) reads OTEL_BSP_* itself; BatchLogRecordProcessor is given OTEL_BLRP_* as NodeSDK does.
// Messages posted meanwhile wait in the port until the listener below is attached.
const spans = setup.signals.includes('spans') ? new BatchSpanProcessor(counted(await traceExporter(), 'spans', envNumber('OTEL_BSP_EXPORT_TIMEOUT') ?? 30_000) as SpanExporter) : undefined;
const logs = setup.signals.includes('logs')
  ? new BatchLogRecordProcessor({
      exporter: counted(await logExporter(), 'logs', envNumber('OTEL_BLRP_EXPORT_TIMEOUT') ?? 30_000) as LogRecordExporter,
      maxQueueSize: envNumber('OTEL_BLRP_MAX_QUEUE_SIZE'),
      scheduledDelayMillis: envNumber('OTEL_BLRP_SCHEDULE_DELAY'),
      exportTimeoutMillis: envNumber('OTEL_BLRP_EXPORT_TIMEOUT'),
      maxExportBatchSize: envNumber('OTEL_BLRP_MAX_EXPORT_BATCH_SIZE'),
    })
  : undefined;

const resources = new Map<number, Resource>();
const scopes = new Map<number, InstrumentationScope & { attributes?: Attributes }>();

function define(rs: ResourceDef[] | undefined, ss: ScopeDef[] | undefined): void {
  if (rs !== undefined) for (const r of rs) resources.set(r.id, resourceFromAttributes(r.attributes, r.schemaUrl === undefined ? undefined : { schemaUrl: r.schemaUrl }));
  if (ss !== undefined) {
    for (const s of ss) {
      // Only the fields that are set: the exporters test for presence.
      scopes.set(s.id, {
        name: s.name,
        ...(s.version === undefined ? {} : { version: s.version }),
        ...(s.schemaUrl === undefined ? {} : { schemaUrl: s.schemaUrl }),
        ...(s.attributes === undefined ? {} : { attributes: s.attributes }),
      });
    }
  }
}

function processorOf(signal: Signal): { forceFlush(): Promise<void>; shutdown(): Promise<void> } | undefined {
  return signal === 'spans' ? spans : logs;
}

function answer(id: number, work: Promise<void> | undefined): void {
  void (work ?? Promise.resolve()).then(
    () => port!.postMessage({ id, error: undefined } satisfies FromWorker),
    (err: unknown) => port!.postMessage({ id, error: err instanceof Error ? err.message : String(err) } satisfies FromWorker),
  );
}

port.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'spans':
      define(m.resources, m.scopes);
      if (spans !== undefined) for (const d of m.items) spans.onEnd(new ExportedSpan(d, resources.get(d[0])!, scopes.get(d[1])!));
      break;
    case 'logs':
      define(m.resources, m.scopes);
      // The batch processor keeps and exports what it is given; it reads a record and never writes to it.
      if (logs !== undefined) for (const d of m.items) logs.onEmit(new ExportedLogRecord(d, resources.get(d[0])!, scopes.get(d[1])!) as unknown as SdkLogRecord);
      break;
    case 'flush':
      answer(m.id, processorOf(m.signal)?.forceFlush());
      break;
    case 'shutdown':
      answer(m.id, processorOf(m.signal)?.shutdown());
      break;
  }
});
