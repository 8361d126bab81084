/**
 * The call tracer on the real OTel SDK (in-memory exporter): guard stages become authenticate/authorize/limit events
 * of the server span (or child spans with `stages: spans`) through the PipelineObserver, the server span carries the principal's SPIFFE ID, the decision id and the
 * GenAI usage attributes, a refused stage is an ERROR span, and the upstream span's context is what gets propagated.
 * Every case runs twice: spans made as the call goes (a tracer of any provider), and deferred to the call's end (the
 * gateway's own SDK: its sampler and preset ids), which must export the same spans.
 */
import { propagation, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, ParentBasedSampler, SimpleSpanProcessor, TraceIdRatioBasedSampler } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Call } from '../../src/core/call.ts';
import { Errors, GatewayError } from '../../src/core/errors.ts';
import { Pipeline, type Guard } from '../../src/core/pipeline.ts';
import { traceIdOf } from '../../src/telemetry/context.ts';
import { LabelCap } from '../../src/telemetry/metrics.ts';
import { PresetIds, samplerFromEnv, type DeferredSpans } from '../../src/telemetry/span-ids.ts';
import { CallTracer } from '../../src/telemetry/tracing.ts';
import { makeCall, principal } from '../helpers/audit-calls.ts';

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
/** The gateway's arrangement: the provider built with the sampler and id generator the tracer is given. */
const deferred: DeferredSpans = { sampler: samplerFromEnv({}), ids: new PresetIds() };
const deferredProvider = new BasicTracerProvider({ sampler: deferred.sampler, idGenerator: deferred.ids, spanProcessors: [new SimpleSpanProcessor(exporter)] });
const MODES = {
  eager: { tracer: new CallTracer(provider.getTracer('test'), { stages: 'spans' }), evented: new CallTracer(provider.getTracer('test')) },
  deferred: {
    tracer: new CallTracer(deferredProvider.getTracer('test'), { stages: 'spans', deferred }),
    evented: new CallTracer(deferredProvider.getTracer('test'), { deferred }),
  },
};

beforeAll(() => propagation.setGlobalPropagator(new W3CTraceContextPropagator()));
afterAll(() => propagation.disable());

/** Guards as the identity, policy and limits services name theirs. */
const identity: Guard = { name: 'identity', admit: (c: Call) => void (c.principal = principal('spiffe://example.org/ns/prod/sa/agent')) };
const policy: Guard = {
  name: 'policy',
  admit: async (c: Call) => {
    await new Promise((r) => setImmediate(r));
    c.decision = { id: 'dec-42', allow: c.target?.name !== 'db__drop', reason: 'rule x' };
    if (!c.decision.allow) throw new GatewayError(Errors.POLICY_DENIED, 'Denied by policy: rule x');
  },
};
const limits: Guard = { name: 'limits', admit: () => undefined };

