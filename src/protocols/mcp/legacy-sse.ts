/**
 * The legacy HTTP+SSE transport (protocol 2024-11-05) for old clients: GET `<mount>[/<server>]/sse` opens the
 * stream, whose first event (`endpoint`) names the POST URL `.../sse/message?sessionId=<channel>`. Every POSTed
 * message is answered 202; its answer travels on the stream.
 *
 * A POSTed message goes through the same code as a Streamable HTTP POST (same guards, routing and relaying): the
 * adapter writes its answer to a `MessageResponse` (message-response.ts), a minimal stand-in for a ServerResponse that turns whatever is
 * written (a JSON body, or SSE events) into `message` events on the channel's stream. One code path for both
 * transports, so the legacy one cannot drift from the main one.
 *
 * A channel belongs to the principal that opened it: a POST is authenticated from its headers before its body is
 * read, and one from anybody else (or without credentials) is answered on the POST itself (401, or 404 as if the
 * channel did not exist), never on the owner's stream. A principal holds at most `mcp.limits.streamsPerPrincipal`
 * long-lived streams (channels and subscriptions/listen streams together).
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CompiledRule } from '../../config/routes.ts';
import type { Call } from '../../core/call.ts';
import { Errors, GatewayError, toGatewayError } from '../../core/errors.ts';
import type { GatewayState } from '../../gateway/state.ts';
import { readBody } from '../../server/io.ts';
import { SseWriter } from '../../server/sse.ts';
import type { McpAdapter } from './adapter.ts';
import { classify, salvageId, type RpcMessage } from './jsonrpc.ts';
import { MessageResponse } from './message-response.ts';
import { capReached } from './session-access.ts';
import { dispatch, isJsonType } from './transport.ts';

interface Channel {
  readonly id: string;
  readonly rule: CompiledRule;
  readonly scope: string | undefined;
  readonly sse: SseWriter;
  /** The principal that opened the channel: the only one whose messages it carries. */
  readonly principal: string | undefined;
  /** The MCP session created by the client's initialize on this channel. */
  sessionId: string | undefined;
}

export class LegacySse {
  private readonly adapter: McpAdapter;
  private readonly channels = new Map<string, Channel>();

  constructor(adapter: McpAdapter) {
    this.adapter = adapter;
  }

  async handle(req: IncomingMessage, res: ServerResponse, rule: CompiledRule, scope: string | undefined, kind: 'stream' | 'message', state: GatewayState, pre: Call): Promise<void> {
    if (kind === 'stream') {
      if (req.method !== 'GET') return this.adapter.reject(pre, req, res, new GatewayError(Errors.METHOD_NOT_ALLOWED), null, { allow: 'GET' });
      return this.open(req, res, rule, scope, state);
    }
    if (req.method !== 'POST') return this.adapter.reject(pre, req, res, new GatewayError(Errors.METHOD_NOT_ALLOWED), null, { allow: 'POST' });
    const url = new URL(req.url ?? '/', 'http://gateway');
    const channel = this.channels.get(url.searchParams.get('sessionId') ?? '');
    if (!channel || channel.rule.route.name !== rule.route.name || channel.scope !== scope) {
      return this.adapter.reject(pre, req, res, new GatewayError(Errors.MCP_SESSION_NOT_FOUND));
    }
    // `pre` was authenticated from the headers (adapter.handle): only the channel's owner may write to it.
    if (pre.principal?.id !== channel.principal) return this.adapter.reject(pre, req, res, new GatewayError(Errors.SESSION_IDENTITY_MISMATCH));
    if (!isJsonType(req.headers['content-type'])) return this.adapter.reject(pre, req, res, new GatewayError(Errors.UNSUPPORTED_MEDIA_TYPE));
    let body: Buffer;
    try {
      body = await readBody(req, rule.maxBodyBytes);
    } catch (err) {
      return this.adapter.reject(pre, req, res, toGatewayError(err));
    }
    let message: RpcMessage;
    try {
      message = classify(JSON.parse(body.toString('utf8')));
    } catch (err) {
      const e = err instanceof SyntaxError ? new GatewayError(Errors.PARSE_ERROR) : toGatewayError(err);
      return this.adapter.reject(pre, req, res, e, salvageId(safeParse(body)));
    }
    res.writeHead(202).end();
    // The message continues as if POSTed to the Streamable HTTP endpoint under the channel's session.
    if (channel.sessionId !== undefined) req.headers['mcp-session-id'] = channel.sessionId;
    else delete req.headers['mcp-session-id'];
    delete req.headers['mcp-protocol-version'];
    const out = channelResponse(channel);
    await dispatch(this.adapter, req, out as unknown as ServerResponse, rule, scope, state, message, body, pre);
  }

  private async open(req: IncomingMessage, res: ServerResponse, rule: CompiledRule, scope: string | undefined, state: GatewayState): Promise<void> {
    // The stream itself is a call: the guards (identity first) decide before anything is opened.
    const call = this.adapter.newCall(req, rule, 'mcp/legacy-stream', undefined);
    if (!(await this.adapter.admit(call, res, null, false, state))) return;
    const principal = call.principal?.id;
    const cap = state.snapshot.gateway.mcp.limits.streamsPerPrincipal;
    const release = this.adapter.streamSlots.take(principal, cap);
    if (!release) return this.adapter.refuse(call, res, null, capReached('streamsPerPrincipal', cap));
    const id = randomBytes(18).toString('base64url');
    const sse = new SseWriter(res, {}, state.snapshot.gateway.http.sseKeepAliveMs);
    const channel: Channel = { id, rule, scope, sse, principal, sessionId: undefined };
    this.channels.set(id, channel);
    owners.set(channel, this);
    const path = (req.url ?? '').split('?')[0]!;
    res.write(`event: endpoint\ndata: ${path}/message?sessionId=${id}\n\n`);
    sse.whenClosed(() => {
      release();
      this.channels.delete(id);
      if (channel.sessionId !== undefined) this.adapter.sessions.delete(channel.sessionId);
      call.status = 200;
      this.adapter.ctx.finish(call);
    });
  }

  /** Called by channelResponse when initialize answered: the channel now has a session, fed by its upstreams. */
  bind(channel: Channel, sessionId: string): void {
    channel.sessionId = sessionId;
    const session = this.adapter.sessions.peek(sessionId);
    if (session) void this.adapter.serverStreams.start(session, channel.rule, (m) => channel.sse.send(m));
  }

  close(): void {
    for (const c of this.channels.values()) c.sse.end();
    this.channels.clear();
  }
}

function safeParse(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}

/** A response written into a legacy channel's SSE stream; the answer to initialize binds the channel's session. */
function channelResponse(channel: Channel): MessageResponse {
  const out = new MessageResponse({
    message: (data) => channel.sse.send(data),
    head: (_status, headers) => {
      const sid = headers?.['mcp-session-id'];
      if (typeof sid === 'string' && channel.sessionId === undefined) queueMicrotask(() => legacyOf(channel)?.bind(channel, sid));
    },
    isOpen: () => channel.sse.isOpen,
  });
  // The answer outlives nothing: when the channel closes, so does every response written to it.
  channel.sse.whenClosed(() => out.emit('close'));
  return out;
}

/** Channels know their LegacySse through this registry (set once per adapter). */
const owners = new WeakMap<Channel, LegacySse>();
function legacyOf(channel: Channel): LegacySse | undefined {
  return owners.get(channel);
}
