/**
 * The MCP protocol adapter for Streamable HTTP (session era: 2025-03-26 .. 2025-11-25, and 2026-07-28 clients).
 *
 * `/mcp` (the rule's mount) is the federated view of every backend of the matched rule; `/mcp/<server>` is one
 * backend alone. Each JSON-RPC message becomes a `Call` that walks the guard pipeline before anything is forwarded.
 *
 * This file holds what every part shares: the adapter's state and the Call steps (create, admit, enter a session,
 * refuse, answer). The parts, one file each:
 *   transport.ts      HTTP entry: path, Origin, authentication, method, body, JSON-RPC classification, era
 *   session-era.ts    initialize, notifications, client responses, DELETE; per-snapshot session settings
 *   routing.ts        which backend owns a request's target (tools, prompts, resources; virtual servers)
 *   requests.ts       one request: route it, admit it, hand it to the lists or the forwarder
 *   lists.ts          list merging and filtering across backends (federation.ts pages them)
 *   forward.ts        sending a request upstream and relaying its answer (reply.ts writes it downstream)
 *   parking.ts        multi round-trip exchanges parked for 2026 clients (mrtr.ts holds the sealed state)
 *   server-stream.ts  the GET stream of server-initiated messages, with Last-Event-ID replay
 *   respond.ts        JSON-RPC error writing and the HTTP status of an error
 *   stateless.ts      2026-07-28 contexts, discovery and listen streams; legacy-sse.ts the 2024-11-05 transport
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { Call, outcomeOf } from '../../core/call.ts';
import { Errors, GatewayError, toGatewayError } from '../../core/errors.ts';
import type { GatewayState } from '../../gateway/state.ts';
import type { CompiledRule, RouteMatch } from '../../config/routes.ts';
import { remoteAddress, sendBody } from '../../server/io.ts';
import { SseWriter } from '../../server/sse.ts';
import type { RevocationSet } from '../../store/revocations.ts';
import type { Logger } from '../../telemetry/logger.ts';
import { resultResponse, type RpcId } from './jsonrpc.ts';
import { LegacySse } from './legacy-sse.ts';
import { Cursors } from './cursor.ts';
import { FederatedNames } from './names.ts';
import { Parking } from './parking.ts';
import { modernHeader, statusOf, writeError } from './respond.ts';
import type { SessionView } from './routing.ts';
import { ServerStreams } from './server-stream.ts';
import type { McpSession, SessionStore } from './session.ts';
import { SessionAccess } from './session-access.ts';
import { prepareSession } from './session-era.ts';
import { PrincipalSlots } from '../../core/slots.ts';
import { Stateless } from './stateless.ts';
import { handleExchange } from './transport.ts';
import type { McpUpstreams } from './upstream/registry.ts';

const CLOSE = Buffer.from('}');

export type { SessionView } from './routing.ts';

/** Replaces a refusal by the answer the caller should see instead (see requests.ts). */
export type Conceal = (refusal: GatewayError) => GatewayError | Promise<GatewayError>;

export interface AdapterContext {
  readonly log: Logger;
  state(): GatewayState;
  /** Settles the call's guards and writes its log line. Called exactly once per call. */
  finish(call: Call): void;
  /** A Call was created (telemetry: its server span, metrics). `meta`: the request's `params._meta` (trace context). */
  begin(call: Call, meta?: unknown): void;
  /** Starts the upstream span; the trace fields to add to the forwarded `params._meta`, or undefined (tracing off). */
  propagate(call: Call): Readonly<Record<string, string>> | undefined;
  /** A Call for a raw request, not begun, to authenticate from the headers (CallLifecycle.prepare). */
  prepare(init: { rule: CompiledRule; operation: string; req: IncomingMessage; resource: string }): Call;
  /** Records the refusal of a prepared Call whose answer the adapter wrote (CallLifecycle.refused). */
  refused(call: Call, err: GatewayError, status: number): void;
  /** Ended sessions (by fingerprint), shared by every replica when Redis is configured. */
  readonly revocations: RevocationSet;
}

