/**
 * Request bodies streamed through without being buffered (model tensors, large completions, uploads), counted as
 * they pass and refused as soon as they exceed the route's limit. Protocols that must parse the body read it with
 * `readBody` (io.ts) under the same per-route limit instead.
 */
import type { IncomingMessage } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import { Errors, GatewayError } from '../core/errors.ts';

/** The 413 for a body over `limit`. The connection is closed after the answer: the rest of the body is not read. */
export function tooLarge(limit: number): GatewayError {
  return new GatewayError(Errors.PAYLOAD_TOO_LARGE, `Request body exceeds ${limit} bytes`, { data: { limit }, headers: { connection: 'close' } });
}

/** A request body as a stream that counts its bytes and fails with TG_PAYLOAD_TOO_LARGE once over its limit. */
export class BoundedBody extends Transform {
  readonly limit: number;
  /** Bytes passed through so far. */
  bytes = 0;

  constructor(limit: number) {
    super();
    this.limit = limit;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.limit) callback(tooLarge(this.limit));
    else callback(null, chunk);
  }
}

/**
 * The body of `req` as a bounded stream. A declared Content-Length over the limit is refused at once (nothing is
 * read); otherwise the limit is enforced while the bytes flow. If the client goes away mid-body, the stream fails
 * with TG_REQUEST_CANCELLED (whoever reads it, e.g. the forwarder, then aborts its upstream request).
 */
export function boundedBody(req: IncomingMessage, limit: number): BoundedBody {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) throw tooLarge(limit);
  const body = new BoundedBody(limit);
  const onClose = (): void => {
    if (!req.complete) body.destroy(new GatewayError(Errors.REQUEST_CANCELLED, 'Client closed the connection during the request body'));
  };
  req.once('close', onClose);
  body.once('error', () => {
    // Over the limit (or aborted): stop feeding the transform; what is left of the body is discarded, not buffered.
    req.unpipe(body);
    req.off('close', onClose);
    req.resume();
  });
  body.once('end', () => req.off('close', onClose));
  req.pipe(body);
  return body;
}
