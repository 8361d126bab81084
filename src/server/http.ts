/**
 * The listener: bare node:http for the proxy routes (Hono would add ~0.15 ms a hop, see bench/), Hono for the
 * operational endpoints. Tracks in-flight exchanges so SIGTERM can drain them up to a deadline.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getRequestListener } from '@hono/node-server';
import { Errors, GatewayError, jsonRpcErrorObject } from '../core/errors.ts';
import type { Gateway } from '../gateway/gateway.ts';
import { createPublicApp, publicOwnPath, type AdminExtension } from './admin.ts';
import { sendJson } from './io.ts';

export interface HttpServerOptions {
  readonly gateway: Gateway;
  /** What the public listener serves besides routes (RFC 9728 metadata); operational endpoints are on AdminServer. */
  readonly publicExtensions?: readonly AdminExtension[];
}

export class HttpServer {
  readonly server: Server;
  private readonly gateway: Gateway;
  private readonly admin: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
  private readonly open = new Set<ServerResponse>();
  private draining = false;
  private readonly slow: { readonly maxBufferedBytes: number; readonly slowClientMs: number };
  /** Responses over their socket's high-water mark, since when (the sweep cuts those stalled too long). */
  private readonly stalled = new Map<ServerResponse, { since: number; buffered: number }>();
  private readonly sweeper: NodeJS.Timeout;
  private slowCut = 0;

  constructor(opts: HttpServerOptions) {
    this.gateway = opts.gateway;
    const app = createPublicApp(opts.publicExtensions ?? []);
    this.admin = getRequestListener(app.fetch, { overrideGlobalObjects: false });
    const http = opts.gateway.state().snapshot.gateway.http;
    this.slow = { maxBufferedBytes: http.maxBufferedBytes, slowClientMs: http.slowClientMs };
    this.server = createServer(
      {
        keepAliveTimeout: http.keepAliveTimeoutMs,
        // Slowloris: headers (and a new connection's first bytes) within headersTimeoutMs, the whole request within
        // requestTimeoutMs. Responses (SSE) are never timed out from here; slow readers are cut by the sweep below.
        headersTimeout: http.headersTimeoutMs,
        requestTimeout: http.requestTimeoutMs,
        // How often those two are checked: their resolution.
        connectionsCheckingInterval: Math.min(1_000, http.headersTimeoutMs),
      },
      (req, res) => this.onRequest(req, res),
    );
    if (http.maxConnections > 0) this.server.maxConnections = http.maxConnections;
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      // A request not received in time (slowloris) is told so (408); anything unparsable (smuggling attempts:
      // Content-Length with Transfer-Encoding, two lengths, an obfuscated Transfer-Encoding) gets 400. Either way
      // the connection is closed: nothing after the bad bytes is read as another request.
      const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
      if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
      else socket.destroy(err);
    });
    this.sweeper = setInterval(() => this.sweepSlowClients(), Math.min(1_000, this.slow.slowClientMs));
    this.sweeper.unref();
  }

  /**
   * Cuts off clients that do not read what they asked for (an SSE stream nobody reads). A response over its socket's
   * high-water mark is watched: if its buffer did not shrink since the last sweep while holding more than
   * maxBufferedBytes, or for slowClientMs in all, the client is cut off. Whatever wrote to it (a relayed upstream
   * stream paused by backpressure, server events) sees the close and lets go. A big answer read at any pace shrinks.
   */
  private sweepSlowClients(): void {
    const now = Date.now();
    const { maxBufferedBytes, slowClientMs } = this.slow;
    for (const res of this.open) {
      // Over the high-water mark: still waiting on the client (also after end(): a whole answer written at once).
      if (res.destroyed || !res.headersSent || res.writableLength <= res.writableHighWaterMark) {
        this.stalled.delete(res);
        continue;
      }
      const buffered = res.writableLength;
      const seen = this.stalled.get(res);
      if (seen === undefined) {
        this.stalled.set(res, { since: now, buffered });
        continue;
      }
      if (buffered < seen.buffered) {
        seen.since = now;
        seen.buffered = buffered;
        continue;
      }
      seen.buffered = buffered;
      if (buffered > maxBufferedBytes || now - seen.since > slowClientMs) {
        this.slowCut++;
        this.gateway.log.warn({ buffered, stalledMs: now - seen.since }, 'client not reading its response; cut off');
        this.stalled.delete(res);
        res.destroy();
      }
    }
  }

  /** Responses cut off because their client did not read them. */
  get slowClientsCut(): number {
    return this.slowCut;
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const open = this.open;
    open.add(res);
    res.once('close', () => {
      open.delete(res);
      this.stalled.delete(res);
    });
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    if (this.draining) {
      req.resume();
      // In the shape of the protocol the request was for (a JSON-RPC error, an OpenAI error object...).
      this.gateway.reject(req, res, path, new GatewayError(Errors.SHUTTING_DOWN, undefined, { headers: { connection: 'close' } }));
      return;
    }
    if (req.headers.authorization !== undefined) keepRepeatedAuthorization(req);
    try {
      // The gateway's own public paths first: no route (not even one at "/") shadows them.
      if (!publicOwnPath(path) && this.gateway.dispatch(req, res, path)) return;
    } catch (err) {
      this.gateway.log.error({ err }, 'dispatch failed');
      if (!res.headersSent) sendJson(res, 500, { error: jsonRpcErrorObject(new GatewayError(Errors.INTERNAL)) });
      return;
    }
    this.admin(req, res).catch((err: unknown) => {
      this.gateway.log.error({ err }, 'admin endpoint failed');
      if (!res.headersSent) sendJson(res, 500, { error: jsonRpcErrorObject(new GatewayError(Errors.INTERNAL)) });
    });
  }

  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  get inFlight(): number {
    return this.open.size;
  }

  /**
   * Stops accepting, lets in-flight requests and streams finish up to `deadlineMs`, then closes what is left.
   * Returns how many exchanges were cut at the deadline.
   */
  async drain(deadlineMs: number): Promise<number> {
    this.draining = true;
    this.gateway.beginDrain();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    const deadline = Date.now() + deadlineMs;
    while (this.open.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      this.server.closeIdleConnections();
    }
    const cut = this.open.size;
    clearInterval(this.sweeper);
    this.server.closeAllConnections();
    await closed;
    return cut;
  }
}

/**
 * node:http keeps only the first of repeated Authorization headers. Which credential counts must never depend on
 * that: repeated ones are joined (RFC 9110 5.3) so that the identity guard sees them all and refuses the request.
 */
function keepRepeatedAuthorization(req: IncomingMessage): void {
  const raw = req.rawHeaders;
  let values: string[] | undefined;
  let count = 0;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 13 && raw[i]!.toLowerCase() === 'authorization') {
      count++;
      (values ??= []).push(raw[i + 1]!);
    }
  }
  if (count > 1) req.headers.authorization = values!.join(', ');
}
