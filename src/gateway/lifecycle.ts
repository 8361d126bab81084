/**
 * The one lifecycle of a call, whatever its protocol: create the Call (and its telemetry), run the guards' admit
 * steps, forward (the adapter's work), settle the guards (possibly asynchronously: the audit record waits for the
 * accounting guards before it), end the telemetry and write the access-log line. Adapters call this; none of them
 * repeats it. Refusals that happen before a Call exists (bad Origin, bad Accept, 413, unparseable body...) go
 * through `refuse`, the single entry point that audits and counts them like any other call.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CompiledRule } from '../config/routes.ts';
import type { RouteSpec } from '../config/schema.ts';
import { Call, outcomeOf, type RouteRef, type Target } from '../core/call.ts';
import { GatewayError, toGatewayError } from '../core/errors.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { CallTelemetry } from '../telemetry/service.ts';
import type { ErrorTarget } from './adapter.ts';
import type { GatewayState } from './state.ts';

export interface CallInit {
  readonly protocol: string;
  readonly operation: string;
  readonly rule: CompiledRule;
  readonly req: IncomingMessage;
  readonly target?: Target | undefined;
  readonly upstream?: string | undefined;
  readonly args?: unknown;
  readonly rpcId?: string | number | undefined;
  readonly sessionId?: string | undefined;
  /** Trace context carried in the body (MCP's `params._meta`); HTTP headers are read by telemetry itself. */
  readonly meta?: unknown;
}

export interface LifecycleDeps {
  readonly log: Logger;
  readonly telemetry: CallTelemetry;
  state(): GatewayState;
  /** Writes an error in the shape of the protocol that serves `protocol` (the adapter's renderError). */
  render(protocol: string, err: GatewayError, to: ErrorTarget): void;
}

/** Route of a refusal that matched no rule (the record still says what was refused). */
const NO_ROUTE: RouteRef = Object.freeze({ name: '', spec: Object.freeze({ rules: [] }) as unknown as RouteSpec });

/** Client address for logs and policy (the socket peer; proxies' forwarded headers are not trusted). */
function remoteAddress(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? '';
}

export class CallLifecycle {
  private readonly deps: LifecycleDeps;
  private readonly pendingSettles = new Set<Promise<void>>();

  constructor(deps: LifecycleDeps) {
    this.deps = deps;
  }

  /** Creates the Call for a request and starts its telemetry. */
  start(init: CallInit): Call {
    const req = init.req;
    const call = new Call({
      id: randomUUID(),
      protocol: init.protocol,
      operation: init.operation,
      route: init.rule.route,
      request: { method: req.method ?? 'GET', path: req.url ?? '', headers: req.headers, remoteAddress: remoteAddress(req) },
      target: init.target,
      upstream: init.upstream,
      args: init.args,
      rpcId: init.rpcId,
      sessionId: init.sessionId,
    });
    this.deps.telemetry.begin(call, init.meta);
    return call;
  }

  /**
   * A Call for a raw request before its protocol operation is known (`operation` names the stage, e.g. `mcp/post`),
   * not begun: an adapter authenticates it from the headers (Pipeline.authenticate) before it reads a body or creates
   * anything, and records it (`refused`) only if it refuses the request. `resource`: the protected resource (RFC 8707)
   * the request is for, when the adapter knows it better than the URL does.
   */
  prepare(init: { protocol: string; rule: CompiledRule; operation: string; req: IncomingMessage; resource?: string | undefined }): Call {
    const req = init.req;
    return new Call({
      id: randomUUID(),
      protocol: init.protocol,
      operation: init.operation,
      route: init.rule.route,
      request: { method: req.method ?? 'GET', path: req.url ?? '', headers: req.headers, remoteAddress: remoteAddress(req), resource: init.resource },
    });
  }

  /**
   * Records the refusal of a Call that was never begun (see `prepare`; its principal is kept when it was
   * authenticated), the adapter having written the answer itself: audited, counted and logged with its reason code
   * like `refuse`.
   */
  refused(call: Call, err: GatewayError, status: number = err.def.status): void {
    call.error = err;
    call.outcome = outcomeOf(err);
    call.status = status;
    this.deps.telemetry.begin(call);
    this.finish(call);
  }

  /** Starts the telemetry of a Call the adapter built itself. */
  begin(call: Call, meta?: unknown): void {
    this.deps.telemetry.begin(call, meta);
  }

  /**
   * Runs the guards' admit steps under `state` (the request's). Undefined when all decided synchronously, else a
   * promise; throws/rejects with the refusal (the caller records it with `fail`).
   */
  admit(call: Call, state: GatewayState): void | Promise<void> {
    return state.pipeline.admit(call);
  }

