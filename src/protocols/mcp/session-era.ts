/**
 * The session era's own messages (2025-03-26 .. 2025-11-25): initialize (a session is created, capped per
 * principal, bound to it), notifications, the client's answers to server-to-client requests, and DELETE (the
 * session ends, here and, through the revocation set, on every replica).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Errors, GatewayError } from '../../core/errors.ts';
import type { GatewayState } from '../../gateway/state.ts';
import type { CompiledRule } from '../../config/routes.ts';
import { sendBody } from '../../server/io.ts';
import type { McpAdapter } from './adapter.ts';
import { mergeInitialize } from './federation.ts';
import { resultResponse, type RpcId, type RpcNotification, type RpcRequest, type RpcResponse } from './jsonrpc.ts';
import { ReplayLog } from './replay.ts';
import { scopeOf, virtualServerOf, type SessionView } from './routing.ts';
import { McpSession } from './session.ts';
import type { ClientHello, UpstreamSession } from './upstream/types.ts';
import { negotiateVersion } from './versions.ts';
import { VIRTUAL_CAPABILITIES } from './virtual.ts';

/** The session-era view of a request: its session is the one its Mcp-Session-Id names, for the admitted principal. */
export function sessionView(mcp: McpAdapter, sid: unknown, rule: CompiledRule, scope: string | undefined): SessionView {
  return {
    scope,
    virtual: scope === undefined ? undefined : virtualServerOf(rule, scope),
    modern: false,
    resolve: (call) => mcp.access.resolve(sid, rule, scope, call.principal?.id),
  };
}

/** Per-snapshot settings a session needs (virtual server spec, replay log). */
export function prepareSession(session: McpSession, rule: CompiledRule, state: GatewayState): void {
  session.virtual = session.scope === undefined ? undefined : virtualServerOf(rule, session.scope);
  const replay = state.snapshot.gateway.mcp.replay;
  if (replay.events > 0 && !session.modern) session.replay ??= new ReplayLog(replay.events, replay.ttlMs, replay.maxBytes, {
      retryMs: replay.retryMs,
      // Priming events (an id, empty data) came with 2025-11-25: older clients may not expect an event without data.
      prime: session.protocolVersion >= '2025-11-25',
    });
}

export async function initialize(mcp: McpAdapter, req: IncomingMessage, res: ServerResponse, rule: CompiledRule, scope: string | undefined, msg: RpcRequest, state: GatewayState): Promise<void> {
  const call = mcp.newCall(req, rule, 'initialize', msg.id, msg.params?._meta);
  call.target = scope ? { kind: 'server', name: scope, server: scope } : undefined;
  const p = msg.params ?? {};
  const info = p.clientInfo as Record<string, unknown> | undefined;
  if (typeof p.protocolVersion !== 'string' || typeof p.capabilities !== 'object' || p.capabilities === null || typeof info?.name !== 'string') {
    return mcp.refuse(call, res, msg.id, new GatewayError(Errors.INVALID_PARAMS, 'Invalid params: initialize needs protocolVersion, capabilities and clientInfo'));
  }
  if (!(await mcp.admit(call, res, msg.id, false, state))) return;
  // A principal holds at most mcp.limits.sessionsPerPrincipal sessions here: the newcomer is refused.
  const release = mcp.access.reserve(call.principal?.id);
  if (release instanceof GatewayError) return mcp.refuse(call, res, msg.id, release);
  const protocolVersion = negotiateVersion(p.protocolVersion);
  const hello: ClientHello = {
    protocolVersion,
    capabilities: p.capabilities as Record<string, unknown>,
    clientInfo: { ...info, name: info.name, version: typeof info.version === 'string' ? info.version : '0' },
  };
  const session = new McpSession({
    route: rule.route.name,
    mount: rule.mount,
    scope,
    hello,
    protocolVersion,
    principal: call.principal?.id,
    registry: mcp.upstreams,
    log: mcp.ctx.log,
    maxPendingServerRequests: state.snapshot.gateway.mcp.limits.pendingServerRequests,
  });
  prepareSession(session, rule, state);
  const backends = scopeOf(session, rule);
  const opened = await Promise.all(backends.map(async (b) => [b, await session.upstream(b)] as const));
  const live = opened.filter((o): o is readonly [string, UpstreamSession] => o[1] !== undefined);
  let result: Record<string, unknown>;
  if (session.virtual) {
    result = { ...mergeInitialize(protocolVersion, []), capabilities: VIRTUAL_CAPABILITIES, serverInfo: { name: session.virtual.name, version: '1' } };
    if (session.virtual.description) result.instructions = session.virtual.description;
  } else if (scope) {
    const up = live[0]?.[1];
    if (!up) {
      release();
      void session.close();
      return mcp.refuse(call, res, msg.id, new GatewayError(Errors.UPSTREAM_UNAVAILABLE, `Upstream ${scope} is unavailable`, { data: { upstream: scope } }));
    }
    result = { ...up.init, protocolVersion };
    if (up.shared && up.init.capabilities.tasks !== undefined) {
      // One process for every client: its tasks/list would show them all, and any task id is anyone's to read.
      const { tasks: _, ...capabilities } = up.init.capabilities;
      result.capabilities = capabilities;
    }
  } else {
    result = mergeInitialize(protocolVersion, live.map(([b, s]) => [b, s.init] as const));
  }
  mcp.access.add(session, state.snapshot.gateway.mcp.sessionTtlMs, release);
  call.sessionId = session.fingerprint;
  call.status = 200;
  sendBody(res, 200, 'application/json', resultResponse(msg.id, result), { 'mcp-session-id': session.id });
  mcp.ctx.finish(call);
}

