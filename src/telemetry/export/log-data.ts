/**
 * Emitted log records (the audit log's OTLP sink) as plain data for the export worker, and rebuilt there as what the
 * OTLP log exporters read of a ReadableLogRecord. Same scheme as span-data.ts: one positional array per record.
 */
import type { HrTime, SpanContext } from '@opentelemetry/api';
import type { LogAttributes, LogBody } from '@opentelemetry/api-logs';
import type { InstrumentationScope } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableLogRecord } from '@opentelemetry/sdk-logs';
import { spanContextOf } from './span-data.ts';

/** One log record. The body is any OTLP AnyValue (structured clone copies strings, maps, arrays and bytes alike). */
export type LogData = [
  resource: number,
  scope: number,
  timeS: number,
  timeNs: number,
  observedS: number,
  observedNs: number,
  traceId: string | undefined,
  spanId: string | undefined,
  traceFlags: number,
  severityText: string | undefined,
  severityNumber: number | undefined,
  body: LogBody | undefined,
  eventName: string | undefined,
  attributes: LogAttributes,
  droppedAttributes: number,
];

/** The record as plain data (gateway thread, once per emitted record). */
export function logData(r: ReadableLogRecord, resource: number, scope: number): LogData {
  const ctx = r.spanContext;
  return [
    resource,
    scope,
    r.hrTime[0],
    r.hrTime[1],
    r.hrTimeObserved[0],
    r.hrTimeObserved[1],
    ctx?.traceId,
    ctx?.spanId,
    ctx?.traceFlags ?? 0,
    r.severityText,
    r.severityNumber,
    r.body,
    r.eventName,
    r.attributes,
    r.droppedAttributesCount,
  ];
}

/** A log record rebuilt from LogData in the export worker. */
export class ExportedLogRecord implements ReadableLogRecord {
  readonly hrTime: HrTime;
  readonly hrTimeObserved: HrTime;
  readonly spanContext: SpanContext | undefined;
  readonly severityText: string | undefined;
  readonly severityNumber: number | undefined;
  readonly body: LogBody | undefined;
  readonly eventName: string | undefined;
  readonly resource: Resource;
  readonly instrumentationScope: InstrumentationScope;
  readonly attributes: LogAttributes;
  readonly droppedAttributesCount: number;

  constructor(d: LogData, resource: Resource, scope: InstrumentationScope) {
    this.resource = resource;
    this.instrumentationScope = scope;
    this.hrTime = [d[2], d[3]];
    this.hrTimeObserved = [d[4], d[5]];
    this.spanContext = d[6] === undefined || d[7] === undefined ? undefined : spanContextOf(d[6], d[7], d[8], undefined, undefined);
    this.severityText = d[9];
    this.severityNumber = d[10];
    this.body = d[11];
    this.eventName = d[12];
    this.attributes = d[13];
    this.droppedAttributesCount = d[14];
  }
}
