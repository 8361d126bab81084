/**
 * What travels between the gateway's thread and the export worker (worker_threads messages, structured clone).
 * Spans and log records refer to their resource and instrumentation scope by number; each definition goes out
 * once, in the first message that needs it (one port keeps messages in order).
 */
import type { Attributes } from '@opentelemetry/api';
import type { LogData } from './log-data.ts';
import type { SpanData } from './span-data.ts';

/** The signals the worker exports; also the index of each signal's counters in the shared `counters` array. */
export const SIGNALS = ['spans', 'logs'] as const;
export type Signal = (typeof SIGNALS)[number];

/** Offsets of the two counter rows in WorkerSetup.counters. */
export const SETTLED = 0;
export const FAILED = SIGNALS.length;
export const COUNTERS = 2 * SIGNALS.length;

export interface ResourceDef {
  readonly id: number;
  readonly attributes: Attributes;
  readonly schemaUrl: string | undefined;
}

export interface ScopeDef {
  readonly id: number;
  readonly name: string;
  readonly version: string | undefined;
  readonly schemaUrl: string | undefined;
  /** Logger scopes may carry attributes. */
  readonly attributes: Attributes | undefined;
}

/** What the worker is started with (workerData). */
export interface WorkerSetup {
  readonly signals: readonly Signal[];
  /**
   * Int32 counters, written by the worker with Atomics and read by the gateway's thread without a message: at
   * SETTLED + signal index, items whose export finished (exported, failed, or given up at the export timeout); at
   * FAILED + signal index, items whose export failed.
   */
  readonly counters: SharedArrayBuffer;
}

export type ToWorker =
  | { readonly t: 'spans'; readonly resources: ResourceDef[] | undefined; readonly scopes: ScopeDef[] | undefined; readonly items: SpanData[] }
  | { readonly t: 'logs'; readonly resources: ResourceDef[] | undefined; readonly scopes: ScopeDef[] | undefined; readonly items: LogData[] }
  | { readonly t: 'flush' | 'shutdown'; readonly id: number; readonly signal: Signal };

/** The answer to a `flush` or `shutdown` request, with the same id. */
export interface FromWorker {
  readonly id: number;
  readonly error: string | undefined;
}
