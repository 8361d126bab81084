/**
 * Refusals decided before a protocol adapter has a Call of its own (bad Origin or Accept, a body too large or not
 * JSON, an unknown session, a caller not authenticated yet...). Each still leaves what a call leaves: an audit record,
 * metrics (`tollgate_requests_total`, `tollgate_refusals_total` by code), a span and the call log line, with the
 * reason's stable code and never a secret (no token, no session id: only what the Call holds).
 *
 * Kept to two small functions so that any adapter, and the generic call lifecycle, can use them the same way.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Call, outcomeOf, type Protocol, type RouteRef } from '../core/call.ts';
import type { GatewayError } from '../core/errors.ts';
import type { RouteSpec } from '../config/schema.ts';

/** The route of a request that matched none (public listener 404s). */
export const NO_ROUTE: RouteRef = Object.freeze({ name: '', spec: Object.freeze({ rules: [] }) as unknown as RouteSpec });

/** What records a call: the gateway's telemetry `begin` and its `finish` (guards' settle, audit, metrics, log). */
export interface CallRecorder {
  begin(call: Call, meta?: unknown): void;
  finish(call: Call): void;
}

/**
 * A Call for a raw request, before its protocol operation is known (`operation` names the stage, e.g. `mcp/post`).
 * Not begun: an adapter uses it to authenticate from the headers, and records it only if it refuses the request.
 */
export function requestCall(init: { protocol: Protocol; route: RouteRef; operation: string; req: IncomingMessage; resource?: string | undefined }): Call {
  const { req } = init;
  return new Call({
    id: randomUUID(),
    protocol: init.protocol,
    operation: init.operation,
    route: init.route,
    request: { method: req.method ?? 'GET', path: req.url ?? '', headers: req.headers, remoteAddress: req.socket.remoteAddress ?? '', resource: init.resource },
  });
}

/** Records a refusal of a call that was never begun (see requestCall): the caller writes the protocol's answer. */
export function recordRefusal(recorder: CallRecorder, call: Call, err: GatewayError, status: number = err.def.status): void {
  call.error = err;
  call.outcome = outcomeOf(err);
  call.status = status;
  recorder.begin(call);
  recorder.finish(call);
}
