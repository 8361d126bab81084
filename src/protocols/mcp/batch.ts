/**
 * JSON-RPC batches (2025-03-26 basic/transports: a POST body may be an array of requests and notifications, or of
 * responses). Protocol 2025-06-18 removed them, and 2026-07-28 takes one message per POST: a batch is accepted only
 * in a session that negotiated 2025-03-26, under no MCP-Protocol-Version header or one naming that version.
 *
 * Each member goes through the same code as a POSTed message of its own (transport.ts dispatch, passed in: guards,
 * routing, relaying), its
 * answer written to a MessageResponse. The answers go back as one JSON array when every member answered at once;
 * as soon as one member streams (progress, or a server-to-client request the client must answer before that member
 * can end) the answer becomes an SSE stream carrying every message as it comes. A batch of notifications and
 * responses only is answered 202 without a body, or 400 with the errors of the members that were not accepted.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CompiledRule } from '../../config/routes.ts';
import type { Call } from '../../core/call.ts';
import { Errors, GatewayError, toGatewayError } from '../../core/errors.ts';
import type { GatewayState } from '../../gateway/state.ts';
import { sendBody } from '../../server/io.ts';
import { SseWriter } from '../../server/sse.ts';
import type { McpAdapter } from './adapter.ts';
import { classifyBatch, errorResponse, peekKind, type BatchItem } from './jsonrpc.ts';
import { MessageResponse } from './message-response.ts';
import { META_PROTOCOL_VERSION } from './modern.ts';
import type { dispatch as Dispatch } from './transport.ts';

/**
 * The one protocol version with batches: 2025-03-26 added them ("MUST support receiving JSON-RPC batches",
 * basic/index), 2025-06-18 removed them; 2024-11-05 had none.
 */
const BATCH_VERSIONS: ReadonlySet<string> = new Set(['2025-03-26']);

/** Members of one batch at most (as the TypeScript SDK's server): each is a call of its own, run concurrently. */
const MAX_MEMBERS = 100;

function removed(detail: string): GatewayError {
  return new GatewayError(Errors.BATCH_NOT_SUPPORTED, `Invalid Request: JSON-RPC batches were removed in protocol version 2025-06-18 (${detail})`);
}

export async function batch(mcp: McpAdapter, req: IncomingMessage, res: ServerResponse, rule: CompiledRule, scope: string | undefined, state: GatewayState, value: unknown[], pre: Call, dispatch: typeof Dispatch): Promise<void> {
  const hv = req.headers['mcp-protocol-version'];
  if (hv !== undefined && !(typeof hv === 'string' && BATCH_VERSIONS.has(hv.trim()))) return mcp.reject(pre, req, res, removed(`MCP-Protocol-Version is ${String(hv)}`));
  if (value.length > MAX_MEMBERS) return mcp.reject(pre, req, res, new GatewayError(Errors.INVALID_REQUEST, `Invalid Request: a batch holds at most ${MAX_MEMBERS} messages`));
  let items: BatchItem[];
  try {
    items = classifyBatch(value).items;
  } catch (err) {
    return mcp.reject(pre, req, res, toGatewayError(err));
  }
  for (const item of items) {
    if (item.kind === 'invalid' || item.kind === 'response') continue;
    const meta = item.msg.params?._meta;
    if (typeof meta === 'object' && meta !== null && META_PROTOCOL_VERSION in meta) return mcp.reject(pre, req, res, removed('a 2026-07-28 request is sent alone'));
    if (item.msg.method === 'initialize') return mcp.reject(pre, req, res, new GatewayError(Errors.INVALID_REQUEST, 'Invalid Request: initialize must be sent alone, not in a batch'));
  }
  // The session the batch belongs to, for the authenticated caller (bound to its creator like any other request).
  let session = mcp.access.resolve(req.headers['mcp-session-id'], rule, scope, pre.principal?.id);
  if (session instanceof Promise) session = await session;
  if (session instanceof GatewayError) return mcp.reject(pre, req, res, session);
  if (!BATCH_VERSIONS.has(session.protocolVersion)) return mcp.reject(pre, req, res, removed(`this session negotiated ${session.protocolVersion}`));

  const answer = new BatchAnswer(res, state.snapshot.gateway.http.sseKeepAliveMs, items.some((i) => i.kind === 'request' || i.kind === 'invalid'));
  // The client went away: each member sees its own connection close (forward.ts decides what that means).
  const members = new Set<MessageResponse>();
  res.once('close', () => {
    for (const out of members) if (!out.writableEnded) out.emit('close');
  });
  await Promise.all(
    items.map(async (item) => {
      if (item.kind === 'invalid') return answer.message(errorResponse(item.id, item.error));
      const ended = new Promise<void>((resolve) => {
        const out = new MessageResponse({ message: (data) => answer.message(data), end: resolve, isOpen: () => !res.destroyed });
        out.once('close', () => resolve());
        members.add(out);
        const raw = Buffer.from(JSON.stringify(item.msg));
        Promise.resolve(dispatch(mcp, req, out as unknown as ServerResponse, rule, scope, state, item, raw, pre)).catch((err: unknown) => {
          if (!out.writableEnded) out.end(errorResponse(item.kind === 'request' ? item.msg.id : null, toGatewayError(err)));
          mcp.ctx.log.error({ err }, 'MCP batch member failure');
        });
      });
      await ended;
    }),
  );
  answer.end();
}

/** The answer to a batch: one JSON array if every message is ready before any member streams, else an SSE stream. */
class BatchAnswer {
  private readonly res: ServerResponse;
  private readonly keepAliveMs: number;
  private readonly hasRequests: boolean;
  private readonly buffered: string[] = [];
  private sse: SseWriter | undefined;

  constructor(res: ServerResponse, keepAliveMs: number, hasRequests: boolean) {
    this.res = res;
    this.keepAliveMs = keepAliveMs;
    this.hasRequests = hasRequests;
  }

  message(data: string): void {
    if (this.sse) {
      this.sse.send(data);
      return;
    }
    this.buffered.push(data);
    // A message that is not a response (progress, a server-to-client request) needs the client now: stream.
    if (this.hasRequests && !isResponse(data)) {
      this.sse = new SseWriter(this.res, {}, this.keepAliveMs);
      for (const m of this.buffered.splice(0)) this.sse.send(m);
    }
  }

  end(): void {
    if (this.sse) return this.sse.end();
    if (this.res.destroyed) return;
    if (!this.hasRequests && this.buffered.length === 0) {
      this.res.writeHead(202).end();
      return;
    }
    // Notifications and responses the server could not accept: an error status, with their errors.
    sendBody(this.res, this.hasRequests ? 200 : 400, 'application/json', `[${this.buffered.join(',')}]`);
  }
}

function isResponse(data: string): boolean {
  return peekKind(data) !== 'method';
}
