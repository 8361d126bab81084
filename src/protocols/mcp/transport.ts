/**
 * The HTTP entry of the MCP endpoint: which server the path names, the Origin check, authentication from the
 * headers (before a body is read, a session looked up or anything created), the HTTP method, the body, the
 * JSON-RPC classification and the era (2026-07-28 per-request envelope, or session era). Then one of the parts:
 * session-era.ts, requests.ts, stateless.ts, server-stream.ts, legacy-sse.ts.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Call } from '../../core/call.ts';
import { Errors, GatewayError, toGatewayError } from '../../core/errors.ts';
import type { GatewayState } from '../../gateway/state.ts';
import type { CompiledRule, RouteMatch } from '../../config/routes.ts';
import { accepts, mediaType, readBody } from '../../server/io.ts';
import type { McpAdapter } from './adapter.ts';
import { batch } from './batch.ts';
import { classify, salvageId, type RpcMessage } from './jsonrpc.ts';
import { META_PROTOCOL_VERSION, isModernVersion } from './modern.ts';
import { request } from './requests.ts';
import { virtualServerOf } from './routing.ts';
import { endSession, initialize, notification, response, sessionView } from './session-era.ts';
import { DEFAULT_HEADER_VERSION, isSupportedVersion } from './versions.ts';

/**
 * What a POST's Accept must allow (Streamable HTTP). JSON is UTF-8 (RFC 8259), so the JSON type is offered with
 * that charset: a range naming it (`application/json; charset=utf-8`) matches, as does one without parameters.
 */
export const POST_ACCEPTS: readonly string[] = ['application/json; charset=utf-8', 'text/event-stream'];

export function handleExchange(mcp: McpAdapter, req: IncomingMessage, res: ServerResponse, match: RouteMatch, state: GatewayState): void {
  const { rule } = match;
  let rest = match.rest;
  let legacy: 'stream' | 'message' | undefined;
  const lsse = state.snapshot.gateway.mcp.legacySse;
  if (lsse.enabled && rest.length >= lsse.path.length) {
    if (rest.endsWith(lsse.path)) {
      legacy = 'stream';
      rest = rest.slice(0, rest.length - lsse.path.length);
    } else if (rest.endsWith(`${lsse.path}/message`)) {
      legacy = 'message';
      rest = rest.slice(0, rest.length - lsse.path.length - 8);
    }
  }
  const name = rest === '' ? undefined : rest.slice(1);
  const known = name !== undefined && (rule.backends.some((b) => b.name === name) || virtualServerOf(rule, name) !== undefined);
  // The protected resource (RFC 8707) the request is for: the mount, or one server of it.
  const resource = known ? `${rule.mount}/${name}` : rule.mount;
  const pre = mcp.ctx.prepare({ rule, operation: preOperation(req.method, legacy), req, resource });
  const origin = req.headers.origin;
  if (origin !== undefined) {
    const allowed = state.snapshot.gateway.http.allowedOrigins;
    if (!allowed.includes(origin) && !allowed.includes('*') && !sameLoopbackOrigin(origin, req.headers.host)) {
      return mcp.reject(pre, req, res, new GatewayError(Errors.ORIGIN_FORBIDDEN, `Origin ${origin} is not allowed`));
    }
  }
  // Who is calling, from the headers alone: before a body is read, a session looked up or anything created.
  let auth: void | Promise<void>;
  try {
    auth = state.pipeline.authenticate(pre);
  } catch (err) {
    return mcp.reject(pre, req, res, toGatewayError(err));
  }
  const next = (): void => {
    if (name !== undefined && !known) {
      return mcp.reject(pre, req, res, new GatewayError(Errors.MCP_UNKNOWN_SERVER, `No MCP server named "${name}" at ${rule.mount}`));
    }
    const scope = known ? name : undefined;
    const crash = (err: unknown): void => mcp.crash(res, err);
    if (legacy !== undefined) {
      mcp.legacy.handle(req, res, rule, scope, legacy, state, pre).catch(crash);
      return;
    }
    if (req.method !== 'POST' && isModernHeader(req.headers['mcp-protocol-version'])) {
      // 2026-07-28 has no GET stream and no sessions to DELETE (streamable-http.mdx, Backward Compatibility).
      return mcp.reject(pre, req, res, new GatewayError(Errors.METHOD_NOT_ALLOWED, `Method not allowed: protocol version ${String(req.headers['mcp-protocol-version']).trim()} takes POST only`), null, { allow: 'POST' });
    }
    const hv = req.headers['mcp-protocol-version'];
    if ((req.method === 'GET' || req.method === 'DELETE') && hv !== undefined && !(typeof hv === 'string' && isSupportedVersion(hv))) {
      // Every request after initialize, GET and DELETE included (basic/transports, Protocol Version Header).
      return mcp.reject(pre, req, res, new GatewayError(Errors.MCP_UNSUPPORTED_PROTOCOL_VERSION, `Bad Request: Unsupported protocol version: ${String(hv)}`));
    }
    switch (req.method) {
      case 'POST':
        post(mcp, req, res, rule, scope, state, pre).catch(crash);
        return;
      case 'GET':
        mcp.serverStreams.get(req, res, rule, scope, state, pre).catch(crash);
        return;
      case 'DELETE':
        endSession(mcp, req, res, rule, scope, state).catch(crash);
        return;
      default:
        return mcp.reject(pre, req, res, new GatewayError(Errors.METHOD_NOT_ALLOWED), null, { allow: 'GET, POST, DELETE' });
    }
  };
  if (auth === undefined) return next();
  auth.then(next, (err: unknown) => mcp.reject(pre, req, res, toGatewayError(err)));
}

