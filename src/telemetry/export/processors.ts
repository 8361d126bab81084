/**
 * The SDK processors NodeSDK is given when OTLP export runs in the worker: on the gateway's thread they only turn a
 * finished span / emitted log record into plain data and queue it for hand-off (link.ts). Batching (size, delay,
 * export timeout, queue bound) is the SDK's BatchSpanProcessor / BatchLogRecordProcessor, in the worker.
 */
import { TraceFlags, type Context } from '@opentelemetry/api';
import type { InstrumentationScope } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import type { LogRecordProcessor, SdkLogRecord } from '@opentelemetry/sdk-logs';
import type { ReadableSpan, Span, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { HandOffQueue, positive, type ExportLink } from './link.ts';
import { logData, type LogData } from './log-data.ts';
import { spanData, type SpanData } from './span-data.ts';

/** Hand-off figures, read by the metrics at scrape time. */
export interface HandOffFigures {
  readonly handedOver: number;
  readonly dropped: number;
  readonly failed: number;
}

export class WorkerSpanProcessor implements SpanProcessor {
  private readonly link: ExportLink;
  private readonly queue: HandOffQueue<SpanData>;
  private closed: Promise<void> | undefined;
  // The resource and tracer of the last span: almost always those of the next one.
  private lastResource: Resource | undefined;
  private lastResourceId = 0;
  private lastScope: InstrumentationScope | undefined;
  private lastScopeId = 0;

  constructor(link: ExportLink, env: NodeJS.ProcessEnv) {
    this.link = link;
    this.queue = new HandOffQueue(link, 'spans', positive(env.OTEL_BSP_MAX_QUEUE_SIZE, 2048));
  }

  get figures(): HandOffFigures {
    return this.queue;
  }

  onStart(_span: Span, _parent: Context): void {}

  onEnd(span: ReadableSpan): void {
    if (this.closed !== undefined) return;
    if ((span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0) return;
    if (!this.queue.admit()) return;
    const r = span.resource;
    if (r !== this.lastResource) {
      this.lastResourceId = this.link.resourceId(r);
      this.lastResource = r;
    }
    const s = span.instrumentationScope;
    if (s !== this.lastScope) {
      this.lastScopeId = this.link.scopeId(s);
      this.lastScope = s;
    }
    this.queue.push(spanData(span, this.lastResourceId, this.lastScopeId));
  }

  forceFlush(): Promise<void> {
    return this.closed ?? this.queue.flush();
  }

  shutdown(): Promise<void> {
    this.closed ??= this.queue.close();
    return this.closed;
  }
}

export class WorkerLogRecordProcessor implements LogRecordProcessor {
  private readonly link: ExportLink;
  private readonly queue: HandOffQueue<LogData>;
  private closed: Promise<void> | undefined;

  constructor(link: ExportLink, env: NodeJS.ProcessEnv) {
    this.link = link;
    this.queue = new HandOffQueue(link, 'logs', positive(env.OTEL_BLRP_MAX_QUEUE_SIZE, 2048));
  }

  get figures(): HandOffFigures {
    return this.queue;
  }

  onEmit(record: SdkLogRecord, _context?: Context): void {
    if (this.closed !== undefined) return;
    if (!this.queue.admit()) return;
    this.queue.push(logData(record, this.link.resourceId(record.resource), this.link.scopeId(record.instrumentationScope)));
  }

  forceFlush(): Promise<void> {
    return this.closed ?? this.queue.flush();
  }

  shutdown(): Promise<void> {
    this.closed ??= this.queue.close();
    return this.closed;
  }
}
