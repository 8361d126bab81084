/**
 * The base of every protocol adapter whose backends are plain HTTP upstreams (OpenAI-compatible, KServe v2, A2A):
 * what they all do the same way around their own wire format.
 *
 * - the upstream registry: one `HttpUpstreams` of the adapter's protocol (pools, health checks, credentials), synced
 *   on every reconfigure, reported to /readyz, closed on shutdown; no sessions, nothing to drain;
 * - the road into a request: prepare the Call, authenticate from the headers alone (before a body is read or
 *   anything is looked up for the caller), then serve; a GatewayError thrown while choosing what to serve refuses
 *   the request (`reject`), any other failure is an adapter crash (`crash`).
 *
 * A subclass gives its protocol, health check and crash shape to the constructor, writes `handle` with `admit`,
 * `renderError`, and extends `reconfigure` for its own caches (calling `super.reconfigure`). Its constructor ends
 * with `this.reconfigure(ctx.state().snapshot)` once its own fields exist.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ConfigSnapshot } from '../config/load.ts';
import type { Call } from '../core/call.ts';
import { GatewayError, toGatewayError } from '../core/errors.ts';
import { HttpUpstreams, type HealthDefaults } from '../upstream/http-upstream.ts';
import type { AdapterContext, ErrorTarget, Exchange, ProtocolAdapter, UpstreamReadiness } from './adapter.ts';

export interface HttpAdapterOptions {
  /** The `protocol` value served (also the Call's protocol). */
  readonly protocol: string;
  /** The protocol's name in logs ("OpenAI", "KServe", "A2A"). */
  readonly label: string;
  /** How the backends' endpoints are health-checked (default: HttpUpstreams' own). */
  readonly health?: HealthDefaults | undefined;
  /** Writes an adapter crash when nothing was sent yet (the protocol's plain error shape). */
  readonly crashWriter: (res: ServerResponse, err: GatewayError) => void;
}

export abstract class HttpProtocolAdapter implements ProtocolAdapter {
  readonly protocols: readonly string[];
  readonly ctx: AdapterContext;
  readonly upstreamSet: HttpUpstreams;
  private readonly opts: HttpAdapterOptions;

  protected constructor(ctx: AdapterContext, opts: HttpAdapterOptions) {
    this.ctx = ctx;
    this.opts = opts;
    this.protocols = [opts.protocol];
    this.upstreamSet = new HttpUpstreams({ protocols: this.protocols, log: ctx.log, credentials: ctx.credentials, health: opts.health });
  }

  abstract handle(exchange: Exchange): void;
  abstract renderError(err: GatewayError, to: ErrorTarget): void;

  /**
   * Prepares the Call of `operation`, authenticates it from the headers, then runs `serve`. `tag` marks the prepared
   * Call before authentication (what `renderError` needs to answer in the right shape).
   */
  protected admit(x: Exchange, operation: string, serve: (pre: Call) => void | Promise<void>, tag?: (pre: Call) => void): void {
    const { req, res, match } = x;
    const pre = this.ctx.calls.prepare({ protocol: this.opts.protocol, rule: match.rule, operation, req, resource: match.rule.mount });
    tag?.(pre);
    const next = (): void => {
      let work: void | Promise<void>;
      try {
        work = serve(pre);
      } catch (err) {
        if (err instanceof GatewayError) return this.reject(pre, req, res, err);
        return this.crash(res, err);
      }
      if (work !== undefined) work.catch((err: unknown) => this.crash(res, err));
    };
    let auth: void | Promise<void>;
    try {
      auth = x.state.pipeline.authenticate(pre);
    } catch (err) {
      return this.reject(pre, req, res, toGatewayError(err));
    }
    if (auth === undefined) return next();
    auth.then(next, (err: unknown) => this.reject(pre, req, res, toGatewayError(err)));
  }

  /** Refuses a request whose Call was only prepared (authentication, path, body): body drained, answered in the adapter's shape, recorded. */
  reject(pre: Call, req: IncomingMessage, res: ServerResponse, err: GatewayError): void {
    if (!req.complete) req.resume();
    this.renderError(err, { res, req, call: pre });
    this.ctx.calls.refused(pre, err, res.statusCode);
  }

  /** An adapter failure nothing else caught: logged; answered if nothing was sent yet, otherwise the response is cut. */
  crash(res: ServerResponse, err: unknown): void {
    this.ctx.log.error({ err }, `${this.opts.label} adapter failure`);
    if (!res.headersSent) this.opts.crashWriter(res, toGatewayError(err));
    else if (!res.writableEnded) res.destroy();
  }

  /** The names of the snapshot's backends of this adapter's protocol (what its caches keep on a reload). */
  protected backendsOf(snapshot: ConfigSnapshot): Set<string> {
    return new Set([...snapshot.backends.values()].filter((b) => b.spec.protocol === this.opts.protocol).map((b) => b.name));
  }

  upstreams(): Record<string, UpstreamReadiness> {
    return this.upstreamSet.statuses();
  }

  sessions(): number {
    return 0;
  }

  reconfigure(snapshot: ConfigSnapshot): void {
    this.upstreamSet.sync(snapshot);
  }

  drain(): void {}

  close(): Promise<void> {
    return this.upstreamSet.close();
  }
}
