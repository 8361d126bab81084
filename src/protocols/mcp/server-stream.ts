/**
 * The session era's GET stream: server-initiated messages of every upstream in the session's scope (list_changed,
 * resources/updated, server-to-client requests relayed under session-unique ids), one stream per session, recorded
 * for a Last-Event-ID resume when the replay log is on (a request's broken stream is resumed here too).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Call } from '../../core/call.ts';
import { Errors, GatewayError, toGatewayError } from '../../core/errors.ts';
import type { GatewayState } from '../../gateway/state.ts';
import type { CompiledRule } from '../../config/routes.ts';
import { accepts } from '../../server/io.ts';
import { SseWriter } from '../../server/sse.ts';
import type { McpAdapter } from './adapter.ts';
import { notification, peekId } from './jsonrpc.ts';
import { relayNotification } from './notifications.ts';
import type { ReplayStream } from './replay.ts';
import { scopeOf } from './routing.ts';
import { relayServerRequest } from './server-requests.ts';
import { sessionView } from './session-era.ts';
import type { McpSession } from './session.ts';
import type { UpstreamSession } from './upstream/types.ts';

export class ServerStreams {
  private readonly mcp: McpAdapter;
  /** Open server-initiated (GET) streams: ended first at shutdown, since clients simply reconnect elsewhere. */
  private readonly streams = new Set<SseWriter>();

  constructor(mcp: McpAdapter) {
    this.mcp = mcp;
  }

  async get(req: IncomingMessage, res: ServerResponse, rule: CompiledRule, scope: string | undefined, state: GatewayState, pre: Call): Promise<void> {
    const mcp = this.mcp;
    if (!accepts(req.headers.accept, 'text/event-stream')) {
      return mcp.reject(pre, req, res, new GatewayError(Errors.NOT_ACCEPTABLE, 'Not Acceptable: Accept must include text/event-stream'));
    }
    const call = mcp.newCall(req, rule, 'mcp/stream', undefined);
    const session = await mcp.enter(call, res, null, sessionView(mcp, req.headers['mcp-session-id'], rule, scope), state);
    if (!session) return;
    const lastEventId = req.headers['last-event-id'];
    if (typeof lastEventId === 'string' && lastEventId !== '') {
      // Resumability: replay the broken stream (a request's stream or the server stream) after that event.
      let found: { stream: ReplayStream; seq: number };
      try {
        if (!session.replay) throw new GatewayError(Errors.MCP_EVENT_ID_OUT_OF_RANGE, 'This server does not replay events');
        found = session.replay.locate(lastEventId);
        found.stream.check(found.seq);
      } catch (err) {
        return mcp.refuse(call, res, null, toGatewayError(err));
      }
      if (found.stream === session.serverLog && session.hasStream) return mcp.refuse(call, res, null, new GatewayError(Errors.MCP_STREAM_CONFLICT));
      const sse = new SseWriter(res, { 'mcp-session-id': session.id }, state.snapshot.gateway.http.sseKeepAliveMs, retryOf(session));
      const isServer = found.stream === session.serverLog;
      if (isServer) session.hasStream = true;
      sse.whenClosed(() => {
        found.stream.detach(sse);
        if (isServer) {
          session.hasStream = false;
          this.stop(session);
        }
        call.status = 200;
        mcp.ctx.finish(call);
      });
      found.stream.resume(found.seq, sse);
      if (isServer) await this.start(session, rule, (m) => (found.stream.send(m), true));
      return;
    }
    if (session.hasStream) return mcp.refuse(call, res, null, new GatewayError(Errors.MCP_STREAM_CONFLICT));
    session.hasStream = true;
    const sse = new SseWriter(res, { 'mcp-session-id': session.id }, state.snapshot.gateway.http.sseKeepAliveMs, retryOf(session));
    this.streams.add(sse);
    let stream: ReplayStream | undefined;
    if (session.replay) {
      // One recorded server stream per session: a reconnect without Last-Event-ID continues it live.
      stream = session.serverLog ??= session.replay.open(sse);
      stream.attach(sse);
    }
    sse.whenClosed(() => {
      this.streams.delete(sse);
      session.hasStream = false;
      // Upstream streams are not kept open for a client that went away (each holds a connection); what was sent
      // before the break stays replayable.
      stream?.detach(sse);
      this.stop(session);
      call.status = 200;
      mcp.ctx.finish(call);
    });
    const send = stream ? (m: string): boolean => (stream.send(m), true) : (m: string): boolean => sse.send(m);
    await this.start(session, rule, send);
  }

  /**
   * Feeds upstream server-initiated messages (list_changed, server requests...) to `send`, once per session, from
   * every upstream open now and from each that joins later (an upstream that was down comes back).
   */
  async start(session: McpSession, rule: CompiledRule, send: (message: string) => boolean): Promise<void> {
    session.serverStream = send;
    session.joined = (up) => this.joined(session, up);
    if (session.unlisten.length > 0) return;
    await Promise.all(
      scopeOf(session, rule).map(async (backend) => {
        const up = await session.upstream(backend);
        if (up && session.serverStream) follow(session, up);
      }),
    );
  }

  /** An upstream joined the session while its stream is open: follow it, and say the lists may have changed. */
  private joined(session: McpSession, up: UpstreamSession): void {
    if (!session.serverStream) return;
    follow(session, up);
    const caps = up.init.capabilities;
    for (const kind of LIST_KINDS) if (caps[kind]) session.serverStream(notification(`notifications/${kind}/list_changed`));
  }

  stop(session: McpSession): void {
    session.serverStream = undefined;
    session.joined = undefined;
    session.following.clear();
    for (const u of session.unlisten.splice(0)) u();
  }

  /** Ends every server-initiated stream (shutdown): they carry no in-flight call, and clients reconnect. */
  endAll(): void {
    for (const s of [...this.streams]) s.end();
  }
}

const LIST_KINDS = ['tools', 'prompts', 'resources'] as const;

/** Relays what `up` sends on its own stream to the session's (once per upstream session). */
function follow(session: McpSession, up: UpstreamSession): void {
  if (session.following.has(up)) return;
  session.following.add(up);
  session.unlisten.push(
    up.listen({
      message: (m) => {
        let out: string | undefined = m;
        if (m.includes('"method"') && peekId(m) !== undefined) out = relayServerRequest(session, up, m);
        else out = relayNotification(session, up, m); // list_changed also drops the session's cached lists
        if (out !== undefined) session.serverStream?.(out);
      },
    }),
  );
}

/** The `retry` of a session's recorded streams (none when it records nothing). */
function retryOf(session: { replay: { retryMs: number | undefined } | undefined }): { retryMs: number } | undefined {
  const ms = session.replay?.retryMs;
  return ms === undefined ? undefined : { retryMs: ms };
}
