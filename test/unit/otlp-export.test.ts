/**
 * The OTLP export worker's parts: a span or log record that crossed to the worker as plain data (structured clone,
 * as postMessage does) serialises to the same OTLP bytes as the original, and the hand-off keeps the SDK's queue
 * bound, counting and reporting what it drops, with a real worker thread exporting to a real OTLP receiver.
 */
import { SpanKind, SpanStatusCode, TraceFlags, context, trace } from '@opentelemetry/api';
import { SeverityNumber } from '@opentelemetry/api-logs';
import { TraceState } from '@opentelemetry/core';
import { JsonLogsSerializer, JsonTraceSerializer, ProtobufLogsSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { InMemoryLogRecordExporter, LoggerProvider, SimpleLogRecordProcessor } from '@opentelemetry/sdk-logs';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterEach, describe, expect, it } from 'vitest';
import { ExportLink } from '../../src/telemetry/export/link.ts';
import { ExportedLogRecord, logData } from '../../src/telemetry/export/log-data.ts';
import { WorkerSpanProcessor } from '../../src/telemetry/export/processors.ts';
import { ExportedSpan, spanData } from '../../src/telemetry/export/span-data.ts';
import { eventually } from '../helpers/gateway.ts';
import { OtlpReceiver } from '../helpers/otlp-receiver.ts';

const resource = resourceFromAttributes({ 'service.name': 'tollgate', 'host.name': 'h', 'process.pid': 42, 'process.command_args': ['node', 'serve'] }, { schemaUrl: 'https://opentelemetry.io/schemas/1.30.0' });
const scope = { name: 'tollgate', version: '1.2.3', schemaUrl: 'https://example.org/s' };

/** What the worker rebuilds from what the gateway's thread sends (structuredClone copies as postMessage does). */
function roundTrip<T>(value: T): T {
  return structuredClone(value);
}

describe('span data', () => {
  it('serialises to the same OTLP protobuf and JSON as the original span', () => {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ resource, spanProcessors: [new SimpleSpanProcessor(exporter)] });
    const tracer = provider.getTracer(scope.name, scope.version, { schemaUrl: scope.schemaUrl });
    const remoteParent = trace.setSpanContext(context.active(), {
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: 'b7ad6b7169203331',
      traceFlags: TraceFlags.SAMPLED,
      isRemote: true,
      traceState: new TraceState('vendor=a,other=b'),
    });
    const server = tracer.startSpan('tools/call x', { kind: SpanKind.SERVER, attributes: { s: 'é ✓', i: 7, f: 1.25, b: false, arr: ['a', 'b'], big: 2 ** 40 } }, remoteParent);
    server.addEvent('retry', { attempt: 2 });
    server.addLink({ context: { traceId: 'ffffffffffffffffffffffffffffffff', spanId: '1111111111111111', traceFlags: 1, isRemote: true, traceState: new TraceState('k=v') }, attributes: { why: 'fan-in' } });
    server.setStatus({ code: SpanStatusCode.ERROR, message: 'denied' });
    const child = tracer.startSpan('authenticate', { kind: SpanKind.INTERNAL }, trace.setSpan(context.active(), server));
    child.end();
    server.end();
    const spans = exporter.getFinishedSpans();
    expect(spans).toHaveLength(2);

    // As the worker does: one resource and one scope object per definition, shared by the spans that use it.
    const res = resourceFromAttributes(roundTrip(resource.attributes), { schemaUrl: resource.schemaUrl! });
    const sc = roundTrip(scope);
    const rebuilt = spans.map((s) => new ExportedSpan(roundTrip(spanData(s, 0, 0)), res, sc));
    expect(Buffer.from(ProtobufTraceSerializer.serializeRequest(rebuilt)!).toString('hex')).toBe(Buffer.from(ProtobufTraceSerializer.serializeRequest(spans)!).toString('hex'));
    expect(new TextDecoder().decode(JsonTraceSerializer.serializeRequest(rebuilt))).toBe(new TextDecoder().decode(JsonTraceSerializer.serializeRequest(spans)));
    // What other exporters read as well.
    expect(rebuilt[1]!.duration).toEqual(spans[1]!.duration);
    expect(rebuilt[1]!.parentSpanContext?.isRemote).toBe(true);
  });
});