describe.each(['eager', 'deferred'] as const)('CallTracer (%s spans)', (mode) => {
  const { tracer, evented } = MODES[mode];
  it('by default, guard stages are events of the server span: name, guard, duration, error type of a refusal', async () => {
    exporter.reset();
    expect(evented.stages).toBe('events');
    const pipeline = new Pipeline([identity, policy, limits], evented);
    const call = makeCall({ id: 'c0', time: Date.now(), tool: 'llm__chat' });
    evented.begin(call, undefined);
    const t0 = performance.timeOrigin + performance.now();
    await pipeline.admit(call);
    evented.propagate(call);
    call.status = 200;
    evented.end(call);
    const spans = exporter.getFinishedSpans();
    const server = spans.find((s) => s.kind === SpanKind.SERVER)!;
    expect(spans.map((s) => s.name).sort()).toEqual(['tools/call chat', 'tools/call llm__chat']);
    expect(server.events.map((e) => e.name)).toEqual(['authenticate', 'authorize', 'limit']);
    expect(server.events.map((e) => e.attributes?.['tollgate.guard'])).toEqual(['identity', 'policy', 'limits']);
    const authorize = server.events[1]!;
    // The policy stage waits a turn of the event loop: its duration is measured, its time is when it started.
    expect(authorize.attributes?.['tollgate.stage.duration_ms']).toBeGreaterThan(0);
    const at = authorize.time[0] * 1000 + authorize.time[1] / 1e6;
    expect(Math.abs(at - t0)).toBeLessThan(1000);

    exporter.reset();
    const denied = makeCall({ id: 'c0d', time: Date.now(), tool: 'db__drop' });
    evented.begin(denied, undefined);
    denied.error = await Promise.resolve(pipeline.admit(denied)).then(() => undefined, (e: unknown) => e as GatewayError);
    denied.outcome = 'denied';
    evented.end(denied);
    const refused = exporter.getFinishedSpans()[0]!;
    expect(refused.events.map((e) => e.name)).toEqual(['authenticate', 'authorize']);
    expect(refused.events[1]!.attributes?.['error.type']).toBe('TG_POLICY_DENIED');
    expect(refused.status.code).toBe(SpanStatusCode.ERROR);
  });

  it('with stages: spans, makes one server span with authenticate, authorize, limit and upstream children', async () => {
    exporter.reset();
    const pipeline = new Pipeline([identity, policy, limits], tracer);
    const call = makeCall({ id: 'c1', time: Date.now(), tool: 'llm__chat' });
    call.request.headers.traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    tracer.begin(call, undefined);
    await pipeline.admit(call);
    const fields = tracer.propagate(call)!;
    call.usage = { inputTokens: 12, outputTokens: 30 };
    call.status = 200;
    tracer.end(call);
    const spans = exporter.getFinishedSpans();
    const server = spans.find((s) => s.kind === SpanKind.SERVER)!;
    expect(server.name).toBe('tools/call llm__chat');
    expect(server.spanContext().traceId).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(server.parentSpanContext?.spanId).toBe('b7ad6b7169203331');
    expect(server.attributes).toMatchObject({
      'tollgate.principal.id': 'spiffe://example.org/ns/prod/sa/agent',
      'tollgate.decision.id': 'dec-42',
      'tollgate.decision.allow': true,
      'gen_ai.usage.input_tokens': 12,
      'gen_ai.usage.output_tokens': 30,
      'mcp.method.name': 'tools/call',
      'jsonrpc.request.id': '1',
    });
    const children = spans.filter((s) => s.parentSpanContext?.spanId === server.spanContext().spanId);
    expect(children.map((s) => s.name).sort()).toEqual(['authenticate', 'authorize', 'limit', 'tools/call chat']);
    const upstream = children.find((s) => s.kind === SpanKind.CLIENT)!;
    expect(fields.traceparent).toBe(`00-0af7651916cd43dd8448eb211c80319c-${upstream.spanContext().spanId}-01`);
    expect(traceIdOf(call)).toBe('0af7651916cd43dd8448eb211c80319c');
  });

  it('marks the refusing stage and the call as errors with the stable code', async () => {
    exporter.reset();
    const pipeline = new Pipeline([identity, policy, limits], tracer);
    const call = makeCall({ id: 'c2', time: Date.now(), tool: 'db__drop' });
    tracer.begin(call, undefined);
    const err = await Promise.resolve(pipeline.admit(call)).then(() => undefined, (e: unknown) => e as GatewayError);
    call.error = err;
    call.outcome = 'denied';
    tracer.end(call);
    const spans = exporter.getFinishedSpans();
    const authorize = spans.find((s) => s.name === 'authorize')!;
    expect(authorize.status.code).toBe(SpanStatusCode.ERROR);
    expect(authorize.attributes['error.type']).toBe('TG_POLICY_DENIED');
    expect(spans.some((s) => s.name === 'limit')).toBe(false);
    const server = spans.find((s) => s.kind === SpanKind.SERVER)!;
    expect(server.status).toMatchObject({ code: SpanStatusCode.ERROR, message: 'Denied by policy: rule x' });
    expect(server.attributes).toMatchObject({ 'error.type': 'TG_POLICY_DENIED', 'rpc.response.status_code': '-32062', 'tollgate.outcome': 'denied' });
  });

  it('takes the parent from params._meta before the HTTP header', () => {
    exporter.reset();
    const call = makeCall({ id: 'c3', time: Date.now(), tool: 'a__b' });
    call.request.headers.traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    tracer.begin(call, { traceparent: '00-11111111111111111111111111111111-2222222222222222-01', progressToken: 1 });
    tracer.end(call);
    const server = exporter.getFinishedSpans()[0]!;
    expect(server.spanContext().traceId).toBe('11111111111111111111111111111111');
    expect(server.parentSpanContext?.spanId).toBe('2222222222222222');
  });
});