/**
 * The client's answer to a server-to-client request relayed through its session: a call like any other (admitted,
 * from the session's own principal), delivered only to a request that session is waiting on.
 */
export async function response(mcp: McpAdapter, req: IncomingMessage, res: ServerResponse, rule: CompiledRule, view: SessionView, msg: RpcResponse, body: Buffer, state: GatewayState): Promise<void> {
  const call = mcp.newCall(req, rule, 'mcp/response', undefined);
  const session = await mcp.enter(call, res, null, view, state);
  if (!session) return;
  if (!session.serverRequests.inbound(msg.id, body.toString('utf8'))) return mcp.refuse(call, res, null, new GatewayError(Errors.MCP_UNKNOWN_RESPONSE));
  call.status = 202;
  res.writeHead(202).end();
  mcp.ctx.finish(call);
}

export async function notification(mcp: McpAdapter, req: IncomingMessage, res: ServerResponse, rule: CompiledRule, view: SessionView, msg: RpcNotification, state: GatewayState): Promise<void> {
  const call = mcp.newCall(req, rule, msg.method, undefined, msg.params?._meta);
  const session = await mcp.enter(call, res, null, view, state);
  if (!session) return;
  switch (msg.method) {
    case 'notifications/cancelled': {
      const requestId = msg.params?.requestId as RpcId | undefined;
      const handle = requestId === undefined ? undefined : session.inflight.get(requestId);
      if (handle) {
        const reason = msg.params?.reason;
        handle.cancel(typeof reason === 'string' ? reason : 'cancelled by client');
      }
      break;
    }
    case 'notifications/initialized':
      break; // the gateway completed each upstream's handshake itself
    case 'notifications/progress': {
      // Progress on a request an upstream made: to that upstream alone, under its own token; none other has it.
      const asked = session.serverRequests.progressOf(msg.params?.progressToken);
      if (asked) asked.source.notify({ ...msg, params: { ...msg.params, progressToken: asked.progressToken } });
      break;
    }
    default:
      for (const up of session.openSessions()) up.notify(msg);
  }
  call.status = 202;
  res.writeHead(202).end();
  mcp.ctx.finish(call);
}

/** DELETE: the client ends its session. */
export async function endSession(mcp: McpAdapter, req: IncomingMessage, res: ServerResponse, rule: CompiledRule, scope: string | undefined, state: GatewayState): Promise<void> {
  const call = mcp.newCall(req, rule, 'mcp/delete', undefined);
  const session = await mcp.enter(call, res, null, sessionView(mcp, req.headers['mcp-session-id'], rule, scope), state);
  if (!session) return;
  try {
    await mcp.access.end(session);
  } catch (err) {
    // Ended here, but other replicas could not be told: say so rather than pretend it ended everywhere.
    mcp.ctx.log.error({ session: session.fingerprint, err: (err as Error).message }, 'session ended here but its revocation could not be shared');
    return mcp.refuse(call, res, null, new GatewayError(Errors.STORE_UNAVAILABLE, 'The session ended on this replica, but its revocation could not be recorded for the others; retry the DELETE'));
  }
  call.status = 200;
  res.writeHead(200).end();
  mcp.ctx.finish(call);
}
