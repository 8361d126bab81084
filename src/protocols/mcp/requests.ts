/**
 * One JSON-RPC request of either era, after the transport classified it: answered here (ping, logging/setLevel),
 * merged across backends (lists.ts), or routed to the one backend that owns its target (routing.ts) and forwarded
 * (forward.ts). The target is resolved before the call is admitted, so policy decides on the named tool/resource.
 *
 * Errors in the protocol's terms, without leaking what exists: an unknown method is -32601, an unknown tool or
 * prompt -32602, an unknown resource -32002 (-32602 for a 2026-07-28 client: respond.ts), also when the policy would
 * have denied the call (nothing it could protect exists). A target that exists but that the caller may not see (the policy's `visible` entrypoint, the rule
 * that filters lists) is answered exactly like an unknown one; a target the caller sees but may not call with these
 * arguments keeps the policy's denial (-32062) and its reason. Upstream errors are relayed as the upstream sent them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Call, Target } from '../../core/call.ts';
import { Errors, GatewayError, toGatewayError } from '../../core/errors.ts';
import type { GatewayState } from '../../gateway/state.ts';
import type { CompiledRule } from '../../config/routes.ts';
import type { McpAdapter } from './adapter.ts';
import { forward } from './forward.ts';
import { withReadResultHints, withResultType, type RpcRequest } from './jsonrpc.ts';
import { LIST_METHODS, LIST_TIMEOUT_MS, list } from './lists.ts';
import { ParkedExchanges } from './mrtr.ts';
import { publicUri } from './names.ts';
import { logLevelOf } from './notifications.ts';
import { requestedTarget, route, scopeOf, unknownTarget, type SessionView } from './routing.ts';
import { isModernSession } from './upstream/http-modern.ts';

/**
 * Methods the 2026-07-28 revision removed (liveness is the HTTP exchange itself; logging and resource subscriptions
 * moved to subscriptions/listen): a 2026 client gets -32601 with HTTP 404, as for any unknown method.
 */
const REMOVED_IN_2026: ReadonlySet<string> = new Set(['ping', 'logging/setLevel', 'resources/subscribe', 'resources/unsubscribe']);

export async function request(mcp: McpAdapter, req: IncomingMessage, res: ServerResponse, rule: CompiledRule, view: SessionView, msg: RpcRequest, raw: Buffer, state: GatewayState): Promise<void> {
  const method = msg.method;
  const call = mcp.newCall(req, rule, method, msg.id, msg.params?._meta);
  const namespaced = view.scope === undefined;
  const params = msg.params ?? {};
  const modern = view.modern;

  if (modern && REMOVED_IN_2026.has(method)) {
    const removed = new GatewayError(Errors.METHOD_NOT_FOUND, `Method not found: ${method} (removed in 2026-07-28)`);
    if (!(await mcp.enter(call, res, msg.id, view, state, (refusal) => (refusal.def === Errors.POLICY_DENIED ? removed : refusal)))) return;
    return mcp.refuse(call, res, msg.id, removed, true);
  }
  if (method === 'ping') {
    if (!(await mcp.enter(call, res, msg.id, view, state))) return;
    return mcp.answer(call, res, msg.id, {});
  }
  if (LIST_METHODS.has(method)) {
    const session = await mcp.enter(call, res, msg.id, view, state);
    if (!session) return;
    return list(mcp, call, res, rule, session, msg, raw, state);
  }
  if (method === 'logging/setLevel') {
    // The federated session's level is the client's (notifications.ts holds to it); every upstream that logs is set to it.
    const session = await mcp.enter(call, res, msg.id, view, state);
    if (!session) return;
    const level = logLevelOf(params);
    if (level instanceof GatewayError) return mcp.refuse(call, res, msg.id, level);
    // Set after the upstreams are open: one opened by this await is given the session's level when it opens.
    const ups = await Promise.all(scopeOf(session, rule).map((b) => session.upstream(b)));
    session.logLevel = level;
    await Promise.all(ups.map((u) => u && session.applyLogLevel(u)));
    return mcp.answer(call, res, msg.id, {});
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
    const unknown = toGatewayError(err);
    call.target = requestedTarget(method, params);
    if (!(await mcp.enter(call, res, msg.id, view, state, (refusal) => (refusal.def === Errors.POLICY_DENIED ? unknown : refusal)))) return;
    return mcp.refuse(call, res, msg.id, unknown, modern);
  }
  call.target = target;
  call.upstream = target.server;
  if (method === 'tools/call' || method === 'prompts/get') call.args = params.arguments;
  const session = await mcp.enter(call, res, msg.id, view, state, (refusal) => concealHidden(call, refusal, target, state));
  if (!session) return;

  if (modern && ParkedExchanges.isOurs(params.requestState)) return mcp.parking.resume(call, res, session, msg, target, state);
  const up = await session.upstream(target.server!);
  if (!up) {
    return mcp.refuse(call, res, msg.id, new GatewayError(Errors.UPSTREAM_UNAVAILABLE, `Upstream ${target.server} is unavailable`, { data: { upstream: target.server } }), modern);
  }
  if (up.shared && method.startsWith('tasks/')) {
    // A shared (stdio) upstream's tasks are every client's: not offered (session-era.ts leaves its capability out).
    return mcp.refuse(call, res, msg.id, new GatewayError(Errors.METHOD_NOT_FOUND, `Method not found: ${method}`), modern);
  }
  // A shared upstream's tasks are not offered: a tool call asking to run as a task runs as a plain call (the
  // 2025-11-25 tasks page: a receiver without the capability ignores `task`), never one whose task no one can reach.
  if (up.shared && method === 'tools/call' && params.task !== undefined) upstreamParams = { ...(upstreamParams ?? params), task: undefined };
  const forwarded: RpcRequest = upstreamParams === undefined ? msg : { ...msg, params: upstreamParams };
  let transform = namespaced && rewriteUris ? (text: string) => publicContentUris(text, target.server!) : undefined;
  if (modern && !isModernSession(up)) {
    // A 2026 client requires resultType on every result; a session-era upstream never sends it.
    // resources/read results also need their cache hints. Only results with a URI are parsed for the rewrite.
    const complete = method === 'resources/read' ? withReadResultHints : withResultType;
    const inner = transform;
    transform = inner ? (text: string) => complete(text.includes('"uri"') ? inner(text) : text) : complete;
  }
  // Results without a URI (most tool results) are relayed as the bytes they came as, unless a 2026 client needs more.
  const transformIf = transform !== undefined && namespaced && rewriteUris && !modern ? '"uri"' : undefined;
  forward(mcp, { call, res, session, up, msg: forwarded, raw: upstreamParams === undefined ? raw : undefined, state, transform, transformIf });
}

