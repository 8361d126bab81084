/**
 * Which backend owns what a request names: a tool or prompt by its (federated, virtual or single-server) name, a
 * resource by its (namespaced) URI; and the params to send that backend. Pure: no I/O, no session state.
 */
import type { Call, Target } from '../../core/call.ts';
import { Errors, GatewayError } from '../../core/errors.ts';
import type { CompiledRule } from '../../config/routes.ts';
import type { VirtualServerSpec } from '../../config/schema.ts';
import { resolveUri, type FederatedNames } from './names.ts';
import type { McpSession } from './session.ts';
import { resolveVirtualTool, virtualBackends } from './virtual.ts';

/**
 * What a request acts in, as far as its URL says, before the caller is authenticated: the server scope and its
 * virtual server, and the era. The session itself (continued, or created for a 2026 caller) is resolved from it
 * only once the call is admitted, so nothing is created or looked up for a caller who is not authenticated.
 */
export interface SessionView {
  readonly scope: string | undefined;
  readonly virtual: VirtualServerSpec | undefined;
  readonly modern: boolean;
  resolve(call: Call): McpSession | GatewayError | Promise<McpSession | GatewayError>;
}

/** A routed request: its owner, and the params to send upstream (undefined: unchanged). */
export interface Routed {
  readonly target: Target;
  readonly params: Record<string, unknown> | undefined;
  /**
   * The answer's resource URIs go back in their public form on the federated view: resources/read contents, and the
   * resource links and embedded resources of tools/call and prompts/get results (requests.ts).
   */
  readonly rewriteUris: boolean;
}

/**
 * The answer for a target that does not exist, or that the caller may not see (policy's `visible` entrypoint): the
 * same error either way, so a hidden target cannot be told from an unknown one.
 */
export function unknownTarget(kind: Target['kind'], name: string): GatewayError {
  if (kind === 'resource') return new GatewayError(Errors.MCP_RESOURCE_NOT_FOUND, `Resource not found: ${name}`, { data: { uri: name } });
  return new GatewayError(kind === 'prompt' ? Errors.MCP_UNKNOWN_PROMPT : Errors.MCP_UNKNOWN_TOOL, `Unknown ${kind}: ${name}`);
}

/** The names of a rule's backends, as a set per (frozen) backends list: ownership is one lookup for any number of upstreams. */
const backendNames = new WeakMap<readonly { readonly name: string }[], ReadonlySet<string>>();
function ownedBy(rule: CompiledRule): ReadonlySet<string> {
  let names = backendNames.get(rule.backends);
  if (names === undefined) backendNames.set(rule.backends, (names = new Set(rule.backends.map((b) => b.name))));
  return names;
}

/** Maps a routed request to its owner; throws the error to answer (unknown tool, resource not found, ...). */
export function route(method: string, params: Record<string, unknown>, view: SessionView, rule: CompiledRule, names: FederatedNames): Routed {
  const single = view.scope;
  const virtual = view.virtual;
  const owns = (server: string): boolean => (single !== undefined ? server === single : ownedBy(rule).has(server));
  const byName = (name: unknown, kind: 'tool' | 'prompt'): [Target, string] => {
    if (typeof name !== 'string' || name === '') throw new GatewayError(Errors.INVALID_PARAMS, `Invalid params: ${kind} name must be a non-empty string`);
    if (virtual !== undefined) {
      const t = kind === 'tool' ? resolveVirtualTool(virtual, name) : undefined;
      if (!t) throw unknownTarget(kind, name);
      return [{ kind, name, server: t.backend, local: t.tool }, t.tool];
    }
    if (single !== undefined) return [{ kind, name, server: single, local: name }, name];
    const owner = names.resolve(name);
    if (!owner || !owns(owner[0])) throw unknownTarget(kind, name);
    return [{ kind, name, server: owner[0], local: owner[1] }, owner[1]];
  };
  const byUri = (uri: unknown): [Target, string] => {
    if (typeof uri !== 'string' || uri === '') throw new GatewayError(Errors.INVALID_PARAMS, 'Invalid params: uri must be a non-empty string');
    if (virtual !== undefined) throw unknownTarget('resource', uri);
    if (single !== undefined) return [{ kind: 'resource', name: uri, server: single, local: uri }, uri];
    const owner = resolveUri(uri);
    if (!owner || !owns(owner[0])) throw unknownTarget('resource', uri);
    return [{ kind: 'resource', name: uri, server: owner[0], local: owner[1] }, owner[1]];
  };
  switch (method) {
    case 'tools/call': {
      const [target, local] = byName(params.name, 'tool');
      return { target, params: local === params.name ? undefined : { ...params, name: local }, rewriteUris: true };
    }
    case 'prompts/get': {
      const [target, local] = byName(params.name, 'prompt');
      return { target, params: local === params.name ? undefined : { ...params, name: local }, rewriteUris: true };
    }
    case 'resources/read':
    case 'resources/subscribe':
    case 'resources/unsubscribe': {
      const [target, local] = byUri(params.uri);
      return { target, params: local === params.uri ? undefined : { ...params, uri: local }, rewriteUris: method === 'resources/read' };
    }
    case 'completion/complete': {
      const ref = params.ref as Record<string, unknown> | undefined;
      if (ref?.type === 'ref/prompt') {
        const [target, local] = byName(ref.name, 'prompt');
        return { target, params: local === ref.name ? undefined : { ...params, ref: { ...ref, name: local } }, rewriteUris: false };
      }
      if (ref?.type === 'ref/resource') {
        const [target, local] = byUri(ref.uri);
        return { target, params: local === ref.uri ? undefined : { ...params, ref: { ...ref, uri: local } }, rewriteUris: false };
      }
      throw new GatewayError(Errors.INVALID_PARAMS, 'Invalid params: ref must be a ref/prompt or ref/resource');
    }
    case 'tasks/get':
    case 'tasks/result':
    case 'tasks/list':
    case 'tasks/cancel':
      // Tasks (2025-11-25 basic/utilities/tasks.mdx) of a single-server endpoint, which passes on its upstream's
      // `tasks` capability: that upstream owns every task id. The federated view declares no tasks (a task id would
      // need an owner), nor does a virtual server.
      if (single === undefined || virtual !== undefined) throw new GatewayError(Errors.METHOD_NOT_FOUND, `Method not found: ${method}`);
      return { target: { kind: 'server', name: single, server: single }, params: undefined, rewriteUris: false };
    default:
      throw new GatewayError(Errors.METHOD_NOT_FOUND, `Method not found: ${method}`);
  }
}

/** What a request names, before it is known to exist (for refusals decided after authentication). */
export function requestedTarget(method: string, params: Record<string, unknown>): Target | undefined {
  const ref = params.ref as Record<string, unknown> | undefined;
  const name = method === 'completion/complete' ? (ref?.name ?? ref?.uri) : (params.name ?? params.uri);
  if (typeof name !== 'string') return undefined;
  const kind: Target['kind'] = method.startsWith('tools/') ? 'tool' : method.startsWith('prompts/') || ref?.type === 'ref/prompt' ? 'prompt' : 'resource';
  return { kind, name };
}

export function virtualServerOf(rule: CompiledRule, name: string): VirtualServerSpec | undefined {
  return rule.route.spec.mcp?.virtualServers.find((v) => v.name === name);
}

/** The backends a session spans: its virtual server's, its one server, or every backend of the rule. */
export function scopeOf(session: McpSession, rule: CompiledRule): string[] {
  if (session.virtual) return virtualBackends(session.virtual);
  return session.scope !== undefined ? [session.scope] : rule.backends.map((b) => b.name);
}
