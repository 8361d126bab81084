/**
 * Sends one admitted request to its upstream session and relays what comes back (JSON as is, or an SSE stream
 * when there is progress) through a DownstreamReply (reply.ts). Server-to-client requests met on the way are
 * relayed to a session-era client, or parked as input_required for a 2026 client (parking.ts). A client that goes
 * away cancels the upstream request, except a session-era stream that can still be resumed (Last-Event-ID).
 */
import type { ServerResponse } from 'node:http';
import { outcomeOf, type Call } from '../../core/call.ts';
import { Errors, GatewayError } from '../../core/errors.ts';
import type { GatewayState } from '../../gateway/state.ts';
import type { McpAdapter } from './adapter.ts';
import type { RpcRequest } from './jsonrpc.ts';
import { bridgeInputRequired } from './mrtr.ts';
import { unrequestedLogs } from './modern.ts';
import { DownstreamReply } from './reply.ts';
import { modernErrorResponse, relayedErrorStatus, statusOf } from './respond.ts';
import { relayNotification } from './notifications.ts';
import { relayServerRequest } from './server-requests.ts';
import type { McpSession } from './session.ts';
import { isModernSession } from './upstream/http-modern.ts';
import type { ReplySink, UpstreamSession } from './upstream/types.ts';

export interface Forwarding {
  readonly call: Call;
  readonly res: ServerResponse;
  readonly session: McpSession;
  readonly up: UpstreamSession;
  readonly msg: RpcRequest;
  /** The request's bytes when they go upstream unchanged (no re-serialisation), else undefined. */
  readonly raw: Buffer | undefined;
  readonly state: GatewayState;
  /** Applied to the final JSON-RPC response before it goes downstream (URI rewriting, resultType). */
  readonly transform: ((final: string) => string) | undefined;
  /** Text the final response must contain for `transform` to change it (undefined: always apply it). */
  readonly transformIf?: string | undefined;
}

export function forward(mcp: McpAdapter, f: Forwarding): void {
  const { call, res, session, up, state, transform } = f;
  let { msg, raw } = f;
  const trace = mcp.ctx.propagate(call);
  if (trace !== undefined) {
    // Tracing on: the upstream gets the trace context in params._meta (MCP convention), so the bytes change.
    msg = { ...msg, params: { ...msg.params, _meta: { ...(msg.params?._meta as Record<string, unknown> | undefined), ...trace } } };
    raw = undefined;
  }
  const modern = session.modern;
  const reply: DownstreamReply = new DownstreamReply(res, msg.id, {
    keepAliveMs: state.snapshot.gateway.http.sseKeepAliveMs,
    transform,
    transformIf: f.transformIf,
    replay: session.replay,
    serverRequest: modern ? (m) => mcp.parking.park(call, reply, session, up, m) : (m) => relayServerRequest(session, up, m),
    drop: modern ? unrequestedLogs(msg.params?._meta) : undefined,
    notification: modern ? undefined : (m) => relayNotification(session, up, m),
    errorStatus: modern ? (err) => statusOf(err, msg.id, true) : undefined,
    errorBody: modern ? modernErrorResponse : undefined,
    relayedErrorStatus: modern ? relayedErrorStatus : undefined,
    onDone: (outcome) => {
      if (session.inflight.get(msg.id) === inflight) session.inflight.delete(msg.id);
      if (outcome instanceof GatewayError) {
        call.error = outcome;
        call.outcome = outcomeOf(outcome);
        call.status = outcome.def.status;
      } else {
        call.status = 200;
        if (outcome === 'rpc-error') call.outcome = 'error';
      }
      mcp.ctx.finish(call);
    },
  });
  let handle: ReturnType<UpstreamSession['request']>;
  let sink: ReplySink = reply;
  if (!modern && isModernSession(up)) {
    // A 2026 upstream may answer input_required: ask this session-era client, then retry (mrtr.ts).
    sink = bridgeInputRequired({ msg, up, downstream: reply, push: (m) => reply.push(m), requests: session.serverRequests, track: (h) => (handle = h) });
  }
  handle = up.request(msg, raw, sink);
  const inflight = {
    downstreamId: msg.id,
    // notifications/cancelled, or the session ended: the upstream request is cancelled, the client gets no response.
    cancel: (reason?: string) => {
      handle.cancel(reason);
      reply.abandon(new GatewayError(Errors.REQUEST_CANCELLED));
    },
  };
  session.inflight.set(msg.id, inflight);
  res.once('close', () => {
    if (reply.done || reply.redirect) return;
    if (modern) {
      // 2026-07-28: closing the response stream is the cancellation.
      handle.cancel('client closed the response stream');
      reply.fail(new GatewayError(Errors.REQUEST_CANCELLED, 'Client closed the response stream'));
    } else if (reply.resumable) {
      // Session era: a disconnect is not a cancellation; the stream keeps recording for a Last-Event-ID resume.
      reply.detach();
    } else {
      handle.cancel();
      reply.fail(new GatewayError(Errors.REQUEST_CANCELLED, 'Client disconnected before the response'));
    }
  });
}