describe('CallTracer, deferred spans', () => {
  const { evented } = MODES.deferred;
  it('exports the ids the upstream was given, the start times of when things happened, and no id leaks to the next call', async () => {
    exporter.reset();
    const pipeline = new Pipeline([identity, policy, limits], evented);
    const call = makeCall({ id: 'd1', time: Date.now(), tool: 'llm__chat' });
    call.request.headers.traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const before = Date.now();
    evented.begin(call, undefined);
    // Nothing is exported (or even started) before the call ends.
    expect(exporter.getFinishedSpans()).toHaveLength(0);
    await pipeline.admit(call);
    const fields = evented.propagate(call)!;
    await new Promise((r) => setTimeout(r, 20));
    call.status = 200;
    evented.end(call);
    const spans = exporter.getFinishedSpans();
    expect(spans).toHaveLength(2);
    const server = spans.find((s) => s.kind === SpanKind.SERVER)!;
    const upstream = spans.find((s) => s.kind === SpanKind.CLIENT)!;
    expect(server.parentSpanContext?.spanId).toBe('b7ad6b7169203331');
    expect(upstream.parentSpanContext?.spanId).toBe(server.spanContext().spanId);
    expect(fields.traceparent).toBe(`00-0af7651916cd43dd8448eb211c80319c-${upstream.spanContext().spanId}-01`);
    const ms = (t: readonly [number, number]) => t[0] * 1000 + t[1] / 1e6;
    // The server span starts when the call began, the upstream span when the request was handed on, 20 ms before the end.
    expect(Math.abs(ms(server.startTime) - before)).toBeLessThan(15);
    expect(ms(upstream.startTime)).toBeGreaterThanOrEqual(ms(server.startTime));
    // (At least 15: a 20 ms timer can fire a millisecond or more early against performance.now, the clock spans use.)
    expect(ms(server.endTime) - ms(upstream.startTime)).toBeGreaterThanOrEqual(15);
    expect(server.events.map((e) => e.name)).toEqual(['authenticate', 'authorize', 'limit']);

    // A root call next: its trace id is its own (the previous call's preset ids were not left behind).
    exporter.reset();
    const root = makeCall({ id: 'd2', time: Date.now(), tool: 'a__b' });
    evented.begin(root, undefined);
    evented.propagate(root);
    evented.end(root);
    const rootSpans = exporter.getFinishedSpans();
    expect(rootSpans.map((s) => s.spanContext().traceId)).toEqual([traceIdOf(root), traceIdOf(root)]);
    expect(traceIdOf(root)).not.toBe('0af7651916cd43dd8448eb211c80319c');
    expect(rootSpans.find((s) => s.kind === SpanKind.SERVER)!.parentSpanContext).toBeUndefined();
  });
});

describe.each(['eager', 'deferred'] as const)('CallTracer, sampled out (%s spans)', (mode) => {
  it('makes no spans but still passes the unsampled context upstream', async () => {
    const dropped = new InMemorySpanExporter();
    const sampler = new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(0) });
    const ids = new PresetIds();
    const never = new BasicTracerProvider({ sampler, idGenerator: ids, spanProcessors: [new SimpleSpanProcessor(dropped)] });
    const t = new CallTracer(never.getTracer('test'), mode === 'deferred' ? { deferred: { sampler, ids } } : {});
    const call = makeCall({ id: 'c4', time: Date.now(), tool: 'a__b' });
    t.begin(call, undefined);
    await new Pipeline([identity, policy, limits], t).admit(call);
    const fields = t.propagate(call)!;
    t.end(call);
    expect(dropped.getFinishedSpans()).toHaveLength(0);
    expect(fields.traceparent).toMatch(new RegExp(`^00-${traceIdOf(call)}-[0-9a-f]{16}-00$`));
  });
});

describe('LabelCap', () => {
  it('keeps label cardinality bounded', () => {
    const cap = new LabelCap(3);
    expect(['a', 'b', 'c', 'd', 'a', 'e'].map((v) => cap.get(v))).toEqual(['a', 'b', 'c', 'other', 'a', 'other']);
  });
});
