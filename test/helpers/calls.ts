/** Calls and principals built by hand, for guard unit tests. */
import { Call, type Principal, type Target } from '../../src/core/call.ts';
import type { RouteSpec } from '../../src/config/schema.ts';

export function spiffe(id: string, claims: Record<string, unknown> = {}): Principal {
  const u = new URL(id);
  const path = u.pathname;
  return Object.freeze({
    id,
    issuer: 'spiffe' as const,
    trustDomain: u.host,
    path,
    segments: path.split('/').filter((s) => s !== ''),
    claims: { sub: id, ...claims },
    expiresAt: 0,
  });
}

const ROUTE_SPEC: RouteSpec = { rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/mcp' }, headers: [] }], backendRefs: [{ name: 'everything' }] }] };

export function makeCall(opts: {
  operation: string;
  target?: Target;
  args?: unknown;
  principal?: Principal;
  route?: { name: string; spec: RouteSpec };
  headers?: Record<string, string>;
  protocol?: Call['protocol'];
}): Call {
  const call = new Call({
    id: `call-${Math.random().toString(36).slice(2)}`,
    protocol: opts.protocol ?? 'mcp',
    operation: opts.operation,
    route: opts.route ?? { name: 'mcp', spec: ROUTE_SPEC },
    request: { method: 'POST', path: '/mcp', headers: opts.headers ?? {}, remoteAddress: '127.0.0.1' },
    target: opts.target,
    args: opts.args,
    rpcId: 1,
    upstream: opts.target?.server,
  });
  call.principal = opts.principal;
  return call;
}

export function tool(server: string, local: string): Target {
  return { kind: 'tool', name: `${server}__${local}`, server, local };
}