describe('log record data', () => {
  it('serialises to the same OTLP protobuf and JSON as the original record', async () => {
    const exporter = new InMemoryLogRecordExporter();
    const provider = new LoggerProvider({ resource, processors: [new SimpleLogRecordProcessor({ exporter })] });
    const logger = provider.getLogger('tollgate.audit', '0.1.0');
    const parent = trace.setSpanContext(context.active(), { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: TraceFlags.SAMPLED });
    logger.emit({ eventName: 'tollgate.audit', severityNumber: SeverityNumber.INFO, severityText: 'INFO', timestamp: 1_764_000_000_123, body: '{"kind":"call"}', attributes: { 'tollgate.audit.seq': 7, ok: true }, context: parent });
    logger.emit({ body: { nested: [1, 'two', { three: new Uint8Array([3]) }] } });
    const records = exporter.getFinishedLogRecords();
    expect(records).toHaveLength(2);
    const res = resourceFromAttributes(roundTrip(resource.attributes), { schemaUrl: resource.schemaUrl! });
    const sc = roundTrip({ ...records[0]!.instrumentationScope });
    const rebuilt = records.map((r) => new ExportedLogRecord(roundTrip(logData(r, 0, 0)), res, sc));
    expect(Buffer.from(ProtobufLogsSerializer.serializeRequest(rebuilt)!).toString('hex')).toBe(Buffer.from(ProtobufLogsSerializer.serializeRequest(records)!).toString('hex'));
    expect(new TextDecoder().decode(JsonLogsSerializer.serializeRequest(rebuilt))).toBe(new TextDecoder().decode(JsonLogsSerializer.serializeRequest(records)));
    await provider.shutdown();
  });
});

describe('hand-off to the export worker', () => {
  let receiver: OtlpReceiver | undefined;
  afterEach(async () => {
    await receiver?.close();
    receiver = undefined;
  });

  it('keeps OTEL_BSP_MAX_QUEUE_SIZE across the hand-off, counts and reports drops, and flushes at shutdown', async () => {
    receiver = new OtlpReceiver();
    await receiver.start();
    // A queue bound under one hand-off chunk: nothing leaves while the spans are ended in one synchronous run.
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.httpUrl, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf', OTEL_BSP_MAX_QUEUE_SIZE: '50', OTEL_BSP_SCHEDULE_DELAY: '60000' };
    const reports: string[] = [];
    const link = new ExportLink({ env, signals: ['spans'], report: (level, message) => reports.push(`${level}: ${message}`) });
    const processor = new WorkerSpanProcessor(link, env);
    const tracer = new BasicTracerProvider({ resource, spanProcessors: [processor] }).getTracer('bound');
    for (let i = 0; i < 80; i++) tracer.startSpan(`s${i}`).end();
    expect(processor.figures).toMatchObject({ handedOver: 0, dropped: 30 });
    // The chunk leaves after its delay; the worker's BatchSpanProcessor caps its batch at its queue size, so the 50
    // go out as one full batch. Once exported there is room again, and the drops are reported.
    await eventually(() => receiver!.spans.length === 50, 5_000, 'the full batch');
    await eventually(() => link.outstanding('spans') === 0, 5_000, 'export settled');
    expect(processor.figures).toMatchObject({ handedOver: 50, dropped: 30, failed: 0 });
    tracer.startSpan('after').end();
    expect(reports).toEqual(['warn: Dropped 30 spans because maxQueueSize reached']);
    // The last one waits for the 60 s batch delay: only shutdown's flush sends it.
    await new Promise((r) => setTimeout(r, 100));
    expect(receiver.spans).toHaveLength(50);
    await processor.shutdown();
    expect(receiver.spans.map((s) => s.name)).toEqual([...Array.from({ length: 50 }, (_, i) => `s${i}`), 'after']);
    expect(receiver.spans[0]!.resource).toMatchObject({ 'service.name': 'tollgate', 'process.pid': 42 });
    expect(link.alive).toBe(false);
    // After shutdown nothing is taken (as the SDK's processor ignores spans once shut down).
    tracer.startSpan('late').end();
    expect(processor.figures).toMatchObject({ handedOver: 51, dropped: 30 });
  });

  it('counts spans whose export failed (collector unreachable), and frees their room in the queue', async () => {
    receiver = new OtlpReceiver();
    await receiver.start();
    const url = receiver.httpUrl;
    await receiver.close(); // nothing listens there any more
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: url, OTEL_EXPORTER_OTLP_TIMEOUT: '1000', OTEL_BSP_MAX_QUEUE_SIZE: '10', OTEL_BSP_SCHEDULE_DELAY: '10' };
    const link = new ExportLink({ env, signals: ['spans'], report: () => {} });
    const processor = new WorkerSpanProcessor(link, env);
    const tracer = new BasicTracerProvider({ spanProcessors: [processor] }).getTracer('failing');
    for (let i = 0; i < 10; i++) tracer.startSpan(`s${i}`).end();
    await eventually(() => processor.figures.failed === 10, 20_000, 'failed export counted');
    expect(link.outstanding('spans')).toBe(0);
    tracer.startSpan('room again').end();
    expect(processor.figures).toMatchObject({ handedOver: 10, dropped: 0 });
    await processor.shutdown();
  });
});
