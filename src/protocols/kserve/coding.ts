/**
 * Content codings of KServe request bodies, as Triton reads them (server/src/http_server.cc, and what tritonclient's
 * `request_compression_algorithm` sends): an infer body may be `gzip` or `deflate` (the zlib format, as
 * `zlib.compress` writes it), the inference header and its Inference-Header-Content-Length counting the decoded
 * bytes; every other body is `identity` only (Triton answers generate's with 400 "only 'identity' is supported").
 *
 * The gateway reads what it forwards (the tensors' names and shapes for policy, the binary header's framing), so a
 * compressed infer body is read whole, bounded by the route's limit, decoded with the decoded size bounded by the same
 * limit (a small body that inflates past it is refused before it does), and forwarded as the client sent it. Any other
 * coding is refused with 415 and the Accept-Encoding the endpoint takes (RFC 9110 15.5.16).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { promisify } from 'node:util';
import { gunzip, inflate } from 'node:zlib';
import { Errors, GatewayError } from '../../core/errors.ts';

export type RequestCoding = 'gzip' | 'deflate';

const gunzipAsync = promisify(gunzip);
const inflateAsync = promisify(inflate);

/**
 * The coding of a request body: undefined when none (or `identity`); `gzip` / `deflate` when `compressible` (infer)
 * allows it (codings are case-insensitive, RFC 9110 8.4.1); TG_UNSUPPORTED_MEDIA_TYPE otherwise.
 */
export function requestCoding(headers: IncomingHttpHeaders, compressible: boolean, what: string): RequestCoding | undefined {
  const raw = headers['content-encoding'];
  if (raw === undefined) return undefined;
  const coding = raw.trim().toLowerCase();
  if (coding === '' || coding === 'identity') return undefined;
  if (compressible && (coding === 'gzip' || coding === 'deflate')) return coding;
  const accepted = compressible ? 'gzip, deflate' : 'identity';
  const hint = compressible ? 'send it uncompressed, or compressed with gzip or deflate' : 'send it uncompressed';
  throw new GatewayError(Errors.UNSUPPORTED_MEDIA_TYPE, `Content-Encoding ${raw} is not supported for ${what} bodies: ${hint}`, { headers: { 'accept-encoding': accepted } });
}

/**
 * Bytes of decoded output that decodings in flight may produce at once, across the process: a few KB of gzip can ask
 * for a route's whole `maxBodyBytes` of decoding (~1000x), before policy or limits have seen the call. Past it,
 * 503 TG_OVERLOADED (the client may retry, or send the body uncompressed).
 */
export const DECODE_TOTAL_BYTES = 64 * 1024 * 1024;
let decoding = 0;

/** The decoded body, at most `limit` bytes (TG_PAYLOAD_TOO_LARGE past it; TG_INVALID_REQUEST when not valid data). */
export async function decodeBody(body: Buffer, coding: RequestCoding, limit: number): Promise<Buffer> {
  if (decoding + limit > DECODE_TOTAL_BYTES) {
    throw new GatewayError(Errors.OVERLOADED, 'Too many compressed bodies are being decoded at once; retry later, or send the body uncompressed');
  }
  decoding += limit;
  try {
    return await (coding === 'gzip' ? gunzipAsync : inflateAsync)(body, { maxOutputLength: limit });
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE') throw new GatewayError(Errors.PAYLOAD_TOO_LARGE, `Request body exceeds ${limit} bytes once decoded (Content-Encoding ${coding})`);
    throw new GatewayError(Errors.INVALID_REQUEST, `The body is not valid ${coding} data (Content-Encoding ${coding}): ${(err as Error).message}`);
  } finally {
    decoding -= limit;
  }
}
