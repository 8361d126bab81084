/**
 * Micro-benchmarks: what telemetry and the audit log cost per call, on and off, and the metrics library choice.
 *
 * Follows the bench/micro convention (`export const benches: MicroBench[]`, run by bench/micro.ts); also runnable on
 * its own: `node bench/micro/telemetry.ts` prints ns/op for each.
 *
 * - telemetry: what Gateway/adapter hooks do per call (begin, pipeline stages, propagate, end) with tracing off and on
 *   (on: the real SDK tracer with a BatchSpanProcessor whose exporter discards, so export stays off the path).
 * - audit: the guard's admit + settle plus the writer's background work for the record (serialise, hash, append),
 *   amortised: every 256th call waits for the writer to drain, so the cost of writing is in the figure.
 * - OTLP export: what a 512-span batch of the gateway's spans (5 per call) costs the gateway's thread when the SDK's
 *   BatchSpanProcessor serialises it to OTLP protobuf there, against handing it to the export worker as plain data
 *   (src/telemetry/export: spanData + postMessage in chunks of 64, to a worker thread that takes them in).
 */
import { mkdtempSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { propagation } from '@opentelemetry/api';
import { ExportResultCode, W3CTraceContextPropagator } from '@opentelemetry/core';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, InMemorySpanExporter, ParentBasedSampler, SimpleSpanProcessor, TraceIdRatioBasedSampler, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import client from 'prom-client';
import type { AuditWriter } from '../../src/audit/writer.ts';
import type { Call } from '../../src/core/call.ts';
import { Pipeline, type Guard } from '../../src/core/pipeline.ts';
import { AuditGuard } from '../../src/guards/audit/guard.ts';
import { HANDOFF_ITEMS } from '../../src/telemetry/export/link.ts';
import { spanData, type SpanData } from '../../src/telemetry/export/span-data.ts';
import { GatewayMetrics } from '../../src/telemetry/metrics.ts';
import { NO_TELEMETRY, Telemetry } from '../../src/telemetry/service.ts';
import { PresetIds, samplerFromEnv, type DeferredSpans } from '../../src/telemetry/span-ids.ts';
import { CallTracer } from '../../src/telemetry/tracing.ts';
import { makeCall, openWriter } from '../../test/helpers/audit-calls.ts';

/** Same shape as bench/micro.ts's MicroBench. */
export interface MicroBench {
  name: string;
  setup?(): Promise<void> | void;
  fn(): unknown;
  iterations?: number;
}

const discard: SpanExporter = {
  export: (_spans: ReadableSpan[], done) => done({ code: ExportResultCode.SUCCESS }),
  shutdown: async () => {},
};

const guards: Guard[] = [
  { name: 'identity', admit: () => undefined },
  { name: 'policy', admit: () => undefined },
  { name: 'limits', admit: () => undefined },
];

function call(): Call {
  const c = makeCall({ id: 'bench', time: Date.now(), principal: 'spiffe://example.org/ns/prod/sa/agent', tool: 'fixture__echo', allow: true, args: { message: 'hello', n: 1 } });
  c.upstream = 'fixture';
  c.request.headers.traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
  return c;
}

/** One call's telemetry work as the gateway does it: begin, guard stages, propagate, end. */
function perCall(t: Telemetry | typeof NO_TELEMETRY, pipeline: Pipeline, c: Call): void {
  t.begin(c, undefined);
  pipeline.admit(c);
  t.propagate(c);
  t.end(c);
}

/** What runs before the request is handed on (the latency path): begin, the guards, propagate. */
function pathShare(t: Telemetry, pipeline: Pipeline, c: Call): void {
  t.begin(c, undefined);
  pipeline.admit(c);
  t.propagate(c);
}

/** A tracer and pipeline on a provider with a discarding batch processor; `deferred`: the gateway's arrangement (span-ids.ts). */
function traced(deferred: boolean): { telemetry: Telemetry; pipeline: Pipeline } {
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  const spans: DeferredSpans = { sampler: samplerFromEnv({}), ids: new PresetIds() };
  const provider = new BasicTracerProvider({
    ...(deferred ? { sampler: spans.sampler, idGenerator: spans.ids } : {}),
    spanProcessors: [new BatchSpanProcessor(discard, { maxQueueSize: 65_536, scheduledDelayMillis: 50 })],
  });
  const tracer = new CallTracer(provider.getTracer('bench'), deferred ? { deferred: spans } : {});
  return { telemetry: new Telemetry(tracer, new GatewayMetrics(100)), pipeline: new Pipeline(guards, tracer) };
}
const tracedBy: Partial<Record<'eager' | 'deferred', { telemetry: Telemetry; pipeline: Pipeline }>> = {};

const metricsOnly = new Telemetry(undefined, new GatewayMetrics(100));
const plainPipeline = new Pipeline(guards);
const offCall = call();

let tracedTelemetry: Telemetry;
let sampledOut: Telemetry;
let sampledOutPipeline: Pipeline;
const unsampledCall = call();
let tracedPipeline: Pipeline;
const onCall = call();

const labels = (i: number): Record<string, string> => ({ protocol: 'mcp', route: i % 2 ? 'mcp' : 'mcp2', operation: 'tools/call', upstream: 'fixture', outcome: 'ok' });
const promRegistry = new client.Registry();
const promCounter = new client.Counter({ name: 'c_total', help: 'h', labelNames: ['protocol', 'route', 'operation', 'upstream', 'outcome'], registers: [promRegistry] });
const promHistogram = new client.Histogram({ name: 'h_seconds', help: 'h', labelNames: ['protocol', 'route', 'operation', 'upstream', 'outcome'], buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [promRegistry] });
const otelMeter = new MeterProvider({ readers: [new PrometheusExporter({ preventServerStart: true })] }).getMeter('bench');
const otelCounter = otelMeter.createCounter('c_total');
const otelHistogram = otelMeter.createHistogram('h_seconds', { advice: { explicitBucketBoundaries: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] } });
let n = 0;

