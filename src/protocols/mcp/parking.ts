/**
 * A 2026 client's call that meets a server-to-client request from a session-era upstream: the exchange is parked
 * and the client answered `input_required` with a sealed `requestState` (mrtr.ts); its retry answers the upstream's
 * requests and continues the exchange on the retry's response.
 */
import type { ServerResponse } from 'node:http';
import { outcomeOf, type Call, type Target } from '../../core/call.ts';
import { Errors, GatewayError, toGatewayError } from '../../core/errors.ts';
import type { GatewayState } from '../../gateway/state.ts';
import type { McpAdapter } from './adapter.ts';
import { errorResponse, peekId, resultResponse, withResultType, type RpcRequest } from './jsonrpc.ts';
import { ParkedExchanges, type ParkedExchange } from './mrtr.ts';
import { DownstreamReply } from './reply.ts';
import { modernErrorResponse, statusOf } from './respond.ts';
import { Sealer, keysFingerprint } from './sealer.ts';
import { missingCapability } from './server-requests.ts';
import type { McpSession } from './session.ts';
import type { UpstreamSession } from './upstream/types.ts';

type SessionKeys = readonly { id: string; secret: string }[];

export class Parking {
  private readonly mcp: McpAdapter;
  private keys: string;
  private parked: ParkedExchanges;

  constructor(mcp: McpAdapter, keys: SessionKeys) {
    this.mcp = mcp;
    this.keys = keysFingerprint(keys);
    this.parked = new ParkedExchanges(new Sealer('mcp-request-state', keys));
  }

  /** New session keys: request states sealed under the old ones are no longer accepted. */
  reconfigure(keys: SessionKeys): void {
    const fp = keysFingerprint(keys);
    if (fp === this.keys) return;
    this.keys = fp;
    this.parked = new ParkedExchanges(new Sealer('mcp-request-state', keys));
  }

  /** Parks the exchange `reply` is relaying and answers the client input_required; pings are answered here. */
  park(call: Call, reply: DownstreamReply, session: McpSession, up: UpstreamSession, message: string, resumed?: ParkedExchange): undefined {
    const upstreamId = peekId(message);
    let parsed: { method?: unknown; params?: unknown };
    try {
      parsed = JSON.parse(message) as typeof parsed;
    } catch {
      return undefined;
    }
    if (upstreamId === undefined || upstreamId === null) return undefined;
    if (parsed.method === 'ping') {
      up.respond?.(resultResponse(upstreamId, {}));
      return undefined;
    }
    // Only what the client declared it can give may be asked of it (mrtr.mdx): otherwise the upstream is told no.
    const refusal = inputRequestRefusal(call.operation, parsed.method, parsed.params, session.hello.capabilities);
    if (refusal !== undefined) {
      up.respond?.(errorResponse(upstreamId, new GatewayError(Errors.MCP_SERVER_REQUEST_REFUSED, refusal)));
      return undefined;
    }
    const principal = call.principal?.id;
    const x = resumed ?? this.parked.create(up, principal, this.mcp.ctx.state().snapshot.gateway.mcp.limits.parkedPerPrincipal);
    if (x === undefined) {
      // At the cap of parked exchanges: this request is refused, the caller's other exchanges are untouched.
      up.respond?.(errorResponse(upstreamId, new GatewayError(Errors.MCP_SERVER_REQUEST_REFUSED, 'Too many requests are waiting for this client\'s input')));
      return undefined;
    }
    const key = x.ask(upstreamId);
    // The first park keeps the upstream request's handle (to cancel it if the client never comes back).
    x.handle ??= session.inflight.get(reply.id);
    const inputRequests = { [key]: { method: parsed.method, ...(parsed.params !== undefined && { params: parsed.params }) } };
    const name = call.target?.name;
    const requestState = this.parked.state(x, principal, call.operation, name);
    if (resumed) this.parked.keep(x, principal);
    x.park();
    reply.redirect = x;
    session.inflight.delete(reply.id);
    reply.answer(resultResponse(reply.id, { resultType: 'input_required', inputRequests, requestState }));
    return undefined;
  }

  /** A 2026 client's retry of a parked call: answer the upstream's requests, continue the exchange on this reply. */
  resume(call: Call, res: ServerResponse, session: McpSession, msg: RpcRequest, target: Target, state: GatewayState): void {
    let x: ParkedExchange;
    try {
      x = this.parked.take(msg.params!.requestState as string, call.principal?.id, msg.method, target.name);
    } catch (err) {
      return this.mcp.refuse(call, res, msg.id, toGatewayError(err), true);
    }
    const responses = (msg.params?.inputResponses ?? {}) as Record<string, unknown>;
    for (const [key, upstreamId] of x.pending) {
      const answer = responses[key];
      x.up.respond?.(
        answer !== undefined && answer !== null && typeof answer === 'object'
          ? resultResponse(upstreamId, answer)
          : errorResponse(upstreamId, new GatewayError(Errors.INVALID_PARAMS, 'The client provided no response to this request')),
      );
    }
    x.pending.clear();
    const reply: DownstreamReply = new DownstreamReply(res, msg.id, {
      keepAliveMs: state.snapshot.gateway.http.sseKeepAliveMs,
      // Parked exchanges are always with session-era upstreams: their results lack resultType.
      transform: withResultType,
      serverRequest: (m) => this.park(call, reply, session, x.up, m, x),
      errorStatus: (err) => statusOf(err, msg.id, true),
      errorBody: modernErrorResponse,
      onDone: (outcome) => {
        if (outcome instanceof GatewayError) {
          call.error = outcome;
          call.outcome = outcomeOf(outcome);
          call.status = outcome.def.status;
        } else call.status = 200;
        this.mcp.ctx.finish(call);
      },
    });
    reply.resplice = true;
    res.once('close', () => {
      if (!reply.done && !reply.redirect) x.handle?.cancel('client closed the response stream');
    });
    x.attach(reply);
  }
}

/** The client requests that may be answered input_required (mrtr.mdx, Supported Requests); no other may. */
const MRTR_OPERATIONS: ReadonlySet<string> = new Set(['tools/call', 'prompts/get', 'resources/read']);

/**
 * Why a server-to-client request met while serving `operation` cannot become an input request of this 2026 client,
 * or undefined when it can: only tools/call, prompts/get and resources/read may be answered input_required, and an
 * InputRequests value is an elicitation, a sampling or a roots request (mrtr.mdx), each needing the capability the
 * client declared in this request's `_meta` (URL-mode elicitation needs `elicitation.url`; form mode, the default,
 * `elicitation` itself or `elicitation.form`).
 */
export function inputRequestRefusal(operation: string, method: unknown, params: unknown, capabilities: Readonly<Record<string, unknown>>): string | undefined {
  if (!MRTR_OPERATIONS.has(operation)) return `${operation} cannot be answered input_required`;
  if (method !== 'sampling/createMessage' && method !== 'roots/list' && method !== 'elicitation/create') return `${String(method)} cannot be asked of a 2026-07-28 client`;
  return missingCapability(method, params, capabilities);
}
