/**
 * One JSON-RPC request of either era, after the transport classified it: answered here (ping, logging/setLevel),
 * merged across backends (lists.ts), or routed to the one backend that owns its target (routing.ts) and forwarded
 * (forward.ts). The target is resolved before the call is admitted, so policy decides on the named tool/resource.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Target } from '../../core/call.ts';
import { Errors, GatewayError, toGatewayError } from '../../core/errors.ts';
import type { GatewayState } from '../../gateway/state.ts';
import type { CompiledRule } from '../../config/routes.ts';
import type { McpAdapter } from './adapter.ts';
import { forward } from './forward.ts';
import { withResultType, type RpcRequest } from './jsonrpc.ts';
import { LIST_METHODS, LIST_TIMEOUT_MS, list } from './lists.ts';
import { ParkedExchanges } from './mrtr.ts';
import { publicUri } from './names.ts';
import { requestedTarget, route, scopeOf, type SessionView } from './routing.ts';
import { isModernSession } from './upstream/http-modern.ts';

export async function request(mcp: McpAdapter, req: IncomingMessage, res: ServerResponse, rule: CompiledRule, view: SessionView, msg: RpcRequest, raw: Buffer, state: GatewayState): Promise<void> {
  const method = msg.method;
  const call = mcp.newCall(req, rule, method, msg.id, msg.params?._meta);
  const namespaced = view.scope === undefined;
  const params = msg.params ?? {};
  const modern = view.modern;

  if (method === 'ping') {
    if (!(await mcp.enter(call, res, msg.id, view, state))) return;
    return mcp.answer(call, res, msg.id, modern ? { resultType: 'complete' } : {});
  }
  if (LIST_METHODS.has(method)) {
    const session = await mcp.enter(call, res, msg.id, view, state);
    if (!session) return;
    return list(mcp, call, res, rule, session, msg, raw, state);
  }
  if (method === 'logging/setLevel') {
    const session = await mcp.enter(call, res, msg.id, view, state);
    if (!session) return;
    const ups = await Promise.all(scopeOf(session, rule).map((b) => session.upstream(b)));
    await Promise.allSettled(ups.map((u) => u?.call(method, params, LIST_TIMEOUT_MS)));
    return mcp.answer(call, res, msg.id, modern ? { resultType: 'complete' } : {});
  }

  // Everything else is routed to the one upstream that owns its target.
  let target: Target;
  let upstreamParams: Record<string, unknown> | undefined;
  let rewriteUris = false;
  try {
    const routed = route(method, params, view, rule, mcp.federatedNames);
    target = routed.target;
    upstreamParams = routed.params;
    rewriteUris = routed.rewriteUris;
  } catch (err) {
    // Authenticate (and authorize on the name asked for) before saying a target does not exist, so a caller
    // without credentials learns nothing about what exists, and the audit record names who asked.
    call.target = requestedTarget(method, params);
    if (!(await mcp.enter(call, res, msg.id, view, state))) return;
    return mcp.refuse(call, res, msg.id, toGatewayError(err), modern);
  }
  call.target = target;
  call.upstream = target.server;
  if (method === 'tools/call' || method === 'prompts/get') call.args = params.arguments;
  const session = await mcp.enter(call, res, msg.id, view, state);
  if (!session) return;

  if (modern && ParkedExchanges.isOurs(params.requestState)) return mcp.parking.resume(call, res, session, msg, target, state);
  const up = await session.upstream(target.server!);
  if (!up) {
    return mcp.refuse(call, res, msg.id, new GatewayError(Errors.UPSTREAM_UNAVAILABLE, `Upstream ${target.server} is unavailable`, { data: { upstream: target.server } }), modern);
  }
  const forwarded: RpcRequest = upstreamParams === undefined ? msg : { ...msg, params: upstreamParams };
  let transform = namespaced && rewriteUris ? (text: string) => rewriteContentUris(text, target.server!) : undefined;
  if (modern && !isModernSession(up)) {
    // A 2026 client requires resultType on every result; a session-era upstream never sends it.
    const inner = transform;
    transform = inner ? (text: string) => withResultType(inner(text)) : withResultType;
  }
  forward(mcp, { call, res, session, up, msg: forwarded, raw: upstreamParams === undefined ? raw : undefined, state, transform });
}

/** Federated resources/read: the contents' URIs are given back in their public (namespaced) form. */
function rewriteContentUris(text: string, server: string): string {
  const parsed = JSON.parse(text) as { result?: { contents?: Array<Record<string, unknown>> } };
  const contents = parsed.result?.contents;
  if (!Array.isArray(contents)) return text;
  for (const c of contents) if (typeof c.uri === 'string') c.uri = publicUri(server, c.uri);
  return JSON.stringify(parsed);
}