export class McpAdapter {
  readonly ctx: AdapterContext;
  readonly upstreams: McpUpstreams;
  private names: FederatedNames;
  /** Session-era sessions: continued, bound to their principal, capped, revoked (session-access.ts). */
  readonly access: SessionAccess;
  /** Multi round-trip exchanges parked for 2026 clients (parking.ts, mrtr.ts). */
  readonly parking: Parking;
  /** Sealed cursors of merged list pages (cursor.ts). */
  readonly cursors: Cursors;
  /** 2026-07-28 clients: validation, discovery, listen streams and their per-principal upstream state. */
  readonly stateless: Stateless;
  /** The legacy HTTP+SSE transport (2024-11-05) for old clients. */
  readonly legacy: LegacySse;
  /** Server-initiated (GET) streams: ended first at shutdown, since clients simply reconnect elsewhere. */
  readonly serverStreams: ServerStreams;
  /** Long-lived streams per principal (legacy SSE channels, subscriptions/listen): mcp.limits.streamsPerPrincipal. */
  readonly streamSlots = new PrincipalSlots();

  constructor(ctx: AdapterContext, upstreams: McpUpstreams) {
    this.ctx = ctx;
    this.upstreams = upstreams;
    const snapshot = ctx.state().snapshot;
    this.names = new FederatedNames(snapshot.gateway.mcp.separator, () => ctx.state().snapshot.gateway.mcp.limits.aliasesPerServer);
    this.access = new SessionAccess({ log: ctx.log, state: ctx.state, upstreams, revocations: ctx.revocations, prepare: prepareSession });
    this.parking = new Parking(this, snapshot.mcpSessionKeys);
    this.cursors = new Cursors(snapshot.mcpSessionKeys);
    this.stateless = new Stateless(this);
    this.legacy = new LegacySse(this);
    this.serverStreams = new ServerStreams(this);
    if (this.access.ephemeral) ctx.log.info('no mcp.sessionKeys configured: session ids are sealed with a per-process key (one replica)');
  }

  /** Called when a new config snapshot is in force. */
  reconfigure(): void {
    const snapshot = this.ctx.state().snapshot;
    const sep = snapshot.gateway.mcp.separator;
    if (sep !== this.names.separator) this.names = new FederatedNames(sep, () => this.ctx.state().snapshot.gateway.mcp.limits.aliasesPerServer);
    this.access.reconfigure(snapshot.mcpSessionKeys);
    this.parking.reconfigure(snapshot.mcpSessionKeys);
    this.cursors.reconfigure(snapshot.mcpSessionKeys);
  }

  /** The session-era sessions of this replica. */
  get sessions(): SessionStore {
    return this.access.sessions;
  }

  get federatedNames(): FederatedNames {
    return this.names;
  }

  handle(req: IncomingMessage, res: ServerResponse, match: RouteMatch, state: GatewayState): void {
    handleExchange(this, req, res, match, state);
  }

  crash(res: ServerResponse, err: unknown): void {
    this.ctx.log.error({ err }, 'MCP adapter failure');
    writeError(res, null, toGatewayError(err));
  }

  /**
   * Refuses a request before its Call exists (`pre`, from the transport): recorded like a call (audit, metrics, log)
   * with the reason's code, answered in JSON-RPC. A body not read yet is never buffered or parsed, only drained
   * (closing at once would risk a reset that loses the answer; the server's request timeout bounds a body that never
   * ends).
   */
  reject(pre: Call, req: IncomingMessage, res: ServerResponse, err: GatewayError, id: RpcId | null = null, extra?: OutgoingHttpHeaders, modern = modernHeader(req)): void {
    this.ctx.refused(pre, err, statusOf(err, id, modern));
    if (!req.complete) req.resume();
    writeError(res, id, err, extra, modern);
  }

