/**
 * "echo": a tiny HTTP protocol registered only in tests, to prove that a protocol is added without touching
 * src/gateway/. It is what an HTTP-forwarding adapter (A2A REST, OpenAI-compatible, KServe) boils down to: the
 * request becomes a Call (operation `echo/<method>`, target = the path under the mount), the core's lifecycle runs
 * the guards, and the one forwarder streams the body to the rule's first backend and its answer back.
 *
 * Its error shape is plain HTTP (`{"error":{"code":"TG_..","message":".."}}`). Allowed methods: GET, POST, PUT;
 * anything else is refused before a Call exists, through the lifecycle's single refusal entry point.
 */
import { Errors, GatewayError } from '../../src/core/errors.ts';
import type { AdapterContext, ErrorTarget, Exchange, ProtocolDefinition } from '../../src/gateway/adapter.ts';
import { HttpProtocolAdapter } from '../../src/gateway/http-adapter.ts';
import { boundedBody } from '../../src/server/body.ts';
import { forward } from '../../src/upstream/forwarder.ts';
import { HeaderPolicy } from '../../src/upstream/headers.ts';
import { writeHttpError } from '../../src/wire/errors.ts';

/** What crosses the gateway for echo: the body's type, and the test's own x-echo-* headers. */
const HEADERS = new HeaderPolicy({
  request: ['content-type', 'accept', 'x-echo-*'],
  response: ['content-type', 'x-echo-*'],
});

const METHODS = new Set(['GET', 'POST', 'PUT']);

/** The shared base of HTTP-forwarded adapters gives it its upstream pools, readiness, reload and shutdown. */
export class EchoAdapter extends HttpProtocolAdapter {
  constructor(ctx: AdapterContext) {
    super(ctx, { protocol: 'echo', label: 'echo', crashWriter: writeHttpError });
    this.reconfigure(ctx.state().snapshot);
  }

  handle(x: Exchange): void {
    const { req, res, match, state } = x;
    const method = req.method ?? 'GET';
    const rule = match.rule;
    if (!METHODS.has(method)) {
      this.ctx.calls.refuse({ protocol: 'echo', rule, req, res, operation: 'echo/refused' }, new GatewayError(Errors.METHOD_NOT_ALLOWED, `Method ${method} is not allowed`, { headers: { allow: 'GET, POST, PUT' } }));
      return;
    }
    const backend = rule.backends[0]!.name;
    const q = (req.url ?? '').indexOf('?');
    const query = q === -1 ? '' : (req.url ?? '').slice(q);
    const call = this.ctx.calls.start({
      protocol: 'echo',
      operation: `echo/${method.toLowerCase()}`,
      rule,
      req,
      target: { kind: 'resource', name: match.rest === '' ? '/' : match.rest, server: backend },
      upstream: backend,
    });
    void this.ctx.calls.run(call, { res, req, call }, state, async () => {
      const upstream = this.upstreamSet.get(backend);
      if (upstream === undefined) throw new GatewayError(Errors.UPSTREAM_UNAVAILABLE, `Upstream ${backend} is unavailable`);
      const hasBody = method !== 'GET';
      const declared = req.headers['content-length'];
      const answer = await forward(upstream, {
        method,
        path: `${match.rest}${query}`,
        headers: req.headers,
        policy: HEADERS,
        body: hasBody ? boundedBody(req, rule.maxBodyBytes) : null,
        bodyLength: hasBody && declared !== undefined ? Number(declared) : undefined,
        client: res,
        idempotent: method === 'GET' || method === 'PUT',
        // Tracing on: the upstream span's context goes upstream in traceparent (undefined when tracing is off).
        set: this.ctx.calls.propagate(call),
        call,
      });
      await answer.pipeTo(res);
    });
  }

  renderError(err: GatewayError, to: ErrorTarget): void {
    writeHttpError(to.res, err);
  }
}

export const echoProtocol: ProtocolDefinition = {
  name: 'echo',
  protocols: ['echo'],
  create: (ctx) => new EchoAdapter(ctx),
};

export function echoBackend(name: string, url: string, extra: Record<string, unknown> = {}): string {
  return `---
apiVersion: tollgate.dev/v1alpha1
kind: Backend
metadata: { name: ${name} }
spec: ${JSON.stringify({ protocol: 'echo', url, ...extra })}
`;
}