async function post(mcp: McpAdapter, req: IncomingMessage, res: ServerResponse, rule: CompiledRule, scope: string | undefined, state: GatewayState, pre: Call): Promise<void> {
  const accept = req.headers.accept;
  if (!accepts(accept, ...POST_ACCEPTS)) {
    return mcp.reject(pre, req, res, new GatewayError(Errors.NOT_ACCEPTABLE, 'Not Acceptable: Accept must include application/json and text/event-stream'));
  }
  if (!isJsonType(req.headers['content-type'])) {
    return mcp.reject(pre, req, res, new GatewayError(Errors.UNSUPPORTED_MEDIA_TYPE));
  }
  let body: Buffer;
  try {
    body = await readBody(req, rule.maxBodyBytes);
  } catch (err) {
    return mcp.reject(pre, req, res, toGatewayError(err));
  }
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return mcp.reject(pre, req, res, new GatewayError(Errors.PARSE_ERROR));
  }
  if (Array.isArray(value)) return batch(mcp, req, res, rule, scope, state, value, pre, dispatch);
  let message: RpcMessage;
  try {
    message = classify(value);
  } catch (err) {
    return mcp.reject(pre, req, res, toGatewayError(err), salvageId(value));
  }
  return dispatch(mcp, req, res, rule, scope, state, message, body, pre);
}

/**
 * Routes one validated JSON-RPC message (from a Streamable HTTP POST or the legacy SSE transport) of an
 * authenticated caller; `pre` records refusals decided before the message's own Call exists.
 */
export function dispatch(mcp: McpAdapter, req: IncomingMessage, res: ServerResponse, rule: CompiledRule, scope: string | undefined, state: GatewayState, message: RpcMessage, body: Buffer, pre: Call): void | Promise<void> {
  const id = message.kind === 'request' ? message.msg.id : null;
  if (message.kind !== 'response') {
    // Body-primary era classification (2026-07-28): a request carrying the _meta envelope claim is stateless.
    const meta = message.msg.params?._meta as Record<string, unknown> | undefined;
    if (meta !== undefined && meta !== null && typeof meta === 'object' && META_PROTOCOL_VERSION in meta) {
      return mcp.stateless.handle(req, res, rule, scope, state, message, body, pre);
    }
    const hv = req.headers['mcp-protocol-version'];
    if (isModernHeader(hv)) {
      // That revision's notifications carry no envelope (NotificationParams): taken and dropped like any of its own.
      if (message.kind === 'notification') return mcp.stateless.handle(req, res, rule, scope, state, message, body, pre);
      return mcp.reject(pre, req, res, new GatewayError(Errors.MCP_INVALID_ENVELOPE, `Invalid params: the MCP-Protocol-Version header names ${hv.trim()}, but the request has no per-request _meta envelope`), id);
    }
  } else if (isModernHeader(req.headers['mcp-protocol-version'])) {
    // 2026-07-28 clients MUST NOT send responses (streamable-http.mdx, Sending Messages): there is nothing to answer.
    return mcp.reject(pre, req, res, new GatewayError(Errors.INVALID_REQUEST, 'Invalid Request: a 2026-07-28 client sends no JSON-RPC responses'));
  }
  if (message.kind === 'request' && message.msg.method === 'initialize') {
    return initialize(mcp, req, res, rule, scope, message.msg, state);
  }
  const version = req.headers['mcp-protocol-version'] ?? DEFAULT_HEADER_VERSION;
  if (typeof version !== 'string' || !isSupportedVersion(version)) {
    return mcp.reject(pre, req, res, new GatewayError(Errors.MCP_UNSUPPORTED_PROTOCOL_VERSION, `Bad Request: Unsupported protocol version: ${String(version)}`), id);
  }
  const view = sessionView(mcp, req.headers['mcp-session-id'], rule, scope);
  if (message.kind === 'request') return request(mcp, req, res, rule, view, message.msg, body, state);
  if (message.kind === 'notification') return notification(mcp, req, res, rule, view, message.msg, state);
  return response(mcp, req, res, rule, view, message.msg, body, state);
}

/** Whether an MCP-Protocol-Version header names the stateless era (2026-07-28 or later). */
function isModernHeader(hv: string | string[] | undefined): hv is string {
  return typeof hv === 'string' && isModernVersion(hv.trim());
}

/** Whether a Content-Type names JSON: its media type (before any parameter), case-insensitive (RFC 9110 8.3.1). */
export function isJsonType(type: string | undefined): boolean {
  return mediaType(type) === 'application/json';
}

const LOOPBACK_HOST = /^(?:127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost|\[::1\])(?::\d{1,5})?$/;

/**
 * A page served by the gateway's own loopback address calling it (Origin = http://<Host>). Safe against DNS
 * rebinding because the Host is a loopback literal: a rebinding page carries its own host name in Host.
 */
function sameLoopbackOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined || !LOOPBACK_HOST.test(host)) return false;
  return origin === `http://${host}` || origin === `https://${host}`;
}

/** The operation a refusal before the message's own Call is recorded under (the HTTP exchange it refused). */
function preOperation(method: string | undefined, legacy: 'stream' | 'message' | undefined): string {
  if (legacy === 'stream') return 'mcp/legacy-stream';
  if (legacy === 'message') return 'mcp/legacy-message';
  switch (method) {
    case 'POST':
      return 'mcp/post';
    case 'GET':
      return 'mcp/get';
    case 'DELETE':
      return 'mcp/delete';
    default:
      return 'mcp/other';
  }
}