/**
 * A policy denial of a target the caller may not even see becomes the target's "unknown" answer. The visibility
 * check leaves the call's recorded decision (the denial, for the audit record) as it was; if the check itself fails,
 * the denial stands.
 */
async function concealHidden(call: Call, refusal: GatewayError, target: Target, state: GatewayState): Promise<GatewayError> {
  if (refusal.def !== Errors.POLICY_DENIED || !state.pipeline.filtersLists) return refusal;
  const decision = call.decision;
  try {
    const [shown] = await state.pipeline.visible(call, [target]);
    return shown ? refusal : unknownTarget(target.kind, target.name);
  } catch {
    return refusal;
  } finally {
    call.decision = decision;
  }
}

/**
 * The resource URIs of an answer in their public (namespaced) form, so that what a client is given it can read:
 * resources/read contents, and the resource links and embedded resources of a tool result or of prompt messages
 * (tools.mdx, Resource Links: a link names a resource 'that can be subscribed to or fetched by the client').
 */
function publicContentUris(text: string, server: string): string {
  let parsed: { result?: { contents?: unknown; content?: unknown; messages?: unknown } };
  try {
    parsed = JSON.parse(text) as typeof parsed;
  } catch {
    return text; // not ours to judge: relayed as the upstream sent it
  }
  const result = parsed.result;
  if (typeof result !== 'object' || result === null) return text;
  const publicOf = (item: unknown): void => {
    const c = item as Record<string, unknown> | null;
    if (typeof c !== 'object' || c === null) return;
    if (c.type === 'resource_link' && typeof c.uri === 'string') c.uri = publicUri(server, c.uri);
    const embedded = c.type === 'resource' ? (c.resource as Record<string, unknown> | undefined) : undefined;
    if (typeof embedded === 'object' && embedded !== null && typeof embedded.uri === 'string') embedded.uri = publicUri(server, embedded.uri);
  };
  if (Array.isArray(result.contents)) for (const c of result.contents as Record<string, unknown>[]) if (typeof c?.uri === 'string') c.uri = publicUri(server, c.uri);
  if (Array.isArray(result.content)) result.content.forEach(publicOf);
  if (Array.isArray(result.messages)) for (const m of result.messages as Array<{ content?: unknown }>) publicOf(m?.content);
  return JSON.stringify(parsed);
}
