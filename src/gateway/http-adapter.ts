/**
 * What every HTTP protocol adapter does the same way around its own wire format: refusing a request whose Call was
 * only prepared, and answering an unexpected failure of the adapter itself.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Call } from '../core/call.ts';
import { toGatewayError, type GatewayError } from '../core/errors.ts';
import type { AdapterContext, ProtocolAdapter } from './adapter.ts';

/** Refuses a request whose Call was only prepared (authentication, path, body): body drained, answered in the adapter's shape, recorded. */
export function refusePrepared(adapter: Pick<ProtocolAdapter, 'renderError'>, ctx: AdapterContext, pre: Call, req: IncomingMessage, res: ServerResponse, err: GatewayError): void {
  if (!req.complete) req.resume();
  adapter.renderError(err, { res, req, call: pre });
  ctx.calls.refused(pre, err, res.statusCode);
}

/** An adapter failure nothing else caught: logged; answered with `write` if nothing was sent yet, otherwise the response is cut. */
export function answerCrash(ctx: AdapterContext, what: string, res: ServerResponse, err: unknown, write: (res: ServerResponse, err: GatewayError) => void): void {
  ctx.log.error({ err }, `${what} adapter failure`);
  if (!res.headersSent) write(res, toGatewayError(err));
  else if (!res.writableEnded) res.destroy();
}
