/** Small helpers for the bare node:http hot path: reading a bounded body and writing whole responses. */
import type { IncomingMessage, Server, ServerResponse, OutgoingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import Negotiator from 'negotiator';
import { Errors, GatewayError, jsonRpcErrorObject } from '../core/errors.ts';

/** Reads the request body, refusing it (413) as soon as it exceeds `limit` bytes. */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    req.resume();
    return Promise.reject(new GatewayError(Errors.PAYLOAD_TOO_LARGE, `Request body exceeds ${limit} bytes`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        req.resume();
        reject(new GatewayError(Errors.PAYLOAD_TOO_LARGE, `Request body exceeds ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)));
    req.once('error', reject);
  });
}

/** Writes a complete response with a content-length (no chunking, one write). */
export function sendBody(
  res: ServerResponse,
  status: number,
  contentType: string,
  body: string | Buffer,
  headers?: OutgoingHttpHeaders,
): void {
  if (res.headersSent || res.destroyed) {
    if (!res.writableEnded) res.end();
    return;
  }
  const length = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
  const h: OutgoingHttpHeaders = { 'content-type': contentType, 'content-length': length };
  if (headers) Object.assign(h, headers);
  res.writeHead(status, h);
  res.end(body);
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers?: OutgoingHttpHeaders): void {
  sendBody(res, status, 'application/json', JSON.stringify(body), headers);
}

/** Client address for logs and policy (the socket peer; proxies' forwarded headers are not trusted). */
export function remoteAddress(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? '';
}

const negotiated = new Map<string, boolean>();
const NEGOTIATED_MAX = 256;

/**
 * True when an `Accept` header allows every one of `types` (RFC 9110 12.5.1: media ranges such as `text/*` and the
 * any-type range, parameters, q-values; a type whose most specific matching range has q=0 is refused). A missing or
 * empty header allows nothing: the protocol using this (MCP) requires clients to name what they accept. Parsed by
 * `negotiator`; the answers for the few headers clients actually send are remembered (a bounded table, emptied when
 * full).
 */
export function accepts(accept: string | undefined, ...types: string[]): boolean {
  if (accept === undefined || accept === '') return false;
  const key = `${types.join(' ')}\n${accept}`;
  let ok = negotiated.get(key);
  if (ok === undefined) {
    ok = new Negotiator({ headers: { accept } }).mediaTypes(types).length === types.length;
    if (negotiated.size >= NEGOTIATED_MAX) negotiated.clear();
    negotiated.set(key, ok);
  }
  return ok;
}

/** The media type of a Content-Type header, lower-cased, without parameters (`undefined` when absent). */
export function mediaType(contentType: string | undefined): string | undefined {
  return contentType === undefined ? undefined : contentType.split(';', 1)[0]!.trim().toLowerCase();
}

/** Starts `server` listening; resolves with the bound address, rejects on a listen error (port in use...). */
export function listenOn(server: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

/** 500 TG_INTERNAL for an endpoint that threw, unless an answer has started already. */
export function sendInternalError(res: ServerResponse): void {
  if (!res.headersSent) sendJson(res, 500, { error: jsonRpcErrorObject(new GatewayError(Errors.INTERNAL)) });
}
