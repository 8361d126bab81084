/**
 * The listener: bare node:http for the proxy routes (Hono would add ~0.15 ms a hop, see bench/), Hono for the
 * operational endpoints. Tracks in-flight exchanges so SIGTERM can drain them up to a deadline.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Server as NetServer, type AddressInfo, type Socket } from 'node:net';
import { getRequestListener } from '@hono/node-server';
import { Errors, GatewayError } from '../core/errors.ts';
import type { Gateway } from '../gateway/gateway.ts';
import { createPublicApp, publicOwnPath, type AdminExtension } from './admin.ts';
import { listenOn, sendInternalError } from './io.ts';

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
  /** Open client connections, and when the last exchange during the drain ended (see drain()). */
  private readonly sockets = new Set<Socket>();
  private lastExchangeEnd = 0;
  private lastAccept = 0;

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
    this.server.on('connection', (socket: Socket) => {
      this.lastAccept = Date.now();
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
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
      if (this.draining) this.lastExchangeEnd = Date.now();
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
      sendInternalError(res);
      return;
    }
    this.admin(req, res).catch((err: unknown) => {
      this.gateway.log.error({ err }, 'admin endpoint failed');
      sendInternalError(res);
    });
  }

  listen(port: number, host: string): Promise<AddressInfo> {
    return listenOn(this.server, port, host);
  }

  get inFlight(): number {
    return this.open.size;
  }

  /**
   * Stops accepting, lets in-flight requests and streams finish up to `deadlineMs`, then closes what is left.
   * Returns how many exchanges were cut at the deadline.
   *
   * HTTP/1.1 keep-alive has a race: a client may write its next request on an idle connection in the instant the
   * server closes it, and then sees a reset for a request the server never read. So no connection is closed under a
   * client that is still using the gateway: answers still to be sent say `Connection: close`, a request arriving on
   * a kept-alive connection gets TG_SHUTTING_DOWN with `Connection: close` (node closes that connection after it),
   * and the connections left are closed only once nothing is in flight and no exchange has ended for
   * IDLE_GRACE_MS (clients that have not come back by then have gone quiet), or at the deadline.
   *
   * Closing the listener has a race of its own: connections the kernel completed but node has not accepted yet are
   * reset. See stopListening().
   */
  async drain(deadlineMs: number): Promise<number> {
    const started = Date.now();
    this.lastExchangeEnd = started;
    this.draining = true;
    this.gateway.beginDrain();
    for (const res of this.open) if (!res.headersSent) res.shouldKeepAlive = false;
    const listener = this.stopListening();
    const deadline = started + deadlineMs;
    const grace = Math.min(IDLE_GRACE_MS, deadlineMs);
    while ((listener.listening() || this.sockets.size > 0) && Date.now() < deadline) {
      if (!listener.listening() && this.open.size === 0 && Date.now() - this.lastExchangeEnd >= grace) {
        for (const socket of this.sockets) socket.destroy();
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    const cut = this.open.size;
    clearInterval(this.sweeper);
    listener.now();
    this.server.closeAllConnections();
    // http's own close: stops its connection-checking timer (the listener is already closed).
    this.server.close();
    await listener.closed;
    return cut;
  }

  /**
   * Stops listening; resolves once every connection is gone. A listening socket that closes resets the connections
   * in its accept queue (completed by the kernel, not yet accepted by node), whose clients already sent requests the
   * gateway never reads. libuv accepts until accept() says EAGAIN, emitting 'connection' for each, so the queue is
   * empty right after the poll phase that accepted: while clients are connecting the listener is closed in the
   * check phase (setImmediate) after the next 'connection' event (a window of the rest of that poll phase instead of
   * the event loop's lag; closing inside the event itself would reset whatever was queued behind that connection),
   * and at once when none has connected for IDLE_GRACE_MS. What still lands in the queue in that window is reset by
   * the kernel before node reads a byte of it (TCP offers no way to close a listener without that race): such a
   * client knows its request was never processed. net's close, not http's: that one also closes idle kept-alive
   * connections (the race drain() avoids).
   */
  private stopListening(): { readonly closed: Promise<void>; readonly listening: () => boolean; readonly now: () => void } {
    let listening = true;
    let close!: () => void;
    const closed = new Promise<void>((resolve) => {
      close = (): void => {
        if (!listening) return;
        listening = false;
        clearTimeout(timer);
        this.server.off('connection', afterAccepts);
        NetServer.prototype.close.call(this.server, () => resolve());
      };
    });
    const timer = setTimeout(close, IDLE_GRACE_MS);
    const afterAccepts = (): void => {
      this.server.off('connection', afterAccepts);
      setImmediate(close);
    };
    if (Date.now() - this.lastAccept >= IDLE_GRACE_MS) close();
    else this.server.on('connection', afterAccepts);
    return { closed, listening: () => listening, now: close };
  }
}

/** How long clients must have been quiet before a draining listener closes the kept-alive connections left (see drain()). */
const IDLE_GRACE_MS = 250;

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