function auditBench(sync: 'none' | 'batch'): MicroBench {
  let writer: AuditWriter;
  let guard: AuditGuard;
  const c = call();
  let i = 0;
  return {
    name: `audit on (sync=${sync}): admit + settle + background write, per call`,
    iterations: 50_000,
    async setup() {
      ({ writer } = await openWriter(mkdtempSync(join(tmpdir(), 'tollgate-bench-audit-')), { sync, buffer: { maxRecords: 1 << 20 } }));
      guard = new AuditGuard(writer);
    },
    fn() {
      guard.admit(c);
      guard.settle(c);
      if (++i % 256 === 0) return drain(writer);
      return undefined;
    },
  };
}

async function drain(writer: AuditWriter): Promise<void> {
  while (writer.pending > 0) await new Promise((r) => setImmediate(r));
}

/** The audit guard's share on the request path alone: admit (room check) + settle (queue the call). */
function auditRequestPath(): MicroBench {
  let writer: AuditWriter;
  let guard: AuditGuard;
  const c = call();
  return {
    name: 'audit on, request-path share only: admit + settle (queueing)',
    iterations: 200_000,
    async setup() {
      ({ writer } = await openWriter(mkdtempSync(join(tmpdir(), 'tollgate-bench-audit-')), { sync: 'none', buffer: { maxRecords: 1 << 21 } }));
      guard = new AuditGuard(writer);
    },
    fn() {
      guard.admit(c);
      guard.settle(c);
    },
  };
}

/** 512 finished spans as the gateway makes them (server, 3 guard stages, upstream per call), with a detected-like resource. */
function gatewaySpans(): ReadableSpan[] {
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  const exporter = new InMemorySpanExporter();
  const resource = resourceFromAttributes({ 'service.name': 'tollgate', 'host.name': 'bench-host', 'host.arch': 'amd64', 'process.pid': 4242, 'process.executable.name': 'node', 'process.runtime.version': '24.21.0', 'process.command_args': ['node', 'bin/tollgate.mjs', 'serve'] });
  const tracer = new CallTracer(new BasicTracerProvider({ resource, spanProcessors: [new SimpleSpanProcessor(exporter)] }).getTracer('tollgate'));
  const pipeline = new Pipeline([...guards.slice(0, 2), { name: 'audit', admit: () => undefined }], tracer);
  for (let i = 0; exporter.getFinishedSpans().length < 512; i++) {
    const c = call();
    c.sessionId = 'a4c1f2e0-5b7d-4c8e-9f3a-1b2c3d4e5f60';
    perCall(new Telemetry(tracer, undefined), pipeline, c);
  }
  return exporter.getFinishedSpans().slice(0, 512);
}

let batch: ReadableSpan[] = [];
let sink: Worker | undefined;