  newCall(req: IncomingMessage, rule: CompiledRule, operation: string, rpcId: RpcId | undefined, meta?: unknown): Call {
    const call = new Call({
      id: randomUUID(),
      protocol: 'mcp',
      operation,
      route: rule.route,
      request: { method: req.method ?? 'POST', path: req.url ?? '', headers: req.headers, remoteAddress: remoteAddress(req) },
      rpcId,
    });
    this.ctx.begin(call, meta);
    return call;
  }

  /**
   * Runs the pipeline; on refusal answers the caller, finishes the call and returns false. `conceal` may replace the
   * refusal by the answer that says less (requests.ts: a target the caller may not see answers as unknown).
   */
  async admit(call: Call, res: ServerResponse, id: RpcId | null, modern: boolean, state: GatewayState, conceal?: Conceal): Promise<boolean> {
    try {
      const pending = state.pipeline.admit(call);
      if (pending) await pending;
      return true;
    } catch (err) {
      const refusal = toGatewayError(err);
      // The record keeps what happened (a denial stays `denied`); the caller gets the concealed answer.
      this.refuse(call, res, id, conceal ? await conceal(refusal) : refusal, modern, refusal);
      return false;
    }
  }

  /**
   * Admits the call, then resolves the session it acts in (continued, or created for a 2026 caller): only now, for
   * an authenticated caller. On refusal answers, finishes the call and returns undefined.
   */
  async enter(call: Call, res: ServerResponse, id: RpcId | null, view: SessionView, state: GatewayState, conceal?: Conceal): Promise<McpSession | undefined> {
    if (!(await this.admit(call, res, id, view.modern, state, conceal))) return undefined;
    let session = view.resolve(call);
    if (session instanceof Promise) session = await session;
    if (session instanceof GatewayError) {
      this.refuse(call, res, id, session, view.modern);
      return undefined;
    }
    if (session.fingerprint !== '') call.sessionId = session.fingerprint;
    return session;
  }

  /** Answers `err` and finishes the call; its outcome is that of `cause` (what was decided) when given. */
  refuse(call: Call, res: ServerResponse, id: RpcId | null, err: GatewayError, modern = false, cause: GatewayError = err): void {
    call.error = err;
    call.outcome = outcomeOf(cause);
    call.status = statusOf(err, id, modern);
    writeError(res, id, err, undefined, modern);
    this.ctx.finish(call);
  }

  /**
   * Ends a request the client cancelled without a response (cancellation.mdx: receivers SHOULD NOT answer it): the
   * POST still gets an answer, an SSE stream that ends at once. Recorded as cancelled.
   */
  abandon(call: Call, res: ServerResponse, keepAliveMs: number): void {
    const err = new GatewayError(Errors.REQUEST_CANCELLED);
    call.error = err;
    call.outcome = outcomeOf(err);
    call.status = err.def.status;
    if (!res.headersSent && !res.destroyed) new SseWriter(res, {}, keepAliveMs).end();
    this.ctx.finish(call);
  }

  answer(call: Call, res: ServerResponse, id: RpcId, result: unknown): void {
    call.status = 200;
    sendBody(res, 200, 'application/json', resultResponse(id, result));
    this.ctx.finish(call);
  }

  /** Answers with a result already serialised (JSON bytes): the response is built around it without parsing it. */
  answerSerialised(call: Call, res: ServerResponse, id: RpcId, result: Buffer): void {
    call.status = 200;
    sendBody(res, 200, 'application/json', Buffer.concat([Buffer.from(`{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":`), result, CLOSE]));
    this.ctx.finish(call);
  }

  /** Ends every server-initiated stream (shutdown): they carry no in-flight call, and clients reconnect. */
  endStreams(): void {
    this.serverStreams.endAll();
  }

  async close(): Promise<void> {
    this.endStreams();
    this.stateless.close();
    this.legacy.close();
    await this.access.close();
  }
}
