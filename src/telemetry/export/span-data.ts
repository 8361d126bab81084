/**
 * Finished spans as plain data, for the trip from the gateway's thread to the export worker, and back into
 * ReadableSpans there for the standard OTLP exporters.
 *
 * A span travels as one positional array (structured clone copies an array of primitives plus the span's own
 * attributes object for ~0.75-1 us a span, against ~2.3-3.8 us to serialise it to OTLP protobuf: bench/micro/telemetry.ts).
 * Its resource and instrumentation scope travel once, as numbered definitions (wire.ts) the spans refer to.
 */
import type { Attributes, HrTime, Link, SpanContext, SpanStatus } from '@opentelemetry/api';
import { TraceState, hrTimeDuration, type InstrumentationScope } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace-base';

/** A link, with its trace state as its W3C string (a TraceState object does not survive structured clone). */
export interface LinkData {
  readonly traceId: string;
  readonly spanId: string;
  readonly traceFlags: number;
  readonly isRemote: boolean | undefined;
  readonly traceState: string | undefined;
  readonly attributes: Attributes | undefined;
  readonly droppedAttributesCount: number | undefined;
}

/** One finished span. Positional: an array clones faster than an object with named fields. */
export type SpanData = [
  resource: number,
  scope: number,
  traceId: string,
  spanId: string,
  traceFlags: number,
  traceState: string | undefined,
  parentSpanId: string | undefined,
  parentIsRemote: boolean | undefined,
  parentTraceFlags: number,
  name: string,
  kind: number,
  startS: number,
  startNs: number,
  endS: number,
  endNs: number,
  attributes: Attributes,
  droppedAttributes: number,
  statusCode: number,
  statusMessage: string | undefined,
  events: TimedEvent[] | undefined,
  droppedEvents: number,
  links: LinkData[] | undefined,
  droppedLinks: number,
];

function linkData(link: Link): LinkData {
  const c = link.context;
  return {
    traceId: c.traceId,
    spanId: c.spanId,
    traceFlags: c.traceFlags,
    isRemote: c.isRemote,
    traceState: c.traceState?.serialize(),
    attributes: link.attributes,
    droppedAttributesCount: link.droppedAttributesCount,
  };
}

/** The span as plain data (gateway thread, once per finished span: keep it cheap). */
export function spanData(span: ReadableSpan, resource: number, scope: number): SpanData {
  const ctx = span.spanContext();
  const parent = span.parentSpanContext;
  const status = span.status;
  const links = span.links;
  const events = span.events;
  return [
    resource,
    scope,
    ctx.traceId,
    ctx.spanId,
    ctx.traceFlags,
    ctx.traceState?.serialize(),
    parent?.spanId,
    parent?.isRemote,
    parent?.traceFlags ?? 0,
    span.name,
    span.kind,
    span.startTime[0],
    span.startTime[1],
    span.endTime[0],
    span.endTime[1],
    span.attributes,
    span.droppedAttributesCount,
    status.code,
    status.message,
    events.length === 0 ? undefined : events,
    span.droppedEventsCount,
    links.length === 0 ? undefined : links.map(linkData),
    span.droppedLinksCount,
  ];
}

const NO_EVENTS: TimedEvent[] = [];
const NO_LINKS: Link[] = [];

/** A SpanContext from its parts as they travel (trace state as its W3C string). */
export function spanContextOf(traceId: string, spanId: string, traceFlags: number, isRemote: boolean | undefined, traceState: string | undefined): SpanContext {
  const c: SpanContext = { traceId, spanId, traceFlags };
  if (isRemote !== undefined) c.isRemote = isRemote;
  if (traceState !== undefined) c.traceState = new TraceState(traceState);
  return c;
}

/** A span rebuilt from SpanData in the export worker: what the exporters read of a ReadableSpan. */
export class ExportedSpan implements ReadableSpan {
  readonly name: string;
  readonly kind: number;
  readonly parentSpanContext: SpanContext | undefined;
  readonly startTime: HrTime;
  readonly endTime: HrTime;
  readonly status: SpanStatus;
  readonly attributes: Attributes;
  readonly links: Link[];
  readonly events: TimedEvent[];
  readonly ended = true;
  readonly resource: Resource;
  readonly instrumentationScope: InstrumentationScope;
  readonly droppedAttributesCount: number;
  readonly droppedEventsCount: number;
  readonly droppedLinksCount: number;
  private readonly ctx: SpanContext;

  constructor(d: SpanData, resource: Resource, scope: InstrumentationScope) {
    this.ctx = spanContextOf(d[2], d[3], d[4], undefined, d[5]);
    this.parentSpanContext = d[6] === undefined ? undefined : spanContextOf(d[2], d[6], d[8], d[7], undefined);
    this.name = d[9];
    this.kind = d[10];
    this.startTime = [d[11], d[12]];
    this.endTime = [d[13], d[14]];
    this.attributes = d[15];
    this.droppedAttributesCount = d[16];
    this.status = d[18] === undefined ? { code: d[17] } : { code: d[17], message: d[18] };
    this.events = d[19] ?? NO_EVENTS;
    this.droppedEventsCount = d[20];
    this.links = d[21] === undefined ? NO_LINKS : d[21].map((l) => ({ context: spanContextOf(l.traceId, l.spanId, l.traceFlags, l.isRemote, l.traceState), attributes: l.attributes, droppedAttributesCount: l.droppedAttributesCount }));
    this.droppedLinksCount = d[22];
    this.resource = resource;
    this.instrumentationScope = scope;
  }

  spanContext(): SpanContext {
    return this.ctx;
  }

  get duration(): HrTime {
    return hrTimeDuration(this.startTime, this.endTime);
  }
}
