/**
 * Trace identity of a call, for whoever needs it without depending on the tracer (the audit log, log lines): the
 * gateway's own span when tracing is on, otherwise the trace id the client sent in its W3C `traceparent` header.
 */
import type { Call } from '../core/call.ts';

/** Key of the call's tracing state in `call.scratch`. */
export const TRACE_KEY = 'trace';

/** What the tracer keeps per call; only `traceId` is read outside src/telemetry. */
export interface TraceHandle {
  readonly traceId: string;
}

const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}/;

export function traceIdOf(call: Call): string | undefined {
  const handle = call.scratch.get(TRACE_KEY) as TraceHandle | undefined;
  if (handle !== undefined) return handle.traceId;
  const header = call.request.headers.traceparent;
  if (typeof header !== 'string') return undefined;
  const m = TRACEPARENT.exec(header);
  return m && m[1] !== '00000000000000000000000000000000' ? m[1] : undefined;
}