export const benches: MicroBench[] = [
  { name: 'telemetry off, metrics off: begin + 3 guards + propagate + end', iterations: 1_000_000, fn: () => perCall(NO_TELEMETRY, plainPipeline, offCall) },
  { name: 'telemetry off, metrics on (default): begin + 3 guards + propagate + end', iterations: 300_000, fn: () => perCall(metricsOnly, plainPipeline, offCall) },
  {
    name: 'tracing on + metrics: begin + 3 guard spans + upstream span + inject + end',
    iterations: 100_000,
    setup() {
      propagation.setGlobalPropagator(new W3CTraceContextPropagator());
      const provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(discard, { maxQueueSize: 65_536, scheduledDelayMillis: 50 })] });
      const tracer = new CallTracer(provider.getTracer('bench'));
      tracedTelemetry = new Telemetry(tracer, new GatewayMetrics(100));
      tracedPipeline = new Pipeline(guards, tracer);
    },
    fn: () => perCall(tracedTelemetry, tracedPipeline, onCall),
  },
  ...(['eager', 'deferred'] as const).flatMap((mode) => [
    {
      name: `tracing on (${mode === 'eager' ? 'spans made as the call goes' : 'spans made at the end'}): request-path share, begin + 3 guards + propagate`,
      iterations: 100_000,
      setup() {
        tracedBy[mode] = traced(mode === 'deferred');
      },
      fn: () => pathShare(tracedBy[mode]!.telemetry, tracedBy[mode]!.pipeline, onCall),
    },
    {
      name: `tracing on (${mode === 'eager' ? 'spans made as the call goes' : 'spans made at the end'}): whole call, begin + 3 guards + propagate + end`,
      iterations: 100_000,
      setup() {
        tracedBy[mode] = traced(mode === 'deferred');
      },
      fn: () => perCall(tracedBy[mode]!.telemetry, tracedBy[mode]!.pipeline, onCall),
    },
  ]),
  {
    name: 'tracing on, sampled out (ratio 0, no client trace): the same work',
    iterations: 300_000,
    setup() {
      const provider = new BasicTracerProvider({
        sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(0) }),
        spanProcessors: [new BatchSpanProcessor(discard)],
      });
      const tracer = new CallTracer(provider.getTracer('bench'));
      sampledOut = new Telemetry(tracer, new GatewayMetrics(100));
      sampledOutPipeline = new Pipeline(guards, tracer);
      delete unsampledCall.request.headers.traceparent;
    },
    fn: () => perCall(sampledOut, sampledOutPipeline, unsampledCall),
  },
  { name: 'metrics library: prom-client counter + histogram (5 labels)', iterations: 300_000, fn: () => { const l = labels(n++); promCounter.inc(l); promHistogram.observe(l, 0.0003); } },
  { name: 'metrics library: OTel SDK counter + histogram (5 attributes)', iterations: 300_000, fn: () => { const l = labels(n++); otelCounter.add(1, l); otelHistogram.record(0.0003, l); } },
  {
    name: 'OTLP export, gateway thread: protobuf serialisation of a 512-span batch (BatchSpanProcessor in thread), per batch',
    iterations: 2_000,
    setup() {
      batch = gatewaySpans();
    },
    fn: () => ProtobufTraceSerializer.serializeRequest(batch),
  },
  {
    name: `OTLP export, gateway thread: hand-off of a 512-span batch to the export worker (spanData + postMessage per ${HANDOFF_ITEMS}), per batch`,
    iterations: 2_000,
    setup() {
      batch = gatewaySpans();
      // A worker that takes the chunks in (deserialises them) and drops them: the gateway thread's side is measured.
      sink ??= new Worker("require('node:worker_threads').parentPort.on('message', () => {})", { eval: true });
      sink.unref();
    },
    fn: () => {
      let chunk: SpanData[] = [];
      for (const span of batch) {
        chunk.push(spanData(span, 0, 0));
        if (chunk.length === HANDOFF_ITEMS) {
          sink!.postMessage({ t: 'spans', resources: undefined, scopes: undefined, items: chunk });
          chunk = [];
        }
      }
      return chunk;
    },
  },
  auditBench('none'),
  auditBench('batch'),
  // Last: it leaves its queue to be written after it.
  auditRequestPath(),
];

// Standalone run.
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  for (const b of benches) {
    await b.setup?.();
    const iterations = b.iterations ?? 100_000;
    const warm = Math.min(10_000, Math.floor(iterations / 10));
    for (let i = 0; i < warm; i++) {
      const r = b.fn();
      if (r instanceof Promise) await r;
    }
    const t0 = process.hrtime.bigint();
    const c0 = process.cpuUsage();
    for (let i = 0; i < iterations; i++) {
      const r = b.fn();
      if (r instanceof Promise) await r;
    }
    const ns = Number(process.hrtime.bigint() - t0) / iterations;
    // CPU time (all threads of the process: includes the fs thread pool) is less disturbed by other load on the machine.
    const c = process.cpuUsage(c0);
    const cpu = ((c.user + c.system) * 1000) / iterations;
    process.stdout.write(`${ns.toFixed(0).padStart(8)} ns/op wall ${cpu.toFixed(0).padStart(8)} ns/op cpu  ${b.name}\n`);
  }
  process.exit(0);
}