  /** The call is being forwarded: trace fields for the upstream request, or undefined (tracing off). */
  propagate(call: Call): Readonly<Record<string, string>> | undefined {
    return this.deps.telemetry.propagate(call);
  }

  /**
   * Ends a call: the guards settle (in order; an asynchronous settle delays the ones after it, the audit guard
   * last), then its spans and metrics end and its access-log line is written. Call once per call.
   */
  finish(call: Call): void {
    const pending = this.deps.state().pipeline.settle(call, (guard, err) => this.deps.log.error({ guard, call: call.id, err }, 'guard settle failed'));
    if (pending === undefined) {
      this.end(call);
      return;
    }
    const tracked: Promise<void> = pending.then(() => {
      this.pendingSettles.delete(tracked);
      this.end(call);
    });
    this.pendingSettles.add(tracked);
  }

  /**
   * Records `err` on the call, answers it in the protocol's shape (or breaks a response already under way), and
   * finishes the call.
   */
  fail(call: Call, err: unknown, to: ErrorTarget): void {
    const e = toGatewayError(err);
    if (!(err instanceof GatewayError)) this.deps.log.error({ err, call: call.id, protocol: call.protocol }, 'adapter failure');
    call.error = e;
    call.outcome = outcomeOf(e);
    const res = to.res;
    if (!res.headersSent && !res.destroyed) {
      this.deps.render(call.protocol, e, { res, req: to.req, call });
      call.status = res.statusCode;
    } else {
      if (!res.writableEnded) res.destroy();
      if (call.status === 0) call.status = e.def.status;
    }
    this.finish(call);
  }

  /**
   * The single entry point for a refusal before a Call exists (no route, bad Origin or Accept, a body over the
   * limit, a body that does not parse...): a Call is made for it so that it is audited, counted and logged with
   * its reason code like every other call, then the refusal is written in the protocol's shape.
   */
  refuse(init: { protocol: string; rule?: CompiledRule | undefined; req: IncomingMessage; res: ServerResponse; operation?: string }, err: GatewayError): void {
    const req = init.req;
    const call = new Call({
      id: randomUUID(),
      protocol: init.protocol,
      operation: init.operation ?? 'refused',
      route: init.rule?.route ?? NO_ROUTE,
      request: { method: req.method ?? 'GET', path: req.url ?? '', headers: req.headers, remoteAddress: remoteAddress(req) },
    });
    this.deps.telemetry.begin(call);
    // The request body (if any) is not read: drain it so the connection can carry the answer.
    if (!req.readableEnded) req.resume();
    this.fail(call, err, { res: init.res, req, call });
  }

  /**
   * Runs a call for a simple adapter: admit, then `work` (which answers the client, usually through the
   * forwarder); an error at any point is recorded and written in the protocol's shape; the call finishes once.
   */
  async run(call: Call, to: ErrorTarget, state: GatewayState, work: (call: Call) => Promise<void> | void): Promise<void> {
    try {
      const admitted = state.pipeline.admit(call);
      if (admitted !== undefined) await admitted;
      await work(call);
    } catch (err) {
      this.fail(call, err, to);
      return;
    }
    if (call.status === 0) call.status = to.res.statusCode;
    this.finish(call);
  }

  /** Settles still running (asynchronous settle steps). */
  get pending(): number {
    return this.pendingSettles.size;
  }

  /** Waits until every pending settle has finished (shutdown), or the deadline passes. Returns how many remain. */
  async settled(deadlineMs: number): Promise<number> {
    const until = Date.now() + deadlineMs;
    while (this.pendingSettles.size > 0) {
      const left = until - Date.now();
      if (left <= 0) break;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...this.pendingSettles]),
        new Promise((r) => {
          timer = setTimeout(r, Math.min(left, 2_147_483_647));
        }),
      ]);
      clearTimeout(timer);
    }
    return this.pendingSettles.size;
  }

  private end(call: Call): void {
    this.deps.telemetry.end(call);
    const t = call.transfer;
    const line = {
      call: call.id,
      protocol: call.protocol,
      op: call.operation,
      route: call.route.name,
      upstream: call.upstream,
      target: call.target?.name,
      principal: call.principal?.id,
      outcome: call.outcome,
      status: call.status,
      code: call.error?.code,
      ms: Math.round(call.elapsedMs() * 1000) / 1000,
    };
    if (t === undefined) this.deps.log.info(line, 'call');
    else this.deps.log.info({ ...line, reqBytes: t.requestBytes, resBytes: t.responseBytes, ttfbMs: t.firstByteMs, attempts: t.attempts }, 'call');
  }
}
